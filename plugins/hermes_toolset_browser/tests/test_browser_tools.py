"""The browser tools in a real headless Chromium, on pages served from 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import re

import hermes_toolset_browser


async def call(ctx, name, **args):
    return json.loads(await ctx.call_tool(name, args))


def ref_of(snapshot: str, role: str, name: str) -> str:
    m = re.search(rf'- {role} "{re.escape(name)}"[^\n]*\[ref=(\w+)\]', snapshot)
    assert m, f"no {role} {name!r} in:\n{snapshot}"
    return m.group(1)


async def snap_until(ctx, text: str, tries: int = 50) -> dict:
    """Snapshots until ``text`` appears (bounded: content rendered by scripts arrives later)."""
    for _ in range(tries):
        snap = await call(ctx, "browser_snapshot")
        if text in snap["snapshot"]:
            return snap
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in:\n{snap['snapshot']}")


FORM = """<html><head><title>Sign up</title></head><body>
<h1>Newsletter</h1>
<form action="/thanks" method="get">
  <label>Your name <input name="name"></label>
  <label>Plan <select name="plan"><option>free</option><option>pro</option></select></label>
  <button type="submit">Subscribe</button>
</form>
<a href="/about">About us</a>
</body></html>"""


async def test_form_fill_submit_and_links(ctx, server):
    url = server.page("/form", FORM)
    server.routes["/thanks"] = lambda q, h: (200, {"Content-Type": "text/html"},
                                             f"<title>Thanks</title><p>Welcome, {q.get('name')}!</p>".encode())
    server.page("/about", "<title>About</title><h1>About the newsletter</h1><a href='/form'>Back to form</a>")
    nav = await call(ctx, "browser_navigate", url=url)
    assert nav["status"] == 200 and nav["title"] == "Sign up" and nav["url"] == url
    snap = (await call(ctx, "browser_snapshot"))["snapshot"]
    assert 'heading "Newsletter"' in snap
    typed = await call(ctx, "browser_type", ref=ref_of(snap, "textbox", "Your name"), text="Ada Lovelace")
    assert typed["chars"] == 12
    await call(ctx, "browser_click", ref=ref_of(snap, "button", "Subscribe"))
    snap = await snap_until(ctx, "Welcome, Ada Lovelace!")
    assert snap["title"] == "Thanks" and "name=Ada+Lovelace" in snap["url"]
    back = await call(ctx, "browser_back")
    assert back["url"] == url
    snap = (await call(ctx, "browser_snapshot"))["snapshot"]
    await call(ctx, "browser_click", ref=ref_of(snap, "link", "About us"))
    snap = await snap_until(ctx, "About the newsletter")
    assert snap["url"] == server.base + "/about"


async def test_submit_with_enter_and_press(ctx, server):
    url = server.page("/form", FORM)
    server.routes["/thanks"] = lambda q, h: (200, {"Content-Type": "text/html"}, f"<p>Hi {q.get('name')}</p>".encode())
    await call(ctx, "browser_navigate", url=url)
    snap = (await call(ctx, "browser_snapshot"))["snapshot"]
    await call(ctx, "browser_type", ref=ref_of(snap, "textbox", "Your name"), text="Grace", submit=True)
    await snap_until(ctx, "Hi Grace")
    pressed = await call(ctx, "browser_press", key="Tab")
    assert pressed["pressed"] == "Tab"


async def test_javascript_rendered_content(ctx, server):
    server.routes["/api/items"] = lambda q, h: (200, {"Content-Type": "application/json"},
                                                json.dumps(["alpha item", "beta item"]).encode())
    url = server.page("/app", """<html><body><div id="root">Loading…</div><script>
      fetch('/api/items').then(r => r.json()).then(items => {
        const ul = document.createElement('ul');
        for (const it of items) { const li = document.createElement('li'); li.textContent = it; ul.appendChild(li); }
        const b = document.createElement('button'); b.textContent = 'Load more';
        b.onclick = () => { const li = document.createElement('li'); li.textContent = 'gamma item'; ul.appendChild(li); };
        document.getElementById('root').replaceChildren(ul, b);
      });</script></body></html>""")
    await call(ctx, "browser_navigate", url=url)
    snap = await snap_until(ctx, "beta item")
    assert "Loading" not in snap["snapshot"]
    await call(ctx, "browser_click", ref=ref_of(snap["snapshot"], "button", "Load more"))
    await snap_until(ctx, "gamma item")


async def test_iframes_are_in_the_snapshot_and_clickable(ctx, server):
    server.page("/inner", """<html><body><p id=s>inner idle</p>
      <button onclick="document.getElementById('s').textContent='inner clicked'">Inner button</button></body></html>""")
    url = server.page("/outer", "<html><body><h1>Outer</h1><iframe src='/inner' title='Embedded'></iframe></body></html>")
    await call(ctx, "browser_navigate", url=url)
    snap = await snap_until(ctx, "Inner button")
    ref = ref_of(snap["snapshot"], "button", "Inner button")
    assert ref.startswith("f")  # a frame ref
    await call(ctx, "browser_click", ref=ref)
    await snap_until(ctx, "inner clicked")


async def test_dialogs_are_accepted_and_reported(ctx, server):
    url = server.page("/d", """<html><body><p id=out>nothing yet</p>
      <button onclick="document.getElementById('out').textContent = 'confirmed: ' + confirm('Delete all files?')">Delete</button>
      </body></html>""")
    await call(ctx, "browser_navigate", url=url)
    snap = (await call(ctx, "browser_snapshot"))["snapshot"]
    clicked = await call(ctx, "browser_click", ref=ref_of(snap, "button", "Delete"))
    assert clicked["dialogs"] == [{"type": "confirm", "message": "Delete all files?", "action": "accept"}]
    await snap_until(ctx, "confirmed: true")


async def test_dialogs_can_be_dismissed(runtime, server):
    hermes_toolset_browser.configure(runtime, hermes_toolset_browser.options_for(runtime), dialogs="dismiss")
    async with runtime.rollout(backend="local", toolsets=["browser"]) as ctx:
        url = server.page("/d", """<p id=out>-</p><button onclick="document.getElementById('out').textContent =
          'answer: ' + prompt('Your name?', 'x')">Ask</button>""")
        await call(ctx, "browser_navigate", url=url)
        snap = (await call(ctx, "browser_snapshot"))["snapshot"]
        clicked = await call(ctx, "browser_click", ref=ref_of(snap, "button", "Ask"))
        assert clicked["dialogs"][0]["type"] == "prompt"
        await snap_until(ctx, "answer: null")


