"""The generic file channel for backends that only have exec/spawn, and tar helpers that
native channels share.

Bytes stream through one command's stdin or stdout — never base64 in argv, never through the
model-facing output truncation — and every transfer is checked against a sha256 computed on the
other side. Backends with a native channel (local filesystem, Docker archive API, SFTP) override
the ``Sandbox`` file methods instead.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import tarfile
import tempfile
from pathlib import Path

from ..errors import TransferError
from ._types import Spawner

CHUNK = 1 << 20

#: Default caps (overridden per sandbox by ``Sandbox.max_read_bytes`` / ``max_download_bytes``,
#: which the Runtime sets from ``HermesConfig``): bytes read into driver memory, and bytes of
#: file data a download may write to the host disk.
MAX_READ_BYTES = 256 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 10 * 1024 * 1024 * 1024


def write_sparse(f, data: bytes) -> None:
    """Write ``data`` at ``f``'s position, leaving a hole for an all-zero chunk (so a sparse file
    from a sandbox stays sparse on the host). Call ``f.truncate(size)`` at the end."""
    if data and data.count(0) == len(data):
        f.seek(len(data), os.SEEK_CUR)
    else:
        f.write(data)

# $1 = destination, $2 = expected sha256. Writes to a temporary name, checks, then renames.
_PUT = r"""
set -u
d=$(dirname -- "$1"; echo x); d=${d%??}
mkdir -p -- "$d" || exit 2
t="$1.hermes-part-$$"
cat > "$t" || { rm -f -- "$t"; exit 2; }
got=$(sha256sum < "$t") || { rm -f -- "$t"; exit 2; }
got=${got%% *}
if [ "$got" != "$2" ]; then rm -f -- "$t"; echo "sha256 mismatch in sandbox: got $got"; exit 3; fi
mv -f -- "$t" "$1" || { rm -f -- "$t"; exit 2; }
"""

# $1 = source, $2 = the most bytes the caller takes. Prints "HERMES <sha256> <size>\n", then
# the raw bytes. Only regular files are read: a FIFO or device would block or never end.
_GET = r"""
if [ -d "$1" ]; then echo "is a directory: $1"; exit 21; fi
if [ ! -e "$1" ]; then echo "no such file: $1"; exit 2; fi
if [ ! -f "$1" ]; then echo "not a regular file (a FIFO, socket or device): $1"; exit 22; fi
s=$(stat -L -c %s -- "$1" 2>/dev/null) || s=$(wc -c < "$1") || exit 1
if [ "$s" -gt "$2" ]; then echo "too large: $s bytes"; exit 27; fi
h=$(sha256sum < "$1") || exit 1
printf 'HERMES %s %s\n' "${h%% *}" "$s"
exec cat -- "$1"
"""


async def _stream_in(sandbox: Spawner, dest: str, chunks, digest: str) -> None:
    proc = await sandbox.spawn(["sh", "-c", _PUT, "sh", dest, digest])
    reader = asyncio.ensure_future(_drain(proc))  # read while writing: a full pipe must not stall
    code = await _feed(proc, chunks)
    out = (await reader).decode("utf-8", "replace").strip()
    if code != 0:
        raise TransferError(f"upload to {dest!r} failed (exit {code}): {out or 'no output'}")


async def _feed(proc, chunks) -> int | None:
    """Stream ``chunks`` into ``proc``'s stdin, close it and return the exit code.

    If the remote side stops reading early (it failed), the write error is not the story:
    the exit code and the remote output are, so they are what the caller reports.
    """
    from ..errors import ProcessError

    try:
        try:
            async for chunk in chunks:
                await proc.write(chunk)
            await proc.close_stdin()
        except (ProcessError, OSError):
            pass
        return await proc.wait(60)
    finally:
        if proc.returncode is None:
            await proc.kill(grace=0.1)


async def _drain(proc) -> bytes:
    parts = []
    while chunk := await proc.read():
        parts.append(chunk)
    return b"".join(parts)


async def _aiter_bytes(data: bytes):
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]


async def _aiter_file(path: Path):
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


async def write_bytes(sandbox: Spawner, dest: str, data: bytes) -> None:
    await _stream_in(sandbox, dest, _aiter_bytes(data), hashlib.sha256(data).hexdigest())


async def put_file(sandbox: Spawner, local: Path, dest: str) -> int:
    digest = await asyncio.to_thread(_sha256_file, local)
    await _stream_in(sandbox, dest, _aiter_file(local), digest)
    return local.stat().st_size


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _cap(sandbox: Spawner, name: str, default: int) -> int:
    return int(getattr(sandbox, name, None) or default)


async def _stream_out(sandbox: Spawner, src: str, sink, max_bytes: int) -> int:
    """Stream ``src`` into ``sink(bytes)``; verify size and sha256; return the size."""
    proc = await sandbox.spawn(["sh", "-c", _GET, "sh", src, str(max_bytes)])
    try:
        header = bytearray()
        while b"\n" not in header:
            chunk = await proc.read()
            if not chunk:
                break
            header += chunk
        line, _, rest = bytes(header).partition(b"\n")
        if not line.startswith(b"HERMES "):
            code = await proc.wait(10)
            msg = (line + rest).decode("utf-8", "replace").strip()
            if code == 2 and msg.startswith("no such file"):
                raise FileNotFoundError(f"no such file in sandbox: {src!r}")
            if code == 21:
                raise IsADirectoryError(f"is a directory in sandbox: {src!r}")
            if code == 22:
                raise TransferError(f"refused to read {src!r}: not a regular file (a FIFO, socket or device)")
            if code == 27:
                raise TransferError(f"refused to read {src!r}: {msg}, more than the cap of {max_bytes} bytes")
            raise TransferError(f"download of {src!r} failed (exit {code}): {msg}")
        _, digest, size = line.decode().split(" ")
        h = hashlib.sha256()
        got = 0
        chunk = rest
        while True:
            if chunk:
                h.update(chunk)
                got += len(chunk)
                await sink(chunk)
            chunk = await proc.read(CHUNK)
            if not chunk:
                break
        code = await proc.wait(30)
    finally:
        if proc.returncode is None:
            await proc.kill(grace=0.1)
    if code != 0 or got != int(size) or h.hexdigest() != digest:
        raise TransferError(
            f"download of {src!r} was not byte-exact: expected {size} bytes sha256 {digest}, "
            f"got {got} bytes sha256 {h.hexdigest()} (exit {code})"
        )
    return got


async def read_bytes(sandbox: Spawner, src: str) -> bytes:
    parts: list[bytes] = []

    async def sink(b: bytes) -> None:
        parts.append(b)

    await _stream_out(sandbox, src, sink, _cap(sandbox, "max_read_bytes", MAX_READ_BYTES))
    return b"".join(parts)


async def get_file(sandbox: Spawner, src: str, local: Path) -> int:
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".hermes-part-")
    try:
        with os.fdopen(fd, "wb") as f:

            async def sink(b: bytes) -> None:
                write_sparse(f, b)

            n = await _stream_out(sandbox, src, sink, _cap(sandbox, "max_download_bytes", MAX_DOWNLOAD_BYTES))
            f.truncate(n)  # a file that ends in a hole
        os.replace(tmp, local)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def tar_dir(local: Path, out, *, filter=None) -> list[str]:
    """Write ``local``'s tree to ``out`` as a streamed PAX tar (symlinks kept as links, modes kept).

    Args:
        local: the directory on the host.
        out: a writable binary file object.
        filter: optional ``tarfile`` filter applied to each member (e.g. to set the owner).

    Returns:
        The relative paths of the files and symlinks written, in walk order.
    """
    names: list[str] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(local):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                full = Path(root) / name
                rel = full.relative_to(local).as_posix()
                tar.add(full, arcname=rel, recursive=False, filter=filter)
                if not full.is_dir() or full.is_symlink():
                    names.append(rel)
    return names


async def put_dir(sandbox: Spawner, local: Path, dest: str) -> list[str]:
    if not local.is_dir():
        raise NotADirectoryError(f"not a directory on the host: {str(local)!r}")
    with tempfile.TemporaryFile() as spool:
        names = await asyncio.to_thread(tar_dir, local, spool)
        spool.seek(0)
        proc = await sandbox.spawn(
            ["sh", "-c", 'mkdir -p -- "$1" && cd -- "$1" && tar -x -p -f -', "sh", dest]
        )

        async def spooled():
            while chunk := await asyncio.to_thread(spool.read, CHUNK):
                yield chunk

        reader = asyncio.ensure_future(_drain(proc))
        code = await _feed(proc, spooled())
        out = (await reader).decode("utf-8", "replace").strip()
    if code != 0:
        raise TransferError(f"upload of directory to {dest!r} failed (exit {code}): {out}")
    return names


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def skip_reason(member: tarfile.TarInfo, dest: str, keep_special: bool = False) -> str | None:
    """Why ``member`` is not recreated on the host (``None``: it is).

    Names that escape ``dest`` or write through a link are refused outright (the ``tar``
    filter raises); hard links must resolve inside ``dest`` (their *target*, through any link
    already extracted); symlinks that resolve outside ``dest``, FIFOs and device nodes are
    skipped unless ``keep_special``.
    """
    root = os.path.realpath(dest)
    if member.islnk():
        target = os.path.realpath(os.path.join(root, member.linkname))
        if os.path.isabs(member.linkname) or not _inside(target, root):
            raise TransferError(
                f"refused hard link {member.name!r} -> {member.linkname!r}: its target is outside "
                f"the destination {dest!r}"
            )
        if not os.path.lexists(target):
            return f"hard link to {member.linkname!r}, which was not extracted"
    if keep_special:
        return None
    if member.isfifo() or member.ischr() or member.isblk():
        return "FIFO or device node"
    if member.issym():
        base = os.path.dirname(os.path.join(root, member.name))
        target = os.path.realpath(os.path.join(base, member.linkname))
        if os.path.isabs(member.linkname) or not _inside(target, root):
            return f"symlink to {member.linkname!r}, outside the destination"
    return None


def _safe_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """The ``tar`` filter (no absolute or escaping names, no writing through links), plus the
    ``data`` filter's rule for hard links."""
    if member.islnk():
        tarfile.data_filter(member, dest)
    return tarfile.tar_filter(member, dest)


