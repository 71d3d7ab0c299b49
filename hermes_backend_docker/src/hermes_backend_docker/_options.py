"""Options of the ``docker`` backend, validated once when a sandbox is requested."""

from __future__ import annotations

import json
import os
import posixpath
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["BuildOptions", "DockerOptions", "IMAGE_MAP_ENV", "RESERVED_LABEL_PREFIX"]

#: JSON object ``{"image": "local image", ...}`` used when the option ``image_map`` is not given.
IMAGE_MAP_ENV = "HERMES_DOCKER_IMAGE_MAP"

#: Labels under this prefix are set by hermes (rollout, runtime, creation time, backend) and
#: are what ``hermes sandbox sweep`` relies on, so users may not override them.
RESERVED_LABEL_PREFIX = "hermes."

_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([bkmg]i?b?)?$", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _default_image_map() -> dict[str, str]:
    raw = os.environ.get(IMAGE_MAP_ENV)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"${IMAGE_MAP_ENV} is not valid JSON ({e.msg}); expected {{\"image\": \"local image\"}}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"${IMAGE_MAP_ENV} must be a JSON object of image names to image names")
    return value


class BuildOptions(BaseModel):
    """Build the sandbox image from a context directory (cached by a hash of the context)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    context: str = Field(min_length=1, description="Absolute path of the build context directory on the host.")
    dockerfile: str = Field("Dockerfile", min_length=1, description="Dockerfile, relative to the context.")
    args: dict[str, str] = Field(default_factory=dict, description="Build args (ARG values).")
    target: str | None = Field(None, description="Stage to build (multi-stage Dockerfiles).")
    timeout: float = Field(600.0, gt=0, description="Seconds the build may take.")
    repository: str = Field("hermes-build", min_length=1, description="Repository part of the built image's tag.")

    @field_validator("context")
    @classmethod
    def _context(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"build.context must be an absolute host path, got {v!r}")
        return v


class DockerOptions(BaseModel):
    """Options of the ``docker`` backend (one container per sandbox).

    Host environment variables are never forwarded into the container unless named in
    ``pass_env``; API keys stay on the host.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    image: str = Field(
        "debian:bookworm-slim",
        min_length=1,
        description="Image of the sandbox container (per-task overrides replace it).",
    )
    pull: Literal["never", "missing", "always"] = Field(
        "missing",
        description="Pull policy: 'never' (image must exist on the engine), 'missing' (pull only "
        "when absent), 'always' (pull before every sandbox).",
    )
    docker_host: str | None = Field(
        None, description="Docker-API endpoint (default: $DOCKER_HOST, else the engine's default socket)."
    )
    build: BuildOptions | None = Field(
        None, description="Build the image from a context directory instead of using `image` (cached)."
    )
    image_map: dict[str, str] = Field(
        default_factory=dict,
        description="Image name -> local image, applied to `image` and to FROM lines of built "
        f"Dockerfiles (default: ${IMAGE_MAP_ENV} as JSON).",
    )
    cpus: float | None = Field(None, gt=0, description="CPU limit in cores (e.g. 1.5).")
    memory: str | None = Field("8g", description="Memory limit, e.g. '512m', '2g' or bytes (None: no limit).")
    pids_limit: int | None = Field(4096, gt=0, description="Maximum number of processes in the container (None: no limit).")
    storage: str | None = Field(
        None, description="Size of the container's writable layer, e.g. '10g' (only engines whose storage "
        "driver supports a size option, e.g. overlay2 on xfs with pquota)."
    )
    ports: list[int] = Field(
        default_factory=list,
        description="Container TCP ports to publish on 127.0.0.1 (host port chosen by the engine; "
        "see `sandbox.ports`). Needs a network mode other than 'none'.",
    )
    network: str = Field(
        "none", min_length=1, description="Network mode: 'none' (default), 'bridge', 'host' or a network name."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Variables set in the container.")
    pass_env: list[str] = Field(
        default_factory=list, description="Host variables to forward by name (e.g. OPENAI_API_KEY)."
    )
    workdir: str | None = Field(
        "/workspace", description="Absolute working directory, created at start (None: the image's WORKDIR, else /)."
    )
    volumes: list[str] = Field(
        default_factory=list, description="Bind mounts 'HOST:CONTAINER[:ro|rw]' (host path absolute)."
    )
    user: str | None = Field(None, description="User (name or uid[:gid]) commands run as (default: the image's).")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra container labels.")
    max_lifetime: float | None = Field(
        86400.0,
        gt=0,
        description="Seconds after which the container stops and is removed by the engine, even "
        "if the driver died (None: no limit).",
    )
    init: bool = Field(True, description="Run an init process (tini) as PID 1 so orphans are reaped.")

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and not _MEMORY.match(v.strip()):
            raise ValueError(f"memory must look like '512m', '2g' or a number of bytes, got {v!r}")
        return v.strip().lower() if v is not None else v

    @field_validator("storage")
    @classmethod
    def _storage(cls, v: str | None) -> str | None:
        if v is not None and not _MEMORY.match(v.strip()):
            raise ValueError(f"storage must look like '10g', '512m' or a number of bytes, got {v!r}")
        return v.strip().lower() if v is not None else v

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[int]) -> list[int]:
        for port in v:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is not a TCP port number (1-65535)")
        return sorted(set(v))

    @model_validator(mode="before")
    @classmethod
    def _image_map_from_env(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("image_map") is None:
            data = {**data, "image_map": _default_image_map()}
        return data

    @model_validator(mode="after")
    def _ports_need_network(self) -> DockerOptions:
        if self.ports and self.network == "none":
            raise ValueError(
                "ports: publishing ports needs a network mode other than 'none'; set network='bridge'"
            )
        return self

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith("/"):
            raise ValueError(f"workdir must be an absolute path, got {v!r}")
        return posixpath.normpath(v)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not _ENV_NAME.match(name):
                raise ValueError(f"env name {name!r} is not a valid variable name")
        return v

    @field_validator("pass_env")
    @classmethod
    def _pass_env(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _ENV_NAME.match(name):
                raise ValueError(f"pass_env entry {name!r} is not a valid variable name")
        return v

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, v: list[str]) -> list[str]:
        for spec in v:
            parts = spec.split(":")
            if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
                raise ValueError(f"volume {spec!r} must be 'HOST:CONTAINER[:ro|rw]' with an absolute container path")
            if len(parts) == 3 and parts[2] not in ("ro", "rw"):
                raise ValueError(f"volume {spec!r}: mode must be 'ro' or 'rw', got {parts[2]!r}")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key.startswith(RESERVED_LABEL_PREFIX):
                raise ValueError(
                    f"label {key!r} is reserved: hermes sets labels starting with {RESERVED_LABEL_PREFIX!r}"
                )
        return v
