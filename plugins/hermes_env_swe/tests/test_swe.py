"""The swe environment: formats, the bundled samples with the oracle, failures, partial credit,
SWE-bench semantics (base_commit, test files reset, test_patch, per-test results)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BACKEND_OPTIONS, IMAGE_MAP

from hermes_core import Runner, Runtime
from hermes_core.errors import ConfigError
from hermes_env_swe import SAMPLE_DIR, Swe, SweConfig, load_tasks

BASE_COMMIT = "95cba2b40c1a3c8932555e44b6eb5a9a6faa3d0e"
HEAD_COMMIT = "601dc76fd942b91e9b4d5338395832e72696e982"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _repo_rows(tmp_path: Path) -> list[dict]:
    """The sample instances, pointing at the sample image context from a copy elsewhere."""
    rows = _rows(SAMPLE_DIR / "repo_tasks.jsonl")
    for r in rows:
        r["image_build"] = str(SAMPLE_DIR / r["image_build"])
    return rows


# ---------------------------------------------------------------------- no engine needed


def test_registered():
    rt = Runtime()
    assert rt.environments.get("swe").cls is Swe
    assert rt.verifiers.get("swe").fn is not None


def test_samples_load_in_both_formats():
    items = asyncio.run(Swe().tasks())
    kinds = {i.id: i.metadata["kind"] for i in items}
    assert kinds == {"hermes/0": "function", "hermes/1": "function", "hermes/2": "function",
                     "hermes__calc-1": "repo", "hermes__calc-2": "repo"}
    calc1 = next(i for i in items if i.id == "hermes__calc-1")
    assert calc1.metadata["FAIL_TO_PASS"] == ["tests.test_calc.TestMean.test_mean_float"]  # from a JSON string
    assert calc1.backend_options["build"]["context"] == str(SAMPLE_DIR / "calc-image")
    assert calc1.backend_options["workdir"] == "/testbed" and calc1.backend_options["network"] == "none"
    assert calc1.solution.startswith("git apply --whitespace=nowarn - <<'HERMES_EOF_")
    fn = next(i for i in items if i.id == "hermes/0")
    assert fn.image == "python:3.12-slim" and fn.files == {"solution.py": fn.metadata["stub"]}
    assert "running_max" in fn.prompt and fn.metadata["partial_credit"] == 0.0
    for item in items:  # every item is valid for the docker backend as it is
        Runtime().backend_options("docker", {**item.backend_options, **({"image": item.image} if item.image else {})})


def test_fixture_repository_commits_are_deterministic(tmp_path):
    out = subprocess.run(["bash", str(SAMPLE_DIR / "calc-image" / "make_repo.sh"), str(tmp_path / "r")],
                         capture_output=True, text=True, check=True, timeout=60)
    assert [line.split()[0] for line in out.stdout.splitlines()] == [HEAD_COMMIT, BASE_COMMIT]
    assert {r["base_commit"] for r in _rows(SAMPLE_DIR / "repo_tasks.jsonl")} == {BASE_COMMIT}


def test_parquet_and_json_forms(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows(SAMPLE_DIR / "function_tasks.jsonl")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "fn.parquet")
    (tmp_path / "fn.json").write_text(json.dumps(rows))
    assert [t.task_id for t in load_tasks(tmp_path / "fn.parquet")] == [t.task_id for t in load_tasks(tmp_path / "fn.json")]
    assert len(load_tasks(tmp_path / "fn.parquet")) == 3


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ({"prompt": "x"}, "neither a SWE-bench instance"),
        ({"task_id": "a", "prompt": "p", "entry_point": "f"}, "missing required key 'test'"),
        ({"task_id": "a", "prompt": "p", "entry_point": "not valid", "test": "t"}, "entry_point"),
        ({"instance_id": "i", "base_commit": "abcdef", "problem_statement": "p", "FAIL_TO_PASS": "[broken"}, "FAIL_TO_PASS"),
    ],
)
def test_bad_rows_are_named(tmp_path, row, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        load_tasks(_write(tmp_path / "d.jsonl", [row]))
    assert "row 1" in str(info.value)


def test_instance_without_image_is_refused(tmp_path):
    path = _write(tmp_path / "d.jsonl", [{"instance_id": "i", "base_commit": "abcdef", "problem_statement": "p"}])
    with pytest.raises(ConfigError, match="names no image"):
        asyncio.run(Swe(SweConfig(dataset=str(path))).tasks())


# ---------------------------------------------------------------------- real engine


async def _run(items_env: Swe, agent_name: str = "oracle", tasks=None):
    async with Runtime() as rt:
        runner = Runner(rt, rt.agents.get(agent_name).factory(), environment=items_env, backend="docker",
                        backend_options=BACKEND_OPTIONS, concurrency=4)
        items = await items_env.tasks()
        if tasks is not None:
            items = tasks(items)
        report = await runner.run(items)
    return {r["task_id"]: r for r in report.records}


@pytest.mark.docker
async def test_oracle_scores_one_on_the_samples():
    records = await _run(Swe())
    assert {k: r["reward"] for k, r in records.items()} == dict.fromkeys(
        ["hermes/0", "hermes/1", "hermes/2", "hermes__calc-1", "hermes__calc-2"], 1.0)
    calc = records["hermes__calc-1"]["scores"]
    assert calc["F2P:tests.test_calc.TestMean.test_mean_float"] == 1.0
    assert calc["P2P:tests.test_calc.TestBasic.test_add"] == 1.0 and calc["FAIL_TO_PASS"] == 1.0
    assert records["hermes/0"]["scores"] == {"reward": 1.0, "tests_passed": 1.0}


@pytest.mark.docker
async def test_untouched_sandbox_fails_with_per_test_results(tmp_path):
    # No solution: the oracle does nothing, so FAIL_TO_PASS fails and PASS_TO_PASS still passes.
    env = Swe(SweConfig(dataset=[str(SAMPLE_DIR / "function_tasks.jsonl"),
                                 str(_write(tmp_path / "r.jsonl", _repo_rows(tmp_path)))], tasks=["hermes/1", "hermes__calc-2"]))
    records = await _run(env, tasks=lambda items: [i.model_copy(update={"solution": None}) for i in items])
    r = records["hermes__calc-2"]
    assert r["reward"] == 0.0 and r["verifier_error"] is None and r["stop_reason"] == "no_solution"
    assert r["scores"]["F2P:tests.test_clamp.TestClamp.test_upper_bound"] == 0.0
    assert r["scores"]["P2P:tests.test_clamp.TestClamp.test_inside"] == 1.0
    assert r["scores"]["FAIL_TO_PASS"] == 0.0 and r["scores"]["PASS_TO_PASS"] == 1.0
    assert records["hermes/1"]["reward"] == 0.0 and records["hermes/1"]["scores"]["tests_passed"] == 0.0


@pytest.mark.docker
async def test_base_commit_checkout_test_reset_and_bad_test_patch(tmp_path):
    rows = _repo_rows(tmp_path)
    # An agent that edits the test file to pass and fixes nothing: the test file is reset first.
    cheat = dict(rows[0], instance_id="cheat",
                 patch="")
    cheat_solution = (
        "test \"$(git rev-parse HEAD)\" = " + BASE_COMMIT + " && ! grep -q double calc/ops.py && "
        "printf 'import unittest\\nclass TestMean(unittest.TestCase):\\n    def test_mean_float(self): pass\\n' "
        "> tests/test_calc.py"
    )
    broken = dict(rows[1], instance_id="broken-test-patch", test_patch=rows[1]["test_patch"].replace("@@ -0,0 +1,13 @@", "@@ -0,0 +1,99 @@"))
    env = Swe(SweConfig(dataset=str(_write(tmp_path / "r.jsonl", [cheat, broken]))))

    def prepare(items):
        return [i.model_copy(update={"solution": cheat_solution}) if i.id == "cheat" else i for i in items]

    records = await _run(env, tasks=prepare)
    c = records["cheat"]
    assert c["agent_error"] is None, c  # the script checked HEAD == base_commit (not the image's HEAD)
    assert c["reward"] == 0.0 and c["scores"]["F2P:tests.test_calc.TestMean.test_mean_float"] == 0.0
    b = records["broken-test-patch"]
    assert b["reward"] == 0.0 and "test_patch of 'broken-test-patch' does not apply" in b["verifier_error"]


@pytest.mark.docker
async def test_partial_credit_is_off_by_default_and_configurable(tmp_path):
    wrong = "cat >> solution.py <<'EOF'\n    return None\nEOF\n"

    def prepare(items):
        return [i.model_copy(update={"solution": wrong}) for i in items]

    off = await _run(Swe(SweConfig(dataset=str(SAMPLE_DIR / "function_tasks.jsonl"), tasks=["hermes/0"])), tasks=prepare)
    on = await _run(Swe(SweConfig(dataset=str(SAMPLE_DIR / "function_tasks.jsonl"), tasks=["hermes/0"], partial_credit=0.1)),
                    tasks=prepare)
    assert off["hermes/0"]["reward"] == 0.0
    assert on["hermes/0"]["reward"] == 0.1 and on["hermes/0"]["scores"]["tests_passed"] == 0.0
    # An untouched stub earns nothing even with partial credit on.
    none = await _run(Swe(SweConfig(dataset=str(SAMPLE_DIR / "function_tasks.jsonl"), tasks=["hermes/0"], partial_credit=0.1)),
                      tasks=lambda items: [i.model_copy(update={"solution": "true"}) for i in items])
    assert none["hermes/0"]["reward"] == 0.0


@pytest.mark.docker
def test_hermes_eval_swe_cli(tmp_path):
    env = {**os.environ, "HERMES_DOCKER_IMAGE_MAP": json.dumps(IMAGE_MAP)}
    cmd = [str(Path(sys.executable).with_name("hermes")), "eval", "swe", "--agent", "oracle", "--backend", "docker",
           "-o", "pull=never", "--out", str(tmp_path / "out"), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["mean_reward"] == 1.0 and summary["planned"] == 5
