"""XML-style formats whose parameter values are raw text typed by the tool schema:
``qwen3_coder`` (``<function=NAME><parameter=P>value</parameter></function>``) and ``glm45`` /
``glm47`` (``NAME<arg_key>K</arg_key><arg_value>V</arg_value>``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._base import (
    ParseError,
    ToolCallParser,
    convert_value,
    make_call,
    param_types,
    render_value,
)

__all__ = ["Qwen3CoderParser", "GlmParser", "QWEN3_CODER", "GLM45", "GLM47"]

_NAME = re.compile(r"\s*([^\s<>=/]+)\s*>")


def _blocks(text: str, at: int, open_tag: str, close_tag: str) -> list[tuple[int, str]]:
    """(offset, body) of each ``open … close`` block from ``at``; an unclosed last block runs to
    the end of the text."""
    out = []
    pos = at
    while pos >= 0:
        body = pos + len(open_tag)
        end = text.find(close_tag, body)
        nxt = text.find(open_tag, body)
        if end < 0 or (0 <= nxt < end):  # unclosed: it ends where the next one starts
            stop = nxt if nxt >= 0 else len(text)
            out.append((pos, text[body:stop]))
            pos = nxt
        else:
            out.append((pos, text[body:end]))
            pos = text.find(open_tag, end + len(close_tag))
    return out


def _strip_one_newline(value: str) -> str:
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


class Qwen3CoderParser(ToolCallParser):
    """``<tool_call>\\n<function=NAME>\\n<parameter=P>\\nvalue\\n</parameter>\\n</function>\\n</tool_call>``.

    One leading and one trailing newline of a value are dropped; an unclosed ``<parameter=`` or
    ``<function=`` at the end of the text is accepted; a ``<function=`` block without the
    ``<tool_call>`` wrapper is read too.
    """

    name = "qwen3_coder"
    start = "<tool_call>"

    def find_start(self, text: str) -> int:
        found = [i for i in (text.find("<tool_call>"), text.find("<function=")) if i >= 0]
        return min(found) if found else -1

    def parse_calls(self, text: str, at: int, tools: Sequence[Mapping[str, Any]] | None):
        calls: list[dict[str, Any]] = []
        errors: list[ParseError] = []
        for offset, body in _blocks(text, text.find("<function=", at), "<function=", "</function>"):
            m = _NAME.match(body)
            if m is None:
                errors.append(ParseError(offset, "<function= needs a name followed by '>'", body))
                continue
            name = m.group(1)
            types = param_types(tools, name)
            args: dict[str, Any] = {}
            ok = True
            for p_off, p_body in _blocks(body, body.find("<parameter=", m.end()), "<parameter=", "</parameter>"):
                pm = _NAME.match(p_body)
                if pm is None:
                    errors.append(ParseError(offset + p_off, f"a parameter of {name!r} has no name", p_body))
                    ok = False
                    break
                raw = p_body[pm.end():]
                if "</function>" in raw:
                    raw = raw[: raw.index("</function>")]
                args[pm.group(1)] = convert_value(_strip_one_newline(raw), types.get(pm.group(1)))
            if ok:
                calls.append(make_call(name, args, len(calls)))
        return calls, errors

    def render_calls(self, calls: list[tuple[str, Any]]) -> str:
        out = []
        for name, args in calls:
            params = "".join(f"<parameter={k}>\n{render_value(v)}\n</parameter>\n" for k, v in (args or {}).items())
            out.append(f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>")
        return "\n".join(out)


_GLM_NAME = re.compile(r"\s*([^\s<]+)")
_GLM_PAIR = re.compile(
    r"<arg_key>(.*?)</arg_key>(?:\s|\\n)*<arg_value>(.*?)(?:</arg_value>|(?=<arg_key>)|$)", re.DOTALL
)


class GlmParser(ToolCallParser):
    """GLM-4.5 / 4.6 (``glm45``) and GLM-4.7 (``glm47``):
    ``<tool_call>NAME\\n<arg_key>K</arg_key>\\n<arg_value>V</arg_value>\\n</tool_call>``.

    Parsing is the looser GLM-4.7 reading for both (no newline needed after the name; spaces,
    newlines or a literal ``\\n`` between key and value); rendering follows each template
    (``glm47`` writes no newlines).
    """

    start = "<tool_call>"

    def __init__(self, name: str, compact: bool):
        self.name, self.compact = name, compact

    def parse_calls(self, text: str, at: int, tools: Sequence[Mapping[str, Any]] | None):
        calls: list[dict[str, Any]] = []
        errors: list[ParseError] = []
        for offset, body in _blocks(text, text.find("<tool_call>", at), "<tool_call>", "</tool_call>"):
            m = _GLM_NAME.match(body)
            if m is None:
                errors.append(ParseError(offset, "<tool_call> needs a function name", body))
                continue
            name = m.group(1)
            rest = body[m.end():]
            if rest.strip() and "<arg_key>" not in rest:
                errors.append(ParseError(offset, f"unreadable arguments of {name!r}", body))
                continue
            types = param_types(tools, name)
            args = {k.strip(): convert_value(v, types.get(k.strip())) for k, v in _GLM_PAIR.findall(rest)}
            calls.append(make_call(name, args, len(calls)))
        return calls, errors

    def render_calls(self, calls: list[tuple[str, Any]]) -> str:
        nl = "" if self.compact else "\n"
        out = []
        for name, args in calls:
            pairs = "".join(
                f"<arg_key>{k}</arg_key>{nl}<arg_value>{render_value(v)}</arg_value>{nl}" for k, v in (args or {}).items()
            )
            out.append(f"<tool_call>{name}{nl}{pairs}</tool_call>")
        return "\n".join(out)


QWEN3_CODER = Qwen3CoderParser()
GLM45 = GlmParser("glm45", compact=False)
GLM47 = GlmParser("glm47", compact=True)
