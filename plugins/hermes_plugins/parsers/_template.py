"""A model's chat template plus its tokenizer: render a conversation, encode and decode text.

The tokenizer is a ``transformers`` tokenizer (loaded on first use, also from a GGUF file) or any
object with ``encode(text, add_special_tokens=False)`` and ``decode(ids, skip_special_tokens=False)``.
The template is the tokenizer's own ``chat_template`` or a Jinja string given explicitly; it is
rendered the way ``transformers`` renders it (sandboxed Jinja, ``trim_blocks``, ``lstrip_blocks``,
a ``tojson`` that does not HTML-escape).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ChatTemplate", "template_messages"]


def template_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages in the shape chat templates expect: tool-call arguments as objects, ``content``
    never ``None``, reasoning kept as ``reasoning_content``."""
    out = []
    for m in messages:
        msg = {k: v for k, v in m.items() if k != "reasoning"}
        if msg.get("content") is None:
            msg["content"] = ""
        if m.get("reasoning") and not m.get("reasoning_content"):
            msg["reasoning_content"] = m["reasoning"]
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c.get("function", {}))
                args = fn.get("arguments")
                if isinstance(args, str):
                    try:
                        fn["arguments"] = json.loads(args) if args.strip() else {}
                    except json.JSONDecodeError:
                        pass
                calls.append({"id": c.get("id"), "type": c.get("type", "function"), "function": fn})
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def _compile(source: str) -> Any:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        import datetime

        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


class ChatTemplate:
    """Render conversations with a chat template and move between text and token ids.

    Args:
        tokenizer: a ``transformers`` tokenizer, or anything with ``encode``/``decode`` (and
            optionally ``bos_token``, ``eos_token``, ``chat_template``).
        template: a Jinja chat template; default: ``tokenizer.chat_template``.

    Raises:
        ValueError: neither the tokenizer nor the caller supplies a template.
    """

    def __init__(self, tokenizer: Any, template: str | None = None):
        self.tokenizer = tokenizer
        source = template if template is not None else getattr(tokenizer, "chat_template", None)
        if isinstance(source, dict):  # transformers allows named templates
            source = source.get("default") or next(iter(source.values()))
        if not source:
            raise ValueError(
                "the tokenizer has no chat template; pass one (a Jinja string or a file path) as chat_template"
            )
        self.source = source
        self._template = _compile(source)

    @classmethod
    def load(cls, tokenizer: Any, chat_template: str | Path | None = None, *, gguf_file: str | None = None) -> ChatTemplate:
        """From a tokenizer object or a ``transformers`` name/path (a local folder, or a folder +
        ``gguf_file``), and a template given as Jinja text or as the path of a ``.jinja`` file."""
        if isinstance(tokenizer, (str, Path)):
            from transformers import AutoTokenizer

            kwargs = {"gguf_file": gguf_file} if gguf_file else {}
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer), **kwargs)
        source = None
        if chat_template is not None:
            text = str(chat_template)
            source = Path(text).read_text() if ("{" not in text and Path(text).is_file()) else text
        return cls(tokenizer, source)

    def render(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None,
               *, add_generation_prompt: bool = False) -> str:
        """The text of ``messages`` (and the tool schemas) as the model sees it."""
        return self._template.render(
            messages=template_messages(messages), tools=list(tools) if tools else None,
            add_generation_prompt=add_generation_prompt,
            bos_token=getattr(self.tokenizer, "bos_token", None) or "",
            eos_token=getattr(self.tokenizer, "eos_token", None) or "",
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS/EOS added: the template writes what the model needs)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens included (they carry the tool-call markup)."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    @property
    def eos_token(self) -> str | None:
        return getattr(self.tokenizer, "eos_token", None)

    def tokenize_conversation(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[list[int], list[int]]:
        """``(tokens, masks)`` of a finished conversation, re-tokenized from its messages: the
        template's text of each assistant message is trained (mask = token id), everything else
        (system, user, tool results, the template's headers) is ``-100``.

        Used when the rollout came from a chat-completions server, which returns no token ids:
        the tokens are then the template's rendering, not necessarily what the model sampled.
        """
        tokens: list[int] = []
        masks: list[int] = []
        done = ""
        for i, m in enumerate(messages):
            if m.get("role") != "assistant":
                continue
            prompt = self.render(messages[:i], tools, add_generation_prompt=True)
            full = self.render(messages[: i + 1], tools)
            if not prompt.startswith(done) or not full.startswith(prompt):
                raise ValueError("the chat template does not render conversations append-only; cannot split by message")
            ids = self.encode(prompt[len(done):])
            tokens += ids
            masks += [-100] * len(ids)
            ids = self.encode(full[len(prompt):])
            tokens += ids
            masks += ids
            done = full
        rest = self.render(messages, tools)
        if rest.startswith(done) and rest[len(done):]:
            ids = self.encode(rest[len(done):])
            tokens += ids
            masks += [-100] * len(ids)
        return tokens, masks
