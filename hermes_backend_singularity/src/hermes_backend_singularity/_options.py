"""Options of the ``singularity`` backend, validated once when a sandbox is requested."""

from __future__ import annotations

import posixpath
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["SingularityOptions"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URI = re.compile(r"^(docker|docker-archive|oci|oci-archive|oras|library|shub|http|https)://.+")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}$")


class SingularityOptions(BaseModel):
    """Options of the ``singularity`` backend (one apptainer instance per sandbox).

    Host environment variables never reach the sandbox unless named in ``pass_env``: every
    command runs with ``--cleanenv`` and its variables given explicitly.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    image: str = Field(
        "docker://debian:bookworm-slim",
        min_length=1,
        description="Image of the instance: 'docker://REF', another apptainer URI (oras://, library://, ...), "
        "or a local .sif file or sandbox directory (per-task images replace it).",
    )
    binary: str | None = Field(
        None,
        description="The CLI to run: a name on PATH or a path (default: 'apptainer' if on PATH, else 'singularity').",
    )
    writable: Literal["overlay", "tmpfs", "none"] = Field(
        "overlay",
        description="Where the sandbox's writes go: 'overlay' (a per-sandbox --overlay directory on the host, "
        "removed at close), 'tmpfs' (--writable-tmpfs: in memory, small by default), 'none' (read-only image).",
    )
    overlay_root: str | None = Field(
        None,
        description="Host directory under which per-sandbox overlay directories are made "
        "(default: <temp dir>/hermes-apptainer-<uid>).",
    )
    workdir: str = Field("/workspace", description="Absolute working directory inside the instance, created at start.")
    env: dict[str, str] = Field(default_factory=dict, description="Variables set for every command.")
    pass_env: list[str] = Field(
        default_factory=list, description="Host variables to forward by name (e.g. OPENAI_API_KEY)."
    )
    binds: list[str] = Field(
        default_factory=list, description="Bind mounts 'HOST[:CONTAINER[:ro|rw]]' (absolute paths), passed as --bind."
    )
    network: Literal["none", "host"] = Field(
        "none", description="'none' (--net --network none: loopback only) or 'host' (the host's network)."
    )
    fakeroot: bool = Field(False, description="Start the instance with --fakeroot (root inside, unprivileged outside).")
    start_timeout: float = Field(
        600.0, gt=0, description="Seconds 'instance start' may take (a docker:// image is converted on first use)."
    )
    command_timeout: float = Field(
        120.0, gt=0, description="Seconds the backend's own housekeeping commands (mkdir, stop, list) may take."
    )
    name_prefix: str = Field(
        "hermes", description="Prefix of instance names; sweep removes only instances with this prefix."
    )

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if "://" in v and not _URI.match(v):
            raise ValueError(
                f"image {v!r}: unknown URI scheme; use docker://REF, oras://, library://, or a path to a .sif file"
            )
        return v

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"workdir must be an absolute path, got {v!r}")
        return posixpath.normpath(v)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"env name {name!r} is not a valid variable name")
            if "\0" in value:
                raise ValueError(f"env {name!r}: values cannot contain NUL bytes")
        return v

    @field_validator("pass_env")
    @classmethod
    def _pass_env(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _ENV_NAME.match(name):
                raise ValueError(f"pass_env entry {name!r} is not a valid variable name")
        return v

    @field_validator("binds")
    @classmethod
    def _binds(cls, v: list[str]) -> list[str]:
        for spec in v:
            parts = spec.split(":")
            if "," in spec or len(parts) > 3 or not all(p.startswith("/") for p in parts[:2] if p):
                raise ValueError(
                    f"bind {spec!r} must be 'HOST[:CONTAINER[:ro|rw]]' with absolute paths and no ','"
                )
            if not parts[0]:
                raise ValueError(f"bind {spec!r}: the host path is empty")
            if len(parts) == 3 and parts[2] not in ("ro", "rw"):
                raise ValueError(f"bind {spec!r}: mode must be 'ro' or 'rw', got {parts[2]!r}")
        return v

    @field_validator("name_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _PREFIX.match(v):
            raise ValueError(f"name_prefix {v!r} must be 1-16 lowercase letters/digits, starting with a letter")
        return v
