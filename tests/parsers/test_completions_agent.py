"""The ``openai-completions`` agent: token-exact rollouts against a scripted completions server
on loopback, with a real (byte-level) tokenizer, a ChatML chat template and the local backend."""

from __future__ import annotations

import json

import pytest

from hermes_core import Runtime, TaskItem
from hermes_plugins.parsers import ChatTemplate, CompletionsAgent, get_parser
from hermes_plugins.parsers.testing import CHATML_TOOLS_TEMPLATE, ByteTokenizer, ScriptedCompletionsServer, logprob_for

HERMES = get_parser("hermes")
ITEM = TaskItem(id="hello", prompt="Create hello.txt containing `hi`.", system_prompt="You are terse.")


def call(name, **args):
    return {"function": {"name": name, "arguments": json.dumps(args)}}


def two_turns(prompt: str, index: int) -> str:
    """Turn 1: write the file through the terminal tool (as the template writes it); turn 2: answer."""
    if "<tool_response>" not in prompt:
        return HERMES.render([call("terminal", command="printf hi > hello.txt")], content="Writing it.")
    return "Done."


@pytest.fixture
def template():
    return ChatTemplate(ByteTokenizer(), CHATML_TOOLS_TEMPLATE)


@pytest.fixture
async def runtime(monkeypatch):
    monkeypatch.setenv("HERMES_DISABLE_PLUGIN_AUTOLOAD", "1")
    rt = Runtime()
    yield rt
    await rt.aclose()


def trained_runs(tokens, masks):
    """The maximal runs of trained positions, as lists of token ids."""
    runs, cur = [], []
    for t, m in zip(tokens, masks):
        if m == -100:
            if cur:
                runs.append(cur)
                cur = []
        else:
            assert m == t
            cur.append(t)
    if cur:
        runs.append(cur)
    return runs


