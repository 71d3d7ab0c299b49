"""The browser tool handlers: navigate, snapshot (with element refs), click, type, press,
scroll, back, screenshot, console, close. Every handler runs under the rollout's session lock
(the model's parallel calls act on one page one at a time) and never raises into the loop."""

from __future__ import annotations

import base64
import re
import struct
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from hermes_core import ToolFailure

from ._manager import Session, manager_for, session_for

_REF = re.compile(r"^(f\d+)?e\d+$")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class NavigateArgs(_Args):
    url: str = Field(min_length=1, max_length=8000, description="The http(s) URL to open.")


class SnapshotArgs(_Args):
    pass


class ClickArgs(_Args):
    ref: str = Field(description="Element ref from the latest browser_snapshot, e.g. 'e12'.")


class TypeArgs(_Args):
    ref: str = Field(description="Ref of a text field from the latest browser_snapshot.")
    text: str = Field(max_length=100_000, description="Text to put in the field (replaces its content).")
    submit: bool = Field(False, description="Press Enter afterwards.")


class PressArgs(_Args):
    key: str = Field(min_length=1, max_length=64, description="Key to press, e.g. 'Enter', 'Tab', 'ArrowDown', 'Control+a'.")


class ScrollArgs(_Args):
    direction: Literal["down", "up"] = "down"
    amount: int | None = Field(None, ge=1, le=100_000, description="Pixels (default: one screen).")


class ScreenshotArgs(_Args):
    full_page: bool = Field(False, description="The whole page instead of the visible part.")
    path: str | None = Field(None, description="Also save the PNG at this path in the sandbox.")


class ConsoleArgs(_Args):
    clear: bool = Field(True, description="Forget the returned messages.")


class NoArgs(_Args):
    pass


def _error(e: Exception, what: str) -> ToolFailure:
    """Playwright's exceptions as structured errors the model can act on."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, PlaywrightTimeout):
        return ToolFailure(f"{what} timed out: {first}", kind="timeout")
    if isinstance(e, PlaywrightError):
        if "Target page, context or browser has been closed" in str(e) or "Target closed" in str(e):
            return ToolFailure(f"{what}: the page was closed; navigate again", kind="page_closed")
        return ToolFailure(f"{what} failed: {first}", kind="browser_error")
    return ToolFailure(f"{what} failed: {type(e).__name__}: {first}", kind="browser_error")


async def _page_info(s: Session, **extra: Any) -> dict[str, Any]:
    page = s.current_page()
    out: dict[str, Any] = {"url": page.url if page else "", "title": ""}
    if page is not None:
        try:
            out["title"] = await page.title()
        except Exception:  # noqa: BLE001 - a navigating page has no title for a moment
            pass
    out.update(extra)
    out.update(await s.events())
    return out


def _locator(s: Session, ref: str) -> Any:
    ref = ref.strip().removeprefix("ref=").strip("[]")
    if not _REF.match(ref):
        raise ToolFailure(f"{ref!r} is not an element ref; use a ref such as 'e12' from browser_snapshot", kind="invalid_ref")
    if not s.snapshotted:
        raise ToolFailure("no snapshot of this page yet: call browser_snapshot and use one of its refs", kind="invalid_ref")
    return s.current_page().locator(f"aria-ref={ref}")


async def _act(s: Session, ref: str, what: str, action: Any) -> None:
    loc = _locator(s, ref)
    try:
        present = await loc.count()
    except Exception as e:  # noqa: BLE001
        raise _error(e, what) from None
    if present == 0:  # fail now instead of waiting the action timeout for an element that left
        raise ToolFailure(f"ref {ref!r} is not on the page any more; take a new browser_snapshot", kind="stale_ref")
    try:
        await action(loc)
    except Exception as e:  # noqa: BLE001
        raise _error(e, what) from None


async def _settle(s: Session) -> None:
    """After an action: give a navigation it started a moment to reach DOMContentLoaded."""
    page = s.current_page()
    if page is None:
        return
    try:
        await page.wait_for_load_state("domcontentloaded", timeout=s.options.action_timeout * 1000)
    except Exception:  # noqa: BLE001 - a slow page is reported by the next snapshot, not here
        pass


# ---------------------------------------------------------------------------------------------


async def browser_navigate(args: NavigateArgs, ctx: Any) -> dict[str, Any]:
    """Open a URL in the rollout's browser tab."""
    s = await session_for(ctx)
    scheme = urlsplit(args.url).scheme.lower()
    if scheme not in s.options.allowed_schemes:
        raise ToolFailure(f"cannot open {scheme or 'relative'!r} URLs; use an absolute "
                          f"{'/'.join(s.options.allowed_schemes)} URL", kind="invalid_url")
    async with s.lock:
        page = s.current_page()
        status = None
        try:
            resp = await page.goto(args.url, wait_until="domcontentloaded", timeout=s.options.navigation_timeout * 1000)
            status = resp.status if resp is not None else None
        except Exception as e:  # noqa: BLE001
            if "Download is starting" in str(e):
                return await _page_info(s, download_started=True)
            from playwright.async_api import TimeoutError as PlaywrightTimeout

            if isinstance(e, PlaywrightTimeout):
                raise ToolFailure(
                    f"{args.url} did not finish loading within {s.options.navigation_timeout:g} s "
                    "(navigation timeout); the server may be slow or hanging", kind="timeout", url=args.url,
                ) from None
            raise _error(e, f"opening {args.url}") from None
        s.snapshotted = False
        if s.options.load_grace > 0:
            try:
                await page.wait_for_load_state("load", timeout=s.options.load_grace * 1000)
            except Exception:  # noqa: BLE001 - the DOM is there; a hanging image need not fail it
                s.notes.append("the page is still loading (some resources did not arrive)")
        return await _page_info(s, status=status)


