"""The ``local`` backend's implementation: a sandbox is a fresh directory, a scrubbed environment and its own
process groups on this machine.

It isolates working directories, environment variables and processes between rollouts; it is
not a security boundary for the filesystem (absolute paths reach the host). Use a container
backend for untrusted code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import functools
import json
import os
import shlex
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from hermes_core.errors import SandboxError
from hermes_core.sandbox import (
    TIMEOUT_EXIT_CODE,
    Capabilities,
    CloneRefused,
    Coalescer,
    Command,
    ExecResult,
    FileInfo,
    PipeProcess,
    Process,
    Sandbox,
    ShellSession,
    clone_into_cgroup,
    fresh_shell_child,
    job_report,
    killpg,
    owner_alive,
    owner_record,
    run_blocking,
    run_subprocess,
    run_teardown,
    spawn_subprocess,
    timeout_note,
)
from pydantic import BaseModel, ConfigDict, Field

from . import _local_cgroup as cgroups
from . import _local_files as files
from ._local_cgroup import SpareCgroups
from ._local_spares import SKELETON, SPARE_PREFIX, Made, SpareDirectories

#: Host variables a local sandbox inherits. Everything else (API keys, tokens) stays out
#: unless named in ``pass_env`` or given in ``env``.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "USER", "LOGNAME", "SHELL")
MARKER = "HERMES_SANDBOX_ID"
#: The owner record of each sandbox directory (what sweep checks): an extended attribute of the
#: directory (no inode to create and delete), or this file in it where the filesystem has none.
OWNER_XATTR = "user.hermes.owner"
OWNER_FILE = "owner.json"
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per record


class LocalOptions(BaseModel):
    """Options of the ``local`` backend."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    root: str | None = Field(None, description="Directory under which sandbox directories are made (default: the system temp dir).")
    env: dict[str, str] = Field(default_factory=dict, description="Variables set in the sandbox.")
    pass_env: list[str] = Field(default_factory=list, description="Host variables to forward by name (e.g. OPENAI_API_KEY).")
    image: str | None = Field(None, description="Ignored by the local backend (accepted so per-task image overrides do not fail).")
    tracking: Literal["auto", "cgroup", "marker"] = Field(
        "auto", description="How the sandbox's processes are found at close: `cgroup` (one cgroup per sandbox, "
        "which a process cannot leave; an error where none is writable), `marker` (an environment marker scan "
        "of /proc only) or `auto` (a cgroup where the host allows, else the marker).")
    user: int | None = Field(
        None, ge=1, description="Run the sandbox's processes as this unix uid (no name needed in /etc/passwd): "
        "they cannot read the driver's environment (/proc/<pid>/environ) or root-owned files. Needs root.")
    uid_range: str | None = Field(
        None, pattern=r"^\d+-\d+$", description="Run each sandbox as its own uid from this range (e.g. "
        "'20000-29999'): besides `user`'s protection, one sandbox cannot read another's files.")
    max_lifetime: float | None = Field(
        None, gt=0, description="Seconds after which `hermes sandbox sweep` may remove this sandbox even while its "
        "driver runs (default: only once the driver is gone).")


