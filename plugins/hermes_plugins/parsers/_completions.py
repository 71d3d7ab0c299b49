"""``openai-completions``: the agent loop over a raw-completions server, token-exact.

Each turn the conversation is rendered with the model's chat template; the *token ids* of the
whole context go to a vLLM- or SGLang-style endpoint (prompt ids in, completion ids and logprobs
out); tool calls are parsed from the completion with the configured parser and run through the
ToolContext; the tool results, rendered by the template, are appended as tokens; and so on.

The context only ever grows at its end: what the model sampled stays in the context exactly as
sampled (never re-tokenized), so every logprob belongs to the context it was sampled in. The
result carries ``tokens``, ``masks`` (the token id where the model generated it, ``-100`` for
prompt, template glue and tool results) and ``logprobs`` (``1.0`` where masked), all the same
length. ``aligned`` says whether the tokens also equal the template's rendering of the final
conversation — true when the model wrote its turns the way the template writes them (then
``tokens == encode(render(messages))`` up to the template's trailing end-of-turn text); false
when the template re-formats what the model wrote (other JSON spacing, dropped reasoning), in
which case the tokens are still exactly what the model saw and sampled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hermes_core import AgentResult, ToolError

__all__ = ["CompletionsAgent", "TokenAgentResult", "completions_factory", "CompletionError"]

_SENTINEL = "\x00HERMES-END-OF-TURN\x00"


class CompletionError(Exception):
    """The completions server failed or answered something unreadable."""


class _TextOnly(Exception):
    """The server returned text but no token ids (it is not vLLM/SGLang)."""

    def __init__(self, text: str, finish: str):
        super().__init__(text)
        self.text, self.finish = text, finish


@dataclass
class TokenAgentResult(AgentResult):
    """An :class:`~hermes_core.AgentResult` plus the token-level trajectory.

    Attributes:
        tokens: the whole sequence (prompt, sampled turns, tool results) as token ids.
        masks: the token id where the model generated it, ``-100`` elsewhere.
        logprobs: the sampling logprob of each generated token, ``1.0`` elsewhere.
        aligned: the tokens equal the template's rendering of the final conversation.
        completions: the raw text of each completion, as sampled.
        token_exact: every completion's token ids came from the server (``False`` only with
            ``allow_text_only`` against a text-only server).
    """

    tokens: list[int] = field(default_factory=list)
    masks: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    aligned: bool = True
    completions: list[str] = field(default_factory=list)
    token_exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(n_tokens=len(self.tokens), n_trained=sum(m != -100 for m in self.masks), aligned=self.aligned)
        return out


def _error_json(tool: str, kind: str, message: str) -> str:
    return json.dumps({"error": {"type": kind, "tool": tool, "message": message}}, ensure_ascii=False)


class CompletionsAgent:
    """The agent loop over a raw-completions server with client-side chat template and parser.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8000/v1`` (vLLM) or ``http://127.0.0.1:30000`` (SGLang).
        template: a :class:`~hermes_plugins.parsers.ChatTemplate` (tokenizer + chat template).
        parser: a tool-call parser object or a registered parser name (e.g. ``"hermes"``).
        model: model name sent to vLLM-style servers.
        server: ``"vllm"`` (``POST {base_url}/completions`` with ``prompt`` = token ids,
            ``return_tokens_as_token_ids``) or ``"sglang"`` (``POST {base_url}/generate`` with
            ``input_ids``).
        temperature: sampling temperature.
        max_tokens: completion tokens per turn.
        max_context: stop (``stop_reason="length"``) before the context exceeds this many tokens.
        max_turns: default turn limit when the caller gives none.
        request_timeout: seconds per HTTP request.
        extra_body: extra JSON fields merged into each request.
        api_key: sent as a bearer token when given.
        allow_text_only: accept servers that return only text (llama.cpp, ...): the completion is
            re-tokenized, logprobs are missing (``0.0``) and the result is marked
            ``token_exact=False``. Off by default: training on such tokens is off-policy.
    """

    def __init__(self, base_url: str, template: Any, *, parser: Any = "hermes", model: str = "default",
                 server: str = "vllm", temperature: float = 1.0, max_tokens: int = 1024, max_context: int | None = None,
                 max_turns: int = 30, request_timeout: float = 600.0, extra_body: Mapping[str, Any] | None = None,
                 api_key: str | None = None, allow_text_only: bool = False):
        if server not in ("vllm", "sglang"):
            raise ValueError(f"server must be 'vllm' or 'sglang', got {server!r}")
        self.base_url = base_url.rstrip("/")
        self.template = template
        self.parser = parser
        self.model = model
        self.server = server
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_context = max_context
        self.max_turns = max_turns
        self.request_timeout = request_timeout
        self.extra_body = dict(extra_body or {})
        self.api_key = api_key
        self.allow_text_only = allow_text_only
        self._client: Any = None

    @property
    def sampling(self) -> dict[str, Any]:
        """The generation settings of every request (the runner writes them to each
        trajectory): ``model`` (vLLM only), ``server``, ``temperature``, ``max_tokens`` (per turn;
        a request asks for fewer when ``max_context`` leaves less room), ``max_context`` when
        set, ``parser`` (its name), ``extra_body`` when set."""
        out: dict[str, Any] = {"server": self.server, "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.server == "vllm":
            out = {"model": self.model, **out}
        if self.max_context:
            out["max_context"] = self.max_context
        out["parser"] = self.parser if isinstance(self.parser, str) else getattr(self.parser, "name", type(self.parser).__name__)
        if self.extra_body:
            out["extra_body"] = dict(self.extra_body)
        return out

    # ------------------------------------------------------------------ server

    @property
    def client(self) -> Any:
        if self._client is None:
            import httpx

            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(timeout=self.request_timeout, headers=headers)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def complete(self, prompt_ids: list[int], max_tokens: int) -> tuple[list[int], list[float] | None, str]:
        """One completion: ``(token ids, logprobs, finish_reason)``; logprobs are ``None`` when
        the ids were re-tokenized from a text-only answer (``allow_text_only``).

        Raises:
            CompletionError: HTTP error, connection failure, or a response without token ids.
        """
        import httpx

        if self.server == "vllm":
            url = f"{self.base_url}/completions"
            body: dict[str, Any] = {
                "model": self.model, "prompt": prompt_ids, "max_tokens": max_tokens, "temperature": self.temperature,
                "logprobs": 0, "return_tokens_as_token_ids": True, "return_token_ids": True,
                "skip_special_tokens": False, **self.extra_body,
            }
        else:
            url = f"{self.base_url}/generate"
            body = {
                "input_ids": prompt_ids, "return_logprob": True,
                "sampling_params": {"max_new_tokens": max_tokens, "temperature": self.temperature,
                                    "skip_special_tokens": False, "no_stop_trim": True},
                **self.extra_body,
            }
        try:
            resp = await self.client.post(url, json=body)
        except httpx.HTTPError as e:
            raise CompletionError(f"completions server at {url}: {type(e).__name__}: {e}") from None
        if resp.status_code >= 400:
            raise CompletionError(f"HTTP {resp.status_code} from {url}: {resp.text[:300]}")
        try:
            data = resp.json()
            return _read_vllm(data) if self.server == "vllm" else _read_sglang(data)
        except _TextOnly as e:
            if not self.allow_text_only:
                raise CompletionError(
                    f"{url} returned text without token ids: serve with vLLM (return_tokens_as_token_ids) or "
                    "SGLang, or allow re-tokenized completions (allow_text_only=True; not token-exact)") from None
            return self.template.encode(e.text), None, e.finish
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise CompletionError(f"unreadable completion from {url}: {type(e).__name__}: {e}") from None

    # ------------------------------------------------------------------ loop

    def _parser_for(self, ctx: Any) -> Any:
        if not isinstance(self.parser, str):
            return self.parser
        from . import get_parser

        runtime = getattr(ctx, "runtime", None)
        return get_parser(self.parser, runtime if runtime is not None and self.parser in runtime.parsers else None)

    async def run(self, item: Any, ctx: Any, *, system_prompt: str | None = None, max_turns: int | None = None,
                  deadline: float | None = None) -> TokenAgentResult:
        messages: list[dict[str, Any]] = []
        system = getattr(item, "system_prompt", None) or system_prompt
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": item.prompt})
        result = TokenAgentResult(messages=messages)
        limit = getattr(item, "max_turns", None) or max_turns or self.max_turns
        first_error = len(ctx.tool_errors)
        try:
            async with asyncio.timeout_at(deadline):
                await self._loop(result, ctx, limit)
        except TimeoutError:
            result.stop_reason, result.finished = "deadline", False
        result.tool_errors = list(ctx.tool_errors[first_error:])
        return result

    async def _loop(self, result: TokenAgentResult, ctx: Any, limit: int) -> None:
        tpl = self.template
        parser = self._parser_for(ctx)
        tools = ctx.tool_schemas()
        msgs = result.messages
        prompt = tpl.render(msgs, tools, add_generation_prompt=True)
        end_glue = self._end_glue(msgs, tools, prompt)
        stop_text = end_glue.strip()
        self._extend(result, tpl.encode(prompt), trained=False)
        usage = result.usage
        while result.turns < limit:
            room = self.max_tokens
            if self.max_context is not None:
                room = min(room, self.max_context - len(result.tokens))
                if room <= 0:
                    result.stop_reason = "length"
                    return
            result.turns += 1
            try:
                ids, lps, finish = await self.complete(list(result.tokens), room)
            except CompletionError as e:
                result.stop_reason, result.error = "api_error", str(e)
                return
            if lps is None:  # a text-only server: re-tokenized, no logprobs
                result.token_exact = result.aligned = False
                lps = [0.0] * len(ids)
            self._extend(result, ids, trained=True, logprobs=lps)
            usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + len(result.tokens) - len(ids)
            usage["completion_tokens"] = usage.get("completion_tokens", 0) + len(ids)
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            text = tpl.decode(ids)
            result.completions.append(text)
            body = text
            for stop in (stop_text, tpl.eos_token):
                if stop and body.endswith(stop):
                    body = body[: -len(stop)]
            content, calls, errors = parser.parse_with_errors(body, tools)
            for e in errors:
                ctx.tool_errors.append(ToolError("<unparsed>", "malformed_tool_call", f"{e.message}: {e.text[:200]}"))
            calls = [dict(c, id=f"call_t{result.turns}_{i}") for i, c in enumerate(calls)]
            assistant: dict[str, Any] = {"role": "assistant", "content": content or ""}
            if calls:
                assistant["tool_calls"] = calls
            msgs.append(assistant)
            rendered = tpl.render(msgs, tools)
            written = rendered[len(prompt):] if rendered.startswith(prompt) else None
            if written is not None and written.startswith(text):
                glue = written[len(text):]
            else:
                # The template writes this turn differently from how the model wrote it: keep
                # the model's tokens (what it sampled) and close the turn the template's way.
                result.aligned = False
                glue = end_glue
                for k in range(len(end_glue), 0, -1):
                    if text.endswith(end_glue[:k]):
                        glue = end_glue[k:]
                        break
            if not calls:
                result.finished = finish != "length"
                result.stop_reason = "final_answer" if result.finished else "length"
                return
            outputs = await asyncio.gather(*(self._call(ctx, c) for c in calls))
            for call, out in zip(calls, outputs):
                msgs.append({"role": "tool", "tool_call_id": call["id"], "name": call["function"]["name"], "content": out})
            prompt = tpl.render(msgs, tools, add_generation_prompt=True)
            if not prompt.startswith(rendered):
                raise ValueError("the chat template does not render conversations append-only")
            self._extend(result, tpl.encode(glue + prompt[len(rendered):]), trained=False)
        result.stop_reason = "max_turns"

    def _end_glue(self, msgs: list[dict[str, Any]], tools: Any, prompt: str) -> str:
        """What the template writes after an assistant message's content (e.g. ``<|im_end|>\\n``)."""
        probe = self.template.render([*msgs, {"role": "assistant", "content": _SENTINEL}], tools)
        at = probe.find(_SENTINEL, len(prompt) - 1 if prompt else 0)
        return probe[at + len(_SENTINEL):] if at >= 0 else ""

    @staticmethod
    def _extend(result: TokenAgentResult, ids: list[int], *, trained: bool, logprobs: list[float] | None = None) -> None:
        result.tokens.extend(ids)
        if trained:
            result.masks.extend(ids)
            lps = list(logprobs or [])
            lps = lps[: len(ids)] + [1.0] * (len(ids) - len(lps))
            result.logprobs.extend(lps)
        else:
            result.masks.extend([-100] * len(ids))
            result.logprobs.extend([1.0] * len(ids))

    @staticmethod
    async def _call(ctx: Any, call: dict[str, Any]) -> str:
        name = call["function"]["name"]
        try:
            return await ctx.call_tool(name, call["function"]["arguments"])
        except Exception as e:  # call_tool does not raise; this guards third-party contexts
            msg = f"{type(e).__name__}: {e}"
            ctx.tool_errors.append(ToolError(name, "exception", msg))
            return _error_json(name, "exception", msg)


