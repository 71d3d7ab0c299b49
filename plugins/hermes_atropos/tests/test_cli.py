"""The atroposlib CLI for real: ``run-api --host 127.0.0.1`` on a free port, the env in ``serve``
mode (``--env.use_wandb false``) against a scripted completions server on loopback, this test as
a minimal trainer (register, pull ``/batch``); ``process`` writes its JSONL; ``evaluate`` writes
metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from helpers import RunApi, env_cmd, pull_batch, register_trainer, solved, stop_process

pytestmark = pytest.mark.atropos

TASKS = ["hello-file", "count-errors"]


def write_config(path, tokenizer_dir, base_url, **env):
    fields = {"tokenizer_name": str(tokenizer_dir), "group_size": 2, "environment": "terminal-test",
              "environment_config": {"tasks": TASKS}, "max_token_length": 8192, "max_num_workers": 2,
              "wandb_name": "hermes-test", "total_steps": 2}
    fields.update(env)
    path.write_text(yaml.safe_dump({"env": fields, "openai": {
        "base_url": base_url, "model_name": "scripted", "api_key": "x", "health_check": False, "timeout": 60}}))
    return path


def run_env(args, tmp_path, timeout):
    env = dict(os.environ, HERMES_DISABLE_PLUGIN_AUTOLOAD="1", WANDB_MODE="disabled")
    log = tmp_path / f"{args[3]}.log"
    with log.open("wb") as f:
        proc = subprocess.run(args, cwd=tmp_path, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=timeout)
    text = log.read_text(errors="replace")
    return proc.returncode, (text if len(text) < 6000 else text[:2500] + "\n[...]\n" + text[-3500:])


def check_sequences(group, tokenizer):
    assert len(group["tokens"]) == len(group["masks"]) == len(group["scores"]) == 2
    for tokens, masks, lps, messages, score in zip(group["tokens"], group["masks"], group["inference_logprobs"],
                                                    group["messages"], group["scores"]):
        assert len(tokens) == len(masks) == len(lps)
        assert all(m == -100 or m == t for t, m in zip(tokens, masks))
        trained = tokenizer.decode([t for t, m in zip(tokens, masks) if m != -100])
        assert trained.startswith("Running it.") and trained.endswith("Done.<|im_end|>")
        assert score == (1.0 if solved(messages) else 0.0)
    assert sorted(group["scores"]) == [0.0, 1.0]


def test_serve_feeds_a_trainer_through_run_api(tmp_path, tokenizer_dir, hf_tokenizer, scripted):
    api = RunApi(tmp_path / "run-api.log")
    proc = None
    try:
        assert register_trainer(api.url, batch_size=4, max_token_len=8192, num_steps=2,
                                checkpoint_dir=str(tmp_path / "ckpt"))["uuid"] is not None
        assert pull_batch_once(api.url) is None  # the first /batch starts the run
        cfg = write_config(tmp_path / "serve.yaml", tokenizer_dir, scripted.base_url,
                           rollout_server_url=api.url, metrics_path=str(tmp_path / "metrics.jsonl"))
        env = dict(os.environ, HERMES_DISABLE_PLUGIN_AUTOLOAD="1", WANDB_MODE="disabled")
        log = (tmp_path / "serve.log").open("wb")
        proc = subprocess.Popen(env_cmd("serve", cfg, "--env.use_wandb", "false"), cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        batch = pull_batch(api.url, timeout=150, proc=proc)
        assert len(batch) == 2  # batch_size 4 = two whole groups of 2
        for group in batch:
            check_sequences(group, hf_tokenizer)
            assert group["env_id"] == 0 and all(m["role"] for seq in group["messages"] for m in seq)
    finally:
        if proc is not None:
            stop_process(proc)
            log.close()
        api.stop()
    assert "Traceback" not in (tmp_path / "serve.log").read_text(errors="replace")


def pull_batch_once(api):
    from helpers import http

    return http("GET", api + "/batch").get("batch")


def test_process_writes_the_groups_as_jsonl(tmp_path, tokenizer_dir, hf_tokenizer, scripted):
    cfg = write_config(tmp_path / "process.yaml", tokenizer_dir, scripted.base_url)
    out = tmp_path / "groups.jsonl"
    # a mapping option given on the command line (JSON) wins over the YAML file's
    code, log = run_env(env_cmd("process", cfg, "--env.use_wandb", "false", "--env.data_path_to_save_groups", str(out),
                                "--env.total_steps", "2", "--env.environment_config", '{"tasks": ["count-errors"]}'),
                        tmp_path, timeout=240)
    assert code == 0, log
    groups = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(groups) == 2
    from hermes_plugins.terminal_test.tasks import TASKS

    prompt = next(t.prompt for t in TASKS if t.id == "count-errors")
    for group in groups:
        check_sequences(group, hf_tokenizer)
        assert all(seq[1]["content"] == prompt for seq in group["messages"])
    assert out.with_suffix(".html").exists()


def test_evaluate_writes_metrics(tmp_path, tokenizer_dir, scripted):
    cfg = write_config(tmp_path / "eval.yaml", tokenizer_dir, scripted.base_url)
    out = tmp_path / "eval"
    code, log = run_env(env_cmd("evaluate", cfg, "--env.use_wandb", "false", "--env.data_dir_to_save_evals", str(out)),
                        tmp_path, timeout=240)
    assert code == 0, log
    metrics = json.loads((out / "metrics.json").read_text())["results"]["all"]
    # one rollout per task; the scripted model solves each task's first request
    assert metrics["eval/tasks"] == 2 and metrics["eval/rollouts"] == 2
    assert metrics["eval/reward_mean"] == 1.0 and metrics["eval/pass_rate"] == 1.0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted(s["task_id"] for s in samples) == sorted(TASKS)
    assert (out / "evaluate_config.yaml").exists()
