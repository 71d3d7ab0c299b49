"""The local backend's native file channel, hardened against what a sandbox may hold.

A sandbox's directory is written by the model. Reading from it never opens a FIFO, socket or
device (that would block or never end), follows a symlink only while it stays inside the
sandbox, keeps holes of sparse files as holes and stops at a byte cap. Writing into it never
goes through a symlink the model planted to reach outside. Copying a tree out recreates no
symlink that points outside the destination and no FIFO or device node, unless asked.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from hermes_core.errors import TransferError

__all__ = ["copy_in", "copy_out", "copytree_in", "copytree_out", "read_regular", "write_atomic"]

CHUNK = 1 << 20
FAST_CHUNK = 1 << 24
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _confined(path: Path, root: Path) -> bool:
    """Whether ``path`` names a place inside the sandbox (lexically): only there are links
    checked. An explicit host path outside the sandbox is the caller's own choice."""
    return _inside(os.path.abspath(path), os.path.abspath(root))


def _open_regular(path: Path, root: Path) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without blocking; links must stay inside ``root``."""
    if _confined(path, root):
        real = os.path.realpath(path)
        if not _inside(real, os.path.realpath(root)):
            raise TransferError(
                f"refused to read {str(path)!r}: it is a symlink to {real!r}, outside the sandbox"
            )
        target = real
    else:
        target = str(path)
    try:
        fd = os.open(target, _READ_FLAGS)
    except IsADirectoryError:
        raise IsADirectoryError(f"is a directory in sandbox: {str(path)!r}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"is a directory in sandbox: {str(path)!r}")
        if not stat.S_ISREG(st.st_mode):
            raise TransferError(f"refused to read {str(path)!r}: not a regular file (a FIFO, socket or device)")
        if _confined(path, root):
            # What was opened, not what was checked: a link swapped in between is caught here.
            opened = os.readlink(f"/proc/self/fd/{fd}")
            if not _inside(opened, os.path.realpath(root)):
                raise TransferError(f"refused to read {str(path)!r}: it resolves outside the sandbox")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular(path: Path, root: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file, at most ``max_bytes`` of them (else ``TransferError``)."""
    fd, st = _open_regular(path, root)
    with os.fdopen(fd, "rb") as f:
        if st.st_size > max_bytes:
            raise TransferError(
                f"refused to read {str(path)!r} into memory: {st.st_size} bytes is more than the cap of "
                f"{max_bytes} (max_read_bytes); use get_file / download_file"
            )
        data = f.read(st.st_size + 1)  # (not max_bytes + 1: read() allocates what it is asked for)
        if len(data) > st.st_size:  # it grew while being read: take the rest, up to the cap
            data += f.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise TransferError(f"{str(path)!r} grew past the cap of {max_bytes} bytes while being read")
    return data


def _copy_sparse(src_fd: int, dst_fd: int, size: int, max_bytes: int, name: str) -> int:
    """Copy the data regions of ``src_fd`` (holes stay holes); returns the data bytes copied."""
    copied = 0
    pos = 0
    fast = [hasattr(os, "copy_file_range")]
    while pos < size:
        try:
            data_at = os.lseek(src_fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # only a hole is left
                break
            data_at = pos  # no SEEK_DATA support: copy everything
        try:
            hole_at = os.lseek(src_fd, data_at, os.SEEK_HOLE)
        except OSError:
            hole_at = size
        os.lseek(src_fd, data_at, os.SEEK_SET)
        os.lseek(dst_fd, data_at, os.SEEK_SET)
        left = hole_at - data_at
        while left > 0 and fast[0]:
            # In the kernel, no bytes through Python (on one file system; else read/write below).
            try:
                n = os.copy_file_range(src_fd, dst_fd, min(FAST_CHUNK, left, max_bytes + 1 - copied))
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                    raise
                fast[0] = False
                break
            if n == 0:
                left = 0
                break
            copied += n
            left -= n
            if copied > max_bytes:
                raise TransferError(
                    f"download of {name!r} stopped at {max_bytes} bytes of data (max_download_bytes)"
                )
        while left > 0:
            chunk = os.read(src_fd, min(CHUNK, left))
            if not chunk:
                left = 0
                break
            copied += len(chunk)
            if copied > max_bytes:
                raise TransferError(
                    f"download of {name!r} stopped at {max_bytes} bytes of data (max_download_bytes)"
                )
            view = memoryview(chunk)
            while view:
                view = view[os.write(dst_fd, view):]
            left -= len(chunk)
        pos = hole_at
    os.ftruncate(dst_fd, size)
    return copied


_RENAME_EXCHANGE = 2
_renameat2: list = []  # [libc function] once looked up, [None] where there is none


def _exchange(a: str, b: str) -> bool:
    """Swap two names atomically (``renameat2(RENAME_EXCHANGE)``); ``False`` where the C library,
    kernel or file system cannot."""
    if not _renameat2:
        try:
            import ctypes  # here, not at import: it costs milliseconds and most runs never write

            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            _renameat2.append((fn, ctypes.get_errno))
        except (OSError, AttributeError):
            _renameat2.append(None)
    if _renameat2[0] is None:
        return False
    fn, get_errno = _renameat2[0]
    if fn(-100, os.fsencode(a), -100, os.fsencode(b), _RENAME_EXCHANGE) == 0:  # AT_FDCWD
        return True
    if get_errno() in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOENT):
        return False
    raise OSError(get_errno(), os.strerror(get_errno()), b)


