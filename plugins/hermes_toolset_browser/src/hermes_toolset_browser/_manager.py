"""One Chromium per Runtime, one browser context per rollout.

The browser process is shared by every rollout of a runtime (launching costs ~0.5 s, a context
a few ms). Each rollout gets its own context — cookies, storage, tabs — created on its first
browser call and closed by the rollout's cleanup (``ctx.add_cleanup``). A cap bounds the open
contexts; a rollout beyond it waits for a slot. If the browser dies, the next call launches a
new one and that rollout's result says its pages were lost.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from typing import Any

from hermes_core import ToolFailure

from ._options import BrowserOptions, options_for

__all__ = ["BrowserManager", "Session", "manager_for", "close_browser", "session_for"]

CRASH_NOTE = ("the browser had crashed and was restarted: this rollout's previous pages, cookies "
              "and tabs are gone; navigate again")


class Session:
    """One rollout's browser context and what happened in it since the last tool result."""

    def __init__(self, task_id: str, options: BrowserOptions):
        self.task_id = task_id
        self.options = options
        self.context: Any = None
        self.page: Any = None
        self.lock = asyncio.Lock()
        self.console: collections.deque[dict[str, Any]] = collections.deque(maxlen=options.max_console)
        self.dialogs: list[dict[str, str]] = []
        self.downloads: list[asyncio.Task[dict[str, Any]]] = []
        self.notes: list[str] = []
        self.snapshotted = False
        self.last_screenshot: bytes | None = None
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()
        self.ctx: Any = None  # the ToolContext (its sandbox receives downloads)

    # -- page events (registered on every page of the context)

    def _watch(self, page: Any) -> None:
        page.on("console", lambda m: self.console.append(
            {"type": m.type, "text": m.text[:2000], "url": (m.location or {}).get("url", "")}))
        page.on("pageerror", lambda e: self.console.append({"type": "pageerror", "text": str(e)[:2000], "url": page.url}))
        page.on("dialog", lambda d: asyncio.ensure_future(self._dialog(d)))
        page.on("download", lambda d: self.downloads.append(asyncio.ensure_future(self._download(d))))
        page.on("crash", lambda _p: self.notes.append("the page crashed; navigate again"))

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append({"type": dialog.type, "message": dialog.message[:2000], "action": self.options.dialogs})
        try:
            if self.options.dialogs == "accept":
                await dialog.accept(dialog.default_value) if dialog.type == "prompt" else await dialog.accept()
            else:
                await dialog.dismiss()
        except Exception:  # noqa: BLE001 - the page may have gone away meanwhile
            pass

    async def _download(self, download: Any) -> dict[str, Any]:
        import os
        import tempfile

        name = os.path.basename(download.suggested_filename or "download") or "download"
        info: dict[str, Any] = {"url": download.url, "filename": name}
        with tempfile.TemporaryDirectory(prefix="hermes-download-") as tmp:
            local = os.path.join(tmp, name)
            try:
                await download.save_as(local)
                size = os.path.getsize(local)
                info["bytes"] = size
                if size > self.options.max_download_bytes:
                    info["error"] = f"download of {size} bytes is over the limit ({self.options.max_download_bytes}); not saved"
                elif self.ctx is not None:
                    dest = f"{self.options.downloads_dir.rstrip('/')}/{name}"
                    await self.ctx.sandbox.put_file(local, dest)
                    info["path"] = self.ctx.sandbox.path(dest)
            except Exception as e:  # noqa: BLE001 - reported in the tool result
                info["error"] = f"{type(e).__name__}: {e}"
        return info

    def _new_page(self, page: Any) -> None:
        if self.context is not None and len(self.context.pages) > self.options.max_tabs:
            # a page that opens windows in a loop must not exhaust the driver's memory
            self.notes.append(f"a new tab was closed: this rollout may have {self.options.max_tabs} tabs open")
            asyncio.ensure_future(page.close())
            return
        if page not in self._watched:  # the context's "page" event and new_page() both report it
            self._watched.add(page)
            self._watch(page)
        self.page = page  # a popup or a new tab becomes the current page
        self.snapshotted = False

    def current_page(self) -> Any:
        if self.page is None or self.page.is_closed():
            pages = [p for p in self.context.pages if not p.is_closed()] if self.context is not None else []
            self.page = pages[-1] if pages else None
        return self.page

    async def events(self, wait: float = 5.0) -> dict[str, Any]:
        """Dialogs, finished downloads and notes since the last result (consumed)."""
        out: dict[str, Any] = {}
        if self.downloads:
            done, _pending = await asyncio.wait(self.downloads, timeout=wait)
            self.downloads = [t for t in self.downloads if t not in done]
            out["downloads"] = [t.result() for t in done]
        if self.dialogs:
            out["dialogs"], self.dialogs = self.dialogs, []
        if self.notes:
            out["note"] = "; ".join(dict.fromkeys(self.notes))
            self.notes = []
        return out


