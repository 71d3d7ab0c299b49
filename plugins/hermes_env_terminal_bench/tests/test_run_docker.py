"""The test tasks run with the oracle on the real docker backend, from the directories and from the
parquet form; a second run builds no image; multi-step tasks; the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BACKEND_OPTIONS, IMAGE_MAP, TASKS
from test_format import write_parquet

from hermes_core import Runner, Runtime
from hermes_env_terminal_bench import TerminalBench, TerminalBenchConfig

pytestmark = pytest.mark.docker

SINGLE = ["build-fails", "compose-main", "failing-solution", "hello-world", "json-scores", "no-reward",
          "no-solution", "test-timeout"]


def _built_images(api) -> dict[str, str]:
    return {i["Id"]: (i.get("Labels") or {}).get("hermes.created", "") for i in api.images(filters={"label": "harbor.task"})}


async def _run(path: str | Path, artifacts: Path, tasks: list[str] | None = None, cache: Path | None = None):
    env = TerminalBench(TerminalBenchConfig(path=str(path), tasks=tasks, artifacts_dir=str(artifacts),
                                            cache_dir=str(cache) if cache else None))
    async with Runtime() as rt:
        runner = Runner(rt, rt.agents.get("oracle").factory(), environment=env, backend="docker",
                        backend_options=BACKEND_OPTIONS, concurrency=4)
        report = await runner.run(await env.tasks())
    return {r["task_id"]: r for r in report.records}


def _check_single(records: dict, artifacts: Path) -> None:
    r = records
    for name in ("hello-world", "compose-main"):
        assert r[name]["reward"] == 1.0 and r[name]["error"] is None, r[name]
    assert r["json-scores"]["reward"] == 1.0 and r["json-scores"]["scores"] == {"correctness": 1.0, "style": 1.0}
    # A wrong answer is a 0, not an error of the verifier; the solution's exit code is noted.
    assert r["failing-solution"]["reward"] == 0.0 and r["failing-solution"]["verifier_error"] is None
    assert r["failing-solution"]["agent_error"] == "the reference solution exited with 1"
    # The build failure is an infrastructure error carrying the build log's tail.
    bf = r["build-fails"]
    assert bf["infra_error"] is True and bf["reward"] is None
    assert "ImageBuildError" in bf["error"] and "this build fails on purpose" in bf["error"]
    assert "returned a non-zero code: 7" in bf["error"]
    to = r["test-timeout"]
    assert to["verifier_error"] and "did not finish within 2s" in to["verifier_error"] and "hanging" in to["verifier_error"]
    nr = r["no-reward"]
    assert "wrote no reward file" in nr["verifier_error"] and "all tests passed" in nr["verifier_error"]
    ns = r["no-solution"]
    assert ns["stop_reason"] == "no_solution" and ns["reward"] == 0.0 and ns["verifier_error"] is None
    # Artifacts and logs of each rollout.
    (hello,) = list((artifacts / "hello-world").iterdir())
    oracle = (hello / "agent" / "oracle.txt").read_text()
    assert "solving in /app with DEBIAN_FRONTEND=noninteractive" in oracle
    assert (hello / "verifier" / "reward.txt").read_text().strip() == "1"
    stdout = (hello / "verifier" / "test-stdout.txt").read_text()
    assert "nets=lo" in stdout and "memory=1073741824 cpu_quota=100000" in stdout
    assert (hello / "artifacts" / "app" / "hello.txt").read_text() == "Hello, world!\n"
    assert (hello / "artifacts" / "logs" / "artifacts" / "note.txt").read_text() == "published\n"
    assert (hello / "artifacts" / "outputs" / "result.txt").is_file()
    assert not (hello / "artifacts" / "outputs" / "scratch.tmp").exists()  # exclude
    manifest = json.loads((hello / "artifacts" / "manifest.json").read_text())
    assert [m["status"] for m in manifest] == ["ok", "ok", "ok"]


@pytest.fixture(scope="module")
def dir_run(tmp_path_factory, docker_api):
    import asyncio

    art = tmp_path_factory.mktemp("art-dir")
    first = asyncio.run(_run(TASKS, art, SINGLE))
    images = _built_images(docker_api)
    art2 = tmp_path_factory.mktemp("art-dir2")
    second = asyncio.run(_run(TASKS, art2, SINGLE))
    return first, art, images, second, art2, _built_images(docker_api)


def test_oracle_scores_and_failures_are_what_they_are(dir_run):
    first, art, *_ = dir_run
    assert set(first) == set(SINGLE)
    _check_single(first, art)


def test_second_run_builds_no_image(dir_run):
    _, _, images, second, art2, images_after = dir_run
    assert images_after == images  # same images, none rebuilt or added
    assert len(images) >= 4
    _check_single(second, art2)


def test_parquet_dataset_gives_the_same_results(dir_run, tmp_path, docker_api):
    import asyncio

    first = dir_run[0]
    src = tmp_path / "tasks"
    src.mkdir()
    for name in SINGLE:
        shutil.copytree(TASKS / name, src / name)
    table = write_parquet(src, tmp_path / "tb2.parquet")
    art = tmp_path / "art"
    records = asyncio.run(_run(table, art, cache=tmp_path / "cache"))
    _check_single(records, art)
    for name in SINGLE:
        a, b = first[name], records[name]
        assert (a["reward"], a["scores"], a["infra_error"], a["stop_reason"]) == (
            b["reward"], b["scores"], b["infra_error"], b["stop_reason"]), name
        assert (a["verifier_error"] is None) == (b["verifier_error"] is None), name


async def _multi(name: str, art: Path):
    env = TerminalBench(TerminalBenchConfig(path=str(TASKS / name), artifacts_dir=str(art)))
    (item,) = await env.tasks()
    from hermes_core import run_verifier

    async with Runtime() as rt:
        agent = rt.agents.get("oracle").factory()
        opts = {**BACKEND_OPTIONS, **item.backend_options, **({"image": item.image} if item.image else {})}
        async with rt.rollout(backend="docker", options=opts) as ctx:
            await env.setup(item, ctx)
            result = await env.run_agent(agent, item, ctx, deadline=None)
            outcome = await run_verifier(env.verify, item, result, ctx, timeout=300)
            listing = (await ctx.sandbox.exec("ls /tests; cat /app/list.txt 2>/dev/null")).output
    return item, result, outcome, listing, ctx.task_id


async def test_multi_step_runs_every_step_with_its_own_tests(tmp_path):
    item, result, outcome, listing, rid = await _multi("multi-step", tmp_path)
    assert outcome.error is None and outcome.reward == 1.0, outcome
    assert outcome.scores == {"reward": 1.0, "steps_completed": 2.0}
    # Each step's instruction reached the agent, in order.
    users = [m["content"] for m in result.messages if m["role"] == "user"]
    assert [u.split()[0] for u in users] == ["Create", "Append"] and result.turns == 2
    assert listing.split() == ["lib.sh", "test.sh", "alpha", "beta"]  # step 2's tests replaced step 1's
    steps = json.loads((tmp_path / "multi-step" / rid / "steps.json").read_text())
    assert [s["rewards"] for s in steps["steps"]] == [{"reward": 1.0}, {"reward": 1.0}] and steps["stopped"] is None
    assert (tmp_path / "multi-step" / rid / "steps" / "extend" / "verifier" / "reward.txt").is_file()


async def test_multi_step_min_reward_stops_early(tmp_path):
    item, result, outcome, listing, rid = await _multi("multi-step-stop", tmp_path)
    assert outcome.reward == 0.0 and outcome.error is None
    assert outcome.scores == {"reward": 0.0, "steps_completed": 1.0}
    assert [m["content"] for m in result.messages if m["role"] == "user"] == [item.prompt]  # step 2 never ran
    steps = json.loads((tmp_path / "multi-step-stop" / rid / "steps.json").read_text())
    assert "below min_reward 1.0" in steps["stopped"] and len(steps["steps"]) == 1


async def test_multi_step_through_the_runner_runs_every_step(tmp_path):
    """The Runner hands the agent phase to Environment.run_agent, which drives Harbor's steps."""
    records = await _run(TASKS, tmp_path, ["multi-step"])
    r = records["multi-step"]
    assert r["reward"] == 1.0 and not r.get("verifier_error"), r


