"""The files of a run carry what a researcher needs, and ``docs/eval.md`` documents every key
they hold: a real eval on the local backend, a probe environment with a known mix of passes,
a raising verifier and a failing setup, and the ``openai`` agent against a scripted server."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hermes_core import Runtime, hookimpl
from hermes_core.rollout import pass_at_k, summarize
from hermes_core.rollout._agent import OpenAIAgent, to_sharegpt, tool_response_text
from hermes_core.rollout._environment import Environment, EnvironmentConfig, TaskItem
from hermes_core.rollout._runner import Runner

from tests.test_agent_loop import ScriptedServer, call, final, tools_msg

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "eval.md"
HERMES = [sys.executable, "-c", "import sys; from hermes_core.cli import main; sys.exit(main())"]
#: Rounding: the phases are rounded to 6 decimals and the total to 4, so the phases' sum may
#: pass the total by this much.
ROUNDING = 0.00005 + 3 * 0.0000005 + 1e-9


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- which keys are documented

#: Headings of docs/eval.md's "The files of a run" -> the part of the files their tables describe.
_SECTIONS = {
    "### `results.jsonl`": "results",
    "### `trajectories.jsonl`": "trajectories",
    "### ShareGPT: `conversations`": "trajectories",
    "### `summary.json`": "summary",
    "### `summary.json` → `per_task.<task>`": "per_task",
}


def _expand(name: str) -> list[str]:
    """``a.{b,c}.{d,e}`` -> ``a.b.d``, ``a.b.e``, ``a.c.d``, ``a.c.e``."""
    parts = re.split(r"\{([^}]*)\}", name)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def documented_fields(text: str) -> dict[str, set[str]]:
    """The field names in the first column of each table of "The files of a run"."""
    out: dict[str, set[str]] = {v: set() for v in _SECTIONS.values()}
    section = None
    body = text.split("## The files of a run", 1)[1].split("\n## ", 1)[0]
    for line in body.splitlines():
        if line.startswith("### "):
            section = _SECTIONS.get(line.strip())
            continue
        if section is None or not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        for name in re.findall(r"`([^`]+)`", first):
            for path in _expand(name):  # a documented a.b.c documents the object a.b on its way
                parts = path.split(".")
                out[section].update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def _paths(obj: dict[str, Any], prefix: str, recurse: tuple[str, ...]) -> set[str]:
    """Key paths of ``obj``: ``a``, and ``a.b`` for the keys ``a`` in ``recurse`` (``a[].b`` for a list of objects)."""
    out = set()
    for key, value in obj.items():
        path = f"{prefix}{key}"
        out.add(path)
        if path in recurse:
            if isinstance(value, dict):
                out |= _paths(value, f"{path}.", recurse)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        out |= _paths(item, f"{path}[].", recurse)
    return out


_STAT_RECURSE = ("tokens", "tokens.prompt", "tokens.completion", "tokens.total",
                 "time", "time.setup", "time.agent", "time.verifier", "time.total")


def written_fields(run_dir: Path) -> dict[str, set[str]]:
    """Every key path the run's files hold (not inside values whose keys are data: scores,
    usage, messages, tool schemas, the environment config, pass@k's k)."""
    out: dict[str, set[str]] = {"results": set(), "trajectories": set(), "summary": set(), "per_task": set()}
    for rec in read_jsonl(run_dir / "results.jsonl"):
        out["results"] |= _paths(rec, "", ("timings", "tool_errors"))
    for traj in read_jsonl(run_dir / "trajectories.jsonl"):
        out["trajectories"] |= _paths(traj, "", ("sampling", "conversations"))
    if (run_dir / "summary.json").exists():
        summary = json.loads((run_dir / "summary.json").read_text())
        out["summary"] |= _paths(summary, "", ("run", *_STAT_RECURSE))
        for task in summary.get("per_task", {}).values():
            out["per_task"] |= _paths(task, "", _STAT_RECURSE)
    return out


def undocumented(run_dir: Path, docs: str | None = None) -> dict[str, list[str]]:
    documented = documented_fields(docs if docs is not None else DOCS.read_text())
    written = written_fields(run_dir)
    return {part: sorted(written[part] - documented[part]) for part in written if written[part] - documented[part]}