def _read_vllm(data: Mapping[str, Any]) -> tuple[list[int], list[float], str]:
    choice = data["choices"][0]
    lp = choice.get("logprobs") or {}
    ids = choice.get("token_ids")
    if ids is None:
        tokens = lp.get("tokens")
        if not tokens or not all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
            if not choice.get("text"):
                return [], [], choice.get("finish_reason") or "stop"
            raise _TextOnly(choice["text"], choice.get("finish_reason") or "stop")
        ids = [int(t.split(":", 1)[1]) for t in tokens]
    lps = [float(x) if x is not None else 0.0 for x in (lp.get("token_logprobs") or [])]
    return [int(i) for i in ids], lps, choice.get("finish_reason") or "stop"


def _read_sglang(data: Any) -> tuple[list[int], list[float], str]:
    if isinstance(data, list):
        data = data[0]
    meta = data.get("meta_info") or {}
    entries = meta.get("output_token_logprobs") or []
    ids = data.get("output_ids")
    if ids is None:
        ids = [int(e[1]) for e in entries]
    lps = [float(e[0]) if e[0] is not None else 0.0 for e in entries]
    finish = meta.get("finish_reason") or {}
    reason = finish.get("type") if isinstance(finish, Mapping) else str(finish or "stop")
    return [int(i) for i in ids], lps, reason or "stop"


