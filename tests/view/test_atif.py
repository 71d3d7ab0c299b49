"""ATIF export, validated by Harbor's own validator (the real `harbor` wheel's pydantic models).

The wheel is Python >= 3.12 only, so it is not installed: the suite downloads it
(`pip download --no-deps --python-version 3.12 --only-binary=:all: harbor==0.26.0`) into
~/.cache/hermes-view/harbor/, and the test extracts its trajectory models and validator and runs
its `TrajectoryValidator` on every exported file. Without the wheel that
test skips, unless HERMES_REQUIRE_HARBOR=1 (set by scripts/suites/view.sh).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hermes_core.view.atif import SCHEMA_VERSION, to_atif
from hermes_core.view.cli import main
from hermes_core.view.synthetic import PNG

WHEELS = Path(os.environ.get("HERMES_HARBOR_WHEELS", Path.home() / ".cache" / "hermes-view" / "harbor"))


def _harbor(tmp_path: Path) -> Path:
    wheels = sorted(WHEELS.glob("harbor-*.whl"))
    if not wheels:
        msg = f"no harbor wheel in {WHEELS} (see this module's docstring)"
        if os.environ.get("HERMES_REQUIRE_HARBOR") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    dest = tmp_path / "harbor-src"
    with zipfile.ZipFile(wheels[-1]) as z:
        for name in z.namelist():
            if (name == "harbor/__init__.py" or name.startswith("harbor/models/trajectories/")
                    or name == "harbor/utils/trajectory_validator.py" or ".dist-info/" in name):
                z.extract(name, dest)
    return dest


_VALIDATE = """
import sys
from pathlib import Path
from harbor.utils.trajectory_validator import TrajectoryValidator
bad = 0
for f in sys.argv[1:]:
    v = TrajectoryValidator()
    if not v.validate(Path(f)):
        bad += 1
        print(f, v.get_errors())
print(f"checked {len(sys.argv) - 1}, invalid {bad}")
sys.exit(1 if bad else 0)
"""


def _validate(harbor: Path, files: list[Path]) -> None:
    """Harbor's TrajectoryValidator on each file (models + image paths), in one subprocess."""
    proc = subprocess.run([sys.executable, "-c", _VALIDATE, *map(str, files)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(harbor)})
    assert proc.returncode == 0 and f"checked {len(files)}, invalid 0" in proc.stdout, proc.stdout + proc.stderr


def test_mapping_of_messages_to_steps() -> None:
    rec = {"rollout_id": "t#0", "task_id": "t", "reward": 0.5, "scores": {"a": 0.5}, "stop_reason": "completed",
           "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}, "verifier_error": "boom"}
    traj = {"messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "do it"},
        {"role": "assistant", "content": "<think>plan</think>ok", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "terminal", "arguments": '{"command": "ls"}'}},
            {"id": "c2", "type": "function", "function": {"name": "terminal", "arguments": "{broken"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"exit_code": 0, "output": "a"}'},
        {"role": "tool", "tool_call_id": "c2", "content": "bad arguments"},
        {"role": "assistant", "content": "done", "reasoning_content": "checked"},
    ], "tools": [{"type": "function", "function": {"name": "terminal"}}], "sampling": {"model": "m", "temperature": 0.5}}
    doc = to_atif(rec, traj, {"agent": "openai", "model": "m"})
    assert doc["schema_version"] == SCHEMA_VERSION == "ATIF-v1.6"
    assert [(s["step_id"], s["source"]) for s in doc["steps"]] == [(1, "system"), (2, "user"), (3, "agent"), (4, "agent")]
    s3 = doc["steps"][2]
    assert s3["message"] == "ok" and s3["reasoning_content"] == "plan"
    assert s3["tool_calls"] == [{"tool_call_id": "c1", "function_name": "terminal", "arguments": {"command": "ls"}},
                                {"tool_call_id": "c2", "function_name": "terminal", "arguments": {}}]
    assert s3["extra"] == {"unparsed_arguments": {"c2": "{broken"}}
    assert s3["observation"]["results"] == [{"source_call_id": "c1", "content": '{"exit_code": 0, "output": "a"}'},
                                            {"source_call_id": "c2", "content": "bad arguments"}]
    assert doc["steps"][3]["reasoning_content"] == "checked"
    assert doc["agent"]["model_name"] == "m" and doc["agent"]["extra"]["tool_definitions"] == traj["tools"]
    assert doc["final_metrics"]["total_prompt_tokens"] == 10 and doc["final_metrics"]["total_steps"] == 4
    assert doc["final_metrics"]["extra"]["reward"] == 0.5
    assert doc["extra"]["hermes"]["verifier_error"] == "boom"
    with pytest.raises(ValueError, match="no messages"):
        to_atif(rec, {"messages": []})


def test_exports_of_a_real_and_a_synthetic_run_pass_harbors_validator(real_run: Path, synth_run: Path,
                                                                      tmp_path: Path, capsys) -> None:
    harbor = _harbor(tmp_path)
    out = tmp_path / "atif"
    assert main([str(real_run), str(synth_run), "--atif", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"wrote 30 ATIF trajectories of {real_run.name}" in err and f"wrote 48 ATIF trajectories of {synth_run.name}" in err
    files = sorted(out.rglob("*.json"))
    assert len(files) == 78
    doc = json.loads((out / real_run.name / "fix-script#1.json").read_text())
    assert doc["steps"][2]["tool_calls"][0]["function_name"] == "terminal"
    assert doc["final_metrics"]["extra"]["reward"] == 1.0
    _validate(harbor, files)


def test_images_are_written_beside_the_file_and_validate(tmp_path: Path) -> None:
    harbor = _harbor(tmp_path)
    run = tmp_path / "img"
    run.mkdir()
    (run / "results.jsonl").write_text(json.dumps({"rollout_id": "shot#0", "task_id": "shot", "reward": 1.0}) + "\n")
    (run / "trajectories.jsonl").write_text(json.dumps({"rollout_id": "shot#0", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": PNG}}]},
        {"role": "assistant", "content": "pixels"}]}) + "\n")
    out = tmp_path / "atif"
    assert main([str(run), "--atif", str(out)]) == 0
    doc = json.loads((out / "shot#0.json").read_text())
    part = doc["steps"][0]["message"][1]
    assert part == {"type": "image", "source": {"media_type": "image/png", "path": "shot#0.images/1.png"}}
    assert (out / "shot#0.images" / "1.png").read_bytes().startswith(b"\x89PNG")
    _validate(harbor, [out / "shot#0.json"])
