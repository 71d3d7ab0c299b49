"""Configuration: frozen pydantic models, loadable from YAML, errors that name the key."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

__all__ = ["ToolsetConfig", "ProcessConfig", "HermesConfig", "load_config", "validation_message"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ToolsetConfig(_Frozen):
    """A toolset defined in config: tools by name plus included toolsets."""

    tools: list[str] = Field(default_factory=list)
    includes: list[str] = Field(default_factory=list)
    description: str = ""


class ProcessConfig(_Frozen):
    """Background processes (the ``process`` tool, ``terminal(background=true)``).

    Example::

        processes:
          buffer_bytes: 200000
          checkpoint_path: ~/.local/share/hermes/processes.json
          max_wait_seconds: 300
    """

    buffer_bytes: int = Field(200_000, ge=1024, description="Rolling output kept in memory per process.")
    log_output: bool = Field(True, description="Keep each local pipe-mode process's full output in a log file (needed to read output written after a crash).")
    log_dir: str | None = Field(None, description="Where logs go (default: <data dir>/hermes/process-logs).")
    keep_logs: bool = Field(False, description="Keep log files after their session is cleaned up.")
    checkpoint: bool = Field(True, description="Write a JSON checkpoint so a new runtime can recover processes after a crash.")
    checkpoint_path: str | None = Field(None, description="Checkpoint file (default: $XDG_DATA_HOME/hermes/processes.json, else ~/.local/share/hermes/processes.json).")
    recover: bool = Field(True, description="Adopt processes of crashed drivers found in the checkpoint.")
    max_wait_seconds: float = Field(300.0, gt=0, le=86_400, description="Upper bound of a `wait`; longer requests are clamped.")
    kill_grace_seconds: float = Field(0.5, gt=0, le=60, description="SIGTERM to SIGKILL delay.")
    max_per_task: int = Field(64, ge=1, description="Running background processes one rollout may have.")


class HermesConfig(_Frozen):
    """The top-level ``hermes.yaml``.

    Example::

        backend: local
        backend_options: {env: {FOO: bar}}
        toolsets: [default, mine]
        custom_toolsets:
          mine: {tools: [terminal], includes: [file]}
    """

    backend: str = "local"
    backend_options: dict[str, Any] = Field(default_factory=dict)
    toolsets: list[str] = Field(default_factory=lambda: ["default"])
    custom_toolsets: dict[str, ToolsetConfig] = Field(default_factory=dict)
    max_output_chars: int = Field(50_000, gt=0)
    tool_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Options of tool plugins by toolset name, e.g. {web: {provider: brave}, browser: "
        "{max_contexts: 16}}; each plugin validates its own (unknown keys are errors there).",
    )
    command_output_bytes: int = Field(
        4 * 1024 * 1024, ge=4096,
        description="Bytes of one command's output the driver keeps (head + tail, with a note of the cut): "
        "the cap of `exec` and of the verifier's `ctx.terminal`, whatever the sandbox prints.",
    )
    max_read_bytes: int = Field(
        256 * 1024 * 1024, ge=1,
        description="Largest file `read_bytes` / `ctx.read_file` read into driver memory; larger ones: download_file.",
    )
    max_download_bytes: int = Field(
        10 * 1024 * 1024 * 1024, ge=1,
        description="Bytes of file data one download (`get_file`, `get_dir`) may write to the host; holes of "
        "sparse files are kept as holes by the local backend and not counted.",
    )
    tool_output_bytes: int = Field(
        1024 * 1024, ge=4096,
        description="Bytes of a `terminal` tool command's output kept before it is bounded to "
        "`max_output_chars` for the model.",
    )
    processes: ProcessConfig = Field(default_factory=ProcessConfig)


def _unwrap(ann: Any) -> Any:
    """``X | None`` → ``X`` (the first non-None arm of a union)."""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(ann) if a is not type(None)]
        return arms[0] if arms else None
    return ann


def _model_at(model: Any, loc: tuple[Any, ...]) -> Any:
    """The pydantic model that owns the keys at ``loc`` (through dicts and lists), or None."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field is not None else None
        elif origin is dict:
            current = typing.get_args(current)[1]
        elif origin is list:
            current = typing.get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def validation_message(e: ValidationError, model: type[BaseModel], where: str) -> str:
    """Name each bad key, say what is wrong and how to fix it."""
    lines = []
    for err in e.errors():
        key = ".".join(str(x) for x in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, err["loc"][:-1])
            allowed = ", ".join(parent.model_fields) if parent is not None else "?"
            lines.append(f"{where}: unknown key {key!r}; allowed keys here: {allowed}. Remove or rename it.")
        elif err["type"] == "missing":
            lines.append(f"{where}: missing required key {key!r}. Add it.")
        else:
            lines.append(f"{where}: key {key!r}: {err['msg']} (got {err.get('input')!r}). Fix the value.")
    return "\n".join(lines)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping (an empty file is ``{}``).

    Raises:
        ConfigError: unreadable file, invalid YAML (with line and column), or not a mapping.
    """
    import yaml  # only when a file is actually read: keeps `import hermes_core` light

    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def load_config(path: str | Path, model: type[BaseModel] = HermesConfig) -> Any:
    """Load and validate a YAML config file.

    Raises:
        ConfigError: unreadable file, invalid YAML (with line), or invalid keys (named).
    """
    data = read_yaml_mapping(Path(path))
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_message(e, model, str(path))) from None
