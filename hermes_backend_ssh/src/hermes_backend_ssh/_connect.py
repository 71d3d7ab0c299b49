"""Connecting to one host (host key checking on, key or agent auth) and the errors a user can
act on: unreachable host, refused authentication, unknown host key, a host gone mid-rollout,
a full remote disk, a remote host without bash."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh

from hermes_core.errors import SandboxClosedError, SandboxError, TransferError

from ._options import HostSpec, SSHOptions

__all__ = [
    "AuthenticationError",
    "HostDownError",
    "HostKeyError",
    "HostUnreachableError",
    "RemoteDiskFullError",
    "RemoteSetupError",
    "connect",
]


class HostUnreachableError(SandboxError):
    """No SSH server answered (refused, timed out, unresolvable, dropped during the handshake)."""


class AuthenticationError(SandboxError):
    """The host refused every key offered."""


class HostKeyError(SandboxError):
    """The host's key is unknown or does not match the pinned / known one."""


class HostDownError(SandboxClosedError):
    """The host stopped answering while a sandbox lived on it: the sandbox died (an
    infrastructure failure, not the agent's)."""


class RemoteSetupError(SandboxError):
    """The remote host cannot hold a sandbox (no bash, no /proc, the root is not writable)."""


class RemoteDiskFullError(TransferError):
    """The remote filesystem is full."""


def user_of(opts: SSHOptions, host: HostSpec) -> str:
    if host.user or opts.user:
        return host.user or opts.user  # type: ignore[return-value]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "root")


def known_hosts_arg(opts: SSHOptions, host: HostSpec) -> tuple[Any, str]:
    """The ``known_hosts`` argument for asyncssh, and a description of it for messages."""
    if host.host_key:
        try:
            key = asyncssh.import_public_key(host.host_key)
        except (asyncssh.KeyImportError, ValueError) as e:
            raise HostKeyError(f"host_key of {host.address} is not a public key ({e}): give it as 'ssh-ed25519 AAAA...'") from None
        return ([key], [], []), "the pinned host_key"
    path = Path(opts.known_hosts or "~/.ssh/known_hosts").expanduser()
    if not path.is_file():
        # An absent file trusts nothing (never "no checking").
        return ([], [], []), f"{path} (which does not exist)"
    return str(path), str(path)


def _keyscan_hint(host: HostSpec, where: str) -> str:
    port = f"-p {host.port} " if host.port != 22 else ""
    target = where.split(" (")[0] if not where.startswith("the pinned") else "~/.ssh/known_hosts"
    return (
        f"check the key's fingerprint with the host's administrator, then add it: "
        f"ssh-keyscan {port}{host.host} >> {target} (or pin it: hosts: [{{host: {host.host}, port: {host.port}, "
        f"host_key: 'ssh-ed25519 AAAA...'}}])"
    )


async def connect(
    opts: SSHOptions, host: HostSpec, *, on_lost: Callable[[Exception | None], None] | None = None,
    timeout: float | None = None,
) -> asyncssh.SSHClientConnection:
    """One authenticated connection to ``host`` (never shared with another sandbox).

    Raises:
        HostUnreachableError, AuthenticationError, HostKeyError: with the fix in the message.
    """
    user = user_of(opts, host)
    known, where = known_hosts_arg(opts, host)

    class _Client(asyncssh.SSHClient):
        def connection_lost(self, exc: Exception | None) -> None:
            if on_lost is not None:
                on_lost(exc)

    kwargs: dict[str, Any] = dict(
        username=user,
        known_hosts=known,
        agent_forwarding=False,
        keepalive_interval=opts.keepalive_interval,
        keepalive_count_max=3,
        connect_timeout=timeout or opts.connect_timeout,
        login_timeout=timeout or opts.connect_timeout,
        client_factory=_Client,
        password=None,
        kbdint_auth=False,
        gss_auth=False,
        host_based_auth=False,
        config=() if opts.use_ssh_config else None,
    )
    if opts.client_keys is not None:
        keys = [str(Path(k).expanduser()) for k in opts.client_keys]
        for k in keys:
            if not Path(k).is_file():
                raise AuthenticationError(f"client key {k} does not exist (option client_keys)")
        kwargs["client_keys"] = keys
    if opts.passphrase is not None:
        kwargs["passphrase"] = opts.passphrase
    if not opts.agent:
        kwargs["agent_path"] = None
    who = f"{user}@{host.address}"
    try:
        return await asyncssh.connect(host.host, host.port, **kwargs)
    except asyncssh.HostKeyNotVerifiable as e:
        raise HostKeyError(
            f"the host key of {host.address} is not trusted by {where} ({e.reason}): {_keyscan_hint(host, where)}"
        ) from None
    except asyncssh.PermissionDenied:
        keys = ", ".join(opts.client_keys) if opts.client_keys else "~/.ssh/id_*"
        agent = " and the SSH agent" if opts.agent and os.environ.get("SSH_AUTH_SOCK") else ""
        raise AuthenticationError(
            f"{who} refused authentication with the keys {keys}{agent}: add the public key to "
            f"~{user}/.ssh/authorized_keys on {host.host}, or set client_keys / user"
        ) from None
    except asyncssh.KeyImportError as e:
        raise AuthenticationError(f"cannot load a client key for {who}: {e} (check client_keys / passphrase)") from None
    except (asyncio.TimeoutError, TimeoutError):
        raise HostUnreachableError(
            f"no answer from {host.address} within {timeout or opts.connect_timeout:g}s (host down, firewalled, or wrong port)"
        ) from None
    except socket.gaierror as e:
        raise HostUnreachableError(f"cannot resolve SSH host {host.host!r}: {e.strerror or e}") from None
    except ConnectionRefusedError:
        raise HostUnreachableError(
            f"connection refused by {host.address}: is sshd running there and listening on port {host.port}?"
        ) from None
    except (OSError, asyncssh.DisconnectError) as e:
        raise HostUnreachableError(f"cannot reach SSH host {host.address}: {e}") from None