async def test_page_that_never_finishes_loading_is_a_timeout_error(runtime, server):
    hermes_toolset_browser.configure(runtime, hermes_toolset_browser.options_for(runtime), navigation_timeout=1.5)
    server.routes["/hang"] = lambda q, h: (server.release.wait(60), (200, {}, b""))[1]
    async with runtime.rollout(backend="local", toolsets=["browser"]) as ctx:
        out = await call(ctx, "browser_navigate", url=server.base + "/hang")
        assert out["error"]["type"] == "timeout" and "did not finish loading" in out["error"]["message"]
        assert ctx.tool_errors[-1].kind == "timeout"
        ok = await call(ctx, "browser_navigate", url=server.page("/ok", "<title>fine</title><p>ok</p>"))
        assert ok["title"] == "fine"  # the rollout's browser is still usable


async def test_hanging_subresource_does_not_fail_navigation(runtime, server):
    hermes_toolset_browser.configure(runtime, hermes_toolset_browser.options_for(runtime), load_grace=0.5)
    server.routes["/slow.png"] = lambda q, h: (server.release.wait(60), (200, {"Content-Type": "image/png"}, b""))[1]
    async with runtime.rollout(backend="local", toolsets=["browser"]) as ctx:
        out = await call(ctx, "browser_navigate", url=server.page("/p", "<title>T</title><p>text</p><img src='/slow.png'>"))
        assert out["title"] == "T" and "still loading" in out["note"]


async def test_download_lands_in_the_sandbox(ctx, server):
    data = b"id,value\n1,alpha\n2,beta\n" + bytes(range(256))
    server.routes["/report.csv"] = lambda q, h: (200, {"Content-Type": "text/csv",
                                                       "Content-Disposition": 'attachment; filename="report.csv"'}, data)
    url = server.page("/dl", "<a href='/report.csv'>Download report</a>")
    await call(ctx, "browser_navigate", url=url)
    snap = (await call(ctx, "browser_snapshot"))["snapshot"]
    clicked = await call(ctx, "browser_click", ref=ref_of(snap, "link", "Download report"))
    (dl,) = clicked["downloads"]
    assert dl["filename"] == "report.csv" and dl["bytes"] == len(data)
    assert await ctx.sandbox.read_bytes("downloads/report.csv") == data


