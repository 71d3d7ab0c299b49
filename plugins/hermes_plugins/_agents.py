"""The built-in agents: ``openai`` (the model-driven loop) and ``oracle`` (a task's reference
solution, the way benchmark harnesses validate their tasks)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hermes_core.rollout import AgentResult, OpenAIAgent, initial_messages

#: Completion tokens per turn of the ``openai`` agent unless ``--max-tokens`` says otherwise
#: (the same default as ``OpenAIAgent``); ``0`` sends no limit.
DEFAULT_MAX_TOKENS = 4096

#: The terminal tool's own upper bound on a command's timeout.
_MAX_TOOL_TIMEOUT = 3600


class OracleAgent:
    """Runs ``item.solution`` in the rollout's sandbox, recorded as one ``terminal`` tool call.

    The solution goes through the rollout's stateful shell (the ``terminal`` tool when it is
    offered, else the sandbox's shell directly), so it sees the sandbox exactly as a model
    would. A task without a solution ends with ``stop_reason="no_solution"``.
    """

    async def run(
        self,
        item: Any,
        ctx: Any,
        *,
        system_prompt: str | None = None,
        max_turns: int | None = None,
        deadline: float | None = None,
    ) -> AgentResult:
        result = AgentResult(messages=initial_messages(item, system_prompt))
        if not item.solution:
            result.stop_reason = "no_solution"
            result.error = f"task {item.id!r} has no reference solution for the oracle agent"
            return result
        loop = asyncio.get_running_loop()
        remaining = _MAX_TOOL_TIMEOUT if deadline is None else deadline - loop.time()
        timeout = max(1, min(_MAX_TOOL_TIMEOUT, int(remaining)))
        args = {"command": item.solution, "timeout": timeout}
        call = {"id": "oracle_0", "type": "function", "function": {"name": "terminal", "arguments": json.dumps(args)}}
        result.messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        result.turns = 1
        first_error = len(ctx.tool_errors)
        try:
            async with asyncio.timeout_at(deadline):
                if "terminal" in ctx.tools:
                    text = await ctx.call_tool("terminal", args)
                    try:
                        code = json.loads(text).get("exit_code")
                    except (json.JSONDecodeError, AttributeError):
                        code = None
                else:
                    res = await ctx.sandbox.shell(item.solution, timeout=timeout)
                    code = res.exit_code
                    text = json.dumps({"exit_code": res.exit_code, "output": res.output})
        except TimeoutError:
            result.messages.append({"role": "tool", "tool_call_id": "oracle_0", "name": "terminal",
                                    "content": '{"error": "the rollout deadline passed"}'})
            result.stop_reason = "deadline"
            result.tool_errors = list(ctx.tool_errors[first_error:])
            return result
        result.messages.append({"role": "tool", "tool_call_id": "oracle_0", "name": "terminal", "content": text})
        result.messages.append({"role": "assistant", "content": "Reference solution applied."})
        result.tool_errors = list(ctx.tool_errors[first_error:])
        result.stop_reason = "solution"
        result.finished = True
        if code != 0:
            result.error = f"the reference solution exited with {code}"
        return result


def oracle_factory() -> OracleAgent:
    return OracleAgent()


def openai_factory(
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    extra_body: dict[str, Any] | None = None,
    max_turns: int = 30,
    request_timeout: float = 600.0,
    max_retries: int = 2,
    tool_choice: str | dict[str, Any] | None = "auto",
) -> OpenAIAgent:
    return OpenAIAgent(
        model, base_url=base_url, api_key=api_key, temperature=temperature, max_tokens=max_tokens,
        extra_body=extra_body, max_turns=max_turns, request_timeout=request_timeout, max_retries=max_retries,
        tool_choice=tool_choice,
    )


__all__ = ["OracleAgent", "oracle_factory", "openai_factory"]