def _bound(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    head = int(limit * 0.8)
    return f"{text[:head]}\n# ... {len(text) - limit} characters of the snapshot omitted ...\n{text[-(limit - head):]}", True


async def snapshot(s: Session) -> dict[str, Any]:
    page = s.current_page()
    try:
        text = await page.aria_snapshot(mode="ai", timeout=s.options.action_timeout * 1000)
    except Exception as e:  # noqa: BLE001
        raise _error(e, "taking the snapshot") from None
    s.snapshotted = True
    text, cut = _bound(text, s.options.max_snapshot_chars)
    extra: dict[str, Any] = {"snapshot": text, "refs": text.count("[ref=")}
    if cut:
        extra["truncated"] = True
    return await _page_info(s, **extra)


async def browser_snapshot(args: SnapshotArgs, ctx: Any) -> dict[str, Any]:
    """The page's accessibility tree, each interactive element with a ref for click/type."""
    s = await session_for(ctx)
    async with s.lock:
        return await snapshot(s)


async def browser_click(args: ClickArgs, ctx: Any) -> dict[str, Any]:
    s = await session_for(ctx)
    async with s.lock:
        await _act(s, args.ref, f"clicking {args.ref}", lambda loc: loc.click(timeout=s.options.action_timeout * 1000))
        s.snapshotted = False
        await _settle(s)
        return await _page_info(s, clicked=args.ref)


async def browser_type(args: TypeArgs, ctx: Any) -> dict[str, Any]:
    s = await session_for(ctx)
    async with s.lock:
        await _act(s, args.ref, f"typing into {args.ref}", lambda loc: loc.fill(args.text, timeout=s.options.action_timeout * 1000))
        if args.submit:
            await _act(s, args.ref, "pressing Enter", lambda loc: loc.press("Enter", timeout=s.options.action_timeout * 1000))
            s.snapshotted = False
            await _settle(s)
        return await _page_info(s, typed=args.ref, chars=len(args.text))


async def browser_press(args: PressArgs, ctx: Any) -> dict[str, Any]:
    s = await session_for(ctx)
    async with s.lock:
        try:
            await s.current_page().keyboard.press(args.key)
        except Exception as e:  # noqa: BLE001
            raise _error(e, f"pressing {args.key!r}") from None
        s.snapshotted = False
        await _settle(s)
        return await _page_info(s, pressed=args.key)


async def browser_scroll(args: ScrollArgs, ctx: Any) -> dict[str, Any]:
    s = await session_for(ctx)
    async with s.lock:
        page = s.current_page()
        dy = args.amount or s.options.viewport_height - 80
        try:
            await page.mouse.wheel(0, dy if args.direction == "down" else -dy)
            pos = await page.evaluate("() => [window.scrollY, document.documentElement.scrollHeight, window.innerHeight]")
        except Exception as e:  # noqa: BLE001
            raise _error(e, "scrolling") from None
        y, height, view = (int(v) for v in pos)
        return await _page_info(s, scroll_y=y, page_height=height, at_bottom=y + view >= height - 2, at_top=y <= 0)


async def browser_back(args: NoArgs, ctx: Any) -> dict[str, Any]:
    s = await session_for(ctx)
    async with s.lock:
        try:
            resp = await s.current_page().go_back(wait_until="domcontentloaded", timeout=s.options.navigation_timeout * 1000)
        except Exception as e:  # noqa: BLE001
            raise _error(e, "going back") from None
        if resp is None and s.current_page().url in ("about:blank", ""):
            raise ToolFailure("there is no previous page in this tab", kind="no_history")
        s.snapshotted = False
        return await _page_info(s)


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    return 0, 0


async def browser_screenshot(args: ScreenshotArgs, ctx: Any) -> dict[str, Any]:
    """A PNG of the page: returned as an OpenAI ``image_url`` content part (data URL) when it fits
    the output bound, and saved into the sandbox when ``path`` is given."""
    s = await session_for(ctx)
    async with s.lock:
        try:
            png = await s.current_page().screenshot(type="png", full_page=args.full_page,
                                                    timeout=s.options.action_timeout * 2000)
        except Exception as e:  # noqa: BLE001
            raise _error(e, "taking the screenshot") from None
        s.last_screenshot = png
        width, height = _png_size(png)
        extra: dict[str, Any] = {"mime_type": "image/png", "width": width, "height": height, "bytes": len(png)}
        if args.path:
            try:
                await ctx.sandbox.write_bytes(args.path, png)
                extra["path"] = ctx.sandbox.path(args.path)
            except Exception as e:  # noqa: BLE001
                raise ToolFailure(f"cannot save the screenshot at {args.path!r}: {e}", kind="write_failed") from None
        data_url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        limit = getattr(ctx, "max_output_chars", 50_000) - 2_000
        if len(data_url) <= limit:
            extra["content"] = [
                {"type": "text", "text": f"Screenshot of {s.current_page().url} ({width}x{height})"},
                {"type": "image_url", "image_url": {"url": data_url}},
            ]
        else:
            extra["note"] = (f"the PNG ({len(png)} bytes) is larger than the tool output bound, so it is not "
                             "inlined; pass path to save it in the sandbox")
        return await _page_info(s, **extra)


async def browser_console(args: ConsoleArgs, ctx: Any) -> dict[str, Any]:
    """Console messages and uncaught page errors since the last call."""
    s = await session_for(ctx)
    async with s.lock:
        messages = list(s.console)
        if args.clear:
            s.console.clear()
        return await _page_info(s, messages=messages, errors=sum(m["type"] in ("error", "pageerror") for m in messages))


async def browser_close(args: NoArgs, ctx: Any) -> dict[str, Any]:
    """Close this rollout's browser context (all tabs, cookies); the next call starts fresh."""
    mgr = manager_for(ctx)
    existed = ctx.task_id in mgr.sessions
    await mgr.close_session(ctx.task_id)
    return {"closed": existed}
