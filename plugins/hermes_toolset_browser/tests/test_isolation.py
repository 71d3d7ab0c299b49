"""Per-rollout contexts: separate cookies, closed by the rollout's cleanup, a cap on open
contexts, one shared browser process, restart after a crash, and the verifier's ToolContext
methods reaching the context the model used."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

import hermes_toolset_browser


async def call(ctx, name, **args):
    return json.loads(await ctx.call_tool(name, args))


def cookie_routes(server):
    server.routes["/login"] = lambda q, h: (200, {"Content-Type": "text/html", "Set-Cookie": f"user={q['u']}; Path=/"},
                                            b"<p>logged in</p>")
    server.routes["/whoami"] = lambda q, h: (200, {"Content-Type": "text/html"},
                                             f"<p>you are [{h.get('cookie', 'nobody')}]</p>".encode())


async def test_16_concurrent_rollouts_have_separate_cookies(runtime, server):
    cookie_routes(server)

    managers = set()

    async def one(i: int) -> str:
        async with runtime.rollout(backend="local", toolsets=["browser"]) as ctx:
            await call(ctx, "browser_navigate", url=f"{server.base}/login?u=user{i}")
            managers.add(hermes_toolset_browser.manager_for(ctx))
            await asyncio.sleep(0.05)  # let the other rollouts log in meanwhile
            await call(ctx, "browser_navigate", url=f"{server.base}/whoami")
            return (await call(ctx, "browser_snapshot"))["snapshot"]

    snaps = await asyncio.gather(*(one(i) for i in range(16)))
    for i, snap in enumerate(snaps):
        assert f"you are [user=user{i}]" in snap, snap
    (mgr,) = managers
    assert mgr.launches == 1  # one browser process for all of them
    assert mgr.sessions == {} and mgr.browser.contexts == []  # every rollout's cleanup closed its context


async def test_cleanup_closes_the_rollouts_context(runtime, server):
    async with runtime.rollout(backend="local", toolsets=["browser"]) as ctx:
        await call(ctx, "browser_navigate", url=server.page("/a", "<p>a</p>"))
        mgr = hermes_toolset_browser.manager_for(ctx)
        context = mgr.sessions[ctx.task_id].context
        assert len(mgr.browser.contexts) == 1
    assert ctx.task_id not in mgr.sessions and mgr.browser.contexts == []
    assert context.pages == []


async def test_cap_on_open_contexts(runtime, server):
    hermes_toolset_browser.configure(runtime, hermes_toolset_browser.options_for(runtime), max_contexts=2, context_wait=0.5)
    url = server.page("/p", "<p>p</p>")
    async with runtime.rollout(backend="local", toolsets=["browser"]) as a, \
            runtime.rollout(backend="local", toolsets=["browser"]) as b:
        await call(a, "browser_navigate", url=url)
        await call(b, "browser_navigate", url=url)
        async with runtime.rollout(backend="local", toolsets=["browser"]) as c:
            out = await call(c, "browser_navigate", url=url)
            assert out["error"]["type"] == "too_many_contexts" and "max_contexts" in out["error"]["message"]
            await call(a, "browser_close")  # frees a slot
            out = await call(c, "browser_navigate", url=url)
            assert out["url"] == url


async def test_a_waiting_rollout_gets_the_next_free_slot(runtime, server):
    hermes_toolset_browser.configure(runtime, hermes_toolset_browser.options_for(runtime), max_contexts=1, context_wait=30)
    url = server.page("/p", "<p>p</p>")
    async with runtime.rollout(backend="local", toolsets=["browser"]) as a:
        await call(a, "browser_navigate", url=url)
        async with runtime.rollout(backend="local", toolsets=["browser"]) as b:
            waiting = asyncio.ensure_future(call(b, "browser_navigate", url=url))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await call(a, "browser_close")
            assert (await asyncio.wait_for(waiting, 30))["url"] == url


def _chromium_root(pid: int) -> int | None:
    """The browser process Playwright launched: a chromium descendant of ``pid`` whose parent is not chromium."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        try:
            exe = os.readlink(f"/proc/{p}/exe")
        except OSError:
            continue
        if "chromium" in exe or "chrome" in exe:
            return p
        todo.extend(children.get(p, []))
    return None


async def test_a_crashed_browser_is_restarted_and_the_rollout_is_told(ctx, server):
    await call(ctx, "browser_navigate", url=server.page("/a", "<title>A</title>"))
    mgr = hermes_toolset_browser.manager_for(ctx)
    root = _chromium_root(os.getpid())
    assert root is not None
    os.kill(root, signal.SIGKILL)
    for _ in range(100):
        if not mgr.browser.is_connected():
            break
        await asyncio.sleep(0.05)
    out = await call(ctx, "browser_navigate", url=server.page("/b", "<title>B</title>"))
    assert out["title"] == "B" and "crashed and was restarted" in out["note"]
    assert mgr.launches == 2
    again = await call(ctx, "browser_snapshot")
    assert "note" not in again  # said once


