"""ToolContext: a rollout's handle on its own sandbox, for tools and for the verifier."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..plugin._registry import ToolSpec
from ..sandbox import Sandbox
from ._dispatch import ToolError, dispatch, failure, truncate

if TYPE_CHECKING:
    from ..plugin._registry import ToolRegistry
    from ..processes import TaskProcesses

__all__ = ["ToolContext", "SyncToolContext"]


class ToolContext:
    """Everything one rollout may touch: its sandbox, its tools, its processes.

    The model's tool calls go through :meth:`call_tool`; a verifier then uses the same object
    (the very sandbox the model worked in). Methods are ``async``; :meth:`sync` returns a
    blocking facade for synchronous verifier code running in a worker thread.

    Attributes:
        task_id: the rollout's id; background processes are scoped to it.
        sandbox: the rollout's sandbox.
        processes: this rollout's background processes (``None`` without a Runtime).
        runtime: the Runtime that made this context, if any (for plugins that keep per-runtime
            state, such as one browser per runtime).
        tool_errors: every failed tool call of this rollout, in order.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        task_id: str,
        tools: Mapping[str, ToolSpec] | None = None,
        processes: TaskProcesses | None = None,
        installed_tools: ToolRegistry | None = None,
        runtime: Any = None,
        max_output_chars: int = 50_000,
        tool_output_bytes: int = 1024 * 1024,
    ):
        self.sandbox = sandbox
        self.task_id = task_id
        self.tools: dict[str, ToolSpec] = dict(tools or {})
        self.processes = processes
        self.installed_tools = installed_tools
        self.runtime = runtime
        self.max_output_chars = max_output_chars
        #: Where files this rollout produces for the run are collected (set by the Runner when
        #: it writes a results directory: ``<out>/artifacts/<rollout id>``), else ``None``.
        self.artifacts_dir: Path | None = None
        #: Bytes of a tool command's output kept before bounding (see HermesConfig).
        self.tool_output_bytes = tool_output_bytes
        self.tool_errors: list[ToolError] = []
        self.tool_calls = 0
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._cleaned = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ tools

    def tool_schemas(self) -> list[dict[str, Any]]:
        """OpenAI ``tools=[...]`` for this rollout's available tools."""
        return [spec.schema() for spec in self.tools.values() if spec.available()]

    async def call_tool(self, name: str | None = None, arguments: Any = None, *, tool_name: str | None = None) -> str:
        """Run a tool by name; always returns text (a JSON error object when it failed).

        ``tool_name=`` is accepted as well as ``name`` (the original hermes ToolContext's keyword).
        """
        if tool_name is not None:
            if name is not None and name != tool_name:
                raise TypeError(f"call_tool() got both name={name!r} and tool_name={tool_name!r}")
            name = tool_name
        if name is None:
            raise TypeError("call_tool() needs the tool's name (name= or tool_name=)")
        self._loop = asyncio.get_running_loop()
        self.tool_calls += 1
        spec = self.tools.get(name) if isinstance(name, str) else None
        if spec is None:
            shown = truncate(str(name), 200)
            msg = f"unknown tool {shown!r}; available tools: {', '.join(self.tools) or '(none)'}"
            text, err = failure(shown, "unknown_tool", msg, self.max_output_chars)
            self.tool_errors.append(err)
            return text
        text, err = await dispatch(spec, arguments, self)
        if err is not None:
            self.tool_errors.append(err)
        return text

    def add_cleanup(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``await fn()`` at cleanup, before the sandbox closes (e.g. to close a browser).
        Callbacks run last-added first; one that raises does not stop the others."""
        self._cleanups.append(fn)

    # ------------------------------------------------------------------ verifier API

    async def terminal(
        self, command: str, timeout: float = 180, *, cwd: str | None = None, in_model_context: bool = False
    ) -> dict[str, Any]:
        """Run ``command`` in a fresh shell in the sandbox's working directory.

        The verifier never runs in the model's terminal session: the model could have defined
        functions or aliases there (``pytest() { echo passed; }``) to forge its reward. With
        ``in_model_context=True`` the fresh shell starts in the model's current directory with
        the variables the model exported (still no functions or aliases) — note that this hands
        the model ``PATH`` too.

        Returns:
            ``{"exit_code": int, "output": str}``; exit code 124 on timeout; output past
            ``sandbox.output_limit`` bytes is cut in the middle, with a note saying so.
        """
        env = None
        if in_model_context:
            cwd, env = await self._model_context(cwd)
        return (await self.sandbox.exec(command, timeout=timeout, cwd=cwd, env=env)).to_dict()

    async def _model_context(self, cwd: str | None) -> tuple[str | None, dict[str, str] | None]:
        """The model's shell's working directory and exported variables (data only)."""
        if getattr(self.sandbox, "_shell", None) is None:
            return cwd, None  # the model never used its terminal: nothing to take over
        r = await self.sandbox.shell("builtin printf '%s\\0' \"$PWD\"; command -p env -0", timeout=30)
        parts = r.output.split("\0")
        if r.exit_code != 0 or len(parts) < 2:
            return cwd, None
        model_cwd, env = parts[0], {}
        for item in parts[1:]:
            name, sep, value = item.partition("=")
            if sep and name and name != "HERMES_SANDBOX_ID":
                env[name] = value
        return (cwd or model_cwd), env

    async def read_file(self, path: str) -> dict[str, Any]:
        """Returns ``{"content": str, "path": str}`` or ``{"error": str}`` (binary/undecodable too).

        Only a regular file is read (a FIFO or device is refused without being opened), and at
        most ``sandbox.max_read_bytes`` of it; larger files: use :meth:`download_file`.
        """
        try:
            refusal = await self._refuse_to_read(path, self.sandbox.max_read_bytes, "use download_file")
            if refusal:
                return {"error": refusal}
            data = await self.sandbox.read_bytes(path)
        except Exception as e:
            return {"error": f"cannot read {path!r}: {_why(e)}"}
        try:
            return {"content": data.decode("utf-8"), "path": self.sandbox.path(path)}
        except UnicodeDecodeError:
            return {"error": f"{path!r} is not UTF-8 text ({len(data)} bytes); use download_file"}

    async def write_file(self, path: str, content: str | bytes) -> dict[str, Any]:
        """Returns ``{"success": True, "bytes_written": n, "path": str}`` (the ``write_file``
        tool's keys, and the original hermes API's) or ``{"success": False, "error"}``."""
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        try:
            await self.sandbox.write_bytes(path, data)
        except Exception as e:
            return {"success": False, "error": f"cannot write {path!r}: {_why(e)}"}
        return {"success": True, "bytes_written": len(data), "path": self.sandbox.path(path)}

    async def upload_file(self, local_path: str | Path, remote_path: str) -> dict[str, Any]:
        """Copy a host file into the sandbox. Returns ``{"exit_code", "output"}``: 0 = arrived
        intact, -1 = the upload failed (the original hermes API's code for a failed call)."""
        try:
            n = await self.sandbox.put_file(local_path, remote_path)
        except Exception as e:
            return {"exit_code": -1, "output": f"upload of {str(local_path)!r} failed: {_why(e)}"}
        return {"exit_code": 0, "output": f"uploaded {n} bytes to {self.sandbox.path(remote_path)}"}

    async def upload_dir(self, local_dir: str | Path, remote_dir: str) -> list[dict[str, Any]]:
        """Copy a host directory tree into the sandbox; one ``{"path", "exit_code", "output"}`` per file."""
        try:
            names = await self.sandbox.put_dir(local_dir, remote_dir)
        except Exception as e:
            return [{"path": str(local_dir), "exit_code": -1, "output": f"upload failed: {_why(e)}"}]
        base = self.sandbox.path(remote_dir)
        return [{"path": f"{base}/{n}", "exit_code": 0, "output": "uploaded"} for n in names]

    async def download_file(self, remote_path: str, local_path: str | Path) -> dict[str, Any]:
        """Copy a sandbox file to the host. ``{"success": True, "bytes"}`` or ``{"success": False, "error"}``."""
        try:
            refusal = await self._refuse_to_read(path=remote_path, cap=None, hint="")
            if refusal:
                return {"success": False, "error": f"download of {remote_path!r} failed: {refusal}"}
            n = await self.sandbox.get_file(remote_path, local_path)
        except Exception as e:
            return {"success": False, "error": f"download of {remote_path!r} failed: {_why(e)}"}
        return {"success": True, "bytes": n}

    async def download_dir(
        self, remote_dir: str, local_dir: str | Path, *, keep_special: bool = False
    ) -> list[dict[str, Any]]:
        """Copy a sandbox directory tree to the host; one ``{"path", "success", "bytes"}`` per file.

        Symlinks pointing outside ``local_dir``, FIFOs and device nodes are not recreated unless
        ``keep_special``; each one skipped is listed with ``"success": False`` and ``"skipped"``
        (the reason). File data past ``sandbox.max_download_bytes`` stops the copy.
        """
        skipped: list[str] = []
        try:
            names = await self.sandbox.get_dir(remote_dir, local_dir, **self._dir_options(keep_special, skipped))
        except Exception as e:
            return [{"path": str(remote_dir), "success": False, "error": f"download failed: {_why(e)}"}]
        out = []
        for n in names:
            p = Path(local_dir, n)
            out.append({"path": str(p), "success": True, "bytes": p.lstat().st_size})
        for entry in skipped:
            name, _, why = entry.partition(": ")
            out.append({"path": str(Path(local_dir, name)), "success": False, "skipped": why})
        return out

    def _dir_options(self, keep_special: bool, skipped: list[str]) -> dict[str, Any]:
        """The keywords this backend's ``get_dir`` accepts (a third-party backend may predate
        them; then its own extraction rules apply)."""
        params = inspect.signature(self.sandbox.get_dir).parameters
        opts: dict[str, Any] = {}
        if "skipped" in params:
            opts["skipped"] = skipped
        if "keep_special" in params:
            opts["keep_special"] = keep_special
        elif keep_special:
            raise TypeError(f"backend {self.sandbox.backend_name!r} cannot keep special files")
        return opts

    async def _refuse_to_read(self, path: str, cap: int | None, hint: str) -> str | None:
        """Why ``path`` must not be read (not a regular file, or larger than ``cap``), or None."""
        info = await self.sandbox.stat(path)
        if info.kind == "missing":
            return None  # let the read raise the backend's own "no such file"
        if info.kind == "dir":
            return f"{path!r} is a directory"
        if not info.regular:
            return f"{path!r} is not a regular file (it is a {info.kind}); it was not opened"
        if cap is not None and info.size > cap:
            return f"{path!r} is {info.size} bytes, more than the cap of {cap} (max_read_bytes); {hint}"
        return None

    async def search(self, query: str, path: str = ".", **options: Any) -> dict[str, Any]:
        """Search file contents (regex) under ``path``, as the ``search_files`` tool does.

        Returns:
            ``{"total_count": n, "matches": [{"path", "line", "content"}, ...]}``, or
            ``{"error": ...}`` when the path does not exist or the pattern is invalid.
        """
        return await self._tool_json("search_files", {"pattern": query, "path": path, **options})

    async def web_search(self, query: str) -> dict[str, Any]:
        return await self._tool_json("web_search", {"query": query})

    async def web_extract(self, urls: Sequence[str]) -> dict[str, Any]:
        return await self._tool_json("web_extract", {"urls": list(urls)})

    async def browser_navigate(self, url: str) -> dict[str, Any]:
        return await self._tool_json("browser_navigate", {"url": url})

    async def browser_snapshot(self) -> dict[str, Any]:
        return await self._tool_json("browser_snapshot", {})

    async def _tool_json(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        spec = self.tools.get(name)
        if spec is None and self.installed_tools is not None and name in self.installed_tools:
            spec = self.installed_tools.get(name)
        if spec is None:
            from ..plugin._registry import KNOWN_PACKAGES, install_hint

            pkg = KNOWN_PACKAGES["tool"].get(name)
            hint = f" (distribution {pkg}: {install_hint(pkg)})" if pkg else ""
            return {"error": f"tool {name!r} is not installed{hint}"}
        text, _ = await dispatch(spec, args, self)
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return {"output": text}
        return value if isinstance(value, dict) else {"result": value}

    # ------------------------------------------------------------------ teardown

    async def cleanup(self) -> None:
        """Run the cleanup callbacks (the Runtime's kills this rollout's processes), then close
        the sandbox. Idempotent; completes even when the caller is cancelled."""
        if self._cleaned:
            return
        self._cleaned = True
        await asyncio.shield(self._cleanup())

    async def _cleanup(self) -> None:
        errors: list[BaseException] = []
        for fn in reversed(self._cleanups):
            try:
                await fn()
            except Exception as e:
                errors.append(e)
        await self.sandbox.close()
        if errors:
            raise errors[0]

    def sync(self) -> SyncToolContext:
        """A blocking facade for synchronous code running in a worker thread."""
        return SyncToolContext(self, self._loop or asyncio.get_running_loop())


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}" + (f": {e.filename!r}" if e.filename else "")
    return f"{type(e).__name__}: {e}"


class SyncToolContext:
    """Blocking facade of a :class:`ToolContext`.

    Every method of ToolContext is available with the same arguments, but returns the result
    instead of a coroutine. Call it from a thread other than the event loop's (e.g. a sync
    verifier run with ``asyncio.to_thread``).
    """

    def __init__(self, ctx: ToolContext, loop: asyncio.AbstractEventLoop):
        self._ctx = ctx
        self._loop = loop
        self.task_id = ctx.task_id

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._ctx, name)
        if not callable(attr) or not asyncio.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._loop.is_running() and threading.get_ident() == getattr(self._loop, "_thread_id", None):
                raise RuntimeError(
                    f"SyncToolContext.{name}() was called on the event loop's own thread, which "
                    "would deadlock; await ToolContext.{name}() instead, or run this code in a "
                    "worker thread (asyncio.to_thread)"
                )
            return asyncio.run_coroutine_threadsafe(attr(*args, **kwargs), self._loop).result()

        call.__name__ = name
        return call
