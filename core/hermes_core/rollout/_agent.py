"""The agent loop over any OpenAI-compatible chat-completions endpoint, and what a rollout's
agent returns.

An agent is any object with ``async run(item, ctx, *, system_prompt, max_turns, deadline) ->
AgentResult``. :class:`OpenAIAgent` is the model-driven one: each turn it sends the conversation
and the rollout's tool schemas, runs the returned tool calls (concurrently) through the
:class:`~hermes_core.ToolContext`, and feeds the results back, until the model answers without
calling a tool, ``max_turns`` is used up, or the rollout's deadline passes.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..tools._dispatch import ToolError, error_result
from ._task import STOP_REASONS, AgentResult, TaskItem

if TYPE_CHECKING:
    from ..tools._context import ToolContext

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "Agent",
    "AgentResult",
    "OpenAIAgent",
    "initial_messages",
    "to_sharegpt",
    "tool_response_text",
    "STOP_REASONS",
]

#: Completion tokens per turn when the caller sets none (``hermes --max-tokens``): one answer
#: cannot fill the whole context. ``0`` sends no limit.
DEFAULT_MAX_TOKENS = 4096


@runtime_checkable
class Agent(Protocol):
    """What the runner drives. Register a factory with ``hermes_register_agents``."""

    async def run(
        self,
        item: TaskItem,
        ctx: ToolContext,
        *,
        system_prompt: str | None = None,
        max_turns: int | None = None,
        deadline: float | None = None,
    ) -> AgentResult:
        """Work on ``item`` in ``ctx``'s sandbox until done, out of turns, or ``deadline``
        (an ``asyncio`` loop time) passes. Must not raise for tool or model failures."""
        ...


def initial_messages(item: TaskItem, system_prompt: str | None = None) -> list[dict[str, Any]]:
    """The system message (the task's own, else ``system_prompt``) and the user prompt."""
    messages: list[dict[str, Any]] = []
    system = item.system_prompt or system_prompt
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": item.prompt})
    return messages


class OpenAIAgent:
    """The agent loop over an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: model name sent with every request.
        base_url: endpoint (default: ``$OPENAI_BASE_URL`` or the OpenAI API).
        api_key: key (default: ``$OPENAI_API_KEY``, else ``"EMPTY"`` for local servers).
        temperature: sampling temperature (omitted when ``None``).
        max_tokens: completion token limit per turn (default :data:`DEFAULT_MAX_TOKENS`;
            omitted when ``None`` or ``0``).
        extra_body: extra JSON fields merged into each request (server-specific knobs).
        max_turns: default turn limit when the caller gives none.
        request_timeout: seconds per HTTP request.
        max_retries: retries of the ``openai`` client on connection errors and 429/5xx.
        send_reasoning: send reasoning text back in assistant messages (most servers ignore it;
            some reject unknown fields, so it is off by default; it is always kept in the result).
        tool_choice: sent with every request that offers tools (default ``"auto"``: some
            servers, llama-cpp-python's among them, drop the tools of a request without one);
            ``None`` sends none.
        client: a ready ``openai.AsyncOpenAI`` (then the connection arguments are ignored).

    Attributes:
        on_message: ``on_message(message)`` is called with each message as it is added to the
            conversation (the prompt, assistant turns, tool results), e.g. to print it live.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        extra_body: Mapping[str, Any] | None = None,
        max_turns: int = 30,
        request_timeout: float = 600.0,
        max_retries: int = 2,
        send_reasoning: bool = False,
        tool_choice: str | Mapping[str, Any] | None = "auto",
        client: Any = None,
    ):
        if not model:
            raise ValueError("OpenAIAgent needs a model name (--model)")
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.max_turns = max_turns
        self.request_timeout = request_timeout
        self.max_retries = max_retries
        self.send_reasoning = send_reasoning
        self.tool_choice = dict(tool_choice) if isinstance(tool_choice, Mapping) else tool_choice
        self.on_message: Any = None
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                base_url=self.base_url, api_key=self.api_key,
                timeout=self.request_timeout, max_retries=self.max_retries,
            )
        return self._client

    async def check_reachable(self, timeout: float = 30.0) -> None:
        """Check the endpoint for real before the first rollout.

        ``GET {base_url}/models``; when the server has no such route, a one-token chat request.
        A 404 from both means the URL is wrong (typically a missing ``/v1``); 401/403 a bad key.

        Raises:
            ConnectionError: the server cannot be reached, or it answered in a way no rollout
                can succeed with; the message names the URL and what to check.
        """
        import openai

        client = self.client.with_options(max_retries=0, timeout=timeout)
        url = self.base_url.rstrip("/")
        try:
            models = await client.models.list()
        except openai.APITimeoutError:
            raise ConnectionError(
                f"the model server at {self.base_url} did not answer GET /models within {timeout:g}s (busy or stuck?)"
            ) from None
        except openai.APIConnectionError as e:
            raise ConnectionError(
                f"cannot reach the model server at {self.base_url}: {_cause(e).rstrip('.')}. Is the server running? "
                "Check --base-url."
            ) from None
        except openai.APIStatusError as e:
            if e.status_code in (401, 403):
                raise ConnectionError(_key_message(self.base_url, e)) from None
            if e.status_code != 404:
                return  # a server with an odd /models; the first rollout will tell
        else:
            ids = [getattr(m, "id", None) for m in getattr(models, "data", None) or []]
            ids = [i for i in ids if isinstance(i, str)]
            if ids and self.model not in ids and not any(self.model in i or i.endswith(self.model) for i in ids):
                import sys

                print(f"hermes: warning: model {self.model!r} is not among the models {url} lists "
                      f"({', '.join(ids[:5])}); the server may refuse it", file=sys.stderr)
            return
        # /models answered 404: some servers have none. Try one token of a real request.
        try:
            await client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": "hi"}], max_tokens=1,
            )
        except (openai.APIConnectionError, openai.APITimeoutError) as e:
            raise ConnectionError(f"the model server at {self.base_url} did not answer a chat request: {_cause(e)}") from None
        except openai.APIStatusError as e:
            if e.status_code in (401, 403):
                raise ConnectionError(_key_message(self.base_url, e)) from None
            if e.status_code == 404:
                hint = ("; add /v1? (e.g. --base-url " + url + "/v1)") if not url.endswith("/v1") else (
                    f"; is the model name {self.model!r} right, and is {url} an OpenAI-compatible endpoint?")
                raise ConnectionError(
                    f"{url}/chat/completions answered 404 ({_status_message(e)}){hint}"
                ) from None
            if 400 <= e.status_code < 500:
                raise ConnectionError(
                    f"the model server at {self.base_url} refused a one-token request: HTTP {e.status_code}: "
                    f"{_status_message(e)} (check --model)"
                ) from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    def _settings(self, tools: bool) -> dict[str, Any]:
        settings: dict[str, Any] = {"model": self.model}
        if tools and self.tool_choice is not None:
            settings["tool_choice"] = self.tool_choice
        if self.temperature is not None:
            settings["temperature"] = self.temperature
        if self.max_tokens:
            settings["max_tokens"] = self.max_tokens
        if self.extra_body:
            settings["extra_body"] = self.extra_body
        return settings

    @property
    def sampling(self) -> dict[str, Any]:
        """The settings sent with every request that offers tools, besides the messages and
        the tools themselves (``model``, ``tool_choice``, ``temperature``, ``max_tokens``,
        ``extra_body`` — ``top_p``, ``seed`` and other server knobs travel in ``extra_body``);
        a setting that is not sent is absent. The runner writes it to each trajectory."""
        return self._settings(True)

    def _request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"messages": _wire(messages, self.send_reasoning), **self._settings(bool(tools))}
        if tools:
            kwargs["tools"] = tools
        return kwargs

    async def run(
        self,
        item: TaskItem,
        ctx: ToolContext,
        *,
        system_prompt: str | None = None,
        max_turns: int | None = None,
        deadline: float | None = None,
    ) -> AgentResult:
        result = AgentResult(messages=initial_messages(item, system_prompt))
        for m in result.messages:
            self._emit(m)
        limit = item.max_turns or max_turns or self.max_turns
        first_error = len(ctx.tool_errors)
        try:
            async with asyncio.timeout_at(deadline):
                await self._loop(result, ctx, limit)
        except TimeoutError:
            result.stop_reason = "deadline"
            result.finished = False
            n = len(result.messages)
            _close_dangling_calls(result.messages)
            for m in result.messages[n:]:
                self._emit(m)
        result.tool_errors = list(ctx.tool_errors[first_error:])
        return result

    async def _loop(self, result: AgentResult, ctx: ToolContext, limit: int) -> None:
        import openai

        tools = ctx.tool_schemas()
        usage = result.usage
        while result.turns < limit:
            result.turns += 1
            try:
                response = await self.client.chat.completions.create(**self._request(result.messages, tools))
                if not response.choices:
                    raise ValueError("the response has no choices")
                choice = response.choices[0]
                message = _assistant_message(choice.message, result.turns)
            except openai.APIStatusError as e:
                result.stop_reason, result.error = "api_error", f"HTTP {e.status_code} from {self.base_url}: {_status_message(e)}"
                return
            except openai.APIError as e:
                result.stop_reason, result.error = "api_error", f"model server at {self.base_url}: {_cause(e)}"
                return
            except (ValueError, TypeError, AttributeError) as e:
                result.stop_reason, result.error = "api_error", f"malformed response from {self.base_url}: {e}"
                return
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                value = getattr(response.usage, key, None) if response.usage is not None else None
                if isinstance(value, int):
                    usage[key] = usage.get(key, 0) + value
            result.messages.append(message)
            self._emit(message)
            calls = message.get("tool_calls") or []
            if not calls:
                result.finished = choice.finish_reason != "length"
                result.stop_reason = "final_answer" if result.finished else "length"
                return
            outputs = await asyncio.gather(*(self._call(ctx, c) for c in calls))
            for call, text in zip(calls, outputs):
                answer = {"role": "tool", "tool_call_id": call["id"], "name": call["function"]["name"], "content": text}
                result.messages.append(answer)
                self._emit(answer)
        result.stop_reason = "max_turns"

    def _emit(self, message: dict[str, Any]) -> None:
        if self.on_message is not None:
            try:
                self.on_message(message)
            except Exception:  # a display callback must not end the rollout
                pass

    @staticmethod
    async def _call(ctx: ToolContext, call: dict[str, Any]) -> str:
        name = call["function"]["name"]
        try:
            return await ctx.call_tool(name, call["function"]["arguments"])
        except Exception as e:  # call_tool does not raise; this guards third-party contexts
            msg = f"{type(e).__name__}: {e}"
            ctx.tool_errors.append(ToolError(name, "exception", msg))
            return error_result(name, "exception", msg)


def _assistant_message(msg: Any, turn: int = 0) -> dict[str, Any]:
    raw = msg.model_dump() if hasattr(msg, "model_dump") else dict(msg)
    out: dict[str, Any] = {"role": "assistant", "content": raw.get("content") or ""}
    for key in ("reasoning_content", "reasoning"):
        if raw.get(key):
            out[key] = raw[key]
    calls = []
    for i, tc in enumerate(raw.get("tool_calls") or []):
        fn = tc.get("function") or {}
        args = fn.get("arguments")
        if args is not None and not isinstance(args, str):
            args = json.dumps(args)
        calls.append({
            # Unique across turns: a repeated id would let a later answer match an earlier call.
            "id": tc.get("id") or f"call_t{turn}_{i}",
            "type": "function",
            "function": {"name": fn.get("name") or "", "arguments": args if args is not None else ""},
        })
    if calls:
        out["tool_calls"] = calls
    return out


def _wire(messages: list[dict[str, Any]], send_reasoning: bool) -> list[dict[str, Any]]:
    if send_reasoning:
        return messages
    return [
        {k: v for k, v in m.items() if k not in ("reasoning_content", "reasoning")} if m.get("role") == "assistant" else m
        for m in messages
    ]


def _close_dangling_calls(messages: list[dict[str, Any]]) -> None:
    """After a deadline cut a turn short, answer its unanswered tool calls so the trajectory
    stays well-formed."""
    answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    for m in list(messages):
        for call in m.get("tool_calls") or []:
            if call["id"] not in answered:
                messages.append({
                    "role": "tool", "tool_call_id": call["id"], "name": call["function"]["name"],
                    "content": error_result(call["function"]["name"], "deadline",
                                            "the rollout's deadline passed before this call finished"),
                })


def _cause(e: BaseException) -> str:
    parts = [str(e)]
    inner = e.__cause__ or e.__context__
    if inner is not None and str(inner) and str(inner) not in parts[0]:
        parts.append(f"{type(inner).__name__}: {inner}")
    return " (".join(parts) + (")" if len(parts) > 1 else "")


def _key_message(base_url: str, e: Any) -> str:
    return (f"the model server at {base_url} refused the API key (HTTP {e.status_code}: {_status_message(e)}); "
            "check --api-key or $OPENAI_API_KEY")


def _status_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(e, "message", e))


# --------------------------------------------------------------------------- export

_SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt", "tool": "tool"}


#: Fields of a JSON tool result that hold its main text, in the order they are looked for.
_TEXT_FIELDS = ("output", "stdout", "content")
#: Further text fields shown as their own labelled section when not empty.
_SECTION_FIELDS = ("stderr",)


def tool_response_text(name: str | None, content: str) -> str:
    """A tool result as a reader (or a model trained on it) would want it: a header line
    ``[tool] key=value ...`` with the result's small fields (exit code, path, error type...),
    then its main text as plain lines.

    A JSON object with an ``output`` / ``stdout`` / ``content`` string becomes that text; a
    structured error (``{"error": {"type", "message"}}``) becomes ``error="<type>"`` and the
    message; ``stderr`` follows under a ``[stderr]`` line. Any other content is kept as it was
    (a JSON object stays one level of JSON, never JSON quoted inside JSON). The raw messages
    stay in ``trajectories.jsonl`` for anything this leaves out of the header (``None`` values).
    """
    head = f"[{name or 'tool'}]"
    try:
        value = json.loads(content) if content.lstrip().startswith("{") else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return f"{head}\n{content}" if content else head
    body: str | None = None
    err = value.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        value = {**{k: v for k, v in err.items() if k not in ("message", "tool")}, **{k: v for k, v in value.items() if k != "error"}}
        value = {("error" if k == "type" else k): v for k, v in value.items()}
        body = err["message"]
    else:
        key = next((k for k in _TEXT_FIELDS if isinstance(value.get(k), str)), None)
        if key is None:
            return f"{head}\n{content}"
        body = value.pop(key)
    sections = []
    for key in _SECTION_FIELDS:
        if isinstance(value.get(key), str):
            text = value.pop(key)
            if text:
                sections.append(f"[{key}]\n{text}")
    fields = " ".join(
        f"{k}={json.dumps(v, ensure_ascii=False, default=str, separators=(',', ':'))}"
        for k, v in value.items() if v is not None
    )
    lines = [f"{head} {fields}" if fields else head]
    if body:
        lines.append(body)
    lines.extend(sections)
    return "\n".join(lines)


def to_sharegpt(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """ShareGPT ``[{"from", "value"}]`` in the hermes format: reasoning in ``<think>``, tool
    calls in ``<tool_call>`` JSON blocks, and tool results in ``<tool_response>`` blocks as
    readable text (see :func:`tool_response_text`)."""
    out: list[dict[str, str]] = []
    for m in messages:
        role = m.get("role", "")
        content = m.get("content")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        if role == "assistant":
            reasoning = m.get("reasoning_content") or m.get("reasoning")
            if reasoning:
                text = f"<think>\n{reasoning}\n</think>\n{text}"
            for call in m.get("tool_calls") or []:
                fn = call.get("function", {})
                try:
                    args: Any = json.loads(fn.get("arguments") or "{}")
                except json.JSONDecodeError:
                    args = fn.get("arguments")
                block = json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False)
                text = f"{text}\n<tool_call>\n{block}\n</tool_call>" if text else f"<tool_call>\n{block}\n</tool_call>"
        elif role == "tool":
            text = f"<tool_response>\n{tool_response_text(m.get('name'), text)}\n</tool_response>"
        out.append({"from": _SHAREGPT_ROLES.get(role, role), "value": text})
    return out