def install(tmp: str, dest: Path) -> None:
    """Put the finished file ``tmp`` at ``dest`` in one step: a reader sees the old file or the
    new one, never half of either and never no file. A link at ``dest`` is replaced itself,
    never followed.

    Renaming over an existing file makes ext4 (``auto_da_alloc``) start writing the new file's
    data out at once, which costs more than the write itself; swapping the two names
    (``RENAME_EXCHANGE``) and unlinking the old file does not, and is just as atomic.
    """
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        os.replace(tmp, dest)  # nothing to replace: a plain rename
        return
    if (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) and _exchange(tmp, str(dest)):
        swapped = os.lstat(tmp)
        if stat.S_ISDIR(swapped.st_mode):  # a directory was swapped in meanwhile: put it back
            _exchange(tmp, str(dest))
            raise IsADirectoryError(f"is a directory: {str(dest)!r}")
        os.unlink(tmp)  # the old file (or link), now under the temporary name
        return
    os.replace(tmp, dest)


def _temp_beside(dest: Path) -> tuple[int, str]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=dest.parent, prefix=".hermes-part-")


def copy_out(src: Path, dest: Path, root: Path, max_bytes: int) -> int:
    """A sandbox file to the host (atomic, sparse-aware, capped); returns its size."""
    fd, st = _open_regular(src, root)
    try:
        out_fd, tmp = _temp_beside(dest)
        try:
            _copy_sparse(fd, out_fd, st.st_size, max_bytes, str(src))
            os.fchmod(out_fd, stat.S_IMODE(st.st_mode) & 0o777)
            os.close(out_fd)
            out_fd = -1
            install(tmp, dest)
        except BaseException:
            if out_fd >= 0:
                os.close(out_fd)
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        os.close(fd)
    return st.st_size


def _safe_parent(dest: Path, root: Path) -> Path:
    """The real directory ``dest`` goes into, after checking that no link the sandbox planted
    leads it outside ``root``; created if missing."""
    if not _confined(dest, root):
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest.parent
    real_root = os.path.realpath(root)
    parent = os.path.realpath(dest.parent)
    if not _inside(parent, real_root):
        raise TransferError(
            f"refused to write {str(dest)!r}: a symlink in its path leads outside the sandbox ({parent!r})"
        )
    os.makedirs(parent, exist_ok=True)
    if not _inside(os.path.realpath(parent), real_root):  # a link swapped in meanwhile
        raise TransferError(f"refused to write {str(dest)!r}: its directory moved outside the sandbox")
    return Path(parent)


def write_atomic(dest: Path, data: bytes, root: Path) -> None:
    """Write ``data`` to ``dest`` (a temporary name, then a rename: never half a file)."""
    parent = _safe_parent(dest, root)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".hermes-part-")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        install(tmp, parent / dest.name)  # replaces a link at dest itself, never its target
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise


def copy_in(src: Path, dest: Path, root: Path) -> int:
    """A host file into the sandbox (atomic); returns its size."""
    if src.is_dir():
        raise IsADirectoryError(f"is a directory: {str(src)!r}")
    parent = _safe_parent(dest, root)
    with open(src, "rb") as f:
        st = os.fstat(f.fileno())
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".hermes-part-")
        try:
            size = _copy_sparse(f.fileno(), fd, st.st_size, 1 << 62, str(src)) if stat.S_ISREG(st.st_mode) else 0
            got = os.fstat(fd).st_size
            if got != st.st_size:
                raise TransferError(f"copy of {str(src)!r} is {got} bytes, source has {st.st_size}")
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            os.close(fd)
            fd = -1
            install(tmp, parent / dest.name)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
    del size
    return st.st_size


