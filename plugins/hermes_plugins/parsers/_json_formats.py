"""Formats whose arguments are JSON after a marker: ``mistral`` (``[TOOL_CALLS]`` + a JSON array,
or ``NAME{json}`` per call), ``llama3_json`` (``<|python_tag|>`` optional, JSON objects joined
by ``;``), ``deepseek_v3`` / ``deepseek_v31`` and ``kimi_k2`` (special-token delimited)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._base import (
    ParseError,
    ToolCallParser,
    call_name_args,
    decode_json_at,
    json_call,
    make_call,
)

__all__ = ["MistralParser", "Llama3JsonParser", "DeepSeekParser", "KimiK2Parser",
           "MISTRAL", "LLAMA3_JSON", "DEEPSEEK_V3", "DEEPSEEK_V31", "KIMI_K2"]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _args(value: Any, name: str, offset: int, errors: list[ParseError], text: str) -> Any:
    if not isinstance(value, dict):
        errors.append(ParseError(offset, f"the arguments of {name!r} are not a JSON object", text))
        return None
    return value


# --------------------------------------------------------------------------- mistral

_MISTRAL_NAME = re.compile(r"\s*([A-Za-z0-9_.\-]+)\s*(?:\[CALL_ID\]\s*([A-Za-z0-9]+)\s*)?(?:\[ARGS\])?")
#: Where to resume after a call with broken arguments: the next marker or ``NAME{``.
_MISTRAL_NEXT = re.compile(r"(\[TOOL_CALLS\])|[,\s}\]]\s*([A-Za-z0-9_.\-]+)\s*(?:\[ARGS\])?\{")


class MistralParser(ToolCallParser):
    """``[TOOL_CALLS]`` followed by a JSON array of ``{"name", "arguments"}`` (tokenizers before
    v11) or by ``NAME{json}`` per call (v11+; also ``NAME[ARGS]{json}`` and
    ``NAME[CALL_ID]id[ARGS]{json}`` of later tokenizers). Parsing reads both; ``render`` writes
    ``form`` (``"v11"`` or ``"array"``)."""

    name = "mistral"
    start = "[TOOL_CALLS]"

    def __init__(self, form: str = "v11"):
        if form not in ("v11", "array"):
            raise ValueError(f"mistral form must be 'v11' or 'array', got {form!r}")
        self.form = form

    def parse_calls(self, text: str, at: int, tools: Sequence[Mapping[str, Any]] | None):
        calls: list[dict[str, Any]] = []
        errors: list[ParseError] = []
        pos, n = at, len(text)
        while True:
            while pos < n and text[pos] in " \t\r\n,":
                pos += 1
            if text.startswith(self.start, pos):
                pos += len(self.start)
                continue
            if pos >= n:
                break
            if text[pos] == "[":
                pos = self._array(text, pos, calls, errors)
            else:
                pos = self._named(text, pos, calls, errors)
            if pos < 0:
                break
        return calls, errors

    def _array(self, text: str, pos: int, calls: list, errors: list) -> int:
        try:
            arr, end = decode_json_at(text, pos)
        except ValueError:
            arr = None
        if isinstance(arr, list):
            for obj in arr:
                call = json_call(obj, len(calls), pos, errors, _dumps(obj))
                if call is not None:
                    calls.append(call)
            return end
        # A broken array: read each object on its own so the good ones survive.
        stop = text.find(self.start, pos)
        seg = text[: stop if stop >= 0 else None]
        at = seg.find("{", pos)
        while at >= 0:
            try:
                obj, end = decode_json_at(seg, at)
            except ValueError as e:
                errors.append(ParseError(at, f"invalid JSON in the [TOOL_CALLS] array: {e}", seg[at:]))
                at = seg.find('{"name"', at + 1)
                continue
            call = json_call(obj, len(calls), at, errors, seg[at:end])
            if call is not None:
                calls.append(call)
            at = seg.find("{", end)
        return stop

    def _named(self, text: str, pos: int, calls: list, errors: list) -> int:
        m = _MISTRAL_NAME.match(text, pos)
        if m is None or text[m.end():].lstrip()[:1] != "{":
            errors.append(ParseError(pos, "expected NAME{json arguments} after [TOOL_CALLS]", text[pos:]))
            return text.find(self.start, pos)
        name, call_id = m.group(1), m.group(2)
        try:
            args, end = decode_json_at(text, m.end())
        except ValueError as e:
            errors.append(ParseError(pos, f"invalid JSON arguments of {name!r}: {e}", text[m.end():]))
            nxt = _MISTRAL_NEXT.search(text, m.end())
            return -1 if nxt is None else (nxt.start(1) if nxt.group(1) else nxt.start(2))
        if _args(args, name, pos, errors, text[pos:end]) is not None:
            calls.append(make_call(name, args, len(calls), call_id))
        return end

    def render_calls(self, calls: list[tuple[str, Any]]) -> str:
        if self.form == "array":
            return "[TOOL_CALLS] " + _dumps([{"name": n, "arguments": a} for n, a in calls])
        return "".join(f"[TOOL_CALLS]{n}{_dumps(a)}" for n, a in calls)


# --------------------------------------------------------------------------- llama 3

class Llama3JsonParser(ToolCallParser):
    """Llama 3.1 / 3.2 / 4 JSON tool calls: optional ``<|python_tag|>``, then one or more
    ``{"name": ..., "parameters"|"arguments": {...}}`` objects separated by ``;``. Text that does
    not start with a tool-call object (after the tag) is content."""

    name = "llama3_json"
    start = "<|python_tag|>"

    def find_start(self, text: str) -> int:
        at = text.find(self.start)
        if at >= 0:
            return at
        stripped = text.lstrip()
        if stripped.startswith("{") and '"name"' in stripped:
            return len(text) - len(stripped)
        return -1

    def parse_with_errors(self, text: str, tools: Sequence[Mapping[str, Any]] | None = None):
        content, calls, errors = super().parse_with_errors(text, tools)
        if not calls and not errors and self.start not in text:
            return text, [], []  # a JSON answer that is not a tool call
        return content, calls, errors

    def parse_calls(self, text: str, at: int, tools: Sequence[Mapping[str, Any]] | None):
        calls: list[dict[str, Any]] = []
        errors: list[ParseError] = []
        pos = at + len(self.start) if text.startswith(self.start, at) else at
        n = len(text)
        while True:
            while pos < n and text[pos] in " \t\r\n;":
                pos += 1
            if pos >= n:
                break
            if text.startswith(self.start, pos):
                pos += len(self.start)
                continue
            try:
                obj, end = decode_json_at(text, pos)
            except ValueError as e:
                errors.append(ParseError(pos, f"invalid JSON tool call: {e}", text[pos:]))
                nxt = text.find('{"name"', pos + 1)
                if nxt < 0:
                    break
                pos = nxt
                continue
            call = json_call(obj, len(calls), pos, errors, text[pos:end], ("parameters", "arguments"))
            if call is not None:
                calls.append(call)
            pos = end
        return calls, errors

    def render(self, tool_calls: Sequence[Mapping[str, Any]], content: str | None = None) -> str:
        """JSON objects joined by ``; `` (the Llama 3.1 template's form); after ``content``
        the ``<|python_tag|>`` marks where the calls start."""
        body = self.render_calls([call_name_args(c) for c in tool_calls])
        if content:
            return f"{content}{self.start}{body}" if body else content
        return body

    def render_calls(self, calls: list[tuple[str, Any]]) -> str:
        return "; ".join(_dumps({"name": n, "parameters": a}) for n, a in calls)


# --------------------------------------------------------------------------- deepseek

_DS_CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
_DS_CALLS_END = "<｜tool▁calls▁end｜>"
_DS_CALL_BEGIN = "<｜tool▁call▁begin｜>"
_DS_CALL_END = "<｜tool▁call▁end｜>"
_DS_SEP = "<｜tool▁sep｜>"


class DeepSeekParser(ToolCallParser):
    """DeepSeek-V3 (``TYPE<｜tool▁sep｜>NAME\\n```json\\nARGS\\n```“) and V3.1 / V3.2
    (``NAME<｜tool▁sep｜>ARGS``) calls inside ``<｜tool▁calls▁begin｜>…<｜tool▁calls▁end｜>``."""

    def __init__(self, name: str, fenced: bool):
        self.name, self.fenced = name, fenced

    def find_start(self, text: str) -> int:
        found = [i for i in (text.find(_DS_CALLS_BEGIN), text.find(_DS_CALL_BEGIN)) if i >= 0]
        return min(found) if found else -1

    def parse_calls(self, text: str, at: int, tools: Sequence[Mapping[str, Any]] | None):
        calls: list[dict[str, Any]] = []
        errors: list[ParseError] = []
        pos = text.find(_DS_CALL_BEGIN, at)
        while pos >= 0:
            body = pos + len(_DS_CALL_BEGIN)
            sep = text.find(_DS_SEP, body)
            nxt = text.find(_DS_CALL_BEGIN, body)
            if sep < 0 or (0 <= nxt < sep):
                errors.append(ParseError(pos, f"a tool call without {_DS_SEP}", text[body: nxt if nxt >= 0 else None]))
                pos = nxt
                continue
            head = text[body:sep]
            rest = sep + len(_DS_SEP)
            if self.fenced:
                nl = text.find("\n", rest)
                start = nl if nl >= 0 else len(text)
                name = text[rest:start].strip()
                while start < len(text) and text[start] in " \t\r\n":
                    start += 1
                if text.startswith("```json", start):
                    start += len("```json")
                elif text.startswith("```", start):
                    start += 3
            else:
                name, start = head.strip(), rest
            try:
                args, end = decode_json_at(text, start)
            except ValueError as e:
                errors.append(ParseError(pos, f"invalid JSON arguments of {name!r}: {e}", text[start:]))
                pos = nxt
                continue
            if not name:
                errors.append(ParseError(pos, "a tool call without a function name", text[body:end]))
            elif _args(args, name, pos, errors, text[start:end]) is not None:
                calls.append(make_call(name, args, len(calls)))
            pos = text.find(_DS_CALL_BEGIN, end)
        return calls, errors

    def render_calls(self, calls: list[tuple[str, Any]]) -> str:
        if not calls:
            return ""
        if self.fenced:
            inner = "".join(
                f"{_DS_CALL_BEGIN}function{_DS_SEP}{n}\n```json\n{_dumps(a)}\n```{_DS_CALL_END}" for n, a in calls
            )
        else:
            inner = "".join(f"{_DS_CALL_BEGIN}{n}{_DS_SEP}{_dumps(a)}{_DS_CALL_END}" for n, a in calls)
        return f"{_DS_CALLS_BEGIN}{inner}{_DS_CALLS_END}"


# --------------------------------------------------------------------------- kimi k2

_K_SECTION_BEGIN = "<|tool_calls_section_begin|>"
_K_SECTION_END = "<|tool_calls_section_end|>"
_K_CALL_BEGIN = "<|tool_call_begin|>"
_K_ARGS_BEGIN = "<|tool_call_argument_begin|>"
_K_CALL_END = "<|tool_call_end|>"


class KimiK2Parser(ToolCallParser):
    """Kimi-K2: ``<|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>ARGS<|tool_call_end|>``
    inside the tool-calls section; the call id is ``functions.NAME:IDX``."""

    name = "kimi_k2"

    def find_start(self, text: str) -> int:
        found = [i for i in (text.find(_K_SECTION_BEGIN), text.find(_K_CALL_BEGIN)) if i >= 0]
        return min(found) if found else -1

    def parse_calls(self, text: str, at: int, tools: Sequence[Mapping[str, Any]] | None):
        calls: list[dict[str, Any]] = []
        errors: list[ParseError] = []
        pos = text.find(_K_CALL_BEGIN, at)
        while pos >= 0:
            body = pos + len(_K_CALL_BEGIN)
            arg = text.find(_K_ARGS_BEGIN, body)
            nxt = text.find(_K_CALL_BEGIN, body)
            if arg < 0 or (0 <= nxt < arg):
                errors.append(ParseError(pos, f"a tool call without {_K_ARGS_BEGIN}", text[body: nxt if nxt >= 0 else None]))
                pos = nxt
                continue
            call_id = text[body:arg].strip()
            name = call_id.removeprefix("functions.")
            if ":" in name:
                name = name.rsplit(":", 1)[0]
            try:
                args, end = decode_json_at(text, arg + len(_K_ARGS_BEGIN))
            except ValueError as e:
                errors.append(ParseError(pos, f"invalid JSON arguments of {name!r}: {e}", text[arg:]))
                pos = nxt
                continue
            if not name:
                errors.append(ParseError(pos, "a tool call without a function name", text[body:end]))
            elif _args(args, name, pos, errors, text[arg:end]) is not None:
                calls.append(make_call(name, args, len(calls), call_id))
            pos = text.find(_K_CALL_BEGIN, end)
        return calls, errors

    def render_calls(self, calls: list[tuple[str, Any]]) -> str:
        if not calls:
            return ""
        inner = "".join(
            f"{_K_CALL_BEGIN}functions.{n}:{i}{_K_ARGS_BEGIN}{_dumps(a)}{_K_CALL_END}" for i, (n, a) in enumerate(calls)
        )
        return f"{_K_SECTION_BEGIN}{inner}{_K_SECTION_END}"


MISTRAL = MistralParser()
LLAMA3_JSON = Llama3JsonParser()
DEEPSEEK_V3 = DeepSeekParser("deepseek_v3", fenced=True)
DEEPSEEK_V31 = DeepSeekParser("deepseek_v31", fenced=False)
KIMI_K2 = KimiK2Parser()