@pytest.mark.parametrize("server", ["vllm", "sglang"])
async def test_token_exact_rollout_runs_tools_and_aligns(template, runtime, server):
    with ScriptedCompletionsServer(template.tokenizer, two_turns) as srv:
        base = srv.base_url if server == "vllm" else f"http://127.0.0.1:{srv.port}"
        agent = CompletionsAgent(base, template, parser="hermes", server=server, max_tokens=512)
        async with runtime.rollout(backend="local", toolsets=["terminal"]) as ctx:
            result = await agent.run(ITEM, ctx, max_turns=5)
            assert (await ctx.read_file("hello.txt"))["content"] == "hi"
        await agent.aclose()
        requests = list(srv.requests)
    assert result.stop_reason == "final_answer" and result.finished and result.turns == 2
    assert [m["role"] for m in result.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert result.messages[2]["content"] == "Writing it."
    assert json.loads(result.messages[2]["tool_calls"][0]["function"]["arguments"]) == {"command": "printf hi > hello.txt"}
    assert json.loads(result.messages[3]["content"])["exit_code"] == 0
    # aligned, same length, masks are the token ids where trained
    assert len(result.tokens) == len(result.masks) == len(result.logprobs)
    runs = trained_runs(result.tokens, result.masks)
    assert [template.decode(r) for r in runs] == result.completions
    assert result.completions[1] == "Done.<|im_end|>"
    # logprobs are the server's at trained positions, 1.0 elsewhere
    lps = [lp for lp, m in zip(result.logprobs, result.masks) if m != -100]
    assert lps == [logprob_for(k) for r in runs for k in range(len(r))]
    assert all(lp == 1.0 for lp, m in zip(result.logprobs, result.masks) if m == -100)
    # each request's prompt is exactly the context so far (never re-tokenized)
    key = "prompt" if server == "vllm" else "input_ids"
    second = requests[1]["body"][key]
    assert result.tokens[: len(second)] == second and second[: len(requests[0]["body"][key])] == requests[0]["body"][key]
    # concatenated turns == the template's rendering of the final conversation (minus its trailing "\n")
    assert result.aligned
    full = template.encode(template.render(result.messages, ctx.tool_schemas()))
    assert full[: len(result.tokens)] == result.tokens
    assert template.decode(full[len(result.tokens):]) == "\n"


async def test_turn_written_differently_from_the_template_keeps_the_sampled_tokens(template, runtime):
    def compact(prompt: str, index: int) -> str:
        if "<tool_response>" not in prompt:  # no spaces in the JSON: the template would write spaces
            return '<tool_call>{"name":"terminal","arguments":{"command":"echo x"}}</tool_call>'
        return "ok"

    with ScriptedCompletionsServer(template.tokenizer, compact) as srv:
        agent = CompletionsAgent(srv.base_url, template, parser="hermes")
        async with runtime.rollout(backend="local", toolsets=["terminal"]) as ctx:
            result = await agent.run(ITEM, ctx)
        await agent.aclose()
    assert result.turns == 2 and not result.aligned
    runs = trained_runs(result.tokens, result.masks)
    assert [template.decode(r) for r in runs] == result.completions
    assert result.completions[0].startswith('<tool_call>{"name":"terminal"')
    assert len(result.tokens) == len(result.masks) == len(result.logprobs)


async def test_malformed_call_is_counted_and_the_good_one_runs(template, runtime):
    def mixed(prompt: str, index: int) -> str:
        if "<tool_response>" not in prompt:
            return ('<tool_call>\n{"name": "terminal", "arguments": {broken}\n</tool_call>\n'
                    + HERMES.render([call("terminal", command="echo good > g.txt")]))
        return "done"

    with ScriptedCompletionsServer(template.tokenizer, mixed) as srv:
        agent = CompletionsAgent(srv.base_url, template, parser="hermes")
        async with runtime.rollout(backend="local", toolsets=["terminal"]) as ctx:
            result = await agent.run(ITEM, ctx)
            assert (await ctx.read_file("g.txt"))["content"] == "good\n"
        await agent.aclose()
    assert [e.kind for e in result.tool_errors] == ["malformed_tool_call"]
    assert len(result.messages[2]["tool_calls"]) == 1


async def test_server_error_ends_the_rollout_as_api_error(template, runtime):
    with ScriptedCompletionsServer(template.tokenizer, lambda p, i: None) as srv:
        agent = CompletionsAgent(srv.base_url, template)
        async with runtime.rollout(backend="local", toolsets=["terminal"]) as ctx:
            result = await agent.run(ITEM, ctx)
        await agent.aclose()
    assert result.stop_reason == "api_error" and "HTTP 500" in result.error
    assert len(result.tokens) == len(result.masks) > 0 and set(result.masks) == {-100}


async def test_max_tokens_cut_is_a_length_stop(template, runtime):
    with ScriptedCompletionsServer(template.tokenizer, lambda p, i: "x" * 100) as srv:
        agent = CompletionsAgent(srv.base_url, template, max_tokens=10)
        async with runtime.rollout(backend="local", toolsets=["terminal"]) as ctx:
            result = await agent.run(ITEM, ctx)
        await agent.aclose()
    assert result.stop_reason == "length" and not result.finished
    assert sum(m != -100 for m in result.masks) == 10


def test_tokenize_conversation_masks_assistant_turns(template):
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function",
                                                              "function": {"name": "terminal", "arguments": '{"command": "ls"}'}}]},
        {"role": "tool", "tool_call_id": "c", "content": "a.txt"},
        {"role": "assistant", "content": "There is a.txt."},
    ]
    tokens, masks = template.tokenize_conversation(messages)
    assert tokens == template.encode(template.render(messages))
    runs = [template.decode(r) for r in trained_runs(tokens, masks)]
    assert runs == ['<tool_call>\n{"name": "terminal", "arguments": {"command": "ls"}}\n</tool_call><|im_end|>\n',
                    "There is a.txt.<|im_end|>\n"]


def test_agent_is_registered(monkeypatch):
    monkeypatch.setenv("HERMES_DISABLE_PLUGIN_AUTOLOAD", "1")
    rt = Runtime()
    spec = rt.agents.get("openai-completions")
    agent = spec.factory(base_url="http://127.0.0.1:9/v1", template=ChatTemplate(ByteTokenizer(), CHATML_TOOLS_TEMPLATE))
    assert isinstance(agent, CompletionsAgent)
    with pytest.raises(ValueError, match="tokenizer"):
        spec.factory(base_url="http://127.0.0.1:9/v1")


async def test_text_only_server_is_refused_unless_allowed(template, runtime):
    with ScriptedCompletionsServer(template.tokenizer, two_turns, token_ids=False) as srv:
        strict = CompletionsAgent(srv.base_url, template)
        lenient = CompletionsAgent(srv.base_url, template, allow_text_only=True)
        async with runtime.rollout(backend="local", toolsets=["terminal"]) as ctx:
            refused = await strict.run(ITEM, ctx)
            accepted = await lenient.run(ITEM, ctx)
        await strict.aclose()
        await lenient.aclose()
    assert refused.stop_reason == "api_error" and "without token ids" in refused.error
    assert accepted.stop_reason == "final_answer" and not accepted.token_exact and not accepted.aligned
    assert len(accepted.tokens) == len(accepted.masks) == len(accepted.logprobs)
    assert [template.decode(r) for r in trained_runs(accepted.tokens, accepted.masks)] == accepted.completions
