"""Options of the ``ssh`` backend, validated once when a sandbox is requested."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["HostSpec", "SSHOptions"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:\s\[\]]+)(?::(?P<port>\d+))?$")


class HostSpec(BaseModel):
    """One SSH host of the pool. Unset fields take the backend-wide value of :class:`SSHOptions`."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    host: str = Field(..., min_length=1, description="Host name or address.")
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    user: str | None = Field(None, description="Remote user (default: SSHOptions.user, else the local user).")
    capacity: int | None = Field(None, ge=1, description="Sandboxes this host holds at once (default: SSHOptions.capacity).")
    host_key: str | None = Field(
        None,
        description="Pin the host's public key ('ssh-ed25519 AAAA...'): only this key is accepted, "
        "known_hosts is not consulted.",
    )
    root: str | None = Field(None, description="Remote directory under which sandbox directories are made.")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _parse_host(value: object) -> object:
    """``"user@host:port"`` shorthand → a :class:`HostSpec` mapping."""
    if not isinstance(value, str):
        return value
    m = _HOST.match(value.strip())
    if not m:
        raise ValueError(f"host {value!r} must look like 'host', 'host:port' or 'user@host:port'")
    spec: dict[str, object] = {"host": m["host"].strip("[]")}
    if m["port"]:
        spec["port"] = int(m["port"])
    if m["user"]:
        spec["user"] = m["user"]
    return spec


class SSHOptions(BaseModel):
    """Options of the ``ssh`` backend: one SSH connection and one remote directory per sandbox,
    placed on the least-loaded host of ``hosts``.

    Host keys are checked (``known_hosts``, or a pinned ``host_key`` per host). The remote
    environment is scrubbed: only ``PATH``, ``HOME``/``TMPDIR`` (inside the sandbox directory),
    ``USER``/``LOGNAME``, ``env`` and the host variables named in ``pass_env`` reach it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    hosts: list[HostSpec] = Field(
        ..., min_length=1, description="The pool: 'user@host:port' strings or host mappings."
    )
    user: str | None = Field(None, description="Remote user for hosts that do not name one (default: the local user).")
    capacity: int = Field(8, ge=1, description="Sandboxes per host at once, unless the host says otherwise.")
    client_keys: list[str] | None = Field(
        None, description="Private key files (default: ~/.ssh/id_* as ssh does)."
    )
    passphrase: str | None = Field(None, description="Passphrase of encrypted client keys.")
    agent: bool = Field(True, description="Use the SSH agent at $SSH_AUTH_SOCK for authentication (never forwarded).")
    known_hosts: str | None = Field(
        None, description="known_hosts file (default: ~/.ssh/known_hosts). Unknown host keys are refused."
    )
    use_ssh_config: bool = Field(False, description="Also read ~/.ssh/config (ProxyJump, IdentityFile, ...).")
    root: str = Field(
        "~/.cache/hermes-ssh",
        min_length=1,
        description="Remote directory under which each sandbox gets its own directory ('~/' is the remote home).",
    )
    path: str = Field(
        "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", description="PATH of remote commands."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Variables set in the sandbox.")
    pass_env: list[str] = Field(default_factory=list, description="Host variables to forward by name.")
    connect_timeout: float = Field(15.0, gt=0, description="Seconds to connect and authenticate.")
    keepalive_interval: float = Field(
        5.0, gt=0, description="Seconds between keepalives; a host missing 3 in a row is marked down."
    )
    down_for: float = Field(30.0, ge=0, description="Seconds a host that stopped answering is skipped.")
    placement_timeout: float = Field(
        60.0, ge=0, description="Seconds to wait for a free slot when every host is full."
    )
    min_free_bytes: int = Field(
        16 << 20, ge=0, description="Refuse a host whose sandbox root has less free space than this."
    )
    image: str | None = Field(None, description="Ignored (accepted so per-task image overrides do not fail).")

    @field_validator("hosts", mode="before")
    @classmethod
    def _hosts(cls, v: object) -> object:
        if isinstance(v, (str, dict)):
            v = [v]
        if isinstance(v, list):
            return [_parse_host(h) for h in v]
        return v

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

    @model_validator(mode="after")
    def _unique_hosts(self) -> SSHOptions:
        seen = set()
        for h in self.hosts:
            key = (h.host, h.port, h.user or self.user)
            if key in seen:
                raise ValueError(f"host {h.address} is listed twice")
            seen.add(key)
        return self
