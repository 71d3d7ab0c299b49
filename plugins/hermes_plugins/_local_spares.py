"""Spare sandbox directories: an emptied sandbox directory kept for the next sandbox.

Making a sandbox directory (the root, ``work``, ``home``, ``tmp``) and removing it again is eight
directory operations on the host filesystem, ~0.3-0.8 ms of kernel time on ext4 here; renaming a
spare into place is one. A closed sandbox's directory becomes a spare only if nothing of the
sandbox is left in it and nothing about it was changed — the very directories that were made
(same inodes: nothing swapped in or mounted over them), their mode, owner, extended attributes
(ACLs included) and inode flags (``chattr``) as made, no subdirectory and at most a few files,
which are unlinked — so the next sandbox cannot tell a spare from a fresh directory. Anything
else is removed as before.

Checking costs syscalls too (about ten per directory: open, stat, xattrs, inode flags, entries),
so a directory of the skeleton is fully checked only when its change time moved: an inode's
ctime changes with every change that matters here (an entry made or removed, mode, owner, xattr,
ACL, inode flag; nobody can set it back). Its ctime is trusted only once *settled* — recorded at
least ``SETTLE_NS`` (2 s) after it was last changed — so a change made later cannot carry the same
timestamp on a filesystem whose timestamps are as coarse as a second (or a clock tick). Until
then each directory is checked in full. (A wall clock stepped back by more than that while a
spare waits could defeat the witness; the root directory, renamed each time, is always checked.)

A spare is named ``hermes-spare-*`` beside the sandboxes and carries its driver's owner record
(the last sandbox's, when that one cannot expire; else a spare record), so a sweep removes the
spares of a dead driver like its sandboxes, never a live driver's; a live driver removes its own
when its Runtime closes (or at exit).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import stat
import time
from pathlib import Path

__all__ = ["SKELETON", "SPARE_PREFIX", "Made", "SpareDirectories"]

#: The name of a spare (beside the sandboxes; a sandbox id never starts with ``spare-``).
SPARE_PREFIX = "hermes-spare-"

#: What a sandbox directory holds (see ``LocalSandbox._start``).
SKELETON = ("work", "home", "tmp")
#: Files a directory of the skeleton may hold and still be emptied for reuse (the shell's jobs
#: file and the like); more, or any subdirectory, and the directory is removed instead.
MOST_FILES = 16
#: How long after a directory's last change its ctime is trusted as a witness of "unchanged"
#: (timestamps may be as coarse as 1 s; see the module docstring).
SETTLE_NS = 2_000_000_000
_FS_IOC_GETFLAGS = 0x80086601
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Made:
    """How a sandbox directory was made: each directory's identity and attributes, and for each
    directory of the skeleton the ctime at which it was last found pristine (``None``: never
    checked; ``_UNSETTLED``: not settled then; either way it is checked in full)."""

    __slots__ = ("dirs", "root", "stamps")

    def __init__(self, root: str, dirs: tuple[tuple[int, ...], ...],
                 stamps: tuple[int | None, ...] = (None, None, None)):
        self.root = root
        self.dirs = dirs  # per directory (root, then SKELETON): (dev, ino, mode, uid, gid)
        self.stamps = stamps

    @classmethod
    def of(cls, root: Path | str) -> Made:
        root = str(root)
        return cls(root, tuple(_identity(os.lstat(p)) for p in (root, *(f"{root}/{s}" for s in SKELETON))))


class SpareDirectories:
    """The spares of one Runtime's local sandboxes, per parent directory, at most ``most``."""

    def __init__(self, most: int = 256):
        self.most = most
        self._spares: dict[str, list[Made]] = {}
        # Extended attribute names and inode flags a fresh directory has here (per parent): what
        # a spare must still have. Learnt from the first directory made under each parent.
        self._baseline: dict[str, tuple[frozenset[str], frozenset[str], int | None]] = {}

    def learn(self, made: Made) -> None:
        """Note what a freshly made (and recorded) sandbox directory looks like."""
        key = os.path.dirname(made.root)
        if key in self._baseline:
            return
        try:
            root_attrs = frozenset(os.listxattr(made.root, follow_symlinks=False))
            sub_attrs = frozenset(os.listxattr(f"{made.root}/{SKELETON[0]}", follow_symlinks=False))
            fd = os.open(f"{made.root}/{SKELETON[0]}", _OPEN_DIR)
            try:
                flags = _flags(fd)
            finally:
                os.close(fd)
        except OSError:
            return
        self._baseline[key] = (root_attrs, sub_attrs, flags)

    def take(self, parent: str, prefix: str) -> Made | None:
        """A spare under ``parent``, renamed to a fresh ``prefix*`` name; ``None`` if there is
        none (or the one there was changed meanwhile: it is removed)."""
        pool = self._spares.get(parent)
        while pool:
            spare = pool.pop()
            target = f"{parent}/{prefix}{secrets.token_hex(4)}"
            try:
                if os.path.lexists(target):
                    raise OSError("taken")
                os.rename(spare.root, target)
                # What a process outside the sandbox may have done to the spare meanwhile:
                # written into it, or swapped one of its directories.
                fd = os.open(target, _OPEN_DIR)
                try:
                    if _identity(os.fstat(fd)) != spare.dirs[0]:
                        raise OSError("changed")
                    for i, sub in enumerate(SKELETON, start=1):
                        if _unchanged(fd, sub, spare.dirs[i], spare.stamps[i - 1]):
                            continue
                        sfd = os.open(sub, _OPEN_DIR, dir_fd=fd)
                        try:
                            if _identity(os.fstat(sfd)) != spare.dirs[i] or os.listdir(sfd):
                                raise OSError("changed")
                        finally:
                            os.close(sfd)
                finally:
                    os.close(fd)
                return Made(target, spare.dirs, spare.stamps)
            except OSError:
                _remove(target if os.path.lexists(target) else spare.root)
        return None

    def give(self, made: Made, record: bytes | None, owner_attr: str) -> bool:
        """Keep ``made`` (a closed sandbox's directory whose processes are all gone) as a spare if
        it is as it was made once its few files are unlinked; ``False``: remove it instead.
        ``record`` replaces the owner record (``None``: the one there stays)."""
        root = made.root
        parent = os.path.dirname(root)
        pool = self._spares.setdefault(parent, [])
        baseline = self._baseline.get(parent)
        if baseline is None or len(pool) >= self.most:
            return False
        root_attrs, sub_attrs, flags = baseline
        try:
            fd = os.open(root, _OPEN_DIR)
            try:
                if (_identity(os.fstat(fd)) != made.dirs[0] or frozenset(os.listxattr(fd)) != root_attrs
                        or _flags(fd) != flags or sorted(os.listdir(fd)) != _SORTED_SKELETON):
                    return False
                stamps = []
                for i, sub in enumerate(SKELETON, start=1):
                    if _unchanged(fd, sub, made.dirs[i], made.stamps[i - 1]):
                        stamps.append(made.stamps[i - 1])
                        continue
                    ctime = _empty_pristine(fd, sub, made.dirs[i], sub_attrs, flags)
                    if ctime is None:
                        return False
                    stamps.append(ctime)
            finally:
                os.close(fd)
            spare = f"{parent}/{SPARE_PREFIX}{secrets.token_hex(6)}"
            if os.path.lexists(spare):
                return False
            os.rename(root, spare)
        except OSError:
            return False
        if record is not None:
            try:
                os.setxattr(spare, owner_attr, record, os.XATTR_REPLACE, follow_symlinks=False)
            except OSError:
                _remove(spare)
                return True  # gone all the same
        pool.append(Made(spare, made.dirs, tuple(stamps)))
        return True

    def drain(self) -> int:
        """Remove every spare (the Runtime is closing); returns how many there were."""
        n = 0
        for pool in self._spares.values():
            while pool:
                _remove(pool.pop().root)
                n += 1
        return n

    def __len__(self) -> int:
        return sum(len(p) for p in self._spares.values())