async def test_console_messages_and_page_errors(ctx, server):
    url = server.page("/c", "<script>console.log('hello console'); console.warn('careful');"
                            "setTimeout(() => { throw new Error('boom from page') }, 0);</script><p>c</p>")
    await call(ctx, "browser_navigate", url=url)
    for _ in range(50):
        out = await call(ctx, "browser_console", clear=False)
        if any("boom from page" in m["text"] for m in out["messages"]):
            break
        await asyncio.sleep(0.1)
    texts = {m["type"]: m["text"] for m in out["messages"]}
    assert texts["log"] == "hello console" and texts["warning"] == "careful"
    assert "boom from page" in texts["pageerror"]
    assert out["errors"] == sum(m["type"] in ("error", "pageerror") for m in out["messages"]) >= 1
    assert (await call(ctx, "browser_console"))["messages"]  # returned once more, then cleared
    assert (await call(ctx, "browser_console"))["messages"] == []


async def test_screenshot_png_and_image_part(ctx, server):
    await call(ctx, "browser_navigate", url=server.page("/s", "<body style='background:#c00'><h1>Red page</h1></body>"))
    shot = await call(ctx, "browser_screenshot", path="shots/page.png")
    assert (shot["width"], shot["height"]) == (1280, 720) and shot["mime_type"] == "image/png"
    png = await ctx.sandbox.read_bytes("shots/page.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) == shot["bytes"]
    text_part, image_part = shot["content"]
    assert text_part["type"] == "text" and image_part["type"] == "image_url"
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == png


async def test_scroll(ctx, server):
    await call(ctx, "browser_navigate", url=server.page("/long", "<div style='height:5000px'>tall</div><p>end</p>"))
    down = await call(ctx, "browser_scroll", direction="down", amount=1000)
    for _ in range(20):  # wheel scrolling is applied asynchronously by the compositor
        if down["scroll_y"] > 0:
            break
        await asyncio.sleep(0.05)
        down = await call(ctx, "browser_scroll", direction="down", amount=1)
    assert 0 < down["scroll_y"] <= 1100 and down["at_top"] is False and down["page_height"] >= 5000
    up = await call(ctx, "browser_scroll", direction="up", amount=100_000)
    for _ in range(20):
        if up["scroll_y"] == 0:
            break
        await asyncio.sleep(0.05)
        up = await call(ctx, "browser_scroll", direction="up", amount=100_000)
    assert up["scroll_y"] == 0 and up["at_top"] is True


async def test_refs_errors_are_structured(ctx, server):
    await call(ctx, "browser_navigate", url=server.page("/r", "<button onclick='this.remove()'>Vanish</button>"))
    out = await call(ctx, "browser_click", ref="e2")
    assert out["error"]["type"] == "invalid_ref" and "browser_snapshot" in out["error"]["message"]
    snap = (await call(ctx, "browser_snapshot"))["snapshot"]
    ref = ref_of(snap, "button", "Vanish")
    assert "clicked" in await call(ctx, "browser_click", ref=ref)
    await call(ctx, "browser_snapshot")
    out = await call(ctx, "browser_click", ref=ref)
    assert out["error"]["type"] == "stale_ref"
    out = await call(ctx, "browser_click", ref="#submit")
    assert out["error"]["type"] == "invalid_ref"


async def test_file_urls_are_refused(ctx):
    out = await call(ctx, "browser_navigate", url="file:///etc/passwd")
    assert out["error"]["type"] == "invalid_url"
    out = await call(ctx, "browser_navigate", url="/relative")
    assert out["error"]["type"] == "invalid_url"


async def test_snapshot_is_bounded(runtime, server):
    hermes_toolset_browser.configure(runtime, hermes_toolset_browser.options_for(runtime), max_snapshot_chars=2000)
    async with runtime.rollout(backend="local", toolsets=["browser"]) as ctx:
        items = "".join(f"<li><a href='/i{i}'>item number {i}</a></li>" for i in range(500))
        await call(ctx, "browser_navigate", url=server.page("/big", f"<ul>{items}</ul>"))
        snap = await call(ctx, "browser_snapshot")
        assert snap["truncated"] is True and 2000 <= len(snap["snapshot"]) <= 2200
        assert "item number 0" in snap["snapshot"] and "item number 499" in snap["snapshot"]


async def test_close_starts_fresh(ctx, server):
    server.routes["/set"] = lambda q, h: (200, {"Content-Type": "text/html", "Set-Cookie": "k=v; Path=/"}, b"<p>set</p>")
    server.routes["/get"] = lambda q, h: (200, {"Content-Type": "text/html"}, f"<p>cookie=[{h.get('cookie', '')}]</p>".encode())
    await call(ctx, "browser_navigate", url=server.base + "/set")
    await call(ctx, "browser_navigate", url=server.base + "/get")
    assert "cookie=[k=v]" in (await call(ctx, "browser_snapshot"))["snapshot"]
    assert (await call(ctx, "browser_close"))["closed"] is True
    await call(ctx, "browser_navigate", url=server.base + "/get")
    assert "cookie=[]" in (await call(ctx, "browser_snapshot"))["snapshot"]
