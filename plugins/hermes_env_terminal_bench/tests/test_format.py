"""Loading Harbor task directories, task.toml of every schema version, the parquet form (no engine)."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import TASKS

from hermes_core import Runtime
from hermes_core.errors import ConfigError
from hermes_env_terminal_bench import TerminalBench, TerminalBenchConfig, load_dataset, load_task, materialize_parquet


def _copy(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(TASKS / name, dest)
    return dest


def test_registered_and_lazy():
    rt = Runtime()
    spec = rt.environments.get("terminal-bench")
    assert spec.cls is TerminalBench
    assert rt.verifiers.get("terminal-bench").fn is not None
    code = "import hermes_env_terminal_bench, sys; print(sorted(m for m in sys.modules if m.startswith(('docker', 'pyarrow', 'hermes_env_terminal_bench.'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_every_test_task_loads_with_its_schema():
    tasks = {t.name: t for t in load_dataset(TASKS)}
    assert set(tasks) == {
        "build-fails", "compose-main", "failing-solution", "hello-world", "json-scores", "multi-step",
        "multi-step-stop", "no-reward", "no-solution", "test-timeout",
    }
    versions = {n: t.config.schema_version for n, t in tasks.items()}
    assert versions["json-scores"] == "1.0" and versions["multi-step"] == "1.1"
    assert versions["failing-solution"] == "1.2" and versions["build-fails"] == "1.3" and versions["hello-world"] == "1.4"


def test_deprecated_spellings_are_translated():
    hello = load_task(TASKS / "hello-world")
    env = hello.config.environment
    assert env.memory_mb == 1024 and env.network_mode == "no-network"  # memory = "1G", allow_internet = false
    assert hello.config.task.name == "hermes-tests/hello-world"
    scores = load_task(TASKS / "json-scores")
    assert scores.config.schema_version == "1.0"  # top-level `version`
    assert scores.config.environment.storage_mb == 2048 and scores.config.environment.network_mode == "public"
    assert scores.config.metadata["expert_time_estimate_min"] == 1


def test_item_carries_backend_options_and_an_oracle_script():
    env = TerminalBench(TerminalBenchConfig(path=str(TASKS)))
    import asyncio

    items = {i.id: i for i in asyncio.run(env.tasks())}
    hello = items["hello-world"]
    assert hello.prompt.startswith("<!-- canary") and "/app/hello.txt" in hello.prompt
    opts = hello.backend_options
    assert opts["build"]["context"] == str(TASKS / "hello-world" / "environment")
    assert opts["build"]["timeout"] == 300.0
    assert opts["cpus"] == 1.0 and opts["memory"] == "1024m" and opts["network"] == "none"
    assert opts["workdir"] is None and opts["env"] == {"GREETING": "Hello"}
    assert "storage" not in items["json-scores"].backend_options  # only with storage: true
    assert items["json-scores"].backend_options["network"] == "bridge"
    assert items["no-solution"].image == "hermes-test/debian:bookworm" and "build" not in items["no-solution"].backend_options
    assert items["no-solution"].solution is None
    # The solution is inside the script, not in the sandbox before the oracle runs.
    assert "base64 -d" in hello.solution and "DEBIAN_FRONTEND=noninteractive" in hello.solution
    assert "timeout -k 5 120" in hello.solution and "/logs/agent/oracle.txt" in hello.solution
    assert "ANSWER=42" in items["json-scores"].solution
    # Every item is accepted by the docker backend's options model as is.
    rt = Runtime()
    for item in items.values():
        rt.backend_options("docker", {**item.backend_options, **({"image": item.image} if item.image else {})})


def test_host_env_templates(monkeypatch, tmp_path):
    monkeypatch.setenv("HERMES_TB_TEST_GREETING", "Howdy")
    env = TerminalBench(TerminalBenchConfig(path=str(TASKS / "hello-world")))
    import asyncio

    (item,) = asyncio.run(env.tasks())
    assert item.backend_options["env"] == {"GREETING": "Howdy"}
    d = _copy(tmp_path, "hello-world")
    text = (d / "task.toml").read_text().replace("${HERMES_TB_TEST_GREETING:-Hello}", "${HERMES_TB_UNSET_VAR}")
    (d / "task.toml").write_text(text)
    with pytest.raises(ConfigError, match=r"GREETING.*HERMES_TB_UNSET_VAR"):
        load_task(d)


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda t: "foo = 1\n" + t, r"unknown key 'foo'"),
        (lambda t: t.replace("cpus = 1", "cpus = 1\nmemroy = 5"), r"unknown key 'environment.memroy'"),
        (lambda t: t.replace("[agent]\ntimeout_sec", "[agent]\ntimeout = 1\ntimeout_sec"), r"unknown key 'agent.timeout'"),
        (lambda t: t.replace('schema_version = "1.4"', 'schema_version = "2.0"'), r"schema_version.*unsupported schema version"),
        (lambda t: t.replace('memory = "1G"', 'memory = "1G"\nmemory_mb = 5'), r"conflicting 'memory'"),
        (lambda t: t.replace("[verifier]", "[verifier]\nallowed_hosts = ['x.org']"), r"allowed_hosts"),
        (lambda t: t + "\n[environment.healthcheck]\ncmd = 'true'\n", r"environment.healthcheck"),
        (lambda t: t.replace("[task]", "[task]\nnmae = 'x'"), r"unknown key 'task.nmae'"),
        (lambda t: t.replace("cpus = 1", "cpus = 1\n[[steps]]\nname = 'a'\nagnet = {}"), r"steps.0.agnet"),
        (lambda t: t + "\n[broken", r"invalid TOML"),
    ],
)
def test_invalid_task_toml_names_file_and_key(tmp_path, edit, pattern):
    d = _copy(tmp_path, "hello-world")
    (d / "task.toml").write_text(edit((d / "task.toml").read_text()))
    with pytest.raises(ConfigError, match=pattern) as info:
        load_task(d)
    assert str(d / "task.toml") in str(info.value)


def test_legacy_phase_network_tables(tmp_path):
    d = _copy(tmp_path, "failing-solution")
    (d / "task.toml").write_text(
        'schema_version = "1.2"\n[verifier.network]\nmode = "no-network"\n'
        '[agent.network]\nmode = "allowlist"\nallowed_hosts = ["pypi.org"]\n'
    )
    t = load_task(d)
    assert t.config.verifier.network_mode == "no-network"
    assert t.config.agent.network_mode == "allowlist" and t.config.agent.allowed_hosts == ["pypi.org"]
    from hermes_env_terminal_bench._env import backend_options

    assert backend_options(t, TerminalBenchConfig())["network"] == "none"  # allowlist fails closed


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda d: (d / "instruction.md").unlink(), "instruction.md is missing"),
        (lambda d: (d / "tests" / "test.sh").unlink(), "tests/test.sh is missing"),
        (lambda d: (d / "environment" / "Dockerfile").unlink(), "no environment/Dockerfile"),
        (lambda d: (d / "task.toml").write_text((d / "task.toml").read_text() + "\n[environment.tpu]\ntype='v4'\ntopology='2x2'\n"), None),
        (lambda d: (d / "task.toml").unlink(), "no task.toml"),
    ],
)
def test_missing_parts_are_named(tmp_path, mutate, pattern):
    d = _copy(tmp_path, "failing-solution")
    if pattern is None:  # tpu under an existing [environment] table is a TOML error; use gpus instead
        (d / "task.toml").write_text('schema_version = "1.2"\n[environment]\ngpus = 1\n')
        pattern = "GPUs"
    else:
        mutate(d)
    with pytest.raises(ConfigError, match=pattern):
        load_task(d)


def test_compose_main_service_and_rejections(tmp_path):
    t = load_task(TASKS / "compose-main")
    assert t.build_context == TASKS / "compose-main" / "environment" and t.compose_env == {"MODE": "compose"}
    d = _copy(tmp_path, "compose-main")
    f = d / "environment" / "docker-compose.yaml"
    f.write_text(f.read_text() + "  db:\n    image: postgres:16\n")
    with pytest.raises(ConfigError, match=r"services db besides 'main' are not supported"):
        load_task(d)
    f.write_text("services:\n  app:\n    image: x\n")
    with pytest.raises(ConfigError, match="service named 'main'"):
        load_task(d)


def test_multi_step_layout():
    t = load_task(TASKS / "multi-step")
    assert [s.name for s in t.steps] == ["create", "extend"]
    create, extend = t.steps
    assert create.tests_dirs == (TASKS / "multi-step" / "tests", TASKS / "multi-step" / "steps" / "create" / "tests")
    assert extend.workdir_dir == TASKS / "multi-step" / "steps" / "extend" / "workdir"
    assert create.config.min_reward == 1.0 and extend.config.verifier.env == {"WANT": "alpha,beta"}
    stop = load_task(TASKS / "multi-step-stop")
    assert stop.steps[0].test_script == TASKS / "multi-step-stop" / "tests" / "test.sh"  # shared script
    assert stop.config.steps[0].min_reward == {"reward": 1.0}


def _b64tar(d: Path) -> str | None:
    if not d.is_dir():
        return None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(d.rglob("*")):
            tar.add(p, arcname=p.relative_to(d).as_posix(), recursive=False)
    return base64.b64encode(buf.getvalue()).decode()


def write_parquet(src: Path, out: Path) -> Path:
    """The Terminal-Bench parquet form of the task directories under ``src``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for d in sorted(p for p in src.iterdir() if (p / "task.toml").is_file()):
        t = load_task(d)
        rows.append({
            "task_name": d.name,
            "category": t.config.metadata.get("category"),
            "instruction": (d / "instruction.md").read_text() if (d / "instruction.md").is_file() else None,
            "docker_image": t.config.environment.docker_image,
            "environment_tar": _b64tar(d / "environment"),
            "tests_tar": _b64tar(d / "tests"),
            "solution_tar": _b64tar(d / "solution"),
            "test_sh": (d / "tests" / "test.sh").read_text() if (d / "tests" / "test.sh").is_file() else None,
            "task_toml": (d / "task.toml").read_text(),
            "steps_tar": _b64tar(d / "steps"),
        })
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out