def test_hermes_eval_cli(tmp_path):
    env = {**os.environ, "HERMES_DOCKER_IMAGE_MAP": json.dumps(IMAGE_MAP)}
    cmd = [str(Path(sys.executable).with_name("hermes")), "eval", "terminal-bench", "--set", f"path={TASKS}",
           "--tasks", "hello-world,failing-solution", "--agent", "oracle", "--backend", "docker",
           "-o", "pull=never", "--set", f"artifacts_dir={tmp_path / 'art'}", "--out", str(tmp_path / "out"), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = {json.loads(line)["task_id"]: json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()}
    assert records["hello-world"]["reward"] == 1.0 and records["failing-solution"]["reward"] == 0.0
    assert json.loads(proc.stdout)["mean_reward"] == 0.5


async def test_agent_cannot_see_the_solution_or_forge_the_reward(tmp_path):
    """Before the agent: no /solution. An agent that plants a reward file and its own /tests
    gets nothing from it: stale rewards and /tests are removed before the task's tests run."""
    env = TerminalBench(TerminalBenchConfig(path=str(TASKS), tasks=["no-reward", "failing-solution"],
                                            artifacts_dir=str(tmp_path)))
    forge = ("test ! -e /solution && mkdir -p /tests && printf '#!/bin/bash\\necho 1 > /logs/verifier/reward.txt\\n' "
             "> /tests/test.sh && chmod +x /tests/test.sh && echo 1 > /logs/verifier/reward.txt "
             "&& echo '{\"reward\": 1}' > /logs/verifier/reward.json && echo 7 > /tmp/other")
    items = [i.model_copy(update={"solution": forge}) for i in await env.tasks()]
    async with Runtime() as rt:
        runner = Runner(rt, rt.agents.get("oracle").factory(), environment=env, backend="docker",
                        backend_options=BACKEND_OPTIONS, concurrency=2)
        records = {r["task_id"]: r for r in (await runner.run(items)).records}
    assert records["no-reward"]["agent_error"] is None  # `test ! -e /solution` held
    assert "wrote no reward file" in records["no-reward"]["verifier_error"]
    assert records["failing-solution"]["reward"] == 0.0 and records["failing-solution"]["scores"] == {"reward": 0.0}
