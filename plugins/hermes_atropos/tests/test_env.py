"""HermesAtroposEnv in process, with the real atroposlib BaseEnv, the local backend and a
scripted completions server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import SPECIALS, solved

TASKS = ["hello-file", "count-errors"]


def make_env(tokenizer_dir, base_url, timeout=30, **overrides):
    from atroposlib.envs.server_handling.server_baseline import APIServerConfig

    from hermes_atropos import HermesAtroposConfig, HermesAtroposEnv

    fields = dict(tokenizer_name=str(tokenizer_dir), group_size=2, use_wandb=False, max_token_length=8192,
                  environment_config={"tasks": TASKS}, infra_retries=1)
    fields.update(overrides)
    server = APIServerConfig(base_url=base_url, model_name="scripted", api_key="x", health_check=False, timeout=timeout)
    return HermesAtroposEnv(HermesAtroposConfig(**fields), [server])


def check_group(group, tokenizer, size=2):
    assert len(group["tokens"]) == len(group["masks"]) == len(group["scores"]) == len(group["messages"]) == size
    assert len(group["inference_logprobs"]) == size
    for tokens, masks, lps, messages, score in zip(group["tokens"], group["masks"], group["inference_logprobs"],
                                                    group["messages"], group["scores"]):
        assert len(tokens) == len(masks) == len(lps) > 0
        assert all(m == -100 or m == t for t, m in zip(tokens, masks))
        assert all(lp == 1.0 for lp, m in zip(lps, masks) if m == -100)
        assert any(m != -100 for m in masks) and any(lp < 0 for lp in lps)
        # the trained text is exactly what the scripted model wrote
        trained = tokenizer.decode([t for t, m in zip(tokens, masks) if m != -100])
        assert trained.startswith("Running it.") and trained.endswith("Done.<|im_end|>")
        assert all("role" in m and "content" in m for m in messages)
        assert [m["role"] for m in messages][-3:] == ["assistant", "tool", "assistant"]
        # the score is the verifier's: the rollout that ran the reference solution scores 1
        assert score == (1.0 if solved(messages) else 0.0)
    assert sorted(group["scores"]) == [0.0, 1.0]


async def test_collect_trajectories_gives_a_full_scored_group(tokenizer_dir, hf_tokenizer, scripted):
    env = make_env(tokenizer_dir, scripted.base_url)
    await env.setup()
    try:
        item = await env.get_next_item()
        assert item.id == "hello-file" and (await env.get_next_item()).id == "count-errors"
        group, backlog = await env.collect_trajectories(item)
        assert backlog == []
        check_group(group, hf_tokenizer)
        # token-exact and aligned: the tokens are the template's rendering of the conversation
        from hermes_plugins.parsers import ChatTemplate

        template = ChatTemplate(hf_tokenizer)
        tools = env._tools(item)
        for tokens, messages in zip(group["tokens"], group["messages"]):
            full = template.encode(template.render(messages, tools))
            assert full[: len(tokens)] == tokens and hf_tokenizer.decode(full[len(tokens):]) == "\n"
        # atroposlib's own checks accept it and would send it (sizes, distinct scores, lengths)
        env.max_token_len = 8192
        sent = []

        async def capture(data):
            sent.append(data)

        env._send_scored_data_to_api = capture
        await env.handle_send_to_api(group, item)
        assert len(sent) == 1 and sent[0]["scores"] == group["scores"]
        await env.wandb_log({})
    finally:
        await env.aclose()


async def test_infra_failures_are_rerun_then_the_group_is_full(tokenizer_dir, hf_tokenizer, scripted, policy):
    policy.fail_first = 1  # the first model request answers HTTP 500: that rollout is an infra failure
    env = make_env(tokenizer_dir, scripted.base_url, metrics_path=None)
    await env.setup()
    try:
        group, _ = await env.collect_trajectories(await env.get_next_item())
        check_group(group, hf_tokenizer)
        metrics = env.stats.metrics()
        assert metrics["train/groups_retried"] == 1 and metrics["train/infra_errors"] == 1
        assert metrics["train/groups_sent"] == 1 and metrics["train/groups_dropped"] == 0
    finally:
        await env.aclose()


async def test_a_group_that_keeps_failing_is_dropped_not_sent_short(tokenizer_dir, scripted, policy, tmp_path):
    policy.fail_first = 10**6
    env = make_env(tokenizer_dir, scripted.base_url, infra_retries=2, metrics_path=str(tmp_path / "m.jsonl"))
    await env.setup()
    try:
        group, backlog = await env.collect_trajectories(await env.get_next_item())
        assert group is None and backlog == []
        assert policy.calls == 2 + 2 + 2  # every attempt reran both rollouts
        await env.wandb_log({})
        line = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[-1])
        assert line["train/groups_dropped"] == 1 and line["train/groups_retried"] == 2
        assert line["train/infra_errors"] == 6 and line["train/groups_sent"] == 0
    finally:
        await env.aclose()


async def test_a_prompt_longer_than_max_token_length_is_an_infra_failure(tokenizer_dir, scripted, policy):
    env = make_env(tokenizer_dir, scripted.base_url, max_token_length=64, infra_retries=0)
    await env.setup()
    try:
        group, _ = await env.collect_trajectories(await env.get_next_item())
        assert group is None and policy.calls == 0
        assert env.stats.metrics()["train/groups_dropped"] == 1
    finally:
        await env.aclose()


async def test_wandb_log_reports_rewards_turns_and_tool_errors(tokenizer_dir, scripted, tmp_path):
    env = make_env(tokenizer_dir, scripted.base_url, metrics_path=str(tmp_path / "m.jsonl"))
    await env.setup()
    try:
        for _ in range(2):
            await env.collect_trajectories(await env.get_next_item())
        await env.wandb_log({})
        line = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[-1])
        assert line["kind"] == "train" and line["train/rollouts"] == 4
        assert line["train/reward_mean"] == 0.5 and line["train/reward_std"] == 0.5
        assert line["train/turns_mean"] == 2 and line["train/tool_calls"] == 4
        assert line["train/tool_errors_count"] == 0 and line["train/tool_error_rate"] == 0
        assert line["train/groups_sent"] == 2 and line["train/misaligned_rollouts"] == 0
    finally:
        await env.aclose()


async def test_chat_completions_agent_is_retokenized_by_message_boundaries(tokenizer_dir, hf_tokenizer):
    """agent=openai: tokens come from the chat template, masks from the assistant messages."""
    from hermes_atropos import build_group
    from hermes_core import AgentResult, Rollout

    from hermes_plugins.parsers import ChatTemplate

    messages = [{"role": "user", "content": "say hi"}, {"role": "assistant", "content": "hi"}]
    rollout = Rollout({"rollout_id": "t#0", "reward": 1.0, "infra_error": False, "verifier_error": None},
                      AgentResult(messages=messages, turns=1, finished=True, stop_reason="final_answer"), None)
    group = build_group([rollout], ChatTemplate(hf_tokenizer), None)
    assert group["inference_logprobs"] is None
    trained = hf_tokenizer.decode([t for t, m in zip(group["tokens"][0], group["masks"][0]) if m != -100])
    assert trained == "hi<|im_end|>\n"


def test_importing_hermes_core_and_the_package_does_not_import_atroposlib():
    code = "import sys, hermes_core, hermes_atropos, hermes_plugins.parsers; print('atroposlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_specials_are_single_tokens(hf_tokenizer):
    for s in SPECIALS:
        assert len(hf_tokenizer.encode(s, add_special_tokens=False)) == 1


def test_hermes_eval_runs_the_openai_completions_agent(tmp_path, tokenizer_dir, scripted):
    """The registered agent through the hermes CLI (tokenizer from $HERMES_TOKENIZER)."""
    import os

    env = dict(os.environ, HERMES_DISABLE_PLUGIN_AUTOLOAD="1", HERMES_TOKENIZER=str(tokenizer_dir))
    hermes = [sys.executable, "-m", "hermes_core.cli"]
    out = subprocess.run([*hermes, "eval", "terminal-test", "--agent", "openai-completions", "--base-url", scripted.base_url,
                          "--tasks", "hello-file", "--group-size", "2", "--out", str(tmp_path / "run"), "--quiet", "--json"],
                         capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["reward"] for r in records) == [0.0, 1.0]
    assert all(r["turns"] == 2 and r["stop_reason"] == "final_answer" for r in records)


def test_a_rollout_cut_before_any_completion_is_not_trained_on():
    from hermes_atropos import is_infra_failure
    from hermes_core import Rollout

    from hermes_plugins.parsers._completions import TokenAgentResult

    cut = TokenAgentResult(messages=[{"role": "user", "content": "x"}], turns=1, stop_reason="deadline",
                           tokens=[1, 2, 3], masks=[-100] * 3, logprobs=[1.0] * 3)
    record = {"rollout_id": "t#0", "reward": 0.0, "infra_error": False, "verifier_error": None}
    assert "no tokens" in is_infra_failure(Rollout(record, cut, None))
    done = TokenAgentResult(messages=[], turns=1, stop_reason="final_answer", tokens=[1, 2], masks=[-100, 2], logprobs=[1.0, -0.5])
    assert is_infra_failure(Rollout(record, done, None)) is None