class LocalSandbox(Sandbox):
    backend_name = "local"
    capabilities = Capabilities(pty=True, native_files=True, host_processes=True)

    def __init__(
        self,
        options: LocalOptions | None = None,
        *,
        sandbox_id: str,
        labels: Mapping[str, str] | None = None,
        sweeper: MarkedProcessSweeper | None = None,
        spares: SpareDirectories | None = None,
        spare_cgroups: cgroups.SpareCgroups | None = None,
    ):
        super().__init__(options or LocalOptions(), sandbox_id=sandbox_id, labels=labels)
        self._sweeper = sweeper
        self._spares = spares
        self._spare_cgroups = spare_cgroups
        self._made: Made | None = None  # how the directory was made (to keep it as a spare)
        self.root: Path | None = None
        self._env: dict[str, str] = {}
        self._pgids: set[int] = set()
        self._cgroup: cgroups.SandboxCgroup | None = None
        self._ran = False  # whether any process was started (else close has nothing to find)
        self._uid: int | None = None
        self._uid_lock: int | None = None
        self._owner_file = False  # the owner record is a file (no xattr support), not an xattr
        self._workdir: str | None = None

    @property
    def workdir(self) -> str:
        if self._workdir is None:
            raise SandboxError(f"sandbox {self.sandbox_id} is not started")
        return self._workdir

    async def _start(self) -> None:
        opts: LocalOptions = self.options
        parent = _parent_dir(opts.root)
        if opts.user is not None or opts.uid_range is not None:
            self._spares = None  # its directories change owner: made fresh, removed after
        prefix = f"hermes-{self.sandbox_id}-"
        reused = None
        if self._spares is not None:
            reused = self._spares.take(parent, prefix)
        if reused is not None:
            self.root, self._made = Path(reused.root), reused
        else:
            self.root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            for sub in SKELETON:
                os.mkdir(self.root / sub)
        root = str(self.root)
        self._workdir = f"{root}/work"
        self._uid = self._pick_uid(opts)
        if self._uid is not None:
            if shutil.which("setpriv") is None:
                raise SandboxError("options user/uid_range need `setpriv` (util-linux): apt-get install util-linux")
            for p in (self.root, self.root / "work", self.root / "home", self.root / "tmp"):
                os.chown(p, self._uid, self._uid)
            os.chmod(self.root, 0o700)  # neighbours (other uids) cannot enter
            for parent in self.root.parents:
                if not os.stat(parent).st_mode & 0o001:
                    raise SandboxError(
                        f"options user/uid_range: uid {self._uid} cannot reach the sandbox through {str(parent)!r} "
                        f"(mode {oct(os.stat(parent).st_mode & 0o777)}); choose a `root` whose parent directories "
                        "others may traverse (chmod o+x), e.g. /tmp/hermes-sandboxes"
                    )
            # Crash recovery logs job output into the driver's data directory, which this uid
            # cannot write: such sandboxes' background jobs end with their driver.
            self.capabilities = dataclasses.replace(type(self).capabilities, host_processes=False)
        host = os.environ
        env = {k: host[k] for k in INHERITED_ENV if k in host}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        if opts.pass_env:
            env.update({k: host[k] for k in opts.pass_env if k in host})
        env["HOME"] = f"{root}/home"
        env["TMPDIR"] = f"{root}/tmp"
        env.update(opts.env)
        env[MARKER] = self.sandbox_id
        self._env = env
        if opts.tracking != "marker":
            cg_root = cgroups.find_root()
            if cg_root is not None:
                self._cgroup = (self._spare_cgroups and self._spare_cgroups.take(cg_root)) or cg_root.create(self.sandbox_id)
            if self._cgroup is None and opts.tracking == "cgroup":
                raise SandboxError(
                    "tracking='cgroup' needs a writable cgroup hierarchy (cgroup v2 or the v1 freezer, as root); "
                    "none was found: use tracking='auto' or 'marker'"
                )
        record = {**owner_record(opts.max_lifetime), "sandbox_id": self.sandbox_id,
                  "cgroup": str(self._cgroup.path) if self._cgroup else None}
        self._owner_file = _write_owner(self.root, _COMPACT.encode(record).encode(),
                                        replace=reused is not None)
        if self._spares is not None and reused is None and not self._owner_file:
            self._made = Made.of(self.root)
            self._spares.learn(self._made)

    def _pick_uid(self, opts: LocalOptions) -> int | None:
        if opts.uid_range is None:
            return opts.user
        lo, hi = (int(x) for x in opts.uid_range.split("-"))
        locks = Path(tempfile.gettempdir()) / "hermes-uids"
        locks.mkdir(mode=0o700, exist_ok=True)
        start = lo + (hash(self.sandbox_id) % max(1, hi - lo + 1))
        for i in range(hi - lo + 1):
            uid = lo + (start - lo + i) % (hi - lo + 1)
            fd = os.open(locks / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this sandbox lives
            except BlockingIOError:
                os.close(fd)
                continue
            self._uid_lock = fd
            return uid
        raise SandboxError(f"every uid in uid_range {opts.uid_range} is in use by a live sandbox; widen the range")

    def argv(self, command: Command) -> list[str]:
        argv = super().argv(command)
        if getattr(self, "_uid", None) is None:
            return argv
        return ["setpriv", f"--reuid={self._uid}", f"--regid={self._uid}", "--clear-groups", "--", *argv]

    async def _own(self, path: str) -> None:
        """Files the driver wrote into the sandbox belong to the sandbox's user."""
        if getattr(self, "_uid", None) is not None:
            await run_blocking(_chown_tree, Path(self.path(path)), self._uid, self._root())

    @property
    def tracking(self) -> str:
        """How this sandbox's processes are tracked: ``cgroup v2 at ...``, or ``marker``."""
        return f"cgroup {self._cgroup.kind} at {self._cgroup.path}" if self._cgroup else "marker"

    def _launch(self, argv: list[str], *, direct: bool = False) -> tuple[list[str], str | None]:
        """How a command starts inside the sandbox's cgroup (if any), joining it before it runs:
        ``(argv, cgroup)`` — with ``direct`` (a one-shot command) and cgroup v2, the kernel starts
        it inside (``clone3``, no exec added: ``cgroup`` is the directory); else the argv joins.

        A shell string or any ``bash -c`` command joins in the very bash that runs it (no extra
        exec); anything else goes behind a tiny ``sh`` launcher. (Placing the forking driver thread in the cgroup instead
        costs a cgroup-v1 migration per command, ~12 ms here: far slower.)
        """
        cg = self._cgroup
        if cg is None:
            return argv, None
        if direct and cg.kind == "v2" and clone_into_cgroup():
            return argv, str(cg.path)
        if len(argv) >= 3 and argv[:2] == ["bash", "-c"]:
            procs = str(cg.path / "cgroup.procs")
            if len(argv) == 3:
                return ["bash", "-c", 'echo 0 > "$0" || exit 125; BASH_ARGV0=bash; eval "$1"', procs, argv[2]], None
            # `bash -c SCRIPT NAME ARGS...`: $0 and $1.. become NAME and ARGS inside the eval,
            # before the script's first word runs.
            return ["bash", "-c", 'echo 0 > "$0" || exit 125; BASH_ARGV0=$2; eval "shift 2; $1"',
                    procs, *argv[2:]], None
        return cg.launcher(argv), None

    def _env_for(self, env: Mapping[str, str] | None) -> dict[str, str]:
        if not env:
            return self._env
        merged = dict(self._env)
        merged.update(env)
        merged[MARKER] = self.sandbox_id
        return merged

    def _cwd(self, cwd: str | None) -> str:
        return self.path(cwd) if cwd else self.workdir

    async def exec(
        self,
        command: Command,
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        self._check_open()
        return await self._run(self.argv(command), self._cwd(cwd), self._env_for(env), stdin, timeout, self.output_limit)

    async def _exec_in_fresh_shell(self, words: list[str], *, timeout: float | None, max_output: int) -> ExecResult | None:
        # Host paths are sandbox paths: the program and environment bash would use are known
        # here (not with another uid, whose permissions the driver's checks would not see).
        if self._uid is not None or self.closed:
            return None
        child = fresh_shell_child(words, self._env, self.workdir)
        if child is None:
            return None
        return await self._run(words, self.workdir, child[1], None, timeout, max_output, child[0], as_job=True)

    async def _run(self, plain: list[str], cwd: str, env: Mapping[str, str], stdin: bytes | None,
                   timeout: float | None, max_output: int, executable: str | None = None,
                   as_job: bool = False) -> ExecResult:
        """Run ``plain`` to completion; ``as_job``: a death by signal gets the line the session
        shell prints for its foreground job (:func:`job_report`)."""
        self._ran = True
        died_by: list[int] | None = [] if as_job else None
        try:
            while True:
                argv, cgroup = self._launch(plain, direct=True)
                try:
                    code, data, timed_out = await run_subprocess(
                        argv, cwd=cwd, env=env, stdin=stdin, timeout=timeout, track=self._pgids,
                        max_output=max_output, cgroup=cgroup, executable=executable if argv is plain else None,
                        died_by=died_by, on_start=self._while_a_child_runs,
                    )
                    break
                except CloneRefused:  # nothing started; clone_into_cgroup() is off: the launcher now
                    continue
        except (FileNotFoundError, NotADirectoryError, PermissionError) as e:
            return ExecResult(127 if isinstance(e, FileNotFoundError) else 126, f"{e}\n")
        output = data.decode("utf-8", "replace")
        if died_by:
            output += job_report(*died_by, plain)
        if timed_out:
            output += timeout_note(timeout)
            return ExecResult(TIMEOUT_EXIT_CODE, output, timed_out=True)
        return ExecResult(code, output)

    async def spawn(
        self,
        command: Command,
        *,
        pty: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        self._check_open()
        self._ran = True
        argv = self.argv(command)
        if not pty:
            started, cgroup = self._launch(argv, direct=True)
            if cgroup is not None:  # started inside the cgroup by the kernel: nothing to join
                try:
                    proc = await spawn_subprocess(started, pty=False, cwd=self._cwd(cwd), env=self._env_for(env),
                                                  cgroup=cgroup)
                except CloneRefused:
                    pass  # the ways below
                else:
                    self._pgids.add(proc.pid)
                    self._while_a_child_runs()
                    return proc
        if self._cgroup is not None and not pty and tuple(argv) == ShellSession.ARGV:
            # The session shell reads its commands from stdin: its first line joins the cgroup,
            # before any command of the caller's can run (no launcher exec, ~0.5 ms).
            proc = await spawn_subprocess(argv, pty=False, cwd=self._cwd(cwd), env=self._env_for(env))
            self._pgids.add(proc.pid)
            procs = shlex.quote(str(self._cgroup.path / "cgroup.procs"))
            await proc.write(f"echo 0 > {procs} || exit 125\n".encode())
            self._while_a_child_runs()
            return proc
        proc = await spawn_subprocess(self._launch(argv)[0], pty=pty, cwd=self._cwd(cwd), env=self._env_for(env))
        self._pgids.add(proc.pid)
        return proc

    def _while_a_child_runs(self, _pid: int = 0) -> None:
        """Work that can wait until the driver waits anyway: a spare cgroup for a later sandbox
        (the child just started runs on its own meanwhile)."""
        if self._cgroup is not None and self._spare_cgroups is not None:
            self._spare_cgroups.make_one()

    def host_pids(self) -> list[int] | None:
        """The processes in this sandbox's cgroup (none once it is removed); ``None`` with marker
        tracking, where only a scan of ``/proc`` can find a process that left its group."""
        return self._cgroup.pids() if self._cgroup is not None else None

    # ------------------------------------------------------------------ files (native)

    # Files: the hardened native channel (see _local_files), on the bounded file pool.

    def _root(self) -> Path:
        if self.root is None:
            raise SandboxError(f"sandbox {self.sandbox_id} is not started")
        return self.root

    async def write_bytes(self, path: str, data: bytes) -> None:
        await run_blocking(files.write_atomic, Path(self.path(path)), data, self._root(), what=f"writing {path!r}")
        await self._own(path)

    async def read_bytes(self, path: str) -> bytes:
        return await run_blocking(
            files.read_regular, Path(self.path(path)), self._root(), self.max_read_bytes, what=f"reading {path!r}"
        )

    async def put_file(self, local_path, remote_path: str) -> int:
        n = await run_blocking(files.copy_in, Path(local_path), Path(self.path(remote_path)), self._root(),
                               timeout=None, what=f"uploading {str(local_path)!r}")
        await self._own(remote_path)
        return n

    async def get_file(self, remote_path: str, local_path) -> int:
        return await run_blocking(files.copy_out, Path(self.path(remote_path)), Path(local_path), self._root(),
                                  self.max_download_bytes, timeout=None, what=f"downloading {remote_path!r}")

    async def put_dir(self, local_dir, remote_dir: str) -> list[str]:
        names = await run_blocking(files.copytree_in, Path(local_dir), Path(self.path(remote_dir)), self._root(),
                                   timeout=None, what=f"uploading {str(local_dir)!r}")
        await self._own(remote_dir)
        return names

    async def get_dir(self, remote_dir: str, local_dir, *, keep_special: bool = False,
                      skipped: list[str] | None = None) -> list[str]:
        return await run_blocking(
            files.copytree_out, Path(self.path(remote_dir)), Path(local_dir), self._root(),
            max_bytes=self.max_download_bytes, keep_special=keep_special, skipped=skipped,
            timeout=None, what=f"downloading {remote_dir!r}",
        )

    async def stat(self, path: str, *, follow_symlinks: bool = True) -> FileInfo:
        return await run_blocking(_stat, self.path(path), follow_symlinks, what=f"stat of {path!r}")

    # ------------------------------------------------------------------ teardown

    def _close_now(self) -> bool:
        """The usual close, without waiting: nothing runs any more (an empty cgroup is one rmdir,
        a sandbox that ran nothing has nothing to find) and the directory is a spare or a
        skeleton removed in a few syscalls. Anything else is left to :meth:`_close`."""
        self._kill_groups()
        if self._cgroup is not None:
            if not self._cgroup.remove_if_empty():
                return False
        elif self._ran:
            return False  # marker tracking: a scan of /proc, off the loop
        if self.root is not None and not self._keep_as_spare(True) and not _remove_pristine(
                self.root, owner_file=self._owner_file):
            return False
        self._release_uid()
        return True

    def _release_uid(self) -> None:
        lock = getattr(self, "_uid_lock", None)
        if lock is not None:
            self._uid_lock = None
            os.close(lock)  # the uid is free for the next sandbox

    def _kill_groups(self) -> None:
        for pgid in self._pgids:
            killpg(pgid, signal.SIGKILL)
        self._pgids.clear()

    async def _close(self) -> None:
        self._kill_groups()
        # Whether no process of the sandbox can be left (its directory may then be a spare: a
        # survivor would find its working directory in the next sandbox).
        none_left = not self._ran
        if self._cgroup is not None:
            # Everything the sandbox started, however it hid (marker dropped, own session,
            # re-parented): the cgroup holds it, so no /proc scan is needed. An empty cgroup
            # (nothing ran, or everything already exited) is one rmdir, done here.
            if self._cgroup.remove_if_empty():
                none_left = True
            else:
                await run_teardown(self._cgroup.remove)
                none_left = not self._cgroup.path.exists()
        elif self.root is not None and self._ran:
            # Marker tracking: anything that escaped its process group (setsid, double fork)
            # still carries the sandbox marker in its environment (unless it dropped it).
            for _ in range(20):
                if self._sweeper is not None:
                    found = await self._sweeper.sweep(self.sandbox_id)
                else:
                    found = await run_teardown(sweep_marked, self.sandbox_id)
                if not found:
                    break
                await asyncio.sleep(0.01)
        if self.root is not None and not self._keep_as_spare(none_left) and not _remove_pristine(
                self.root, owner_file=self._owner_file):
            await run_teardown(shutil.rmtree, self.root, True)
        self._release_uid()

    def _keep_as_spare(self, none_left: bool) -> bool:
        """Hand the emptied directory to the spares (``False``: it is to be removed)."""
        made, self._made = self._made, None
        if self._spares is None or made is None or self._owner_file or not none_left:
            return False
        # A record without a lifetime stands for the spare as it is (this driver's; sweeps know
        # a spare by its name): not rewriting it saves an xattr block write per close (~70 us
        # with 100 sandboxes closing at once). One that can expire is replaced: a sweep must
        # never remove a live driver's spare, which may be taken at that moment.
        keep = self.options.max_lifetime is None
        return self._spares.give(made, None if keep else _spare_record(int(time.time()), os.getpid()), OWNER_XATTR)


@functools.lru_cache(maxsize=2)
def _spare_record(second: int, pid: int) -> bytes:
    """The owner record of a spare (this driver's; made once a second: ``created`` is only
    read by sweeps, to the second)."""
    return _COMPACT.encode({**owner_record(), "created": float(second), "sandbox_id": None, "spare": True}).encode()


def _parent_dir(root: str | None) -> str:
    """The absolute directory sandbox directories are made in (made if missing)."""
    parent = os.path.abspath(root or tempfile.gettempdir())
    if root and not os.path.isdir(parent):
        Path(parent).mkdir(parents=True, exist_ok=True)
    return parent



def _write_owner(root: Path, record: bytes, *, replace: bool = False) -> bool:
    """Record the owner on the sandbox directory: as an xattr where the filesystem has them
    (ext4, xfs, btrfs, tmpfs since Linux 6.6), else as ``owner.json``; ``True`` for the file.
    ``replace``: the directory is a spare, whose record this replaces."""
    try:
        os.setxattr(root, OWNER_XATTR, record, os.XATTR_REPLACE if replace else os.XATTR_CREATE)
        return False
    except OSError:
        pass
    fd = os.open(root / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, record)
    finally:
        os.close(fd)
    return True


def _remove_pristine(root: Path, most: int = 16, *, owner_file: bool = True) -> bool:
    """Remove a sandbox directory that holds little more than its skeleton (at most ``most``
    files or links directly in ``work``, ``home`` and ``tmp``, such as the shell's jobs file)
    with a handful of syscalls that never follow a link; ``False`` if it holds more (a
    subdirectory, many files), for ``shutil.rmtree`` to deal with off the event loop."""
    try:
        for sub in SKELETON:
            d = root / sub
            with os.scandir(d) as it:
                names = []
                for entry in it:
                    if len(names) == most or entry.is_dir(follow_symlinks=False):
                        return False
                    names.append(entry.name)
            for name in names:
                os.unlink(d / name)
            os.rmdir(d)
        if owner_file:
            os.unlink(root / OWNER_FILE)
        os.rmdir(root)
    except OSError:
        return False
    return True


def _chown_tree(path: Path, uid: int, root: Path) -> None:
    """chown ``path`` (and a tree under it) to ``uid``, never following links, and the
    directories between the sandbox root and it (made by the driver)."""
    todo = [path]
    parent = path.parent
    while parent != root and str(parent).startswith(str(root)):
        todo.append(parent)
        parent = parent.parent
    for p in todo:
        try:
            os.chown(p, uid, uid, follow_symlinks=False)
        except OSError:
            pass
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirs, names in os.walk(path):
            for n in dirs + names:
                try:
                    os.chown(os.path.join(dirpath, n), uid, uid, follow_symlinks=False)
                except OSError:
                    pass


def _stat(path: str, follow: bool) -> FileInfo:
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return FileInfo("missing")
    mode = st.st_mode
    for test, kind in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "char"),
                       (stat.S_ISBLK, "block")):
        if test(mode):
            return FileInfo(kind, st.st_size if kind == "file" else 0)
    return FileInfo("other")


def sweep_marked(sandbox_id: str) -> int:
    """SIGKILL every process whose environment carries this sandbox's marker; return how many
    (plus any process that could not be read, so the caller looks again)."""
    counts = kill_marked({sandbox_id})
    return counts.get(sandbox_id, 0) + counts.get(UNSURE, 0)


#: Key of :func:`kill_marked`'s result counting processes it could not read (mid-``execve``).
UNSURE = "?"
_PF_KTHREAD = 0x00200000


def _mid_exec(pid: str) -> bool:
    """An empty environment belongs to a kernel thread, a zombie, or a process mid-execve."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != b"Z" and not int(fields[6]) & _PF_KTHREAD


def kill_marked(sandbox_ids: set[str]) -> dict[str, int]:
    """One pass over ``/proc``: SIGKILL processes (and their groups) marked with any of the ids.

    Returns how many live processes were found per id.
    """
    key = f"{MARKER}=".encode()
    me = os.getpid()
    found: dict[str, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if not env and _mid_exec(entry.name):
            # A process in the middle of execve shows an empty environment for a moment; it may
            # be ours, so every caller looks again (see LocalSandbox._close).
            found[UNSURE] = found.get(UNSURE, 0) + 1
            continue
        at = env.find(key)
        if at < 0 or (at > 0 and env[at - 1] != 0):
            continue
        sid = env[at + len(key) : env.find(b"\0", at)].decode(errors="replace")
        if sid not in sandbox_ids:
            continue
        pid = int(entry.name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue  # a zombie waiting for its parent to reap it: already dead
        except (OSError, IndexError):
            continue
        found[sid] = found.get(sid, 0) + 1
        try:
            killpg(os.getpgid(pid), signal.SIGKILL)
        except ProcessLookupError:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


class MarkedProcessSweeper:
    """Coalesces the ``/proc`` sweeps of sandboxes closing at the same time into shared passes.

    One per Runtime (made in the registration hook): 64 rollouts ending together cost a few
    scans of ``/proc`` instead of 64.
    """

    def __init__(self) -> None:
        self._passes: Coalescer[str, int] = Coalescer(self._kill)

    async def sweep(self, sandbox_id: str) -> int:
        return await self._passes.ask(sandbox_id)

    @staticmethod
    async def _kill(sandbox_ids: list[str]) -> dict[str, int]:
        counts = await run_teardown(kill_marked, set(sandbox_ids))
        unsure = counts.get(UNSURE, 0)
        return {sid: counts.get(sid, 0) + unsure for sid in sandbox_ids}


def _read_owner(d: Path) -> dict | None:
    try:
        raw = os.getxattr(d, OWNER_XATTR, follow_symlinks=False)
    except OSError:
        try:
            raw = (d / OWNER_FILE).read_bytes()
        except OSError:
            return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def sweep(
    older_than: float | None = None, root: str | None = None, *, force: bool = False, options: Any = None
) -> list[str]:
    """Remove local sandboxes whose driver is gone (or that passed their ``max_lifetime``):
    their processes (cgroup and marker) and directories. A live driver's sandbox is never
    touched unless ``force``; ``older_than`` (seconds) only narrows the set further."""
    import time

    if root is None and options:
        root = (options.get("root") if isinstance(options, dict) else getattr(options, "root", None))
    base = Path(root or tempfile.gettempdir())
    now = time.time()
    removed = []
    for d in sorted(base.glob("hermes-*")):
        if not d.is_dir() or not (d / "work").is_dir():
            continue
        owner = _read_owner(d)
        created = float(owner.get("created") or 0) if owner else d.stat().st_mtime
        if older_than and now - created < older_than:
            continue
        if not force:
            if owner is None:
                continue  # no owner record: not ours to judge (use --force)
            if owner_alive(owner, now=now):
                continue
        if (owner or {}).get("spare") or d.name.startswith(SPARE_PREFIX):  # an emptied directory kept for reuse: no process of its own
            await run_teardown(shutil.rmtree, d, True)
            removed.append(str(d))
            continue
        sandbox_id = (owner or {}).get("sandbox_id") or d.name.removeprefix("hermes-").rsplit("-", 1)[0]
        cg_path = (owner or {}).get("cgroup")
        if cg_path and Path(cg_path).is_dir():
            await run_teardown(cgroups.SandboxCgroup(Path(cg_path), cgroups.kind_of(Path(cg_path))).remove)
        await run_teardown(sweep_marked, sandbox_id)
        await run_teardown(shutil.rmtree, d, True)
        removed.append(str(d))
    # Empty cgroups a dead driver made ahead (never a live one's): host bookkeeping, under no
    # ``root``, so not listed among the sandboxes removed.
    cgroups.sweep_spares()
    return removed


__all__ = ["LocalOptions", "LocalSandbox", "MarkedProcessSweeper", "PipeProcess", "SpareCgroups", "kill_marked", "sweep", "sweep_marked"]