class BrowserManager:
    """The browser process of one runtime and the sessions (contexts) of its rollouts."""

    def __init__(self, options: BrowserOptions):
        self.options = options
        self.loop = asyncio.get_running_loop()
        self.sessions: dict[str, Session] = {}
        self.launches = 0
        self._pw: Any = None
        self._browser: Any = None
        self._launch_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(options.max_contexts)
        self._closing = False

    @property
    def browser(self) -> Any:
        return self._browser

    async def _ensure_browser(self) -> Any:
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            crashed = self._browser is not None
            if self._pw is None:
                from playwright.async_api import async_playwright

                self._pw = await async_playwright().start()
            try:
                self._browser = await self._pw.chromium.launch(
                    executable_path=self.options.executable, args=list(self.options.args), headless=True,
                    timeout=self.options.launch_timeout * 1000,
                )
            except Exception as e:
                self._browser = None
                raise ToolFailure(
                    f"cannot start Chromium at {self.options.executable}: {str(e).splitlines()[0]}. Install it "
                    "(Debian: apt-get install chromium fonts-liberation) or set the browser option executable.",
                    kind="browser_unavailable",
                ) from None
            self.launches += 1
            if crashed:
                for s in self.sessions.values():
                    if s.context is not None:
                        s.context = s.page = None
                        s.snapshotted = False
                        s.notes.append(CRASH_NOTE)
            return self._browser

    async def session(self, task_id: str, ctx: Any = None) -> Session:
        """The rollout's session with a live context (created, or re-created after a crash)."""
        s = self.sessions.get(task_id)
        if s is None:
            try:
                async with asyncio.timeout(self.options.context_wait):
                    await self._slots.acquire()
            except TimeoutError:
                raise ToolFailure(
                    f"all {self.options.max_contexts} browser contexts of this runtime are in use; waited "
                    f"{self.options.context_wait:g} s (raise the browser option max_contexts)", kind="too_many_contexts",
                ) from None
            s = self.sessions.get(task_id)  # another call of the same rollout may have made it meanwhile
            if s is not None:
                self._slots.release()
            else:
                s = self.sessions[task_id] = Session(task_id, self.options)
                if ctx is not None and hasattr(ctx, "add_cleanup"):
                    ctx.add_cleanup(lambda: self.close_session(task_id))
        if ctx is not None:
            s.ctx = ctx
        browser = await self._ensure_browser()
        if s.context is None:
            s.context = await browser.new_context(
                viewport={"width": self.options.viewport_width, "height": self.options.viewport_height},
                accept_downloads=True,
            )
            s.context.set_default_timeout(self.options.action_timeout * 1000)
            s.context.set_default_navigation_timeout(self.options.navigation_timeout * 1000)
            s.context.on("page", s._new_page)
            s._new_page(await s.context.new_page())
        elif s.current_page() is None:
            await s.context.new_page()  # the "page" event makes it current
        return s

    async def close_session(self, task_id: str) -> None:
        """Close one rollout's context (idempotent)."""
        s = self.sessions.pop(task_id, None)
        if s is None:
            return
        self._slots.release()
        for t in s.downloads:
            t.cancel()
        if s.context is not None:
            try:
                await asyncio.wait_for(s.context.close(), 10)
            except Exception:  # noqa: BLE001 - a crashed browser's contexts are already gone
                pass
            s.context = s.page = None

    async def aclose(self) -> None:
        """Close every context, the browser and the Playwright driver."""
        self._closing = True
        for task_id in list(self.sessions):
            await self.close_session(task_id)
        browser, self._browser = self._browser, None
        if browser is not None:
            try:
                await asyncio.wait_for(browser.close(), 15)
            except Exception:  # noqa: BLE001
                pass
        pw, self._pw = self._pw, None
        if pw is not None:
            try:
                await asyncio.wait_for(pw.stop(), 15)
            except Exception:  # noqa: BLE001
                pass


# One manager per Runtime (or per ToolContext made without one), dropped with it.
_MANAGERS: weakref.WeakKeyDictionary[Any, BrowserManager] = weakref.WeakKeyDictionary()


def manager_for(ctx: Any) -> BrowserManager:
    """The browser manager of the rollout's runtime (created on first use).

    A manager is bound to the event loop it was made on: a runtime used from another loop gets
    a fresh one (Playwright objects cannot cross loops).
    """
    owner = getattr(ctx, "runtime", None) or ctx
    mgr = _MANAGERS.get(owner)
    loop = asyncio.get_running_loop()
    if mgr is None or mgr.loop is not loop or mgr.loop.is_closed():
        mgr = _MANAGERS[owner] = BrowserManager(options_for(getattr(ctx, "runtime", None)))
        if owner is ctx and hasattr(ctx, "add_cleanup"):
            ctx.add_cleanup(mgr.aclose)  # no runtime: the browser lives as long as this context
        elif hasattr(owner, "add_close_callback"):
            owner.add_close_callback(mgr.aclose)  # Runtime.aclose() stops the browser too
    return mgr


async def session_for(ctx: Any) -> Session:
    """The calling rollout's session (its browser context), created on first use."""
    return await manager_for(ctx).session(ctx.task_id, ctx)


async def close_browser(runtime: Any) -> None:
    """Close the runtime's browser process and every context in it. ``Runtime.aclose()`` does
    this itself where hermes-core has ``Runtime.add_close_callback``; call it otherwise."""
    mgr = _MANAGERS.pop(runtime, None)
    if mgr is not None:
        await mgr.aclose()
