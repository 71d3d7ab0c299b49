"""The ``task.toml`` schema of Harbor task directories (schema versions 1.0 to 1.4).

Mirrors ``harbor.models.task.config`` of Harbor 0.26.0, with one deliberate difference: an
unknown key is an error that names the file and the key (Harbor ignores it), so a typo in
``timeout_sec`` cannot silently run a task with the default. Deprecated spellings that Harbor
still reads are accepted and translated: top-level ``version`` (→ ``schema_version``),
``[environment] allow_internet`` (→ ``network_mode``), string ``memory``/``storage`` such as
``"2G"`` (→ ``memory_mb``/``storage_mb``), and the older phase tables
``[agent.network]``/``[verifier.network]`` with ``mode``/``allowed_hosts``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hermes_core.config import validation_message
from hermes_core.errors import ConfigError

__all__ = ["TaskConfig", "StepConfig", "ArtifactConfig", "load_task_toml", "SCHEMA_VERSIONS"]

SCHEMA_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4")
NetworkMode = Literal["public", "no-network", "allowlist"]
_STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


def _size_mb(text: str) -> int:
    s = text.strip().upper()
    if s.endswith("G"):
        return int(float(s[:-1]) * 1024)
    if s.endswith("M"):
        return int(float(s[:-1]))
    if s.endswith("K"):
        return int(float(s[:-1]) / 1024)
    raise ValueError(f"invalid size {text!r}: expected e.g. '1G', '512M'")


class _LegacyNetwork(_Strict):
    mode: NetworkMode
    allowed_hosts: list[str] | None = None


class _PhaseNetwork(_Strict):
    network_mode: NetworkMode | None = None
    allowed_hosts: list[str] | None = None
    network: _LegacyNetwork | None = Field(None, description="deprecated spelling of network_mode/allowed_hosts")

    @model_validator(mode="after")
    def _legacy(self) -> _PhaseNetwork:
        if self.network is not None and self.network_mode is None:
            self.network_mode = self.network.mode
            if self.allowed_hosts is None:
                self.allowed_hosts = self.network.allowed_hosts
        if self.allowed_hosts and self.network_mode != "allowlist":
            raise ValueError("allowed_hosts is only valid when network_mode='allowlist'")
        return self


class Author(_Strict):
    name: str
    email: str | None = None


class PackageInfo(_Strict):
    name: str
    version: str | None = None
    description: str = ""
    authors: list[Author] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)


class Healthcheck(_Strict):
    command: str
    interval_sec: float = 5.0
    timeout_sec: float = 30.0
    start_period_sec: float = 0.0
    start_interval_sec: float = 5.0
    retries: int = 3


class Tpu(_Strict):
    type: str
    topology: str


class McpServer(_Strict):
    name: str
    transport: Literal["stdio", "sse", "streamable-http", "http"] = "sse"
    url: str | None = None
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)


class EnvironmentSection(_Strict):
    build_timeout_sec: float = 600.0
    docker_image: str | None = None
    os: Literal["linux", "windows"] = "linux"
    cpus: int | float | None = None
    memory_mb: int | None = None
    storage_mb: int | None = None
    gpus: int | None = None
    gpu_types: list[str] | None = None
    tpu: Tpu | None = None
    mcp_servers: list[McpServer] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    skills_dir: str | None = None
    healthcheck: Healthcheck | None = None
    workdir: str | None = None
    network_mode: NetworkMode = "public"
    allowed_hosts: list[str] | None = None
    allow_internet: bool | None = Field(None, description="deprecated: use network_mode")

    @field_validator("os", mode="before")
    @classmethod
    def _os(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @model_validator(mode="before")
    @classmethod
    def _legacy_sizes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in (("memory", "memory_mb"), ("storage", "storage_mb")):
            if old in data:
                value = data.pop(old)
                if isinstance(value, str):
                    mb = _size_mb(value)
                    if new in data and data[new] != mb:
                        raise ValueError(f"conflicting {old!r} ({value!r} = {mb} MB) and {new!r} ({data[new]!r})")
                    data.setdefault(new, mb)
                elif isinstance(value, int) and not isinstance(value, bool):
                    data.setdefault(new, value)
                else:
                    raise ValueError(f"{old!r} must be a size string like '2G', got {value!r}")
        return data

    @model_validator(mode="after")
    def _allow_internet(self) -> EnvironmentSection:
        if self.allow_internet is not None and "network_mode" not in self.model_fields_set and self.allowed_hosts is None:
            self.network_mode = "public" if self.allow_internet else "no-network"
        if self.allowed_hosts and self.network_mode != "allowlist":
            raise ValueError("allowed_hosts is only valid when network_mode='allowlist'")
        return self


class CollectHook(_Strict):
    command: str
    service: str = "main"
    timeout_sec: float = 60.0
    user: str | int | None = None


class VerifierSection(_PhaseNetwork):
    timeout_sec: float = 600.0
    env: dict[str, str] = Field(default_factory=dict)
    user: str | int | None = None
    environment_mode: Literal["shared", "separate"] | None = None
    environment: EnvironmentSection | None = None
    collect: list[CollectHook] = Field(default_factory=list)


class AgentSection(_PhaseNetwork):
    timeout_sec: float | None = None
    user: str | int | None = None


class SolutionSection(_Strict):
    env: dict[str, str] = Field(default_factory=dict)


class ArtifactConfig(_Strict):
    source: str
    destination: str | None = None
    exclude: list[str] = Field(default_factory=list)
    service: str | None = None

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if any(part == ".." for part in PurePosixPath(v).parts):
            raise ValueError(f"artifact source must not contain '..', got {v!r}")
        return v

    @field_validator("destination")
    @classmethod
    def _destination(cls, v: str | None) -> str | None:
        if not v:
            return None
        p = PurePosixPath(v)
        if p.is_absolute() or any(part == ".." for part in p.parts) or "\\" in v:
            raise ValueError(f"artifact destination must be a relative path without '..', got {v!r}")
        return v


class StepConfig(_Strict):
    name: str
    agent: AgentSection = Field(default_factory=AgentSection)
    verifier: VerifierSection = Field(default_factory=VerifierSection)
    min_reward: float | dict[str, float] | None = None
    healthcheck: Healthcheck | None = None
    artifacts: list[str | ArtifactConfig] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _STEP_NAME.match(v) or v in (".", ".."):
            raise ValueError(f"step name {v!r} must be a portable directory name (letters, digits, . _ -)")
        return v


class TaskConfig(_Strict):
    schema_version: str = "1.4"
    task: PackageInfo | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    verifier: VerifierSection = Field(default_factory=VerifierSection)
    agent: AgentSection = Field(default_factory=AgentSection)
    environment: EnvironmentSection = Field(default_factory=EnvironmentSection)
    solution: SolutionSection = Field(default_factory=SolutionSection)
    source: str | None = None
    multi_step_reward_strategy: Literal["mean", "final"] | None = None
    steps: list[StepConfig] | None = None
    artifacts: list[str | ArtifactConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _version_rename(cls, data: Any) -> Any:
        if isinstance(data, dict) and "version" in data:
            data = dict(data)
            data.setdefault("schema_version", data.pop("version"))
        return data

    @field_validator("schema_version", mode="before")
    @classmethod
    def _schema_version(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if v not in SCHEMA_VERSIONS:
            raise ValueError(f"unsupported schema version {v!r}; supported: {', '.join(SCHEMA_VERSIONS)}")
        return v

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, v: list[StepConfig] | None) -> list[StepConfig] | None:
        seen: set[str] = set()
        for step in v or []:
            if step.name.casefold() in seen:
                raise ValueError(f"step names must be unique: {step.name!r}")
            seen.add(step.name.casefold())
        return v


def load_task_toml(path: Path) -> TaskConfig:
    """Read and validate ``task.toml``.

    Raises:
        ConfigError: unreadable, invalid TOML (with the line), an unknown key (named with its
            section, e.g. ``environment.memroy``), or an invalid value.
    """
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read task config: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    try:
        return TaskConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_message(e, TaskConfig, str(path))) from None
