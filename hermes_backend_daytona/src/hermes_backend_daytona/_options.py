"""Options of the ``daytona`` backend, validated once when a sandbox is requested."""

from __future__ import annotations

import posixpath
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DaytonaOptions", "RESERVED_LABEL_PREFIX"]

#: Labels under this prefix are set by hermes (rollout, runtime, owner, creation time) and are
#: what ``hermes sandbox sweep`` relies on, so users may not override them.
RESERVED_LABEL_PREFIX = "hermes."
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DaytonaOptions(BaseModel):
    """Options of the ``daytona`` backend (one Daytona sandbox per hermes sandbox).

    The API key is never an option (options end up in logs and result files): it is read from
    the environment variable named by ``api_key_env``. Host variables are not forwarded into
    the sandbox unless named in ``pass_env``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    # ---------------------------------------------------------------- where
    api_url: str | None = Field(
        None, description="Daytona API URL (default: $DAYTONA_API_URL, else https://app.daytona.io/api)."
    )
    api_key_env: str = Field("DAYTONA_API_KEY", description="Environment variable holding the API key.")
    target: str | None = Field(None, description="Daytona target region (default: $DAYTONA_TARGET / the account's).")

    # ---------------------------------------------------------------- what
    image: str | None = Field(
        None, description="Image to build the sandbox from (e.g. 'python:3.12-slim'); per-task overrides replace it."
    )
    snapshot: str | None = Field(None, description="Snapshot to create the sandbox from (instead of an image).")
    cpu: int | None = Field(None, gt=0, description="vCPUs (image sandboxes only; snapshots fix their resources).")
    memory: int | None = Field(None, gt=0, description="Memory in GiB (image sandboxes only).")
    disk: int | None = Field(None, gt=0, le=10, description="Disk in GiB (image sandboxes only; Daytona caps it at 10).")
    user: str | None = Field(None, description="OS user commands run as (default: the snapshot's, 'daytona').")
    workdir: str | None = Field(
        None, description="Absolute working directory, created at start (default: the user's home directory)."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Variables set in the sandbox.")
    pass_env: list[str] = Field(default_factory=list, description="Host variables to forward by name.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra sandbox labels.")
    network_block_all: bool = Field(False, description="Block all network access from the sandbox.")
    network_allow_list: str | None = Field(
        None, description="Comma-separated CIDRs the sandbox may reach (everything else blocked)."
    )

    # ---------------------------------------------------------------- lifetime (provider side)
    auto_stop_minutes: int = Field(
        30,
        ge=1,
        description="Daytona stops the sandbox after this many minutes without API activity (must be > 0 so "
        "an abandoned sandbox stops; keep it above the longest silent command).",
    )
    auto_delete_minutes: int = Field(
        0, ge=0, description="Minutes after stopping until Daytona deletes it (0: at once, so nothing lingers)."
    )
    max_lifetime: float | None = Field(
        86400.0, gt=0, description="Hard maximum lifetime in seconds (Daytona ttl, rounded up to minutes); None: none."
    )

    # ---------------------------------------------------------------- scale and robustness
    creates_per_second: float = Field(
        10.0, gt=0, description="Create-rate limit shared by every sandbox of one runtime and account."
    )
    max_concurrent_creates: int = Field(32, ge=1, description="Creates in flight at once (per runtime and account).")
    max_concurrent_deletes: int = Field(32, ge=1, description="Deletes in flight at once (per runtime and account).")
    retries: int = Field(5, ge=0, description="Retries of a call answered 429/5xx or failing to connect.")
    retry_backoff: float = Field(0.5, gt=0, description="First retry delay in seconds (doubles, with jitter, max 20 s).")
    request_timeout: float = Field(30.0, gt=0, description="Seconds one control-plane or file call may take.")
    create_timeout: float = Field(180.0, gt=0, description="Seconds a sandbox may take to reach 'started'.")
    offline_retries: int = Field(
        1, ge=0, description="Retries when the API cannot be reached at all (so offline fails in seconds)."
    )
    max_output: int = Field(
        16 << 20, ge=1024, description="Bytes of one exec's output returned (head + tail kept beyond)."
    )

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"workdir must be an absolute path, got {v!r}")
        return posixpath.normpath(v) if v is not None else v

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

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key.startswith(RESERVED_LABEL_PREFIX):
                raise ValueError(
                    f"label {key!r} is reserved: hermes sets labels starting with {RESERVED_LABEL_PREFIX!r}"
                )
        return v

    @model_validator(mode="after")
    def _source(self) -> DaytonaOptions:
        if self.image and self.snapshot:
            raise ValueError("give either image or snapshot, not both")
        if self.snapshot and any(x is not None for x in (self.cpu, self.memory, self.disk)):
            raise ValueError("cpu/memory/disk apply to image sandboxes; a snapshot fixes its own resources")
        return self
