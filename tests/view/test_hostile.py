"""What a sandbox printed cannot break the report, run script in it, or drive the reader's terminal."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hermes_core.view.cli import main
from hermes_core.view.loader import Run
from hermes_core.view.transcript import clean, decode_value

HOSTILE = ("</script><script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
           "\x1b]0;owned title\x07\x1b[2J\x1b[31mred\x1b[0m \x00\x9b <!-- <script> ]]> {{ 7*7 }}")


def write_run(path: Path, content: str, rollout_id: str = "evil#0") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    rec = {"rollout_id": rollout_id, "task_id": content[:40], "reward": 0.0, "error": content,
           "verifier_error": content, "verifier_traceback": content, "n_tool_errors": 1,
           "tool_errors": [{"tool": content, "kind": "x", "message": content}], "scores": {content[:20]: 0.0}}
    traj = {"rollout_id": rollout_id, "messages": [
        {"role": "user", "content": content},
        {"role": "assistant", "content": content, "reasoning_content": content,
         "tool_calls": [{"id": "c", "type": "function", "function": {"name": content[:30], "arguments": json.dumps({"command": content})}}]},
        {"role": "tool", "tool_call_id": "c", "name": "terminal", "content": json.dumps({"exit_code": 1, "output": content})},
        {"role": "tool", "tool_call_id": "c", "name": "terminal", "content": [{"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}}]},
    ]}
    (path / "results.jsonl").write_text(json.dumps(rec) + "\n")
    (path / "trajectories.jsonl").write_text(json.dumps(traj) + "\n")
    return path


def test_terminal_transcript_prints_no_control_characters(tmp_path: Path, capsys) -> None:
    run = write_run(tmp_path / "r", HOSTILE)
    assert main([str(run), "--rollout", "evil#0", "--text", "--full"]) == 0
    out = capsys.readouterr().out
    assert "window.pwned" in out  # shown as text
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), "raw control characters reached the terminal"
    assert "owned title" not in out and "\\x00" in out  # OSC dropped, NUL shown as \x00


def test_static_report_escapes_everything(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", HOSTILE)
    out = tmp_path / "report.html"
    assert main([str(run), "--out", str(out)]) == 0
    html = out.read_text()
    assert "<script>window.pwned" not in html and "<img src=x" not in html
    assert "&lt;/script&gt;&lt;script&gt;window.pwned=1" in html
    assert html.count("<script>") == 1  # only the report's own script
    assert "https://example.invalid" not in re.findall(r'src="([^"]*)"', html)
    # no template evaluation of content: wherever the content shows, its `{{ 7*7 }}` follows `]]>` verbatim
    # (a bare "49" search also hit the report's own timestamp, e.g. 18:49:05)
    after = re.findall(r"\]\]&gt; (.{0,9})", html)
    assert after and all(a == "{{ 7*7 }}" for a in after), after


@given(st.text(min_size=1, max_size=30))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_rollout_id_finds_its_own_trajectory(tmp_path_factory, rid: str) -> None:
    assume(rid not in ("before#0", "after#0"))
    path = tmp_path_factory.mktemp("ids")
    recs = [{"rollout_id": r, "task_id": "t", "reward": 1.0} for r in ("before#0", rid, "after#0")]
    (path / "results.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    (path / "trajectories.jsonl").write_text("".join(
        json.dumps({"rollout_id": r["rollout_id"], "messages": [{"role": "user", "content": f"for {r['rollout_id']}"}]},
                   ensure_ascii=False) + "\n" for r in reversed(recs)))
    run = Run.open(path)
    for n, rec in enumerate(recs):
        traj = run.trajectory(n)
        assert traj is not None and traj["messages"][0]["content"] == f"for {rec['rollout_id']}"


@given(st.text())
def test_clean_leaves_no_control_characters(text: str) -> None:
    out = clean(text)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)
    blocks, _, _ = decode_value(text)
    assert all(not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", b.text) for b in blocks if b.kind != "image")
