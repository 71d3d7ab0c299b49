"""The fake daemon's file endpoints: bulk upload (multipart in), bulk download (multipart out),
listing, info, folders, deletes and permissions, on the sandbox's container."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shlex
import urllib.parse
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from aiohttp import web

try:
    from . import _docker as dk
    from ._http import daemon_error
except ImportError:  # pragma: no cover - run as a script
    import _docker as dk  # type: ignore[no-redef]
    from _http import daemon_error  # type: ignore[no-redef]

if TYPE_CHECKING:
    from .server import Box, FakeDaytona


class Files:
    """``/toolbox/{id}/files/...`` of one :class:`FakeDaytona`."""

    def __init__(self, fake: FakeDaytona):
        self.fake = fake


    async def _sh(self, box: Box, script: str, *args: str) -> tuple[int, bytes]:
        return await self.fake._run(dk.run, self.fake._docker, box.container, ["sh", "-c", script, "sh", *args])

    async def bulk_upload(self, request: web.Request) -> web.Response:
        import tempfile

        box = self.fake.boxes[request.match_info["sid"]]
        reader = await request.multipart()
        paths: dict[str, str] = {}
        errors: list[str] = []
        while True:
            part = await reader.next()
            if part is None:
                break
            m = re.fullmatch(r"files\[(\d+)\]\.(path|file)", part.name or "")
            if not m:
                continue
            idx, kind = m.groups()
            if kind == "path":
                paths[idx] = await part.text()
                continue
            dest = paths.get(idx) or part.filename
            if not dest:
                errors.append(f"file {idx}: no destination path")
                continue
            spool = tempfile.TemporaryFile()
            size = 0
            while chunk := await part.read_chunk(1 << 20):
                spool.write(chunk)
                size += len(chunk)
            spool.seek(0)
            err = await self._put(box, dest, spool, size)
            spool.close()
            if err:
                errors.append(err)
        if errors:
            return web.json_response({"errors": errors}, status=400)
        return web.Response(status=200)

    async def _put(self, box: Box, dest: str, src: Any, size: int) -> str | None:
        if not dest.startswith("/"):
            dest = f"{box.workdir}/{dest}"
        parent, _, base = dest.rstrip("/").rpartition("/")
        parent = parent or "/"
        tar = await self.fake._run(lambda: dk.make_tar(base, src, size))
        try:
            # Engine stat calls (cheap) instead of a process in the container (slow) when they suffice.
            pstat = await self.fake._run(dk.stat, self.fake._docker, box.container, parent)
            dstat = await self.fake._run(dk.stat, self.fake._docker, box.container, dest)
            if dstat is not None and dstat.get("mode", 0) & (1 << 31):
                return f"{dest}: cannot create file: is a directory"
            if pstat is not None and pstat.get("mode", 0) & (1 << 31):
                try:
                    await self.fake._run(self.fake._docker.put_archive, box.container, parent, tar)
                except Exception as e:  # noqa: BLE001
                    return f"{dest}: {e}"
                return None
            code, out = await self._sh(box, 'mkdir -p -- "$1" && test ! -d "$2"', parent, dest)
            if code != 0:
                return f"{dest}: cannot create file: {out.decode('utf-8', 'replace').strip() or 'is a directory'}"
            try:
                await self.fake._run(self.fake._docker.put_archive, box.container, parent, tar)
            except Exception as e:  # noqa: BLE001
                return f"{dest}: {e}"
        finally:
            tar.close()
        return None

    async def bulk_download(self, request: web.Request) -> web.StreamResponse:
        import tarfile

        box = self.fake.boxes[request.match_info["sid"]]
        paths = (await request.json()).get("paths") or []
        boundary = secrets.token_hex(16)
        resp = web.StreamResponse(status=200, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        await resp.prepare(request)

        async def part(name: str, path: str, ctype: str, headers: str = "") -> None:
            quoted = path.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "%0D").replace("\n", "%0A")
            ext = urllib.parse.quote(path, safe="")
            await resp.write(
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{quoted}\"; "
                f"filename*=UTF-8''{ext}\r\nContent-Type: {ctype}\r\n{headers}\r\n".encode()
            )

        for path in paths:
            full = path if path.startswith("/") else f"{box.workdir}/{path}"
            try:
                stream, stat = await self.fake._run(self.fake._docker.get_archive, box.container, full)
            except Exception:  # noqa: BLE001 - docker.errors.NotFound and friends
                await part("error", path, "application/json")
                err = {"message": f"file not found: {path}", "statusCode": 404, "code": "FILE_NOT_FOUND"}
                await resp.write(json.dumps(err).encode() + b"\r\n")
                continue
            if stat.get("mode", 0) & (1 << 31):  # a directory
                await part("error", path, "application/json")
                err = {"message": f"path is a directory: {path}", "statusCode": 400, "code": "INVALID_FILE_PATH"}
                await resp.write(json.dumps(err).encode() + b"\r\n")
                await self.fake._run(lambda: [None for _ in stream])
                continue
            q: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
            loop = asyncio.get_running_loop()

            def pump(stream: Any = stream, q: asyncio.Queue[bytes | None] = q) -> None:
                class Raw:
                    def __init__(self) -> None:
                        self.it, self.buf = iter(stream), b""

                    def read(self, n: int = -1) -> bytes:
                        while n < 0 or len(self.buf) < n:
                            nxt = next(self.it, None)
                            if nxt is None:
                                break
                            self.buf += nxt
                        out, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
                        return out

                try:
                    with tarfile.open(fileobj=Raw(), mode="r|") as tf:
                        for member in tf:
                            f = tf.extractfile(member) if member.isfile() else None
                            if f is not None:
                                while chunk := f.read(1 << 20):
                                    asyncio.run_coroutine_threadsafe(q.put(chunk), loop).result()
                            break
                finally:
                    asyncio.run_coroutine_threadsafe(q.put(None), loop).result()

            await part("file", path, "application/octet-stream")
            fut = loop.run_in_executor(self.fake._pool, pump)
            while (chunk := await q.get()) is not None:
                await resp.write(chunk)
            await fut
            await resp.write(b"\r\n")
        await resp.write(f"--{boundary}--\r\n".encode())
        await resp.write_eof()
        return resp

    _INFO = "%f\\0%y\\0%s\\0%m\\0%u\\0%g\\0%T@\\0"

    def _file_infos(self, raw: bytes) -> list[dict[str, Any]]:
        fields = raw.decode("utf-8", "replace").split("\0")
        out = []
        for i in range(0, len(fields) - 6, 7):
            name, kind, size, mode, owner, group, mtime = fields[i : i + 7]
            perm = int(mode, 8)
            out.append({
                "name": name, "isDir": kind == "d", "size": int(size), "mode": f"{perm:o}",
                "permissions": f"0{perm:o}", "owner": owner, "group": group,
                "modTime": datetime.fromtimestamp(float(mtime), timezone.utc).isoformat(),
            })
        return out

    async def list_files(self, request: web.Request) -> web.Response:
        box = self.fake.boxes[request.match_info["sid"]]
        path = request.query.get("path") or box.workdir
        code, out = await self._sh(
            box, f'test -d "$1" || exit 3; find "$1" -mindepth 1 -maxdepth 1 -printf {shlex.quote(self._INFO)}', path
        )
        if code:
            return daemon_error(request, 404, f"directory not found: {path}", "FILE_NOT_FOUND")
        return web.json_response(self._file_infos(out))

    async def file_info(self, request: web.Request) -> web.Response:
        box = self.fake.boxes[request.match_info["sid"]]
        path = request.query.get("path") or ""
        code, out = await self._sh(box, f'find "$1" -maxdepth 0 -printf {shlex.quote(self._INFO)}', path)
        if code or not out:
            return daemon_error(request, 404, f"file not found: {path}", "FILE_NOT_FOUND")
        return web.json_response(self._file_infos(out)[0])

    async def create_folder(self, request: web.Request) -> web.Response:
        box = self.fake.boxes[request.match_info["sid"]]
        path, mode = request.query.get("path") or "", request.query.get("mode") or "755"
        code, out = await self._sh(box, 'mkdir -p -m "$2" -- "$1"', path, mode)
        if code:
            return daemon_error(request, 400, out.decode("utf-8", "replace").strip())
        return web.Response(status=201)

    async def delete_file(self, request: web.Request) -> web.Response:
        box = self.fake.boxes[request.match_info["sid"]]
        path, rec = request.query.get("path") or "", request.query.get("recursive") == "true"
        code, out = await self._sh(box, 'test -e "$1" -o -L "$1" || exit 3; if [ "$2" = true ]; then rm -rf -- "$1"; '
                                   'else rm -f -- "$1" 2>/dev/null || rmdir -- "$1"; fi', path, str(rec).lower())
        if code == 3:
            return daemon_error(request, 404, f"file not found: {path}", "FILE_NOT_FOUND")
        if code:
            return daemon_error(request, 400, out.decode("utf-8", "replace").strip())
        return web.Response(status=204)

    async def set_permissions(self, request: web.Request) -> web.Response:
        box = self.fake.boxes[request.match_info["sid"]]
        q = request.query
        script = 'test -e "$1" || exit 3; [ -z "$2" ] || chmod "$2" -- "$1"; [ -z "$3" ] || chown "$3${4:+:$4}" -- "$1"'
        code, out = await self._sh(box, script, q.get("path") or "", q.get("mode") or "", q.get("owner") or "",
                                   q.get("group") or "")
        if code == 3:
            return daemon_error(request, 404, "file not found", "FILE_NOT_FOUND")
        if code:
            return daemon_error(request, 400, out.decode("utf-8", "replace").strip())
        return web.Response(status=200)
