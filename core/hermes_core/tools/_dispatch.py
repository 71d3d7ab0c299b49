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

__all__ = ["ToolError", "dispatch", "truncate", "error_result"]


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
    """Bound ``text`` to about ``limit`` characters: head and tail, with a note of the cut."""
    if limit <= 0 or len(text) <= limit:
        return text
    head = int(limit * 0.4)
    tail = limit - head
    cut = len(text) - head - tail
    return (
        f"{text[:head]}\n\n[... {cut} characters omitted; showing the first {head} and the last "
        f"{tail} of {len(text)} ...]\n\n{text[-tail:]}"
    )


def _describe_validation(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(arguments)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unexpected argument {loc!r}")
        elif err["type"] == "missing":
            parts.append(f"missing required argument {loc!r}")
        else:
            parts.append(f"argument {loc!r}: {err['msg']} (got {err.get('input')!r})")
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


async def dispatch(spec: ToolSpec, raw_args: Any, ctx: _Context) -> tuple[str, ToolError | None]:
    """Run one tool call; return (model-facing text, the error if it failed)."""
    try:
        args = spec.args_model.model_validate(parse_arguments(raw_args))
        if inspect.iscoroutinefunction(spec.handler):
            value = await spec.handler(args, ctx)
        else:
            value = await asyncio.to_thread(spec.handler, args, ctx)
            if inspect.isawaitable(value):
                value = await value
    except ToolFailure as e:
        return error_result(spec.name, e.kind, str(e), **e.details), ToolError(spec.name, e.kind, str(e))
    except ValidationError as e:
        msg = _describe_validation(e)
        return error_result(spec.name, "invalid_arguments", msg), ToolError(spec.name, "invalid_arguments", msg)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        msg = f"{type(e).__name__}: {e}"
        return error_result(spec.name, "exception", msg), ToolError(spec.name, "exception", msg)
    return bound(value, ctx.max_output_chars), None


def bound(value: Any, limit: int) -> str:
    """Model-facing text of a tool result, at most about ``limit`` characters.

    Plain text is cut head + tail. Structured results stay valid JSON: their longest string
    fields are cut instead of the serialised text.
    """
    if isinstance(value, str):
        return truncate(value, limit)
    text = json.dumps(value, ensure_ascii=False, default=str)
    for _ in range(8):
        if len(text) <= limit:
            return text
        leaves: list[tuple[int, Any, Any]] = []

        def collect(node: Any) -> None:
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            for k, v in items:
                if isinstance(v, str):
                    leaves.append((len(v), node, k))
                else:
                    collect(v)

        collect(value)
        if not leaves:
            break
        size, node, key = max(leaves, key=lambda t: t[0])
        excess = len(text) - limit
        node[key] = truncate(node[key], max(200, size - excess - 200))
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text
