"""`hermes view` as a function: bad input is one line and exit 2; --text and --out work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hermes_core.view.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{missing}"], "does not exist"),
        (["{file}"], "is not a directory"),
        (["{empty}"], "holds no results.jsonl"),
        (["{run}", "--text"], "--text prints one rollout: add --rollout ID"),
        (["{run}", "--rollout", "nope#0", "--text"], "no rollout 'nope#0' in synthetic-a (e.g. task-0000#0"),
        (["{run}", "--rollout", "task-0000#0", "--out", "{tmp}/r.html"], "use one"),
        (["{run}", "--port", "70000"], "--port 70000 is not a TCP port"),
        (["{run}", "--port", "eighty"], "argument --port: invalid int value"),
        (["{run}", "--embed-limit", "-1", "--out", "{tmp}/r.html"], "--embed-limit must be at least 0"),
        ([], "the following arguments are required: RUN_DIR"),
        (["{run}", "--bogus"], "unrecognized arguments: --bogus"),
        (["{run}", "{run}", "--rollout", "task-0000#0"], "is in several of the runs given"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, synth_run: Path, capsys, argv: list[str], message: str) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    subs = {"missing": tmp_path / "missing", "file": tmp_path / "file", "empty": tmp_path / "empty",
            "run": synth_run, "tmp": tmp_path}
    args = [a.format(**subs) for a in argv]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hermes view: error: ") and message in lines[0]
    assert not (tmp_path / "r.html").exists()


def test_text_transcript_of_a_real_rollout(real_run: Path, capsys) -> None:
    assert main([str(real_run), "--rollout", "fix-script#1", "--text"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fix-script#1 · task fix-script · reward 1.000 · passed")
    assert "── user" in out and "sum_to.py" in out
    assert "→ terminal" in out and "command:" in out
    assert "── tool · terminal · exit 0" in out
    assert '\\"' not in out  # decoded, not JSON inside JSON


def test_text_transcript_shows_reasoning_errors_and_folds(synth_run: Path, capsys) -> None:
    from hermes_core.view.loader import Run

    run = Run.open(synth_run)
    verr = next(r for r in run.records if r.get("verifier_error"))
    terr = next(r for r in run.records if r.get("n_tool_errors"))
    assert main([str(synth_run), "--rollout", verr["rollout_id"]]) == 0
    out = capsys.readouterr().out
    assert "verifier error: verifier raised AssertionError" in out and "Traceback (most recent call last)" in out
    assert "reasoning · " in out
    assert re.search(r"… \[\d+ more lines; output · .* chars · 80 lines\] …", out)
    assert main([str(synth_run), "--rollout", terr["rollout_id"], "--full"]) == 0
    out = capsys.readouterr().out
    assert "TOOL ERROR" in out and "✗ invalid_arguments: 'command' must be a string" in out
    assert "more lines" not in out


def test_out_writes_a_self_contained_report(real_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sub" / "report.html"
    assert main([str(real_run), "--out", str(out)]) == 0
    assert re.fullmatch(r"wrote .*report.html \(0\.\d MB: 30 rollouts, 30 transcripts\)\n", capsys.readouterr().err)
    html = out.read_text()
    assert "<style>" in html and "<script>" in html
    assert not re.search(r"<(link|script)[^>]+(href|src)=\"https?:", html)  # nothing fetched from the network
    assert html.count('class="rollout-row"') == 30 and html.count('<script type="text/html" id="t-0-') == 30
    assert "pass@3" in html and "terminal-test · oracle" in html


def test_embed_limit_leaves_transcripts_out_and_says_so(synth_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "small.html"
    assert main([str(synth_run), "--out", str(out), "--embed-limit", "0.02"]) == 0
    err = capsys.readouterr().err
    m = re.search(r"48 rollouts, (\d+) transcripts, (\d+) transcripts left out", err)
    assert m and 0 < int(m.group(1)) < 48 and int(m.group(1)) + int(m.group(2)) == 48
    html = out.read_text()
    assert html.count('<script type="text/html"') == int(m.group(1))
    assert f"{m.group(2)} transcript(s) are not embedded" in html


def test_register_adds_view_to_a_parent_parser(real_run: Path, capsys) -> None:
    """The wiring the `hermes` dispatcher uses: register(subparsers), then args.func(args)."""
    import argparse

    from hermes_core.errors import HermesError
    from hermes_core.view.cli import register

    parser = argparse.ArgumentParser(prog="hermes")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["view", str(real_run), "--rollout", "hello-file#2", "--text"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.startswith("hello-file#2 · task hello-file")
    args = parser.parse_args(["view", str(real_run), "--rollout", "missing#0"])
    with pytest.raises(HermesError, match="no rollout 'missing#0'"):
        args.func(args)
