"""The daytona backend's file channel: the toolbox file API (bulk upload/download), directories
as a tar moved through it, control characters in paths worked around, downloads atomic."""

from __future__ import annotations

import asyncio
import os
import posixpath
import re
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermes_core.errors import SandboxError, TransferError
from hermes_core.sandbox import extract_tar, tar_dir

if TYPE_CHECKING:
    from ._backend import DaytonaSandbox

__all__ = ["Files"]

#: Characters a multipart header (where the SDK puts the destination path) cannot carry.
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")


class Files:
    """File transfers of one :class:`DaytonaSandbox` (which checks it is open before calling)."""

    def __init__(self, sandbox: DaytonaSandbox):
        self.sb = sandbox


    def file_error(self, e: BaseException, path: str) -> BaseException | None:
        from daytona.common.errors import DaytonaBadRequestError, DaytonaNotFoundError

        if isinstance(e, DaytonaNotFoundError):
            return FileNotFoundError(f"no such file in the sandbox: {path}")
        if isinstance(e, DaytonaBadRequestError) and "directory" in str(e).lower():
            return IsADirectoryError(f"{path} is a directory in the sandbox")
        return None

    async def upload_bytes(self, data: bytes | str, remote: str, *, what: str, size: int | None = None) -> None:
        if _UNSAFE_NAME.search(remote):
            # The SDK sends the path as a multipart header too, which cannot carry control
            # characters: upload under a plain name, then move it into place.
            tmp = f"/tmp/.hermes-up-{secrets.token_hex(8)}"
            await self.upload_bytes(data, tmp, what=what, size=size)
            r = await self.sb.exec(
                ["sh", "-c", 'mkdir -p -- "$3" && mv -f -- "$1" "$2"', "sh", tmp, remote, posixpath.dirname(remote)],
                timeout=120, cwd="/",
            )
            if r.exit_code != 0:
                await self.sb.exec(["rm", "-f", "--", tmp], timeout=60, cwd="/")
                raise NotADirectoryError(f"{what}: cannot create {remote!r} in the sandbox: {r.output.strip()}")
            return
        box = self.sb._box
        n = size if size is not None else len(data)
        io_timeout = int(self.sb.opts.request_timeout + n / (1 << 18))

        async def once() -> None:
            await box.fs.upload_file(data, remote, timeout=io_timeout)

        try:
            await self.sb._call(once, what=what, timeout=io_timeout + 5)
        except SandboxError:
            raise
        except Exception as e:
            if "not a directory" in str(e).lower() or "cannot create" in str(e).lower():
                raise NotADirectoryError(f"{what}: cannot create {remote!r} in the sandbox: {e}") from None
            raise TransferError(f"{what}: {e}") from e

    async def download(self, remote: str, local: Path, *, what: str) -> int:
        from daytona import FileDownloadRequest

        box = self.sb._box
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".hermes-dl-", dir=local.parent)
        os.close(fd)
        os.unlink(tmp)  # the SDK creates the file only when bytes arrive

        async def once() -> Any:
            return await box.fs.download_files(
                [FileDownloadRequest(source=remote, destination=tmp)], timeout=int(self.sb.opts.request_timeout * 20)
            )

        try:
            res = (await self.sb._call(once, what=what, timeout=self.sb.opts.request_timeout * 20 + 5))[0]
            if res.error:
                from daytona.common.filesystem import create_file_download_error

                err = create_file_download_error(res)
                mapped = self.file_error(err, remote)
                if mapped is not None:
                    raise mapped
                raise TransferError(f"{what}: {res.error}")
            if not os.path.exists(tmp):
                open(tmp, "wb").close()  # an empty file: no data part bytes
            size = os.path.getsize(tmp)
            os.replace(tmp, local)
            return size
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    async def write_bytes(self, path: str, data: bytes) -> None:
        await self.upload_bytes(bytes(data), self.sb.path(path), what=f"writing {path!r}")

    async def read_bytes(self, path: str) -> bytes:
        box = self.sb._box
        full = self.sb.path(path)

        async def once() -> bytes:
            return await box.fs.download_file(full, int(self.sb.opts.request_timeout * 20))

        try:
            return await self.sb._call(once, what=f"reading {path!r}", timeout=self.sb.opts.request_timeout * 20 + 5)
        except Exception as e:
            mapped = self.file_error(e, full)
            if mapped is not None:
                raise mapped from None
            raise

    async def put_file(self, local_path: str | Path, remote_path: str) -> int:
        local = Path(local_path)
        if not local.is_file():
            raise FileNotFoundError(f"no such file on the host: {local}")
        size = local.stat().st_size
        await self.upload_bytes(str(local), self.sb.path(remote_path), what=f"uploading to {remote_path!r}", size=size)
        return size

    async def get_file(self, remote_path: str, local_path: str | Path) -> int:
        return await self.download(self.sb.path(remote_path), Path(local_path), what=f"downloading {remote_path!r}")

    async def put_dir(self, local_dir: str | Path, remote_dir: str) -> list[str]:
        local = Path(local_dir)
        if not local.is_dir():
            raise FileNotFoundError(f"no such directory on the host: {local}")
        dest = self.sb.path(remote_dir)
        remote_tar = f"/tmp/.hermes-put-{secrets.token_hex(8)}.tar"
        with tempfile.NamedTemporaryFile(suffix=".tar") as spool:
            names = await asyncio.to_thread(tar_dir, local, spool)
            spool.flush()
            await self.upload_bytes(spool.name, remote_tar, what=f"uploading to {remote_dir!r}",
                                     size=os.path.getsize(spool.name))
        r = await self.sb.exec(
            ["sh", "-c", 'mkdir -p -- "$1" && tar -x --no-same-owner -f "$2" -C "$1"; rc=$?; rm -f -- "$2"; exit $rc',
             "sh", dest, remote_tar],
            timeout=600, cwd="/",
        )
        if r.exit_code != 0:
            raise TransferError(f"unpacking into {remote_dir!r} failed (exit {r.exit_code}): {r.output.strip()}")
        return names

    async def get_dir(self, remote_dir: str, local_dir: str | Path) -> list[str]:
        src = self.sb.path(remote_dir)
        remote_tar = f"/tmp/.hermes-get-{secrets.token_hex(8)}.tar"
        r = await self.sb.exec(
            ["sh", "-c", '[ -d "$1" ] || { echo "no such directory: $1"; exit 3; }; cd -- "$1" && tar -c -f "$2" .',
             "sh", src, remote_tar],
            timeout=600, cwd="/",
        )
        try:
            if r.exit_code == 3:
                raise FileNotFoundError(f"no such directory in the sandbox: {src}")
            if r.exit_code != 0:
                raise TransferError(f"packing {remote_dir!r} failed (exit {r.exit_code}): {r.output.strip()}")
            with tempfile.TemporaryDirectory() as tmp:
                spool = Path(tmp) / "dir.tar"
                await self.download(remote_tar, spool, what=f"downloading {remote_dir!r}")

                def unpack() -> list[str]:
                    with open(spool, "rb") as f:
                        return extract_tar(f, Path(local_dir))

                return await asyncio.to_thread(unpack)
        finally:
            if r.exit_code not in (3,):
                try:
                    await self.sb.exec(["rm", "-f", "--", remote_tar], timeout=60, cwd="/")
                except Exception:  # noqa: BLE001 - /tmp in the sandbox; it goes with the sandbox
                    pass
