"""``hermes`` (``<tool_call>{json}</tool_call>``) and ``longcat`` (the same with
``<longcat_tool_call>``): one JSON object per tag, repeatable, an unclosed tag at the end of the
text accepted."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._base import ParseError, ToolCallParser, decode_json_at, json_call

__all__ = ["TaggedJsonParser", "HERMES", "LONGCAT"]


class TaggedJsonParser(ToolCallParser):
    """``<open>{"name": ..., "arguments": {...}}</close>`` blocks.

    The JSON is decoded from the tag on (not cut at the first closing tag), so arguments that
    themselves contain ``</tool_call>`` survive; a block whose JSON is broken is skipped up to
    its closing tag and the next block is read.
    """

    def __init__(self, name: str, open_tag: str, close_tag: str):
        self.name, self.start, self.close = name, open_tag, close_tag

    def parse_calls(self, text: str, at: int, tools: Sequence[Mapping[str, Any]] | None):
        calls: list[dict[str, Any]] = []
        errors: list[ParseError] = []
        pos = at
        while pos >= 0:
            body = pos + len(self.start)
            try:
                obj, end = decode_json_at(text, body)
            except ValueError as e:
                close = text.find(self.close, body)
                errors.append(ParseError(pos, f"invalid JSON in {self.start}: {e}", text[body: close if close >= 0 else None]))
                pos = text.find(self.start, close + len(self.close)) if close >= 0 else -1
                continue
            call = json_call(obj, len(calls), pos, errors, text[body:end])
            if call is not None:
                calls.append(call)
            pos = text.find(self.start, end)
        return calls, errors

    def render_calls(self, calls: list[tuple[str, Any]]) -> str:
        return "\n".join(
            f"{self.start}\n{json.dumps({'name': n, 'arguments': a}, ensure_ascii=False)}\n{self.close}" for n, a in calls
        )


HERMES = TaggedJsonParser("hermes", "<tool_call>", "</tool_call>")
LONGCAT = TaggedJsonParser("longcat", "<longcat_tool_call>", "</longcat_tool_call>")
