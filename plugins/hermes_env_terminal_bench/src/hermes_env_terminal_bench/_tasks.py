"""Harbor task directories, datasets (a folder of task directories) and the parquet form.

A task directory::

    task.toml  instruction.md  environment/{Dockerfile | docker-compose.yaml, ...}
    tests/test.sh (+ files)  solution/solve.sh (+ files)  steps/<name>/{instruction.md, tests/,
    solution/, workdir/}  (multi-step tasks)
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes_core.errors import ConfigError

from ._schema import StepConfig, TaskConfig, load_task_toml

__all__ = ["HarborTask", "Step", "load_task", "load_dataset", "materialize_parquet", "resolve_env"]

_TEMPLATE = re.compile(r"\$\{([^}:]+)(?::-(.*))?\}")


@dataclass(frozen=True)
class Step:
    """One step of a multi-step task (a single-step task has one implicit step)."""

    name: str
    instruction: str
    config: StepConfig | None
    tests_dirs: tuple[Path, ...]
    test_script: Path
    solution_dir: Path | None
    workdir_dir: Path | None


@dataclass(frozen=True)
class HarborTask:
    """A loaded task directory."""

    name: str
    path: Path
    config: TaskConfig
    instruction: str
    steps: tuple[Step, ...]
    #: Build context + Dockerfile (relative to the context), or ``None`` with a prebuilt image.
    build_context: Path | None
    dockerfile: str
    image: str | None
    #: Variables from docker-compose.yaml's ``main`` service (below the task's [environment].env).
    compose_env: dict[str, str] = field(default_factory=dict)
    compose_workdir: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def multi_step(self) -> bool:
        return bool(self.config.steps)


def resolve_env(env: dict[str, str], where: str) -> dict[str, str]:
    """Resolve ``${VAR}`` / ``${VAR:-default}`` values from the host, as Harbor does.

    Raises:
        ConfigError: a required variable is not set on the host.
    """
    out = {}
    for key, value in env.items():
        m = _TEMPLATE.fullmatch(value)
        if m:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                out[key] = os.environ[name]
            elif default is not None:
                out[key] = default
            else:
                raise ConfigError(f"{where}: env {key!r} needs the host variable ${name}, which is not set")
        else:
            out[key] = value
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None


def _compose(task_dir: Path, path: Path) -> tuple[Path | None, str, str | None, dict[str, str], str | None, list[str]]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read compose file: {e}") from None
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict) or "main" not in services:
        raise ConfigError(f"{path}: expected a service named 'main' under 'services'")
    others = sorted(k for k in services if k != "main")
    if others:
        raise ConfigError(
            f"{path}: services {', '.join(others)} besides 'main' are not supported (multi-container "
            "tasks need a compose-capable backend; hermes runs the 'main' service only)"
        )
    main = services["main"] or {}
    notes = []
    build = main.get("build")
    context: Path | None = None
    dockerfile = "Dockerfile"
    if isinstance(build, str):
        context = (path.parent / build).resolve()
    elif isinstance(build, dict):
        context = (path.parent / str(build.get("context", "."))).resolve()
        dockerfile = str(build.get("dockerfile", "Dockerfile"))
        for k in set(build) - {"context", "dockerfile"}:
            notes.append(f"compose build key {k!r} is ignored")
    image = main.get("image")
    env_raw = main.get("environment") or {}
    if isinstance(env_raw, list):
        env = dict(e.split("=", 1) if "=" in e else (e, os.environ.get(e, "")) for e in env_raw)
    else:
        env = {str(k): "" if v is None else str(v) for k, v in env_raw.items()}
    for k in set(main) - {"build", "image", "environment", "working_dir", "command", "init"}:
        notes.append(f"compose key {k!r} of service main is ignored")
    if context is not None and not context.is_relative_to(task_dir.resolve()):
        raise ConfigError(f"{path}: the build context {context} is outside the task directory")
    return context, dockerfile, str(image) if image else None, env, main.get("working_dir"), notes


def load_task(task_dir: str | Path) -> HarborTask:
    """Load one Harbor task directory.

    Raises:
        ConfigError: a required file is missing or task.toml is invalid (the message names the
            file and the key).
    """
    d = Path(task_dir).resolve()
    toml_path = d / "task.toml"
    if not toml_path.is_file():
        raise ConfigError(f"{d}: not a Harbor task directory (no task.toml)")
    config = load_task_toml(toml_path)
    env = config.environment
    where = str(toml_path)
    if env.os != "linux":
        raise ConfigError(f"{where}: environment.os = {env.os!r} is not supported (Linux containers only)")
    if env.gpus or env.tpu or env.gpu_types:
        raise ConfigError(f"{where}: the task asks for GPUs/TPUs (environment.gpus/tpu), which hermes does not provide")
    env_dir = d / "environment"
    notes: list[str] = []
    compose_env: dict[str, str] = {}
    compose_workdir = None
    image = env.docker_image
    context: Path | None = None
    dockerfile = "Dockerfile"
    compose_file = next((env_dir / n for n in ("docker-compose.yaml", "docker-compose.yml") if (env_dir / n).is_file()), None)
    if compose_file is not None:
        context, dockerfile, c_image, compose_env, compose_workdir, notes = _compose(d, compose_file)
        image = image or (c_image if context is None else None)
    elif (env_dir / "Dockerfile").is_file():
        context = env_dir
    if image:
        context = None  # a prebuilt image wins, as in Harbor
    if context is None and not image:
        raise ConfigError(
            f"{d}: no environment/Dockerfile, environment/docker-compose.yaml or [environment] docker_image"
        )
    if context is not None and not (context / dockerfile).is_file():
        raise ConfigError(f"{d}: the Dockerfile {context / dockerfile} does not exist")
    if env.mcp_servers:
        notes.append("environment.mcp_servers are not started")
    if env.skills_dir:
        notes.append("environment.skills_dir is not copied")
    if config.verifier.environment is not None or config.verifier.environment_mode == "separate":
        notes.append("a separate verifier environment is not supported: the verifier runs in the agent's sandbox")
    steps: list[Step] = []
    shared_tests = d / "tests"
    shared_test = shared_tests / "test.sh"
    solution = d / "solution"
    if config.steps:
        for sc in config.steps:
            sd = d / "steps" / sc.name
            instr = sd / "instruction.md"
            if not instr.is_file():
                raise ConfigError(f"{d}: step {sc.name!r} has no {instr.relative_to(d)}")
            step_tests = sd / "tests"
            dirs = tuple(p for p in (shared_tests, step_tests) if p.is_dir())
            script = step_tests / "test.sh" if (step_tests / "test.sh").is_file() else shared_test
            if not script.is_file():
                raise ConfigError(f"{d}: step {sc.name!r} has no tests/test.sh (neither steps/{sc.name}/tests/ nor tests/)")
            sol = sd / "solution" if (sd / "solution").is_dir() else (solution if solution.is_dir() else None)
            if sol is not None and not (sol / "solve.sh").is_file():
                sol = None
            steps.append(Step(sc.name, _read(instr), sc, dirs, script, sol,
                              sd / "workdir" if (sd / "workdir").is_dir() else None))
        instruction = steps[0].instruction
    else:
        instruction = _read(d / "instruction.md") if (d / "instruction.md").is_file() else None
        if instruction is None:
            raise ConfigError(f"{d}: instruction.md is missing")
        if not shared_test.is_file():
            raise ConfigError(f"{d}: tests/test.sh is missing")
        sol = solution if (solution / "solve.sh").is_file() else None
        steps.append(Step("main", instruction, None, (shared_tests,), shared_test, sol, None))
    resolve_env(env.env, where)  # fail at load time when a required host variable is missing
    return HarborTask(
        name=d.name, path=d, config=config, instruction=instruction, steps=tuple(steps),
        build_context=context, dockerfile=dockerfile, image=image, compose_env=compose_env,
        compose_workdir=compose_workdir, notes=tuple(notes),
    )


def load_dataset(path: str | Path, *, cache_dir: Path | None = None) -> list[HarborTask]:
    """A task directory, a folder of task directories, or a parquet file.

    Raises:
        ConfigError: the path does not exist, holds no task, or a task is invalid.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"dataset path {p} does not exist (set it with --set path=DIR)")
    if p.is_file():
        if p.suffix != ".parquet":
            raise ConfigError(f"{p}: expected a task directory, a folder of them, or a .parquet file")
        p = materialize_parquet(p, cache_dir=cache_dir)
    if (p / "task.toml").is_file():
        return [load_task(p)]
    dirs = sorted(c for c in p.iterdir() if c.is_dir() and (c / "task.toml").is_file())
    if not dirs:
        raise ConfigError(f"{p}: no task directories (subfolders with a task.toml)")
    return [load_task(c) for c in dirs]


