"""Opening run directories: results indexed, trajectories read one at a time by byte offset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hermes_core.view.loader import Filter, Run, ViewError, open_runs
from hermes_core.view.synthetic import write_synthetic_run


def test_real_run_opens_with_its_summary_and_every_rollout(real_run: Path) -> None:
    run = Run.open(real_run)
    assert run.summary["status"] == "complete"
    assert run.group_size == 3
    assert len(run.records) == 30 and run.bad_lines == 0
    assert run.stats.ks == [1, 2, 3]
    assert len(run.stats.tasks) == 10
    assert all(t.rollouts == 3 and t.pass_at_k[3] == 1.0 for t in run.stats.tasks.values())
    for n in (0, 17, 29):
        traj = run.trajectory(n)
        assert traj is not None and traj["rollout_id"] == run.records[n]["rollout_id"]
        assert traj["messages"][0]["role"] == "system"


def test_opening_reads_no_trajectory_and_a_lookup_scans_only_up_to_it(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path / "r", tasks=50, group_size=4, long_lines=5)
    run = Run.open(path)
    assert run.scanned_bytes == 0
    lines = (path / "trajectories.jsonl").read_bytes().splitlines(keepends=True)
    assert run.trajectory(2)["rollout_id"] == run.records[2]["rollout_id"]
    assert run.scanned_bytes == sum(len(x) for x in lines[:3])
    assert run.trajectory(0)["rollout_id"] == run.records[0]["rollout_id"]  # from the offsets, no rescan
    assert run.scanned_bytes == sum(len(x) for x in lines[:3])
    assert run.trajectory(199)["rollout_id"] == run.records[199]["rollout_id"]
    assert run.scanned_bytes == (path / "trajectories.jsonl").stat().st_size


def test_open_does_not_parse_trajectories(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path / "r", tasks=3, group_size=1)
    # Garbage after the first trajectory: opening and reading rollout 0 never touch it.
    with (path / "trajectories.jsonl").open("ab") as f:
        f.write(b"\x00not json at all\n" * 1000)
    run = Run.open(path)
    assert len(run.records) == 3
    assert run.trajectory(0) is not None
    assert run.scanned_bytes < 2000 * 10


def test_trajectories_out_of_order_missing_duplicated_and_escaped(tmp_path: Path) -> None:
    recs = [{"rollout_id": 'we"ird#0', "task_id": 'we"ird', "reward": 1.0},
            {"rollout_id": "prompt#0", "task_id": "prompt", "reward": None},
            {"rollout_id": "prompt#0", "task_id": "prompt", "reward": None},
            {"rollout_id": "gone#0", "task_id": "gone", "reward": 0.0}]
    trajs = [{"rollout_id": "prompt#0", "messages": [{"role": "user", "content": "first"}]},
             {"rollout_id": 'we"ird#0', "messages": [{"role": "user", "content": "quoted"}]},
             {"task_id": "x", "rollout_id": "prompt#0", "messages": [{"role": "user", "content": "second"}]}]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"rollout_id": "cut')
    (tmp_path / "trajectories.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trajs) + '{"rollout_id": "gone#0", "mess')
    run = Run.open(tmp_path)
    assert run.summary == {} and run.bad_lines == 0 and run.incomplete_tail and len(run.records) == 4
    assert run.trajectory(0)["messages"][0]["content"] == "quoted"
    assert run.trajectory(1)["messages"][0]["content"] == "first"
    assert run.trajectory(2)["messages"][0]["content"] == "second"
    assert run.trajectory(3) is None  # its line is still being written
    with (tmp_path / "trajectories.jsonl").open("a") as f:
        f.write('ages": []}\n')
    assert run.trajectory(3) == {"rollout_id": "gone#0", "messages": []}
    assert run.trajectory(99) is None


def test_filters(synth_run: Path) -> None:
    run = Run.open(synth_run)
    failed = run.rollouts(Filter(failed=True))
    assert failed and all(not (r["reward"] is not None and r["reward"] >= 1.0) for r in failed)
    assert len(failed) + sum(1 for r in run.records if r["reward"] == 1.0) == len(run.records)
    infra = run.rollouts(Filter(infra=True))
    assert infra and all(r["infra_error"] for r in infra)
    one = run.rollouts(Filter(task="task-0003"))
    assert [r["task_id"] for r in one] == ["task-0003"] * 4
    mid = run.rollouts(Filter(min_reward=0.1, max_reward=0.9))
    assert all(0.1 <= r["reward"] <= 0.9 for r in mid)
    assert Filter.from_query({"failed": "1", "task": "t", "min": "0.5", "max": "oops"}) == Filter(True, False, "t", 0.5, None)
    assert not Filter.from_query({}).active()


def test_bad_paths_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ViewError, match="does not exist"):
        Run.open(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ViewError, match="is not a directory"):
        Run.open(tmp_path / "file")
    with pytest.raises(ViewError, match="holds no results.jsonl"):
        open_runs([tmp_path])


def test_safe_path_and_artifacts_stay_inside_the_run(synth_run: Path) -> None:
    run = Run.open(synth_run)
    assert run.safe_path("results.jsonl") == synth_run.resolve() / "results.jsonl"
    assert run.safe_path("../synthetic-b/results.jsonl") is None
    assert run.safe_path("/etc/passwd") is None
    rec = dict(run.records[0], artifacts=["results.jsonl", "../../etc/passwd"])
    art = synth_run / "artifacts" / "task-0000#0"
    art.mkdir(parents=True, exist_ok=True)
    (art / "answer.txt").write_text("42\n")
    assert run.artifacts(rec) == ["results.jsonl", "artifacts/task-0000#0/answer.txt"]


def test_refresh_picks_up_a_run_in_progress_and_a_rewrite(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path / "live", tasks=4, group_size=1, long_lines=2)
    results = path / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:2]) + lines[2][:30])  # rollout 3 half written
    run = Run.open(path)
    assert len(run.records) == 2 and run.incomplete_tail and run.bad_lines == 0
    assert run.stats.overall.rollouts == 2
    assert not run.refresh()  # nothing changed: one stat call
    with results.open("a") as f:
        f.write(lines[2][30:] + lines[3])
    assert run.refresh()
    assert [r["rollout_id"] for r in run.records] == [json.loads(x)["rollout_id"] for x in lines]
    assert [r["_n"] for r in run.records] == [0, 1, 2, 3] and not run.incomplete_tail
    assert run.stats.overall.rollouts == 4  # stats recomputed
    assert run.trajectory(3)["rollout_id"] == run.records[3]["rollout_id"]
    # A resume compacts the files (new inode, fewer lines): everything is read again.
    tmp = path / ".results.jsonl.tmp"
    tmp.write_text(lines[1] + lines[3])
    tmp.replace(results)
    assert run.refresh()
    assert [r["rollout_id"] for r in run.records] == [json.loads(lines[1])["rollout_id"], json.loads(lines[3])["rollout_id"]]
    assert run.trajectory(1)["rollout_id"] == run.records[1]["rollout_id"]
    summary = json.loads((path / "summary.json").read_text())
    (path / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    assert run.refresh() and run.summary["status"] == "running"