# --------------------------------------------------------------------------- the real eval


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``hermes eval terminal-test --agent oracle --group-size 3 --out r`` for real, then
    ``hermes view r --out r/report.html`` (the issue's done-when)."""
    base = tmp_path_factory.mktemp("files")
    out = base / "r"
    env = {**os.environ, "HERMES_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(
        [*HERMES, "eval", "terminal-test", "--agent", "oracle", "--group-size", "3", "--quiet", "--out", str(out),
         "-o", f"root={base / 'sandboxes'}"],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    view = subprocess.run([*HERMES, "view", str(out), "--out", str(out / "report.html")],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert view.returncode == 0, view.stderr
    return out


def test_every_key_a_real_eval_writes_is_documented(oracle_run: Path) -> None:
    written = written_fields(oracle_run)
    # the check reads something: the keys of the issue and the nested ones are there
    assert {"group_index", "n_tool_errors", "timings.setup", "verifier_traceback", "artifacts"} <= written["results"]
    assert {"tools", "sampling", "conversations[].from", "conversations[].value"} <= written["trajectories"]
    assert {"pass_at_k", "std", "tokens.prompt.sum", "time.agent.mean", "run.group_size"} <= written["summary"]
    assert {"pass_at_k", "scored", "time.verifier.sum", "tokens.total.mean"} <= written["per_task"]
    assert undocumented(oracle_run) == {}


def test_the_docs_check_finds_an_undocumented_key(oracle_run: Path, tmp_path: Path) -> None:
    docs = DOCS.read_text()
    assert "| `verifier_traceback` |" in docs
    assert undocumented(oracle_run, docs.replace("| `verifier_traceback` |", "| verifier_traceback |")) == {
        "results": ["verifier_traceback"]}
    assert undocumented(oracle_run, docs.replace("`time.{setup,agent,verifier,total}.{mean,sum}`",
                                                 "`time.{setup,agent,total}.{mean,sum}`")) == {
        part: ["time.verifier", "time.verifier.mean", "time.verifier.sum"] for part in ("summary", "per_task")}


def test_a_real_eval_records_the_time_split_tools_and_readable_tool_responses(oracle_run: Path) -> None:
    results = read_jsonl(oracle_run / "results.jsonl")
    assert len(results) == 30
    for r in results:
        t = r["timings"]
        assert t["total"] == r["duration"]
        for phase in ("setup", "agent", "verifier"):
            assert 0 < t[phase] < t["total"], (r["rollout_id"], t)
        assert t["setup"] + t["agent"] + t["verifier"] <= t["total"] + ROUNDING
        assert r["verifier_error"] is None and r["verifier_traceback"] is None and r["agent_traceback"] is None
        assert r["artifacts"] == []  # terminal-test collects no files
    trajectories = read_jsonl(oracle_run / "trajectories.jsonl")
    for traj in trajectories:
        names = [t["function"]["name"] for t in traj["tools"]]
        assert "terminal" in names and len(names) == len(set(names))
        assert traj["sampling"] is None  # the oracle calls no model
        response = next(c["value"] for c in traj["conversations"] if c["from"] == "tool")
        assert response.startswith("<tool_response>\n[terminal] exit_code=0") and response.endswith("\n</tool_response>")
        assert '\\"' not in response  # no JSON quoted inside JSON
    summary = json.loads((oracle_run / "summary.json").read_text())
    assert summary["pass_at_k"] == {"1": 1.0, "2": 1.0, "3": 1.0} and summary["std"] == 0.0
    assert summary["scored"] == summary["passed"] == 30 and summary["infra_errors"] == 0
    assert summary["tokens"]["rollouts"] == 0 and summary["tokens"]["total"] == {"sum": 0, "mean": None}
    for task_id, task in summary["per_task"].items():
        rows = [r for r in results if r["task_id"] == task_id]
        assert task["pass_at_k"] == {"1": 1.0, "2": 1.0, "3": 1.0} and task["scored"] == 3
        for phase in ("setup", "agent", "verifier", "total"):
            got = task["time"][phase]
            want = math.fsum(r["timings"][phase] for r in rows)
            assert got["sum"] == pytest.approx(want, abs=1e-3) and got["mean"] == pytest.approx(want / 3, abs=1e-3)
    total = summary["time"]["total"]["sum"]
    assert total == pytest.approx(math.fsum(r["duration"] for r in results), abs=1e-3)
    # the report shows the new fields
    html = (oracle_run / "report.html").read_text()
    assert "tools offered" in html and "pass@3" in html and " · verifier " in html


# --------------------------------------------------------------------------- a probe environment


class ProbeConfig(EnvironmentConfig):
    pass


class Probe(Environment):
    config_model = ProbeConfig
    verifier = "files-probe"

    async def load_tasks(self) -> list[TaskItem]:
        return [
            # the verifier passes the first two rollouts of "mixed" and fails the others
            TaskItem(id="mixed", prompt="p", solution="sleep 0.3; echo hi > f.txt", metadata={"mode": "mixed"}),
            TaskItem(id="raises", prompt="p", solution="true", metadata={"mode": "raise"}),
            TaskItem(id="huge-raise", prompt="p", solution="true", metadata={"mode": "huge"}),
            TaskItem(id="bad-setup", prompt="p", solution="true", setup="sleep 0.1; exit 3", metadata={"mode": "mixed"}),
        ]


HUGE = "H" * 500_000 + "TAIL-OF-THE-MESSAGE"


def probe_plugin():
    seen: dict[str, int] = {}

    async def verify(item, result, ctx):
        import asyncio

        mode = item.metadata["mode"]
        if mode == "raise":
            raise RuntimeError("the verifier's own bug")
        if mode == "huge":
            raise ValueError(HUGE)
        await asyncio.sleep(0.2)
        ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
        (ctx.artifacts_dir / "verifier.log").write_text("checked f.txt\n")
        seen[item.id] = seen.get(item.id, 0) + 1
        return 1.0 if seen[item.id] <= 2 else 0.0

    class Plugin:
        @staticmethod
        @hookimpl
        def hermes_register_environments(registry):
            registry.register("files-probe", Probe)

        @staticmethod
        @hookimpl
        def hermes_register_verifiers(registry):
            registry.register("files-probe", verify)

    return Plugin


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    base = tmp_path_factory.mktemp("probe")

    async def main() -> None:
        async with Runtime(plugins=[probe_plugin()]) as rt:
            env = Probe()
            runner = Runner(rt, rt.agents.get("oracle").factory(), environment=env, concurrency=4, group_size=4,
                            out_dir=base / "run", backend_options={"root": str(base / "sb")},
                            run_info={"command": "eval", "environment": "files-probe", "agent": "oracle"})
            await runner.run(await env.tasks())

    asyncio.run(main())
    return base / "run"


def test_pass_at_k_std_and_counts_of_a_known_mix(probe_run: Path) -> None:
    summary = json.loads((probe_run / "summary.json").read_text())
    mixed = summary["per_task"]["mixed"]
    assert (mixed["rollouts"], mixed["scored"], mixed["passed"]) == (4, 4, 2)
    # n=4, c=2: pass@1 = 1/2, pass@2 = 1 - C(2,2)/C(4,2) = 5/6, pass@3 = pass@4 = 1
    assert mixed["pass_at_k"] == pytest.approx({"1": 0.5, "2": 5 / 6, "3": 1.0, "4": 1.0}, abs=1e-12)
    assert mixed["std"] == pytest.approx(math.sqrt(1 / 3), abs=1e-12)  # sample std of 1, 1, 0, 0
    assert mixed["mean_reward"] == 0.5 and mixed["pass_rate"] == 0.5
    raises = summary["per_task"]["raises"]
    assert raises["pass_at_k"] == {"1": 0.0, "2": 0.0, "3": 0.0, "4": 0.0} and raises["std"] == 0.0
    # every rollout of bad-setup is an infra error: nothing scored, no pass@k, no std
    bad = summary["per_task"]["bad-setup"]
    assert (bad["scored"], bad["infra_errors"], bad["pass_at_k"], bad["std"], bad["mean_reward"]) == (0, 4, {}, None, None)
    assert bad["time"]["agent"] == {"mean": None, "sum": None} and bad["time"]["setup"]["sum"] > 0
    # run level: pass@k is the mean over the tasks that have it (mixed, raises, huge-raise)
    assert summary["pass_at_k"] == pytest.approx({"1": 0.5 / 3, "2": 5 / 18, "3": 1 / 3, "4": 1 / 3}, abs=1e-12)
    assert (summary["scored"], summary["passed"], summary["infra_errors"]) == (12, 2, 4)
    assert summary["mean_reward"] == pytest.approx(2 / 12)
    assert undocumented(probe_run) == {}


def test_a_raising_verifier_gives_its_error_and_traceback_and_scores_zero(probe_run: Path) -> None:
    by = {r["rollout_id"]: r for r in read_jsonl(probe_run / "results.jsonl")}
    r = by["raises#0"]
    assert r["reward"] == 0.0 and r["passed"] is False and r["infra_error"] is False  # scored, as before
    assert r["verifier_error"] == "verifier raised RuntimeError: the verifier's own bug" == r["error"]
    tb = r["verifier_traceback"]
    assert tb.startswith("Traceback (most recent call last):")
    assert "in verify" in tb and tb.rstrip().endswith("RuntimeError: the verifier's own bug")
    assert r["timings"]["verifier"] > 0
    # a huge message is bounded on both sides (head and tail kept, the middle cut)
    h = by["huge-raise#1"]
    assert 3000 < len(h["verifier_error"]) <= 4000
    assert h["verifier_error"].startswith("verifier raised ValueError: HHH") and h["verifier_error"].endswith("TAIL-OF-THE-MESSAGE")
    assert 12000 < len(h["verifier_traceback"]) <= 16000 and "characters omitted" in h["verifier_traceback"]
    assert h["verifier_traceback"].rstrip().endswith("TAIL-OF-THE-MESSAGE")
    ok = by["mixed#0"]
    assert ok["verifier_error"] is None and ok["verifier_traceback"] is None


def test_the_time_split_follows_the_phases(probe_run: Path) -> None:
    for r in read_jsonl(probe_run / "results.jsonl"):
        t = r["timings"]
        assert t["total"] == r["duration"]
        ran = [p for p in ("setup", "agent", "verifier") if t[p] is not None]
        assert math.fsum(t[p] for p in ran) <= t["total"] + ROUNDING
        if r["task_id"] == "bad-setup":  # the setup failed: no agent, no verifier
            assert ran == ["setup"] and 0.1 <= t["setup"] <= t["total"]
        elif r["task_id"] == "mixed":  # the solution sleeps 0.3 s, the verifier 0.2 s
            assert ran == ["setup", "agent", "verifier"]
            assert 0 < t["setup"] < 0.3 <= t["agent"] < t["total"] and 0.2 <= t["verifier"] < t["total"]
        else:
            assert ran == ["setup", "agent", "verifier"] and all(t[p] > 0 for p in ran)


def test_artifacts_an_environment_leaves_are_listed_and_shown(probe_run: Path, tmp_path: Path) -> None:
    from hermes_core.view.html import transcript_context, write_report
    from hermes_core.view.loader import Run

    by = {r["rollout_id"]: r for r in read_jsonl(probe_run / "results.jsonl")}
    for g in range(4):
        rel = f"artifacts/mixed#{g}/verifier.log"
        assert by[f"mixed#{g}"]["artifacts"] == [rel] and (probe_run / rel).read_text() == "checked f.txt\n"
    assert by["raises#0"]["artifacts"] == [] and by["bad-setup#0"]["artifacts"] == []
    run = Run.open(probe_run)
    n = next(i for i, r in enumerate(run.records) if r["rollout_id"] == "raises#2")
    ctx = transcript_context(run, n)
    assert [(label, tb is not None) for label, _, tb in ctx["errors"]] == [("verifier error", True)]
    assert [p for p, _ in ctx["timings"]] == ["setup", "agent", "verifier"]
    write_report([run], tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "verifier error traceback" in html and "artifacts/mixed#0/verifier.log" in html.replace("%23", "#")


# --------------------------------------------------------------------------- the openai agent


async def test_trajectories_record_the_sampling_and_tools_the_agent_sent_and_tokens_are_summed(tmp_path: Path) -> None:
    class Bare(Environment):
        verifier = None

        async def load_tasks(self):
            return [TaskItem(id="echo", prompt="say hi")]

        async def verify(self, item, result, ctx):
            return 1.0

    script = []
    for g in range(2):
        script += [tools_msg(call("terminal", {"command": "echo hi; echo err >&2"}, f"c{g}")),
                   {**final("said hi"), "usage": {"prompt_tokens": 100 + g, "completion_tokens": 7, "total_tokens": 107 + g}}]
    with ScriptedServer(script) as server:
        agent = OpenAIAgent("scripted", base_url=server.url, temperature=0.3, max_tokens=77,
                            extra_body={"top_p": 0.9, "seed": 7})
        async with Runtime() as rt:
            env = Bare.from_config({"toolsets": ["terminal"]})
            report = await Runner(rt, agent, environment=env, concurrency=1, group_size=2, out_dir=tmp_path / "o",
                                  backend_options={"root": str(tmp_path / "sb")},
                                  run_info={"command": "eval", "agent": "openai", "model": "scripted"}).run(await env.tasks())
        await agent.aclose()
    assert [r["reward"] for r in report.records] == [1.0, 1.0]
    sent = server.requests[0]
    assert (sent["temperature"], sent["max_tokens"], sent["top_p"], sent["seed"], sent["tool_choice"]) == (0.3, 77, 0.9, 7, "auto")
    for traj in read_jsonl(tmp_path / "o" / "trajectories.jsonl"):
        assert traj["sampling"] == {"model": "scripted", "tool_choice": "auto", "temperature": 0.3, "max_tokens": 77,
                                    "extra_body": {"top_p": 0.9, "seed": 7}}
        assert traj["tools"] == sent["tools"]  # exactly what was offered, once per trajectory
        assert all("tools" not in m for m in traj["messages"])
        assert [c["from"] for c in traj["conversations"]] == ["human", "gpt", "tool", "gpt"]
        response = traj["conversations"][2]["value"]
        assert response == "<tool_response>\n[terminal] exit_code=0\nhi\nerr\n\n</tool_response>"  # the output, exactly
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["run"]["sampling"]["max_tokens"] == 77
    # default usage of the first step is 10 + 5 = 15 per rollout; the second step's is given
    assert summary["tokens"] == {"rollouts": 2, "prompt": {"sum": 221, "mean": 110.5}, "completion": {"sum": 24, "mean": 12.0},
                                 "total": {"sum": 245, "mean": 122.5}}
    assert summary["per_task"]["echo"]["tokens"] == summary["tokens"]
    assert summary["usage"] == {"prompt_tokens": 221, "completion_tokens": 24, "total_tokens": 245}
    assert undocumented(tmp_path / "o") == {}


# --------------------------------------------------------------------------- pure parts


def test_tool_responses_are_readable_text() -> None:
    terminal = json.dumps({"exit_code": 2, "output": "line 1\nline \"2\"", "error": None})
    assert tool_response_text("terminal", terminal) == '[terminal] exit_code=2\nline 1\nline "2"'
    assert tool_response_text("t", json.dumps({"exit_code": 1, "stdout": "out", "stderr": "bad"})) == \
        "[t] exit_code=1\nout\n[stderr]\nbad"
    assert tool_response_text("t", json.dumps({"stdout": "out", "stderr": ""})) == "[t]\nout"
    err = json.dumps({"error": {"type": "invalid_arguments", "tool": "t", "message": "'command' is required"}})
    assert tool_response_text("t", err) == "[t] error=\"invalid_arguments\"\n'command' is required"
    assert tool_response_text("read_file", json.dumps({"path": "/a b", "content": "x\ny", "total_lines": 2})) == \
        '[read_file] path="/a b" total_lines=2\nx\ny'
    assert tool_response_text("s", '{"matches": [], "total_count": 0}') == '[s]\n{"matches": [], "total_count": 0}'
    assert tool_response_text("s", "not json {") == "[s]\nnot json {"
    assert tool_response_text(None, "") == "[tool]"
    messages = [{"role": "tool", "tool_call_id": "c1", "name": "terminal", "content": terminal}]
    assert to_sharegpt(messages) == [{"from": "tool", "value": '<tool_response>\n[terminal] exit_code=2\nline 1\nline "2"\n</tool_response>'}]


def _rec(task: str, g: int, reward: float | None, **kw: Any) -> dict[str, Any]:
    return {"rollout_id": f"{task}#{g}", "task_id": task, "group_index": g, "reward": reward,
            "infra_error": reward is None, "n_tool_errors": 0, "duration": 1.0, **kw}


def test_summary_omits_k_beyond_the_scored_rollouts_and_std_of_one() -> None:
    records = [_rec("a", 0, 1.0), _rec("a", 1, None), _rec("a", 2, None),
               _rec("b", 0, 0.0), _rec("b", 1, 1.0), _rec("b", 2, 0.5)]
    s = summarize(records, run_info={"group_size": 3})
    assert s["per_task"]["a"]["pass_at_k"] == {"1": 1.0} and s["per_task"]["a"]["std"] is None
    assert s["per_task"]["b"]["pass_at_k"] == pytest.approx({"1": 1 / 3, "2": pass_at_k(3, 1, 2), "3": 1.0})
    assert s["per_task"]["b"]["std"] == pytest.approx(0.5)
    assert s["pass_at_k"] == pytest.approx({"1": (1 + 1 / 3) / 2, "2": pass_at_k(3, 1, 2), "3": 1.0})
    # group size bounds k even when a task has more scored rollouts (hermes run appends #0 again)
    assert summarize(records, group_size=1)["per_task"]["b"]["pass_at_k"] == pytest.approx({"1": 1 / 3})
    # older records without timings: only the total is known
    assert s["time"]["setup"] == {"mean": None, "sum": None} and s["time"]["total"] == {"mean": 1.0, "sum": 6.0}
    # the keys other code reads are still there, with their meaning
    assert (s["mean_reward"], s["pass_rate"], s["infra_errors"], s["rollouts"]) == (pytest.approx(0.625), 0.5, 2, 6)
    assert s["per_task"]["b"]["mean_time"] == 1.0 and s["per_task"]["a"]["rollouts"] == 3


def test_the_viewer_still_opens_runs_written_without_the_new_fields(tmp_path: Path) -> None:
    from hermes_core.view.html import transcript_context, write_report
    from hermes_core.view.loader import Run
    from hermes_core.view.synthetic import write_synthetic_run

    old = write_synthetic_run(tmp_path / "old", tasks=3, group_size=2, proposed=False)
    run = Run.open(old)
    assert "timings" not in run.records[0]
    ctx = transcript_context(run, 0)
    assert (ctx["timings"], ctx["tools"], ctx["sampling"]) == ([], [], None)
    assert run.stats.tasks["task-0000"].time["setup"] is None and run.stats.tasks["task-0000"].time["total"] > 0
    counts = write_report([run], tmp_path / "old.html")
    assert counts["rollouts"] == counts["embedded"] == 6
    assert "tools offered" not in (tmp_path / "old.html").read_text()


def test_the_completions_agent_reports_its_sampling_and_it_is_documented() -> None:
    from hermes_plugins.parsers import CompletionsAgent

    agent = CompletionsAgent("http://127.0.0.1:9/v1", None, model="m", temperature=0.6, max_tokens=99,
                             max_context=2048, extra_body={"top_p": 0.95})
    assert agent.sampling == {"model": "m", "server": "vllm", "temperature": 0.6, "max_tokens": 99,
                              "max_context": 2048, "parser": "hermes", "extra_body": {"top_p": 0.95}}
    assert "model" not in CompletionsAgent("http://127.0.0.1:9", None, server="sglang").sampling
    documented = documented_fields(DOCS.read_text())["trajectories"]
    assert {f"sampling.{k}" for k in agent.sampling} <= documented


async def test_a_sandbox_that_cannot_start_and_a_setup_that_raises_leave_their_traceback(tmp_path):
    """The record's ``traceback`` holds the formatted traceback of a sandbox start or a task
    setup that raised (what ``error`` summarises), and is null for a rollout that went well."""
    from hermes_core import Environment, Runner, Runtime, TaskItem

    class Env(Environment):
        async def load_tasks(self):
            return [TaskItem(id="ok", prompt="p", solution="true"), TaskItem(id="boom", prompt="p", solution="true")]

        async def setup(self, item, ctx):
            if item.id == "boom":
                raise KeyError("no such fixture")

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    async with Runtime() as rt:
        env = Env.from_config({})
        items = await env.tasks()
        oracle = rt.agents.get("oracle").factory()
        report = await Runner(rt, oracle, environment=env, backend_options={"root": str(tmp_path / "sb")},
                              verifier=lambda item, result, ctx: 1.0).run(items)
        by = {r["task_id"]: r for r in report.records}
        assert by["ok"]["traceback"] is None and by["ok"]["reward"] == 1.0
        tb = by["boom"]["traceback"]
        assert tb and "Traceback" in tb and "KeyError: 'no such fixture'" in tb and "in setup" in tb
        assert by["boom"]["infra_error"] is True

        broken = await Runner(rt, oracle, environment=env, backend_options={"root": str(blocker / "sb")},
                              verifier=lambda item, result, ctx: 1.0).run(items[:1])
        rec = broken.records[0]
        assert rec["infra_error"] is True and rec["error"].startswith("sandbox (local) failed")
        assert "Traceback" in rec["traceback"] and ("NotADirectoryError" in rec["traceback"] or "FileExistsError" in rec["traceback"])