def completions_factory(base_url: str = "http://127.0.0.1:8000/v1", tokenizer: Any = None, *, chat_template: Any = None,
                        gguf_file: str | None = None, parser: Any = "hermes", model: str = "default", server: str = "vllm",
                        temperature: float = 1.0, max_tokens: int = 1024, max_context: int | None = None,
                        max_turns: int = 30, request_timeout: float = 600.0, extra_body: Mapping[str, Any] | None = None,
                        api_key: str | None = None, template: Any = None, allow_text_only: bool = False,
                        **_: Any) -> CompletionsAgent:
    """Build the ``openai-completions`` agent. ``tokenizer`` is a ``transformers`` name or local
    path (or a tokenizer object); ``chat_template`` overrides its template (Jinja text or a file).

    The command line (``hermes eval --agent openai-completions --base-url URL``) passes only the
    common agent flags; the rest come from ``$HERMES_TOKENIZER``, ``$HERMES_CHAT_TEMPLATE``,
    ``$HERMES_TOOL_CALL_PARSER`` and ``$HERMES_COMPLETIONS_API`` (``vllm`` | ``sglang``).

    Raises:
        ValueError: no tokenizer/template given.
    """
    import os

    from ._template import ChatTemplate

    tokenizer = tokenizer if tokenizer is not None else os.environ.get("HERMES_TOKENIZER") or None
    chat_template = chat_template if chat_template is not None else os.environ.get("HERMES_CHAT_TEMPLATE") or None
    if parser == "hermes" and os.environ.get("HERMES_TOOL_CALL_PARSER"):
        parser = os.environ["HERMES_TOOL_CALL_PARSER"]
    if server == "vllm" and os.environ.get("HERMES_COMPLETIONS_API"):
        server = os.environ["HERMES_COMPLETIONS_API"]
    if template is None:
        if tokenizer is None:
            raise ValueError("the openai-completions agent needs a tokenizer: a transformers name or local path "
                             "(set HERMES_TOKENIZER for the command line)")
        template = ChatTemplate.load(tokenizer, chat_template, gguf_file=gguf_file)
    return CompletionsAgent(
        base_url, template, parser=parser, model=model, server=server, temperature=temperature, max_tokens=max_tokens,
        max_context=max_context, max_turns=max_turns, request_timeout=request_timeout, extra_body=extra_body, api_key=api_key,
        allow_text_only=allow_text_only,
    )
