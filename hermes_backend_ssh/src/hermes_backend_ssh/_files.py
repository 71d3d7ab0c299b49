"""The native file channel: SFTP on the sandbox's own connection.

Uploads go to a temporary name (inside the sandbox directory when the destination is, so a
transfer cut by a dropped connection leaves nothing beside the destination and its remains go
with the sandbox), are checked for size, and are renamed over the destination atomically. Reads
refuse anything but regular files (no blocking open of FIFOs or devices) and check the size.
Paths travel as SFTP path strings: never shell text.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import stat
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh

from hermes_core.errors import TransferError

from ._connect import RemoteDiskFullError

__all__ = ["SFTPFiles"]


class _CrossDevice(Exception):
    """The rename from ``.parts`` failed (most likely: the destination is another filesystem)."""



class SFTPFiles:
    """File operations of one sandbox over one SFTP session."""

    def __init__(
        self,
        sftp: asyncssh.SFTPClient,
        *,
        sandbox_dir: str,
        describe: Callable[[], str],
        lost: Callable[[], str | None],
    ) -> None:
        self.sftp = sftp
        self.sandbox_dir = sandbox_dir
        self._parts = posixpath.join(sandbox_dir, ".parts")
        self._describe = describe
        self._lost = lost
        #: Temporary upload names outside the sandbox directory that may still exist.
        self.pending: set[str] = set()

    # ------------------------------------------------------------------ helpers

    def _part_for(self, dest: str, sibling: bool = False) -> str:
        name = f".hermes-part-{secrets.token_hex(6)}"
        if dest.startswith(self.sandbox_dir + "/") and not sibling:
            return posixpath.join(self._parts, name)
        part = posixpath.join(posixpath.dirname(dest), name)
        self.pending.add(part)  # outside the sandbox directory: close() removes it if it stays
        return part

    async def _mkparents(self, dest: str) -> None:
        parent = posixpath.dirname(dest)
        try:
            attrs = await self.sftp.stat(parent)
        except asyncssh.SFTPNoSuchFile:
            try:
                await self.sftp.makedirs(parent, exist_ok=True)
            except asyncssh.SFTPError as e:
                raise NotADirectoryError(f"cannot create directory {parent!r} on {self._describe()}: {e.reason}") from None
            return
        if attrs.type != asyncssh.FILEXFER_TYPE_DIRECTORY:
            raise NotADirectoryError(f"not a directory on {self._describe()}: {parent!r}")

    async def _fail(self, what: str, e: BaseException, part: str | None, need: int) -> TransferError:
        """The error to raise for a failed transfer (after removing its temporary file)."""
        lost = self._lost()
        if part is not None and lost is None:
            try:
                await self.sftp.remove(part)
                self.pending.discard(part)
            except asyncssh.SFTPNoSuchFile:
                self.pending.discard(part)
            except (asyncssh.Error, OSError):
                pass
        if lost is not None or isinstance(e, (asyncssh.ConnectionLost, asyncssh.SFTPConnectionLost, asyncssh.DisconnectError)):
            return TransferError(f"{what} failed: the connection to {self._describe()} was lost ({lost or e}); nothing was written")
        if isinstance(e, asyncssh.SFTPError):
            full = await self._disk_full(part or self.sandbox_dir, need)
            if full:
                return RemoteDiskFullError(f"{what} failed: the remote disk is full ({full}); free space there or use another root")
            return TransferError(f"{what} failed on {self._describe()}: {e.reason}")
        return TransferError(f"{what} failed on {self._describe()}: {e}")

    async def _disk_full(self, path: str, need: int) -> str | None:
        try:
            vfs = await self.sftp.statvfs(posixpath.dirname(path) or "/")
        except (asyncssh.Error, OSError):
            return None
        free = vfs.bavail * vfs.frsize
        if free < max(need, 1) or vfs.favail == 0:
            return f"{free} bytes free under {posixpath.dirname(path)!r}, {need} needed"
        return None

    async def _commit(self, part: str, dest: str, size: int) -> None:
        got = (await self.sftp.stat(part)).size
        if got != size:
            raise TransferError(f"{size} bytes were sent but {got} arrived")
        try:
            await self.sftp.posix_rename(part, dest)
        except asyncssh.SFTPOpUnsupported:
            await self.sftp.rename(part, dest, flags=asyncssh.FXR_OVERWRITE)
        except asyncssh.SFTPFailure as e:
            try:
                if (await self.sftp.stat(dest)).type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                    raise IsADirectoryError(f"is a directory on {self._describe()}: {dest!r}") from None
            except asyncssh.SFTPNoSuchFile:
                pass
            if part.startswith(self._parts + "/"):
                raise _CrossDevice() from None
            raise e

    async def _upload(self, dest: str, what: str, size: int, send: Callable[[str], Awaitable[None]]) -> None:
        await self._mkparents(dest)
        part = self._part_for(dest)
        try:
            await send(part)
            try:
                await self._commit(part, dest, size)
            except _CrossDevice:
                # The destination is on another filesystem (through a symlink): send it again
                # to a name beside it, then rename there.
                await self._fail(what, OSError(), part, size)
                part = self._part_for(dest, sibling=True)
                await send(part)
                await self._commit(part, dest, size)
            self.pending.discard(part)
        except (IsADirectoryError, NotADirectoryError):
            await self._fail(what, OSError(), part, size)
            raise
        except TransferError as e:
            if isinstance(e, RemoteDiskFullError):
                raise
            err = await self._fail(what, e, part, size)
            raise (err if self._lost() else TransferError(f"{what} failed on {self._describe()}: {e}")) from None
        except (asyncssh.Error, OSError) as e:
            raise await self._fail(what, e, part, size) from None

    async def _regular(self, src: str) -> int:
        try:
            attrs = await self.sftp.stat(src)
        except asyncssh.SFTPNoSuchFile:
            raise FileNotFoundError(f"no such file on {self._describe()}: {src!r}") from None
        except asyncssh.SFTPPermissionDenied:
            raise PermissionError(f"permission denied on {self._describe()}: {src!r}") from None
        if attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
            raise IsADirectoryError(f"is a directory on {self._describe()}: {src!r}")
        if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR or attrs.permissions is None or not stat.S_ISREG(attrs.permissions):
            raise TransferError(f"not a regular file on {self._describe()} (refused: it could block): {src!r}")
        return int(attrs.size or 0)

    # ------------------------------------------------------------------ operations

    async def write_bytes(self, dest: str, data: bytes) -> None:
        async def send(part: str) -> None:
            async with self.sftp.open(part, "wb") as f:
                await f.write(data)

        await self._upload(dest, f"writing {dest!r}", len(data), send)

    async def put_file(self, local: Path, dest: str) -> int:
        if not local.is_file():
            if local.is_dir():
                raise IsADirectoryError(f"is a directory on the host: {str(local)!r}")
            raise FileNotFoundError(f"no such file on the host: {str(local)!r}")
        size = local.stat().st_size

        async def send(part: str) -> None:
            await self.sftp.put(os.fsencode(local), part)

        await self._upload(dest, f"uploading {str(local)!r} to {dest!r}", size, send)
        return size

    async def read_bytes(self, src: str) -> bytes:
        size = await self._regular(src)
        try:
            async with self.sftp.open(src, "rb") as f:
                data = await f.read()
        except (asyncssh.Error, OSError) as e:
            raise await self._fail(f"reading {src!r}", e, None, 0) from None
        if len(data) != size:
            raise TransferError(f"reading {src!r} on {self._describe()}: expected {size} bytes, got {len(data)} (it changed while read)")
        return data

    async def get_file(self, src: str, local: Path) -> int:
        size = await self._regular(src)
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".hermes-part-")
        os.close(fd)
        try:
            try:
                await self.sftp.get(src, os.fsencode(tmp))
            except (asyncssh.Error, OSError) as e:
                raise await self._fail(f"downloading {src!r}", e, None, 0) from None
            got = os.path.getsize(tmp)
            if got != size:
                raise TransferError(f"downloading {src!r} from {self._describe()}: expected {size} bytes, got {got}")
            os.replace(tmp, local)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size
