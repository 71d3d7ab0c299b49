"""Options of the ``modal`` backend, validated once when a sandbox is requested."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ModalOptions", "RESERVED_TAG_PREFIX"]

#: Tags under this prefix are set by hermes (rollout, runtime, owner, creation time) and are what
#: ``hermes sandbox sweep --backend modal`` relies on, so users may not set them.
RESERVED_TAG_PREFIX = "hermes."

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ModalOptions(BaseModel):
    """Options of the ``modal`` backend (one ``modal.Sandbox`` per sandbox).

    Credentials and the API endpoint come from Modal's own configuration (``MODAL_TOKEN_ID`` /
    ``MODAL_TOKEN_SECRET``, ``~/.modal.toml``, ``MODAL_SERVER_URL``), never from these options.
    Host environment variables reach the sandbox only when named in ``pass_env``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    app_name: str = Field("hermes-sandboxes", min_length=1, description="Modal App the sandboxes belong to (created if missing).")
    image: str | None = Field(
        None, description="Registry image (Image.from_registry); per-task images replace it. None: Image.debian_slim()."
    )
    dockerfile: str | None = Field(None, description="Host path of a Dockerfile to build the image from (Image.from_dockerfile).")
    image_id: str | None = Field(None, description="An existing Modal image id (Image.from_id), e.g. a snapshot.")
    cpu: float | None = Field(None, gt=0, description="CPU cores requested.")
    memory: int | None = Field(None, gt=0, description="Memory requested, in MiB.")
    timeout: int = Field(
        3600, gt=0, le=86400,
        description="Lifetime in seconds: Modal terminates the sandbox after it even if the driver died.",
    )
    idle_timeout: int | None = Field(None, gt=0, description="Seconds of inactivity after which Modal terminates it.")
    workdir: str = Field("/workspace", description="Absolute working directory of the sandbox.")
    env: dict[str, str] = Field(default_factory=dict, description="Variables set in the sandbox.")
    pass_env: list[str] = Field(default_factory=list, description="Host variables forwarded by name (e.g. OPENAI_API_KEY).")
    secrets: list[str] = Field(default_factory=list, description="Named Modal Secrets injected into the sandbox.")
    block_network: bool = Field(True, description="Block all network access from inside the sandbox.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra sandbox tags.")
    keepalive: list[str] = Field(
        default_factory=lambda: ["sleep", "infinity"], min_length=1,
        description="The sandbox's main command (a Modal sandbox ends when it does).",
    )
    create_rate: float = Field(
        5.0, gt=0, description="Sandbox creates per second, per account and process (Modal limits create rates per account)."
    )
    max_concurrent_creates: int = Field(16, gt=0, description="Creates in flight at once, per account and process.")
    create_retries: int = Field(3, ge=0, description="Retries of a create that failed with a transient error.")
    create_timeout: float = Field(600.0, gt=0, description="Seconds a create (image build included) may take.")
    connect_timeout: float = Field(
        8.0, gt=0, description="Seconds to reach the Modal API before failing (the SDK alone retries ~60 s offline)."
    )
    rpc_timeout: float = Field(60.0, gt=0, description="Seconds a control call (terminate, tags, snapshot) may take.")

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"workdir must be an absolute path, got {v!r}")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"invalid environment variable names: {bad}")
        return v

    @field_validator("pass_env")
    @classmethod
    def _pass_env(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"invalid environment variable names in pass_env: {bad}")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if k.startswith(RESERVED_TAG_PREFIX)]
        if bad:
            raise ValueError(f"tags under {RESERVED_TAG_PREFIX!r} are set by hermes, not by options: {bad}")
        return v

    @model_validator(mode="after")
    def _one_image(self) -> ModalOptions:
        given = [n for n in ("dockerfile", "image_id") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give at most one of dockerfile / image_id, got {given}")
        return self