_SORTED_SKELETON = sorted(SKELETON)


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid)


def _flags(fd: int) -> int | None:
    """The inode flags (``lsattr``) of an open file, ``None`` where the filesystem has none."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8))[:4], "little")
    except OSError:
        return None


def _empty_pristine(dir_fd: int, name: str, made: tuple[int, ...], attrs: frozenset[str], flags: int | None) -> int | None:
    """Unlink the few files in directory ``name`` (of ``dir_fd``; never a link) if it is the
    directory that was made, unchanged, and holds nothing else; ``None`` (nothing unlinked)
    otherwise. Else its stamp: its ctime once emptied if settled, else ``_UNSETTLED``."""
    fd = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if _identity(st) != made or st.st_nlink != 2 or frozenset(os.listxattr(fd)) != attrs or _flags(fd) != flags:
            return None
        names = os.listdir(fd)
        if len(names) > MOST_FILES:
            return None
        for entry in names:
            if stat.S_ISDIR(os.lstat(entry, dir_fd=fd).st_mode):
                return None  # (nlink counts subdirectories, but a rename may race it)
        for entry in names:
            os.unlink(entry, dir_fd=fd)
        if names:
            st = os.fstat(fd)
        return _stamp(st.st_ctime_ns)
    finally:
        os.close(fd)


#: A stamp that never matches a ctime: the directory is checked in full next time.
_UNSETTLED = -1


def _stamp(ctime_ns: int) -> int:
    """``ctime_ns`` if it is settled now (a later change cannot carry it), else ``_UNSETTLED``."""
    return ctime_ns if time.time_ns() - ctime_ns >= SETTLE_NS else _UNSETTLED


def _unchanged(dir_fd: int, name: str, made: tuple[int, ...], stamp: int | None) -> bool:
    """Whether directory ``name`` (of ``dir_fd``, never followed) is the one made and has not
    changed at all since it was found pristine with the settled ctime ``stamp``."""
    if stamp is None or stamp == _UNSETTLED:
        return False
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return st.st_ctime_ns == stamp and st.st_nlink == 2 and _identity(st) == made


def _remove(path: str) -> None:
    """Remove a spare (normally four empty directories), whatever it holds now."""
    try:
        for sub in SKELETON:
            os.rmdir(f"{path}/{sub}")
        os.rmdir(path)
    except OSError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