def extract_tar(
    fileobj,
    local: Path,
    *,
    keep_special: bool = False,
    max_bytes: int | None = None,
    skipped: list[str] | None = None,
) -> list[str]:
    """Extract a tar stream from a sandbox into ``local``, safely; return the relative paths of
    the non-directory members extracted.

    Nothing is written, linked or chmodded outside ``local``: escaping names and hard links
    whose target resolves outside are refused (``TransferError``). Symlinks that point outside
    ``local``, FIFOs and device nodes are not recreated unless ``keep_special``; their names
    (with the reason) are appended to ``skipped``. ``max_bytes`` caps the file data written
    (``TransferError`` past it), so a sandbox cannot fill the host disk.
    """
    names: list[str] = []
    local.mkdir(parents=True, exist_ok=True)
    written = 0
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if not name or name == ".":
                continue
            member.name = name
            why = skip_reason(member, str(local), keep_special)
            if why is not None:
                if skipped is not None:
                    skipped.append(f"{name}: {why}")
                continue
            if member.isfile():
                written += member.size
                if max_bytes is not None and written > max_bytes:
                    raise TransferError(
                        f"download stopped at {max_bytes} bytes (max_download_bytes): the "
                        f"directory holds more (at {name!r}); raise the cap to take it all"
                    )
            tar.extract(member, local, filter=_safe_member)
            if not member.isdir():
                names.append(name)
    return names


