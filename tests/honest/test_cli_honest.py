"""Issue 10, items 5-8 through the `hermes` CLI in a subprocess: an eval where nothing ran is
not a success, resume refuses a changed run, bad input is one line and exit 2, `hermes exec`
behaves like the command, a task image on a backend without images is not recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ._helpers import HERMES, V1Server, hermes, one_line_error, read_jsonl

# ------------------------------------------------------------------------------------ item 5


def test_eval_without_a_docker_engine_fails_fast_with_the_engine_message(tmp_path):
    out = tmp_path / "o"
    proc = hermes("eval", "terminal-test", "--backend", "docker", "--agent", "oracle", "--out", str(out), "--quiet",
                  env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}, timeout=120)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "docker" in line and "no-engine.sock" in line
    assert not (out / "results.jsonl").exists()  # no rollout was started
    summary = out / "summary.json"
    assert not summary.exists() or json.loads(summary.read_text())["status"] != "complete"


def test_batch_where_every_rollout_is_an_infra_error_exits_nonzero(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "a"}) + "\n" + json.dumps({"prompt": "b"}) + "\n")
    with V1Server(default={"status": 401, "error": "bad key"}) as server:
        proc = hermes("batch", str(p), "--model", "m", "--base-url", server.url, "--out", str(tmp_path / "o"),
                      "--quiet", "-o", f"root={tmp_path}")
    assert proc.returncode == 1, proc.stderr.decode()
    assert all(r["infra_error"] and r["reward"] is None for r in read_jsonl(tmp_path / "o" / "results.jsonl"))


def test_resume_refuses_a_changed_group_size_task_set_or_backend(tmp_path):
    out = tmp_path / "o"
    base = ("eval", "terminal-test", "--agent", "oracle", "--out", str(out), "--quiet", "-o", f"root={tmp_path}")
    assert hermes(*base, "--limit", "1").returncode == 0
    for extra, needle in [
        (("--limit", "1", "--group-size", "2"), "group size"),
        (("--limit", "2"), "task set"),
        (("--tasks", "csv-totals"), "task set"),
    ]:
        proc = hermes(*base, *extra)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert needle in one_line_error(proc)
    proc = hermes("eval", "terminal-test", "--agent", "oracle", "--out", str(out), "--quiet", "--limit", "1",
                  "--backend", "docker")
    assert proc.returncode == 2 and "backend" in one_line_error(proc)
    # The unchanged command still resumes.
    assert hermes(*base, "--limit", "1").returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rollouts"] == len(read_jsonl(out / "results.jsonl")) == 1


# ------------------------------------------------------------------------------------ item 6


BAD_INPUT = [
    (["eval", "terminal-test", "-n", "0"], "concurrency"),
    (["eval", "terminal-test", "--group-size", "-1"], "group-size"),
    (["batch", "p.jsonl", "--group-size", "0"], "group-size"),
    (["exec", "--timeout", "0", "--", "true"], "timeout"),
    (["exec", "--timeout", "-1", "--", "true"], "timeout"),
    (["exec", "--timeout", "abc", "--", "true"], "timeout"),
    (["eval", "terminal-test", "--out"], "--out"),
    (["eval", "terminal-test", "--out", "afile/sub"], "cannot be written"),
    (["eval", "terminal-test", "--concurency", "2"], "did you mean --concurrency"),
    (["evall", "terminal-test"], "did you mean 'eval'"),
    (["eval", "terminal-test", "--max-turns", "0"], "max-turns"),
    (["eval", "terminal-test", "--limit", "-3"], "limit"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(argv, needle, tmp_path):
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "p.jsonl").write_text('{"prompt": "x"}\n')
    proc = hermes(*argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in one_line_error(proc)


def test_read_only_out_is_one_line(tmp_path):
    proc = hermes("eval", "terminal-test", "--agent", "oracle", "--out", "/proc/hermes-h10-out", "--quiet")
    assert proc.returncode == 2 and "/proc/hermes-h10-out" in one_line_error(proc)


def test_exec_root_option_does_not_create_folders_at_the_top(tmp_path):
    top = Path(f"/hermes-h10-{os.getpid()}-{time.time_ns()}")
    proc = hermes("exec", "-o", f"root={top}/new/path", "--", "true")
    assert proc.returncode == 2 and str(top) in one_line_error(proc)
    assert not top.exists()


def test_backend_option_errors_from_a_config_file_name_the_file(tmp_path):
    cfg = tmp_path / "hermes.yaml"
    cfg.write_text("backend: local\nbackend_options: {bogus_option: 1}\n")
    for argv in (["exec", "--config", str(cfg), "--", "true"],
                 ["eval", "terminal-test", "--agent", "oracle", "--config", str(cfg), "--out", str(tmp_path / "o")]):
        proc = hermes(*argv)
        assert proc.returncode == 2
        line = one_line_error(proc)
        assert str(cfg) in line and "bogus_option" in line


def test_toolsets_key_in_the_config_file_is_honoured_by_eval(tmp_path):
    cfg = tmp_path / "hermes.yaml"
    cfg.write_text("toolsets: [file]\n")
    with V1Server() as server:
        proc = hermes("eval", "terminal-test", "--agent", "openai", "--model", "m", "--base-url", server.url,
                      "--config", str(cfg), "--limit", "1", "--out", str(tmp_path / "o"), "--quiet", "-o", f"root={tmp_path}")
        assert proc.returncode == 0, proc.stderr.decode()
        names = {t["function"]["name"] for t in server.requests[0]["tools"]}
    assert "read_file" in names and "terminal" not in names


def test_plugins_json_into_a_closed_pipe_has_no_traceback():
    proc = subprocess.Popen([*HERMES, "plugins", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader (e.g. `head`) went away
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) != 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_version():
    proc = hermes("--version")
    assert proc.returncode == 0 and proc.stdout.decode().startswith("hermes ")
    assert proc.stdout.decode().split()[1][0].isdigit()


# ------------------------------------------------------------------------------------ item 7


def test_exec_passes_stdin_keeps_stderr_apart_bytes_unchanged_and_exits_with_the_code(tmp_path):
    data = bytes(range(256)) * 4
    script = "cat; printf '\\000\\377'; echo to-stderr >&2; exit 7"
    proc = hermes("exec", "-o", f"root={tmp_path}", "--", "sh", "-c", script, input=data)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == data + b"\x00\xff"  # no newline added, nothing decoded
    assert b"to-stderr" in proc.stderr and b"to-stderr" not in proc.stdout


def test_exec_streams_output_and_ctrl_c_keeps_it(tmp_path):
    proc = subprocess.Popen([*HERMES, "exec", "-o", f"root={tmp_path}", "--", "sh", "-c", "echo first-line; exec sleep 300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.set_blocking(proc.stdout.fileno(), False)
    seen = b""
    deadline = time.monotonic() + 60
    while b"first-line" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += proc.stdout.read() or b""
        time.sleep(0.05)
    assert b"first-line" in seen  # printed while the command still runs
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"first-line" in seen + (rest or b"")


def test_exec_timeout_exits_124(tmp_path):
    proc = hermes("exec", "--timeout", "0.5", "-o", f"root={tmp_path}", "--", "sleep", "30")
    assert proc.returncode == 124


# ------------------------------------------------------------------------------------ item 8


def test_task_image_on_the_local_backend_warns_and_is_not_recorded_as_used(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "x", "image": "python:3.12", "solution": "true"}) + "\n")
    out = tmp_path / "o"
    proc = hermes("batch", str(p), "--agent", "oracle", "--out", str(out), "--quiet", "-o", f"root={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "warning" in err and "python:3.12" in err and "local" in err
    (rec,) = read_jsonl(out / "results.jsonl")
    assert rec["image"] is None and rec["image_unused"] == "python:3.12"
