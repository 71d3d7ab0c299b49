"""What every tool-call parser shares: the call record, JSON scanning, schema-typed values."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ToolCallParser", "ParseError", "make_call", "decode_json_at", "call_name_args", "convert_value", "param_types"]

_DECODER = json.JSONDecoder()


class ParseError:
    """One tool call that could not be parsed: where it started and why (for the agent's
    tool-error count; the well-formed calls around it are kept)."""

    __slots__ = ("offset", "message", "text")

    def __init__(self, offset: int, message: str, text: str):
        self.offset, self.message, self.text = offset, message, text[:300]

    def __repr__(self) -> str:
        return f"ParseError(offset={self.offset}, message={self.message!r})"


def make_call(name: str, arguments: Any, index: int, call_id: str | None = None) -> dict[str, Any]:
    """An OpenAI-style tool call; ``arguments`` is serialized to a JSON string."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id or f"call_{index}", "type": "function", "function": {"name": name, "arguments": arguments}}


def call_name_args(call: Mapping[str, Any]) -> tuple[str, Any]:
    """(name, arguments as a JSON value) of an OpenAI-style call (or a ``{"name", "arguments"}``)."""
    fn = call.get("function", call)
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            pass
    return fn.get("name", ""), ({} if args is None else args)


def decode_json_at(text: str, pos: int) -> tuple[Any, int]:
    """Decode one JSON value starting at ``pos`` (leading whitespace skipped).

    Raises:
        ValueError: no valid JSON value starts there.
    """
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    return _DECODER.raw_decode(text, pos)


def param_types(tools: Sequence[Mapping[str, Any]] | None, name: str) -> dict[str, Any]:
    """``{parameter: JSON-schema type}`` of tool ``name`` in OpenAI ``tools=[...]`` (empty when unknown)."""
    for tool in tools or ():
        fn = tool.get("function", tool)
        if fn.get("name") == name:
            props = (fn.get("parameters") or {}).get("properties") or {}
            return {k: (v or {}).get("type") for k, v in props.items()}
    return {}


def convert_value(raw: str, schema_type: Any) -> Any:
    """A raw parameter text typed by the tool schema (XML-style formats carry no JSON types).

    A ``string`` parameter is kept as is; numbers, booleans, objects and arrays are decoded
    (JSON, then a Python literal); without a schema type a JSON value is decoded when the whole
    text is one, else the text is kept.
    """
    if isinstance(schema_type, list):
        schema_type = next((t for t in schema_type if t != "null"), None)
    if schema_type == "string":
        return raw
    text = raw.strip()
    if schema_type == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        pass
    if schema_type in ("object", "array", "integer", "number", "boolean"):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    return raw


def render_value(value: Any) -> str:
    """A parameter value as XML-style formats write it: strings raw, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class ToolCallParser:
    """Base of the built-in parsers: ``parse(text) -> (content, tool_calls)`` and
    ``render(tool_calls) -> text``.

    ``content`` is the text before the first tool-call markup (``None`` when that is only
    whitespace); without markup it is the whole text. ``tool_calls`` are OpenAI-style dicts
    (``{"id", "type": "function", "function": {"name", "arguments": "<json>"}}``). A malformed
    call is skipped and reported by :meth:`parse_with_errors`; the well-formed calls around it
    are kept. Instances are callable (``parser(text)`` is ``parser.parse(text)``).
    """

    name = ""
    #: The text that starts the tool-call markup (content is what comes before it).
    start = ""

    def parse(self, text: str, tools: Sequence[Mapping[str, Any]] | None = None) -> tuple[str | None, list[dict[str, Any]]]:
        content, calls, _ = self.parse_with_errors(text, tools)
        return content, calls

    __call__ = parse

    def parse_with_errors(
        self, text: str, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[str | None, list[dict[str, Any]], list[ParseError]]:
        """Like :meth:`parse`, plus the calls that could not be parsed.

        Args:
            text: the model's completion.
            tools: the OpenAI tool schemas offered (formats without JSON types use them to type
                parameter values).
        """
        at = self.find_start(text)
        if at < 0:
            return text, [], []
        calls, errors = self.parse_calls(text, at, tools)
        content = text[:at]
        return (content.rstrip() if content.strip() else None), calls, errors

    def find_start(self, text: str) -> int:
        return text.find(self.start) if self.start else -1

    def parse_calls(
        self, text: str, at: int, tools: Sequence[Mapping[str, Any]] | None
    ) -> tuple[list[dict[str, Any]], list[ParseError]]:
        raise NotImplementedError

    def render(self, tool_calls: Sequence[Mapping[str, Any]], content: str | None = None) -> str:
        """The text a model of this family writes for ``tool_calls`` (after ``content``)."""
        body = self.render_calls([call_name_args(c) for c in tool_calls])
        if content:
            return f"{content}\n{body}" if body else content
        return body

    def render_calls(self, calls: list[tuple[str, Any]]) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def json_call(obj: Any, index: int, offset: int, errors: list[ParseError], text: str,
              args_keys: tuple[str, ...] = ("arguments",)) -> dict[str, Any] | None:
    """A call from a decoded ``{"name": ..., "arguments": ...}`` object, or ``None`` (error recorded)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        errors.append(ParseError(offset, "a tool call must be a JSON object with a string 'name'", text))
        return None
    args: Any = {}
    for key in args_keys:
        if key in obj:
            args = obj[key]
            break
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            errors.append(ParseError(offset, f"the arguments of {obj['name']!r} are not valid JSON", text))
            return None
    if args is None:
        args = {}
    return make_call(obj["name"], args, index)