def test_parquet_form_materializes_the_same_tasks(tmp_path):
    pytest.importorskip("pyarrow")
    singles = tmp_path / "singles"
    singles.mkdir()
    for name in ("hello-world", "json-scores", "no-solution", "compose-main"):
        shutil.copytree(TASKS / name, singles / name)
    table = write_parquet(singles, tmp_path / "tb.parquet")
    root = materialize_parquet(table, cache_dir=tmp_path / "cache")
    assert materialize_parquet(table, cache_dir=tmp_path / "cache") == root  # cached by content
    for name in ("hello-world", "json-scores", "no-solution", "compose-main"):
        for p in (TASKS / name).rglob("*"):
            if p.is_file():
                q = root / name / p.relative_to(TASKS / name)
                assert q.read_bytes() == p.read_bytes(), q
                assert (q.stat().st_mode & 0o111) == (p.stat().st_mode & 0o111), q
    tasks = load_dataset(table, cache_dir=tmp_path / "cache")
    assert [t.name for t in tasks] == ["compose-main", "hello-world", "json-scores", "no-solution"]


def test_parquet_rows_without_task_toml(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"task_name": "bare", "instruction": "do it", "docker_image": "hermes-test/debian:bookworm",
             "test_sh": "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n", "category": "x"},
            {"task_name": "../escape", "instruction": "x"}]
    pq.write_table(pa.Table.from_pylist(rows[:1]), tmp_path / "ok.parquet")
    (task,) = load_dataset(tmp_path / "ok.parquet", cache_dir=tmp_path / "c")
    assert task.image == "hermes-test/debian:bookworm" and task.config.metadata == {"category": "x"}
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "bad.parquet")
    with pytest.raises(ConfigError, match="row 1: task_name '../escape'"):
        load_dataset(tmp_path / "bad.parquet", cache_dir=tmp_path / "c")


def test_dataset_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no task directories"):
        load_dataset(tmp_path)
    import asyncio

    with pytest.raises(ConfigError, match="--set path=DIR"):
        asyncio.run(TerminalBench().tasks())


def test_local_backend_is_refused_clearly():
    env = TerminalBench(TerminalBenchConfig(path=str(TASKS / "hello-world")))
    import asyncio

    (item,) = asyncio.run(env.tasks())
    with pytest.raises(ConfigError, match="build"):
        Runtime().backend_options("local", item.backend_options)