# --------------------------------------------------------------------------- parquet


def _untar(blob: Any, dest: Path, where: str) -> None:
    from hermes_core.sandbox import extract_tar

    if blob is None:
        return
    data = blob if isinstance(blob, (bytes, bytearray)) else str(blob).encode()
    if not isinstance(blob, (bytes, bytearray)) or not data[:2] == b"\x1f\x8b":
        try:
            data = base64.b64decode(data, validate=False)
        except ValueError as e:
            raise ConfigError(f"{where}: not a base64 tar: {e}") from None
    try:
        extract_tar(io.BytesIO(bytes(data)), dest)
    except Exception as e:  # noqa: BLE001 - a broken archive names its row
        raise ConfigError(f"{where}: cannot extract the archive: {type(e).__name__}: {e}") from None


def materialize_parquet(path: Path, *, cache_dir: Path | None = None) -> Path:
    """Unpack a Terminal-Bench parquet table into task directories (cached by the file's hash).

    Columns read: ``task_name`` (or ``task_id``), ``instruction``, ``docker_image``,
    ``environment_tar`` / ``tests_tar`` / ``solution_tar`` / ``steps_tar`` (base64 tar.gz, or raw
    bytes; ``solution_tar`` and ``steps_tar`` are hermes additions),
    ``test_sh``, ``task_toml``, and ``archive`` (a whole task directory as a tar; the TB1 form).
    A row without ``task_toml`` gets a default one (with ``docker_image`` when given).
    """
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("reading parquet datasets needs pyarrow: pip install pyarrow") from None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    base = (cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hermes" / "terminal-bench")
    out = base / f"{path.stem}-{digest.hexdigest()[:16]}"
    if (out / ".complete").is_file():
        return out
    table = pq.read_table(path)
    rows = table.to_pylist()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names: set[str] = set()
    for n, row in enumerate(rows):
        name = row.get("task_name") or row.get("task_id")
        where = f"{path}: row {n}"
        if not name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(name)):
            raise ConfigError(f"{where}: task_name {name!r} is missing or not a portable directory name")
        if name in names:
            raise ConfigError(f"{where}: task_name {name!r} appears twice")
        names.add(name)
        d = tmp / str(name)
        d.mkdir()
        if row.get("archive") is not None:
            _untar(row["archive"], d, f"{where} (archive)")
        for column, sub in (("environment_tar", "environment"), ("tests_tar", "tests"), ("solution_tar", "solution"),
                            ("steps_tar", "steps")):
            if row.get(column) is not None:
                _untar(row[column], d / sub, f"{where} ({column})")
        if row.get("instruction") is not None:
            (d / "instruction.md").write_text(str(row["instruction"]))
        if row.get("test_sh") is not None:
            (d / "tests").mkdir(exist_ok=True)
            (d / "tests" / "test.sh").write_text(str(row["test_sh"]))
        if row.get("task_toml") is not None:
            (d / "task.toml").write_text(str(row["task_toml"]))
        elif not (d / "task.toml").is_file():
            lines = ['schema_version = "1.4"', ""]
            if row.get("category"):
                lines += ["[metadata]", f"category = {_toml_str(str(row['category']))}", ""]
            if row.get("docker_image"):
                lines += ["[environment]", f"docker_image = {_toml_str(str(row['docker_image']))}", ""]
            (d / "task.toml").write_text("\n".join(lines))
    (tmp / ".complete").write_text("ok\n")
    try:
        tmp.rename(out)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _toml_str(s: str) -> str:
    import json

    return json.dumps(s)
