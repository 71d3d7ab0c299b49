"""A rollout's messages decoded for reading: one view model for the HTML and terminal views.

Tool results are decoded: a JSON object is split into its long text fields (shown as text,
``\\n`` as line breaks) and the rest (shown as pretty JSON); a tool's structured error
(``{"error": {"type", "message"}}``) is marked as an error; ``data:image/...`` URLs and
OpenAI image parts become images; long text is marked for folding with its size. Reasoning
(``reasoning_content`` / ``reasoning`` or a leading ``<think>`` block) is kept apart and labelled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Block",
    "Message",
    "ToolCall",
    "clean",
    "decode_message",
    "decode_messages",
    "decode_value",
    "human_size",
    "text_block",
]

#: Text longer than this (characters) or with more lines is folded, its size shown.
FOLD_CHARS = 2000
FOLD_LINES = 30
#: Text longer than this is cut in the view (head and tail kept; the file has all of it).
SHOW_CHARS = 100_000
#: String fields of a tool result shown as text blocks rather than inside the JSON.
_TEXT_MIN = 60
#: Fields always shown as text when they hold a string (commands, code, file content, output).
_TEXT_KEYS = frozenset({"command", "code", "script", "content", "patch", "output", "stdout", "stderr", "text", "cmd"})
#: ANSI escape sequences (colours, cursor moves, OSC titles/hyperlinks): dropped from what is shown.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
#: Other control characters (a hostile sandbox may print them to reach the reader's terminal).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)
_IMAGE_URL = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]")


def human_size(n: int, unit: str = "B") -> str:
    """``1234`` → ``"1.2 KB"``; with ``unit="chars"``: ``"1.2 K chars"``."""
    if n < 1000:
        return f"{n} {unit}"
    size = n / 1000
    for prefix in ("K", "M", "G"):
        if size < 1000 or prefix == "G":
            return f"{size:.1f} {prefix}B" if unit == "B" else f"{size:.1f} {prefix} {unit}"
        size /= 1000
    return f"{n} {unit}"  # pragma: no cover


def seconds(v: float) -> str:
    """A duration for people: ``0.0042`` → ``"4.2ms"``, ``3.5`` → ``"3.50s"``, ``75`` → ``"1m15.0s"``
    (phases of a few milliseconds do not all read ``0.00s``)."""
    if v < 0.0995:
        return f"{v * 1000:.3g}ms"
    return f"{v:.2f}s" if v < 60 else f"{int(v // 60)}m{v % 60:04.1f}s"


@dataclass
class Block:
    """One piece of content.

    ``kind`` is ``text``, ``json`` (``text`` holds it pretty-printed), ``image`` (``text`` is the
    URL) or ``error`` (a tool's or a verifier's error message). ``label`` names the field it
    came from (``output``, ``stderr``...). ``folded`` says the view should fold it; ``size`` and
    ``lines`` describe the full text; ``cut`` is how many characters were left out of ``text``.
    """

    kind: str
    text: str
    label: str | None = None
    folded: bool = False
    size: int = 0
    lines: int = 0
    cut: int = 0

    @property
    def summary(self) -> str:
        unit = "lines" if self.lines != 1 else "line"
        what = self.label or {"json": "JSON", "image": "image"}.get(self.kind, "text")
        return f"{what} · {human_size(self.size, 'chars')} · {self.lines} {unit}"


@dataclass
class ToolCall:
    """One tool call: ``arguments`` decoded for display; ``raw`` is the parsed arguments value
    (``None`` when they were not JSON), for a compact ``name(key=value)`` line."""

    id: str | None
    name: str
    arguments: list[Block]
    raw: Any = None


@dataclass
class Message:
    """One message: role, decoded content, reasoning, tool calls, and for a tool result the
    call it answers and whether it is an error."""

    role: str
    blocks: list[Block] = field(default_factory=list)
    reasoning: Block | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    name: str | None = None
    tool_call_id: str | None = None
    is_error: bool = False
    exit_code: int | None = None
    index: int = 0


def clean(text: str) -> str:
    """``text`` safe to show: ANSI sequences removed, other control characters as ``\\xNN``
    (line breaks and tabs kept; ``\\r\\n`` becomes ``\\n``)."""
    text = _ANSI.sub("", text.replace("\r\n", "\n"))
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def text_block(text: str, label: str | None = None, kind: str = "text") -> Block:
    """A block of ``text`` (cleaned, cut past :data:`SHOW_CHARS`, marked for folding when long)."""
    size = len(text)
    text = clean(text)
    lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    cut = 0
    if size > SHOW_CHARS:
        head = SHOW_CHARS * 2 // 3
        tail = SHOW_CHARS - head
        cut = size - head - tail
        text = f"{text[:head]}\n… [{cut} characters not shown: see trajectories.jsonl] …\n{text[-tail:]}"
    return Block(kind, text, label, folded=size > FOLD_CHARS or lines > FOLD_LINES, size=size, lines=lines, cut=cut)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _image(value: Any) -> str | None:
    if isinstance(value, str) and _IMAGE_URL.match(value):
        return value
    return None


def decode_value(value: Any) -> tuple[list[Block], bool, int | None]:
    """Decode a tool result (a string that may hold JSON, or a list of content parts).

    Returns:
        ``(blocks, is_error, exit_code)``.
    """
    if isinstance(value, list):
        return _parts(value), False, None
    if not isinstance(value, str):
        return [text_block(_pretty(value), kind="json")], False, None
    stripped = value.strip()
    if _image(stripped):
        return [Block("image", stripped, size=len(stripped))], False, None
    if stripped[:1] in ("{", "["):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return _decode_object(data)
        if isinstance(data, list):
            if data and all(isinstance(p, dict) and "type" in p for p in data):
                return _parts(data), False, None
            return [text_block(_pretty(data), kind="json")], False, None
    return [text_block(value)], False, None


def _decode_object(data: dict[str, Any]) -> tuple[list[Block], bool, int | None]:
    blocks: list[Block] = []
    is_error = False
    exit_code = data.get("exit_code") if isinstance(data.get("exit_code"), int) else None
    rest: dict[str, Any] = {}
    err = data.get("error")
    if isinstance(err, dict) and (err.get("message") or err.get("type")):
        is_error = True
        head = clean(f"{err.get('type') or 'error'}: {err.get('message') or ''}".strip())
        blocks.append(Block("error", head, label=str(err.get("tool") or "error"), size=len(head), lines=1))
        extra = {k: v for k, v in err.items() if k not in ("type", "message", "tool")}
        if extra:
            rest["error"] = extra
    elif isinstance(err, str) and err:
        is_error = True
        blocks.append(Block("error", clean(err), label="error", size=len(err), lines=err.count("\n") + 1))
    texts: list[Block] = []
    for k, v in data.items():
        if k == "error":
            continue
        if _image(v):
            texts.append(Block("image", v, label=k, size=len(v)))
        elif isinstance(v, str) and ("\n" in v or len(v) >= _TEXT_MIN or (k in _TEXT_KEYS and v)):
            texts.append(text_block(v, label=k))
        elif k == "exit_code" and exit_code is not None:
            continue  # shown in the message header
        else:
            rest[k] = v
    if rest:
        blocks.append(text_block(_pretty(rest), kind="json"))
    blocks.extend(texts)
    return blocks, is_error, exit_code


def _parts(parts: list[Any]) -> list[Block]:
    blocks: list[Block] = []
    for p in parts:
        if isinstance(p, dict) and p.get("type") == "text":
            blocks.append(text_block(str(p.get("text", ""))))
        elif isinstance(p, dict) and p.get("type") in ("image_url", "image"):
            url = p.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url or p.get("url") or p.get("data")
            if _image(url):
                blocks.append(Block("image", url, label="image", size=len(url)))
            elif isinstance(url, str):  # a remote image is a link: the report makes no requests
                blocks.append(text_block(url, label="image URL"))
            else:
                blocks.append(text_block(_pretty(p), kind="json"))
        else:
            blocks.append(text_block(_pretty(p), kind="json") if not isinstance(p, str) else text_block(p))
    return blocks


def _arguments(raw: Any) -> list[Block]:
    if isinstance(raw, str):
        try:
            value = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return [text_block(raw, label="arguments (not JSON)")]
    else:
        value = raw
    if isinstance(value, dict):
        blocks, _, _ = _decode_object(value)
        return blocks
    return [text_block(_pretty(value), kind="json")]


def decode_messages(messages: list[Any]) -> list[Message]:
    """Decode OpenAI-format chat messages for display."""
    names: dict[str, str] = {}
    return [decode_message(m, i, names) for i, m in enumerate(messages)]


def decode_message(m: Any, index: int = 0, names: dict[str, str] | None = None) -> Message:
    """Decode one message (``hermes run`` decodes each as it arrives).

    Args:
        m: an OpenAI-format chat message.
        index: its position in the conversation.
        names: tool-call id → tool name, carried from message to message so a tool result
            without a ``name`` is named after its call; updated with this message's calls.
    """
    names = {} if names is None else names
    if not isinstance(m, Mapping):
        return Message("?", [text_block(_pretty(m), kind="json")], index=index)
    role = str(m.get("role") or "?")
    msg = Message(role, index=index, name=m.get("name"), tool_call_id=m.get("tool_call_id"))
    content = m.get("content")
    reasoning = m.get("reasoning_content") or m.get("reasoning")
    if role == "assistant" and isinstance(content, str):
        think = _THINK.match(content)
        if think and not reasoning:
            reasoning = think.group(1).strip()
            content = content[think.end():]
    if reasoning:
        r = text_block(str(reasoning), label="reasoning")
        r.folded = True
        msg.reasoning = r
    if role == "tool":
        msg.blocks, msg.is_error, msg.exit_code = decode_value(content)
        if msg.name is None and msg.tool_call_id in names:
            msg.name = names[msg.tool_call_id]
    elif isinstance(content, list):
        msg.blocks = _parts(content)
    elif isinstance(content, str):
        if content.strip():
            msg.blocks = [text_block(content)]
    elif content is not None:
        msg.blocks = [text_block(_pretty(content), kind="json")]
    for call in m.get("tool_calls") or []:
        if not isinstance(call, Mapping):
            continue
        fn = call.get("function") if isinstance(call.get("function"), Mapping) else {}
        raw = fn.get("arguments")
        tc = ToolCall(call.get("id"), str(fn.get("name") or "?"), _arguments(raw), raw=_parsed(raw))
        if tc.id:
            names[tc.id] = tc.name
        msg.tool_calls.append(tc)
    return msg


def _parsed(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return None
    return raw