def copytree_in(src: Path, dest: Path, root: Path) -> list[str]:
    """A host tree into the sandbox (modes and symlinks kept); returns the relative paths."""
    if not src.is_dir():
        raise NotADirectoryError(f"not a directory on the host: {str(src)!r}")
    names: list[str] = []
    base = _safe_parent(dest / "x", root)
    for dirpath, dirs, files in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        here = base / rel
        for d in sorted(dirs):
            s = Path(dirpath, d)
            if s.is_symlink():
                _replace_link(os.readlink(s), here / d, root)
                names.append((rel / d).as_posix())
            else:
                target = _safe_parent(here / d / "x", root)
                os.chmod(target, stat.S_IMODE(s.stat().st_mode))
        for name in sorted(files):
            s = Path(dirpath, name)
            if s.is_symlink():
                _replace_link(os.readlink(s), here / name, root)
            else:
                copy_in(s, here / name, root)
            names.append((rel / name).as_posix())
        dirs[:] = [d for d in dirs if not Path(dirpath, d).is_symlink()]
    return sorted(names)


def _replace_link(target: str, at: Path, root: Path) -> None:
    parent = _safe_parent(at, root)
    tmp = parent / f".hermes-link-{os.getpid()}-{id(at)}"
    os.symlink(target, tmp)
    os.replace(tmp, parent / at.name)


def copytree_out(
    src: Path, dest: Path, root: Path, *, max_bytes: int, keep_special: bool = False, skipped: list[str] | None = None
) -> list[str]:
    """A sandbox tree to the host; returns the relative paths of files and links recreated.

    Never follows a link inside the tree; recreates a symlink only when it resolves inside
    ``dest``, and FIFOs or device nodes only with ``keep_special`` (sockets never); stops past
    ``max_bytes`` of file data; holes of sparse files stay holes.
    """
    if _confined(src, root) and not _inside(os.path.realpath(src), os.path.realpath(root)):
        raise TransferError(f"refused to copy {str(src)!r}: it is a symlink outside the sandbox")
    if not src.is_dir():
        if not src.exists():
            raise FileNotFoundError(f"no such directory in sandbox: {str(src)!r}")
        raise NotADirectoryError(f"not a directory: {str(src)!r}")
    dest.mkdir(parents=True, exist_ok=True)
    real_dest = os.path.realpath(dest)
    names: list[str] = []
    budget = [max_bytes]

    def skip(rel: str, why: str) -> None:
        if skipped is not None:
            skipped.append(f"{rel}: {why}")

    def walk(s_dir: Path, d_dir: Path, rel: Path) -> None:
        with os.scandir(s_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            r = (rel / e.name).as_posix()
            st = e.stat(follow_symlinks=False)
            out = d_dir / e.name
            if stat.S_ISDIR(st.st_mode):
                out.mkdir(exist_ok=True)
                walk(Path(e.path), out, rel / e.name)
                os.chmod(out, stat.S_IMODE(st.st_mode) | 0o700)
            elif stat.S_ISREG(st.st_mode):
                fd = os.open(e.path, _READ_FLAGS | os.O_NOFOLLOW)
                try:
                    ofd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                    try:
                        budget[0] -= _copy_sparse(fd, ofd, os.fstat(fd).st_size, budget[0], r)
                        os.fchmod(ofd, stat.S_IMODE(st.st_mode))
                    finally:
                        os.close(ofd)
                finally:
                    os.close(fd)
                names.append(r)
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(e.path)
                where = os.path.realpath(os.path.join(d_dir, target))
                if (os.path.isabs(target) or not _inside(where, real_dest)) and not keep_special:
                    skip(r, f"symlink to {target!r}, outside the destination")
                    continue
                if out.is_symlink() or out.exists():
                    out.unlink()
                os.symlink(target, out)
                names.append(r)
            elif keep_special and stat.S_ISFIFO(st.st_mode):
                os.mkfifo(out, stat.S_IMODE(st.st_mode))
                names.append(r)
            elif keep_special and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                os.mknod(out, st.st_mode, st.st_rdev)
                names.append(r)
            else:
                skip(r, "FIFO, socket or device node")

    walk(src, dest, Path())
    return sorted(names)