async def test_verifier_methods_reach_the_models_context(ctx, server):
    url = server.page("/f", "<label>Answer <input></label>")
    await call(ctx, "browser_navigate", url=url)
    snap = (await call(ctx, "browser_snapshot"))["snapshot"]
    ref = snap.split('textbox "Answer" [ref=')[1].split("]")[0]
    await call(ctx, "browser_type", ref=ref, text="forty-two")
    # the verifier: same ToolContext, no navigation of its own
    seen = await ctx.browser_snapshot()
    assert 'textbox "Answer"' in seen["snapshot"] and "forty-two" in seen["snapshot"]
    nav = await ctx.browser_navigate(server.page("/g", "<title>Verifier</title>"))
    assert nav["title"] == "Verifier"


async def test_rollouts_of_two_runtimes_use_two_browsers(server):
    from hermes_core import Runtime

    chromium = os.environ.get("HERMES_CHROMIUM", "/usr/bin/chromium")
    rts = [Runtime(plugins=[hermes_toolset_browser]) for _ in range(2)]
    try:
        mgrs = []
        for rt in rts:
            hermes_toolset_browser.configure(rt, executable=chromium)
            async with rt.rollout(backend="local", toolsets=["browser"]) as ctx:
                await call(ctx, "browser_navigate", url=server.page("/x", "<p>x</p>"))
                mgrs.append(hermes_toolset_browser.manager_for(ctx))
        assert mgrs[0] is not mgrs[1] and mgrs[0].browser is not mgrs[1].browser
    finally:
        for rt in rts:
            await hermes_toolset_browser.close_browser(rt)
            await rt.aclose()


async def test_missing_chromium_is_a_structured_error(runtime):
    hermes_toolset_browser.configure(runtime, hermes_toolset_browser.options_for(runtime), executable="/nonexistent/chromium")
    async with runtime.rollout(backend="local", toolsets=["browser"]) as ctx:
        out = await call(ctx, "browser_navigate", url="http://127.0.0.1:9/")
        assert out["error"]["type"] == "browser_unavailable" and "apt-get install chromium" in out["error"]["message"]


async def test_popups_become_the_current_tab_and_are_capped(runtime, server):
    hermes_toolset_browser.configure(runtime, hermes_toolset_browser.options_for(runtime), max_tabs=3)
    server.page("/popup", "<title>Popup</title><p>popup page</p>")
    url = server.page("/opener", "<a href='/popup' target='_blank'>Open popup</a>"
                                 "<button onclick=\"for (let i = 0; i < 20; i++) window.open('/popup')\">Spam</button>")
    async with runtime.rollout(backend="local", toolsets=["browser"]) as ctx:
        await call(ctx, "browser_navigate", url=url)
        snap = (await call(ctx, "browser_snapshot"))["snapshot"]
        ref = snap.split('link "Open popup" [ref=')[1].split("]")[0]
        await call(ctx, "browser_click", ref=ref)
        for _ in range(50):
            if (await call(ctx, "browser_snapshot"))["title"] == "Popup":
                break
            await asyncio.sleep(0.1)
        assert (await call(ctx, "browser_snapshot"))["title"] == "Popup"  # the new tab is current
        await call(ctx, "browser_back")  # no history in the popup: stays or errors, never raises
        await call(ctx, "browser_navigate", url=url)
        snap = (await call(ctx, "browser_snapshot"))["snapshot"]
        ref = snap.split('button "Spam" [ref=')[1].split("]")[0]
        out = await call(ctx, "browser_click", ref=ref)
        context = hermes_toolset_browser.manager_for(ctx).sessions[ctx.task_id].context
        for _ in range(50):
            await asyncio.sleep(0.1)
            if len(context.pages) <= 3:
                break
        assert 1 <= len(context.pages) <= 3
        later = await call(ctx, "browser_snapshot")
        assert "tab was closed" in (out.get("note", "") + later.get("note", ""))


async def test_cancelled_rollout_still_closes_its_context(runtime, server):
    server.routes["/hang"] = lambda q, h: (server.release.wait(60), (200, {}, b""))[1]
    holder = {}

    async def rollout():
        async with runtime.rollout(backend="local", toolsets=["browser"]) as ctx:
            await call(ctx, "browser_navigate", url=server.page("/a", "<p>a</p>"))
            holder["mgr"] = hermes_toolset_browser.manager_for(ctx)
            holder["task"] = ctx.task_id
            await call(ctx, "browser_navigate", url=server.base + "/hang")  # cancelled in here

    task = asyncio.ensure_future(rollout())
    for _ in range(200):
        if "mgr" in holder:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    mgr = holder["mgr"]
    assert holder["task"] not in mgr.sessions and mgr.browser.contexts == []


async def test_runtime_close_stops_the_browser_when_the_core_supports_it(server):
    from hermes_core import Runtime

    rt = Runtime(plugins=[hermes_toolset_browser])
    if not hasattr(rt, "add_close_callback"):
        pytest.skip("this hermes-core has no Runtime.add_close_callback; close_browser(runtime) is needed")
    hermes_toolset_browser.configure(rt, executable=os.environ.get("HERMES_CHROMIUM", "/usr/bin/chromium"),
                                     navigation_timeout=60, action_timeout=30, launch_timeout=120)
    async with rt.rollout(backend="local", toolsets=["browser"]) as ctx:
        await call(ctx, "browser_navigate", url=server.page("/a", "<p>a</p>"))
        browser = hermes_toolset_browser.manager_for(ctx).browser
    assert browser.is_connected()
    await rt.aclose()
    assert not browser.is_connected()