async def get_dir(sandbox: Spawner, src: str, local: Path, *, keep_special: bool = False,
                  skipped: list[str] | None = None) -> list[str]:
    cap = _cap(sandbox, "max_download_bytes", MAX_DOWNLOAD_BYTES)
    proc = await sandbox.spawn(["sh", "-c", 'cd -- "$1" && exec tar -c -f - . 2>/dev/null', "sh", src])
    with tempfile.TemporaryFile() as spool:
        try:
            spooled = 0
            while chunk := await proc.read(CHUNK):
                spooled += len(chunk)
                if spooled > cap + (1 << 20):  # tar headers are small: the data is over the cap
                    raise TransferError(
                        f"download of directory {src!r} stopped at {cap} bytes (max_download_bytes); "
                        "raise the cap to take it all"
                    )
                await asyncio.to_thread(spool.write, chunk)
            code = await proc.wait(30)
        finally:
            if proc.returncode is None:
                await proc.kill(grace=0.1)
        if code != 0:
            check = await sandbox.exec(["test", "-d", src])
            if check.exit_code != 0:
                raise FileNotFoundError(f"no such directory in sandbox: {src!r}")
            raise TransferError(f"download of directory {src!r} failed (tar exit {code})")
        spool.seek(0)
        return await asyncio.to_thread(
            functools.partial(extract_tar, spool, local, keep_special=keep_special, max_bytes=cap, skipped=skipped)
        )
