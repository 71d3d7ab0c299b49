"""The single tool-dispatch site: parse, validate, run (sync or async), bound, never raise."""

from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from ..errors import ToolFailure
from ..plugin._registry import ToolSpec



class _Context(Protocol):
    """What dispatch needs of the ToolContext it passes to handlers (no import of it: the
    context imports this module)."""

    max_output_chars: int

__all__ = ["ToolError", "bound", "dispatch", "error_result", "failure", "truncate"]


@dataclass(frozen=True)
class ToolError:
    """A tool call that failed, as recorded on the rollout."""

    tool: str
    kind: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def error_result(tool: str, kind: str, message: str, **details: Any) -> str:
    """The JSON a model sees for a failed call."""
    body = {"error": {"type": kind, "tool": tool, "message": message, **details}}
    return json.dumps(body, ensure_ascii=False, default=str)


def truncate(text: str, limit: int) -> str:
    """Bound ``text`` to at most ``limit`` characters: head and tail, with a note of the cut
    (the note counts against the limit)."""
    if limit <= 0 or len(text) <= limit:
        return text
    note = "\n\n[... {cut} characters omitted; showing the first {head} and the last {tail} of {total} ...]\n\n"
    room = max(0, limit - len(note.format(cut=len(text), head=limit, tail=limit, total=len(text))))
    head = int(room * 0.4)
    tail = room - head
    body = note.format(cut=len(text) - head - tail, head=head, tail=tail, total=len(text))
    return f"{text[:head]}{body}{text[len(text) - tail:] if tail else ''}"


def _describe_validation(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(arguments)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unexpected argument {loc!r}")
        elif err["type"] == "missing":
            parts.append(f"missing required argument {loc!r}")
        else:
            got = repr(err.get("input"))
            got = got if len(got) <= 200 else f"{got[:200]}... ({len(got)} characters)"
            parts.append(f"argument {loc!r}: {err['msg']} (got {got})")
    return "; ".join(parts)


def parse_arguments(raw: Any) -> dict[str, Any]:
    """Turn a model's ``arguments`` (JSON text or a dict) into a dict.

    Raises:
        ToolFailure: not JSON, or not a JSON object. Never silently ``{}``.
    """
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, (str, bytes)):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            snippet = raw[:200] if isinstance(raw, str) else raw[:200].decode("utf-8", "replace")
            raise ToolFailure(
                f"arguments are not valid JSON ({e.msg} at position {e.pos}): {snippet!r}. "
                "Send a JSON object such as {\"command\": \"ls\"}.",
                kind="invalid_json",
            ) from None
    else:
        value = raw
    if not isinstance(value, dict):
        raise ToolFailure(
            f"arguments must be a JSON object, got {type(value).__name__}: {str(value)[:200]!r}",
            kind="invalid_arguments",
        )
    return value


#: A failed call's message as recorded on the rollout (results rows stay small).
RECORDED_MESSAGE_CHARS = 2000


def failure(tool: str, kind: str, message: str, limit: int, **details: Any) -> tuple[str, ToolError]:
    """The model-facing error (bounded like every result) and the error recorded on the rollout."""
    body = {"error": {"type": kind, "tool": tool, "message": message, **details}}
    return bound(body, limit), ToolError(truncate(tool, 200), kind, truncate(message, RECORDED_MESSAGE_CHARS))


async def dispatch(spec: ToolSpec, raw_args: Any, ctx: _Context) -> tuple[str, ToolError | None]:
    """Run one tool call; return (model-facing text, the error if it failed). Every text it
    returns, error results included, is bounded by ``ctx.max_output_chars``."""
    limit = ctx.max_output_chars
    try:
        args = spec.args_model.model_validate(parse_arguments(raw_args))
        if inspect.iscoroutinefunction(spec.handler):
            value = await spec.handler(args, ctx)
        else:
            value = await asyncio.to_thread(spec.handler, args, ctx)
            if inspect.isawaitable(value):
                value = await value
    except ToolFailure as e:
        return failure(spec.name, e.kind, str(e), limit, **e.details)
    except ValidationError as e:
        return failure(spec.name, "invalid_arguments", _describe_validation(e), limit)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        return failure(spec.name, "exception", f"{type(e).__name__}: {e}", limit)
    return bound(value, limit), None


def _json_len(text: str) -> int:
    """Length of ``text`` once JSON-escaped (without the quotes)."""
    return len(json.dumps(text, ensure_ascii=False)) - 2


def bound(value: Any, limit: int) -> str:
    """Model-facing text of a tool result, at most about ``limit`` characters.

    Plain text is cut head + tail. Structured results (and text that is a JSON object or array)
    stay valid JSON: their longest string fields are cut instead of the serialised text. The
    budget is charged in serialised characters, so text whose escaping doubles it (newlines,
    quotes) is cut to what fits, not to a fraction of it.
    """
    if isinstance(value, str):
        if len(value) <= limit or limit <= 0:
            return value
        head = value.lstrip()[:1]
        if head in ("{", "["):
            try:
                value = json.loads(value)
            except ValueError:
                return truncate(value, limit)
        else:
            return truncate(value, limit)
    text = json.dumps(value, ensure_ascii=False, default=str)
    if limit <= 0:
        return text
    for _ in range(12):
        if len(text) <= limit:
            return text
        leaves: list[tuple[int, Any, Any]] = []

        def collect(node: Any) -> None:
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            for k, v in items:
                if isinstance(v, str):
                    leaves.append((_json_len(v), node, k))
                else:
                    collect(v)

        collect(value)
        if not leaves:
            break
        escaped, node, key = max(leaves, key=lambda t: t[0])
        if escaped <= 300:
            break  # nothing long left to cut: the structure itself is over the limit
        raw = node[key]
        excess = len(text) - limit
        # Charge the excess in escaped characters, converted at this string's own density,
        # plus room for the note truncate() adds.
        keep_escaped = max(200, escaped - excess - 160)
        node[key] = truncate(raw, max(100, int(keep_escaped * len(raw) / escaped)))
        text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > limit:
        # A structure with very many short fields: cut its text and say so (no longer JSON only
        # when nothing else could keep it under the bound).
        return truncate(text, limit)
    return text
