"""Files through the Docker archive API: tar streams in (``PUT archive``) and out (``GET``).

Everything here is blocking and runs on a thread. Uploads are generated on the fly (a tar
header, the bytes, padding), so a large file is never held in memory twice; downloads are
parsed as a stream. A transfer that does not complete raises: the engine answers 200 to an
upload only once it has extracted it, and a short download fails the tar reader.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import stat as statmod
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from hermes_core.errors import TransferError
from hermes_core.sandbox import skip_reason, tar_dir, write_sparse

from ._engine import ContainerGoneError

if TYPE_CHECKING:
    from docker import APIClient

__all__ = ["Archive"]

CHUNK = 1 << 20
#: Go's os.FileMode bits, as the engine reports them in a path's stat.
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
#: Go FileMode bits of a device, FIFO, socket, char device or irregular file.
_GO_SPECIAL = (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)
_MAX_LINKS = 40


class _ChunkReader:
    """A read-only file object over an iterator of byte chunks (for ``tarfile``'s stream mode).

    ``close`` ends the HTTP response it reads from. That matters: the engine keeps tarring (and
    holds the container) for as long as the response is open, so a download that stops early
    (a cap, an unsafe entry) and leaves it open made the container's removal hang for minutes.
    """

    def __init__(self, chunks: Iterable[bytes], close: Callable[[], None] | None = None):
        self._it = iter(chunks)
        self._buf = b""
        self._close = close

    def close(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - a connection that is already gone is closed enough
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, n: int = -1) -> bytes:
        if not self._buf:
            self._buf = next(self._it, b"")
        if n < 0 or n >= len(self._buf):
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


class _HostTarFile(tarfile.TarFile):
    """Extracts without chown: files fetched from a sandbox belong to the host user."""

    def chown(self, tarinfo: tarfile.TarInfo, targetpath: str, numeric_owner: bool) -> None:  # noqa: ARG002
        return None


class Archive:
    """The archive channel of one container.

    Args:
        api: the engine client.
        container: container id.
        owner: ``(uid, gid)`` given to uploaded files (the sandbox's user).
        mkdir: blocking ``mkdir(path)`` that creates a directory and its parents in the
            container, as the sandbox's user.
    """

    def __init__(self, api: APIClient, container: str, owner: tuple[int, int], mkdir: Callable[[str], None]):
        self.api = api
        self.container = container
        self.owner = owner
        self.mkdir = mkdir

    # ------------------------------------------------------------------ helpers

    def stat(self, path: str) -> dict[str, Any] | None:
        """The engine's stat of ``path`` (symlinks not followed), ``None`` if it does not exist.

        A HEAD request: no tar is produced, so this costs one round trip.
        """
        res = self.api.head(self.api._url("/containers/{0}/archive", self.container), params={"path": path})  # noqa: SLF001
        if res.status_code == 404:
            return None
        if res.status_code >= 400:
            self._explain(path)
        raw = res.headers.get("X-Docker-Container-Path-Stat")
        return json.loads(base64.b64decode(raw)) if raw else None

    def _explain(self, path: str) -> None:
        """A HEAD error has no body: repeat the request as a GET to learn (and raise) why."""
        import docker.errors

        try:
            reader = self._open_archive(path)
        except docker.errors.APIError as e:
            # A container being removed answers with engine internals ("RWLayer ... is
            # unexpectedly nil"): say that it is gone when it is, whatever the message.
            self._container_exists()
            raise _path_error(e, path) from None
        reader.close()  # it worked after all (never drained: it may be a terabyte)

    def _container_exists(self) -> None:
        """Raise if the container is gone or stopped (a 404 on a path is ambiguous)."""
        import docker.errors

        try:
            state = self.api.inspect_container(self.container).get("State", {})
        except docker.errors.NotFound:
            state = {}
        if not state.get("Running"):
            raise ContainerGoneError(
                f"the container {self.container[:12]} is gone or stopped (removed or killed outside "
                "hermes, or it reached its max_lifetime)"
            )

    def _header(self, name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE) -> bytes:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = mode
        info.type = kind
        info.uid, info.gid = self.owner
        info.uname = info.gname = ""
        info.mtime = int(time.time())
        return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")

    def _put(self, parent: str, body: Callable[[], Any]) -> None:
        """PUT a tar (made fresh by ``body()``) into ``parent``, creating ``parent`` if needed."""
        import docker.errors

        try:
            self.api.put_archive(self.container, parent, body())
            return
        except docker.errors.NotFound as e:
            if "no such container" in str(e.explanation or "").lower():
                raise
        except docker.errors.APIError as e:
            raise _path_error(e, parent) from None
        self.mkdir(parent)
        try:
            self.api.put_archive(self.container, parent, body())
        except docker.errors.APIError as e:
            raise _path_error(e, parent) from None

    def _resolve(self, path: str, *, want_dir: bool) -> tuple[str, dict[str, Any]]:
        """Follow symlinks (as the engine resolves them, inside the container) to a real path."""
        for _ in range(_MAX_LINKS):
            st = self.stat(path)
            if st is None:
                self._container_exists()
                kind = "directory" if want_dir else "file"
                raise FileNotFoundError(f"no such {kind} in sandbox: {path!r}")
            if not st["mode"] & _GO_SYMLINK:
                return path, st
            target = st.get("linkTarget") or ""
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        raise OSError(f"too many levels of symbolic links in sandbox: {path!r}")

    # ------------------------------------------------------------------ single files

    def _check_not_dir(self, path: str) -> None:
        st = self.stat(path)
        if st is not None and st["mode"] & _GO_DIR:
            # The engine would silently replace the whole directory with the file.
            raise IsADirectoryError(f"is a directory in sandbox: {path!r}")

    def write(self, path: str, data: bytes | memoryview, mode: int = 0o644) -> None:
        parent, name = posixpath.split(path)
        self._check_not_dir(path)
        view = memoryview(data)

        def body() -> Iterator[bytes | memoryview]:
            yield self._header(name, len(view), mode)
            for i in range(0, len(view), CHUNK):
                yield view[i : i + CHUNK]
            yield _trailer(len(view))

        self._put(parent, body)

    def put_file(self, local: Path, path: str) -> int:
        st = local.stat()
        if statmod.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"is a directory on the host: {str(local)!r}")
        parent, name = posixpath.split(path)
        self._check_not_dir(path)
        size = st.st_size

        def body() -> Iterator[bytes]:
            yield self._header(name, size, statmod.S_IMODE(st.st_mode))
            sent = 0
            with open(local, "rb") as f:
                while sent < size:
                    chunk = f.read(min(CHUNK, size - sent))
                    if not chunk:
                        break
                    sent += len(chunk)
                    yield chunk
                grew = bool(f.read(1))
            if sent != size or grew:
                # Aborts the upload mid-body: the engine then rejects the truncated tar.
                raise TransferError(f"{str(local)!r} changed size during upload (expected {size} bytes)")
            yield _trailer(size)

        self._put(parent, body)
        return size

    def _open_archive(self, real: str) -> _ChunkReader:
        """The engine's tar stream of ``real``, as a reader that owns (and closes) the response.

        The SDK's ``get_archive`` returns a bare generator that keeps its response open until it
        is garbage-collected, with no way to close it.
        """
        api = self.api
        res = api._get(api._url("/containers/{0}/archive", self.container), params={"path": real}, stream=True)  # noqa: SLF001
        try:
            api._raise_for_status(res)  # noqa: SLF001
            # As the SDK does for raw streams: a long tar must not hit the request timeout.
            api._disable_socket_timeout(api._get_raw_response_socket(res))  # noqa: SLF001
        except BaseException:
            res.close()
            raise
        return _ChunkReader(res.iter_content(CHUNK, False), close=res.close)

    def _archive_chunks(self, real: str, missing: str) -> _ChunkReader:
        """:meth:`_open_archive`; a path the engine cannot find is FileNotFoundError."""
        import docker.errors

        try:
            return self._open_archive(real)
        except docker.errors.NotFound as e:
            if "no such container" in str(e.explanation or "").lower():
                raise
            raise FileNotFoundError(missing) from None

    def _open_file(
        self, path: str, max_bytes: int | None = None, cap_name: str = ""
    ) -> tuple[tarfile.TarFile, tarfile.TarInfo, _ChunkReader]:
        real, st = self._resolve(path, want_dir=False)
        if st["mode"] & _GO_DIR:
            raise IsADirectoryError(f"is a directory in sandbox: {path!r}")
        if st["mode"] & _GO_SPECIAL:
            raise TransferError(f"refused to read {path!r}: not a regular file (a FIFO, socket or device)")
        if max_bytes is not None and int(st.get("size") or 0) > max_bytes:
            # Refused before the engine starts streaming (a sparse terabyte would stream zeros).
            raise TransferError(
                f"refused to read {path!r}: {st.get('size')} bytes is more than the cap of {max_bytes} "
                f"({cap_name}); use get_file / download_file" if cap_name == "max_read_bytes" else
                f"download of {path!r} refused: {st.get('size')} bytes is more than max_download_bytes ({max_bytes})"
            )
        reader = self._archive_chunks(real, f"no such file in sandbox: {path!r}")
        try:
            tar = tarfile.open(fileobj=reader, mode="r|")
            member = tar.next()
        except BaseException:
            reader.close()
            raise
        if member is None or not member.isreg():
            tar.close()
            reader.close()
            raise TransferError(f"download of {path!r} did not return a regular file")
        return tar, member, reader

    def read(self, path: str, max_bytes: int | None = None) -> bytes:
        tar, member, reader = self._open_file(path, max_bytes, "max_read_bytes")
        if max_bytes is not None and member.size > max_bytes:
            tar.close()
            reader.close()
            raise TransferError(
                f"refused to read {path!r} into memory: {member.size} bytes is more than the cap of "
                f"{max_bytes} (max_read_bytes); use get_file / download_file"
            )
        with reader, tar:
            f = tar.extractfile(member)
            assert f is not None
            data = _read_exact(f, member.size, path)
        return data

    def get_file(self, path: str, local: Path, max_bytes: int | None = None) -> int:
        tar, member, reader = self._open_file(path, max_bytes, "max_download_bytes")
        if max_bytes is not None and member.size > max_bytes:
            tar.close()
            reader.close()
            raise TransferError(
                f"download of {path!r} refused: {member.size} bytes is more than max_download_bytes ({max_bytes})"
            )
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".hermes-part-")
        except BaseException:
            reader.close()
            raise
        try:
            with reader, tar, os.fdopen(fd, "wb") as out:
                f = tar.extractfile(member)
                assert f is not None
                left = member.size
                while left:
                    chunk = f.read(min(CHUNK, left))
                    if not chunk:
                        raise TransferError(f"download of {path!r} ended {left} bytes early")
                    write_sparse(out, chunk)  # zero blocks stay holes on the host
                    left -= len(chunk)
                out.truncate(member.size)
            os.chmod(tmp, statmod.S_IMODE(member.mode) & 0o777)
            os.replace(tmp, local)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return member.size

    # ------------------------------------------------------------------ directories

    def put_dir(self, local: Path, path: str) -> list[str]:
        if not local.is_dir():
            raise NotADirectoryError(f"not a directory on the host: {str(local)!r}")
        st = self.stat(path)
        if st is not None and not st["mode"] & _GO_DIR:
            raise NotADirectoryError(f"not a directory in sandbox: {path!r}")
        with tempfile.TemporaryFile() as spool:
            names = self._tar_tree(local, spool)
            spool.seek(0)

            def body() -> Any:
                spool.seek(0)
                return spool

            self._put(path, body)
        return names

    def _tar_tree(self, local: Path, out: Any) -> list[str]:
        uid, gid = self.owner

        def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
            return info

        return tar_dir(local, out, filter=owned)

    def get_dir(
        self, path: str, local: Path, *, keep_special: bool = False, skipped: list[str] | None = None,
        max_bytes: int | None = None,
    ) -> list[str]:

        real, st = self._resolve(path, want_dir=True)
        if not st["mode"] & _GO_DIR:
            raise NotADirectoryError(f"not a directory in sandbox: {path!r}")
        reader = self._archive_chunks(real, f"no such directory in sandbox: {path!r}")
        names: list[str] = []
        with reader:
            local.mkdir(parents=True, exist_ok=True)
            dest = os.path.realpath(local)
            self._extract(reader, dest, names, keep_special, skipped, max_bytes)
        return sorted(names)

    @staticmethod
    def _extract(
        reader: _ChunkReader, dest: str, names: list[str], keep_special: bool, skipped: list[str] | None,
        max_bytes: int | None,
    ) -> None:
        with _HostTarFile.open(fileobj=reader, mode="r|") as tar:
            budget = [max_bytes] if max_bytes is not None else None
            tar.extractall(dest, filter=partial(_into, names=names, keep_special=keep_special, skipped=skipped,
                                               budget=budget))


def _trailer(size: int) -> bytes:
    """Padding of the last 512-byte block, then the two zero blocks that end a tar."""
    return b"\0" * (-size % 512) + b"\0" * 1024


def _read_exact(f: Any, size: int, path: str) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = f.readinto(view[got:])
        if not n:
            raise TransferError(f"download of {path!r} ended after {got} of {size} bytes")
        got += n
    return bytes(buf)


def _strip_top(name: str) -> str:
    # The engine names members after the requested directory: "dir", "dir/a", "dir/a/b".
    return name.split("/", 1)[1] if "/" in name else ""


def _into(
    member: tarfile.TarInfo, dest: str, *, names: list[str], keep_special: bool = False,
    skipped: list[str] | None = None, budget: list[int] | None = None,
) -> tarfile.TarInfo | None:
    """Extraction filter: strip the top directory, stay inside ``dest``, keep modes.

    Refused: any entry whose own path would land outside ``dest`` (also through a symlink
    extracted earlier), and hard links whose *target* resolves outside (through such a link).
    Not recreated unless ``keep_special``: symlinks pointing outside ``dest``, FIFOs and device
    nodes (each appended to ``skipped``). ``budget`` ([bytes left]) caps the file data.
    """
    name = _strip_top(member.name)
    if not name:
        return None
    if name.startswith("/") or ".." in name.split("/"):
        raise TransferError(f"refusing unsafe path in sandbox archive: {member.name!r}")
    target = os.path.realpath(os.path.join(dest, name))
    if os.path.commonpath([target, dest]) != dest:
        raise TransferError(f"refusing archive entry that leaves the destination: {member.name!r}")
    changes: dict[str, Any] = {"name": name, "mode": member.mode & 0o1777}
    if member.islnk():
        link = _strip_top(member.linkname)
        if not link or ".." in link.split("/"):
            raise TransferError(f"refusing hard link out of the archive: {member.linkname!r}")
        changes["linkname"] = link
    renamed = member.replace(**changes, deep=False)
    why = skip_reason(renamed, dest, keep_special)  # raises for a hard link whose target escapes
    if why is not None:
        if skipped is not None:
            skipped.append(f"{name}: {why}")
        return None
    if member.ischr() or member.isblk():
        return None  # keep_special, but device nodes need privileges the host user may lack
    if budget is not None and member.isfile():
        budget[0] -= member.size
        if budget[0] < 0:
            raise TransferError(
                f"download stopped: the directory holds more than max_download_bytes (at {name!r})"
            )
    if not member.isdir():
        names.append(name)
    return renamed


def _path_error(e: Any, path: str) -> BaseException:
    text = str(getattr(e, "explanation", "") or e)
    if "not a directory" in text:
        return NotADirectoryError(f"not a directory in sandbox: {path!r} ({text})")
    if getattr(e, "status_code", None) == 404 and "no such container" not in text.lower():
        return FileNotFoundError(f"no such file or directory in sandbox: {path!r}")
    if "no such container" in text.lower():
        return e
    return TransferError(f"upload into {path!r} failed: {text}")
