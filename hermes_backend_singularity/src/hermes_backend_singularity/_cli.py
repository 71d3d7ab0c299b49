"""The apptainer/singularity command lines this backend runs, built in one place (argv lists,
never shell text), and the reading of what the CLI prints back."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence

from hermes_core.errors import SandboxError

from ._options import SingularityOptions

__all__ = [
    "BinaryNotFoundError",
    "EXEC_MARKER",
    "cli_env",
    "encode_env",
    "exec_argv",
    "find_binary",
    "list_argv",
    "parse_list",
    "start_argv",
    "stop_argv",
]

#: Every command carries ``HERMES_APPTAINER_EXEC=<token>``, so a timed-out command's processes
#: can be found inside the instance even if they left its process group.
EXEC_MARKER = "HERMES_APPTAINER_EXEC"

#: Variables apptainer itself injects into the container (even with --cleanenv): only
#: ``pass_env``/``env`` decide what a sandbox sees, so they are not handed to the CLI.
_INJECTING = ("APPTAINERENV_", "SINGULARITYENV_")
#: What pflag's StringToString (``--env``) takes verbatim: one '=', no quote at either end.
_PLAIN = re.compile(r'^[^="\0]([^=\0]*[^="\0])?$|^$')


class BinaryNotFoundError(SandboxError):
    """Neither ``apptainer`` nor ``singularity`` (nor the configured binary) can be run."""


def find_binary(binary: str | None) -> str:
    """The CLI to run: ``binary`` if given (name on PATH or path), else apptainer, else singularity."""
    if binary:
        found = shutil.which(binary)
        if found is None:
            raise BinaryNotFoundError(
                f"the configured binary {binary!r} is not an executable on PATH; install apptainer "
                "(https://apptainer.org/docs/admin/main/installation.html) or fix the option binary="
            )
        return found
    for name in ("apptainer", "singularity"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise BinaryNotFoundError(
        "neither 'apptainer' nor 'singularity' is on PATH; install apptainer "
        "(https://apptainer.org/docs/admin/main/installation.html), load its module (module load apptainer), "
        "or set the option binary=/path/to/apptainer"
    )


def cli_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the CLI process itself: the host's (proxies, cache dirs, registry
    credentials are the CLI's business), minus the variables apptainer would inject into the
    container. The container gets none of it: every exec runs with ``--cleanenv``."""
    env = dict(os.environ if base is None else base)
    return {k: v for k, v in env.items() if not k.startswith(_INJECTING)}


def start_argv(binary: str, opts: SingularityOptions, image: str, name: str, overlay: str | None) -> list[str]:
    """``instance start``: every isolation choice is made here (exec into an instance cannot
    change namespaces, mounts or the writable layer)."""
    argv = [binary, "instance", "start", "--containall", "--no-home"]
    if opts.writable == "tmpfs":
        argv.append("--writable-tmpfs")
    elif opts.writable == "overlay":
        assert overlay is not None
        argv += ["--overlay", overlay]
    if opts.network == "none":
        argv += ["--net", "--network", "none"]
    if opts.fakeroot:
        argv.append("--fakeroot")
    for spec in opts.binds:
        argv += ["--bind", spec]
    return [*argv, image, name]


def encode_env(env: Mapping[str, str]) -> tuple[list[str], str]:
    """Split variables into ``--env K=V`` flags and the text of an ``--env-file``.

    ``--env`` is a pflag StringToString flag: a value with an ``=`` is parsed as CSV and one
    with a quote at either end loses it. Those values go through an env file, which apptainer
    reads as shell assignments (quoted here with :func:`shlex.quote`).
    """
    flags: list[str] = []
    lines: list[str] = []
    for k, v in env.items():
        if _PLAIN.match(v) and "\n" not in v:
            flags += ["--env", f"{k}={v}"]
        else:
            lines.append(f"export {k}={shlex.quote(v)}\n")
    return flags, "".join(lines)


def exec_argv(
    binary: str, name: str, argv: Sequence[str], *, cwd: str, env_flags: Sequence[str], env_file: str | None
) -> list[str]:
    """``exec`` of one command in the instance, with a clean environment and an explicit cwd."""
    out = [binary, "exec", "--cleanenv", *env_flags]
    if env_file is not None:
        out += ["--env-file", env_file]
    return [*out, "--pwd", cwd, f"instance://{name}", *argv]


def stop_argv(binary: str, name: str) -> list[str]:
    """``instance stop --force``: SIGKILL to the instance, whose PID namespace takes every
    process of the sandbox with it."""
    return [binary, "instance", "stop", "--force", name]


def list_argv(binary: str, pattern: str) -> list[str]:
    return [binary, "instance", "list", "--json", pattern]


def parse_list(output: str) -> list[dict]:
    """The entries of ``instance list --json`` (``[]`` for no instances).

    Raises:
        SandboxError: the output is not the JSON the CLI prints.
    """
    start = output.find("{")
    if start < 0:
        if not output.strip() or "no instance" in output.lower():
            return []
        raise SandboxError(f"cannot read `instance list --json` output: {output.strip()[:300]!r}")
    try:
        data = json.loads(output[start:])
    except ValueError:
        raise SandboxError(f"cannot read `instance list --json` output: {output.strip()[:300]!r}") from None
    items = data.get("instances") or []
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("instance"), str)]
