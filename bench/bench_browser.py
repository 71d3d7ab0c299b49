"""Browser benchmark: hermes' browser tools against bare Playwright calls, in the same run.

1. navigate + snapshot p50: ``browser_navigate`` + ``browser_snapshot`` through the tool
   dispatch (``ctx.call_tool``) against bare ``page.goto`` + ``page.aria_snapshot(mode="ai")``
   on the same page, each in its own Chromium, iterations interleaved. Target: <= 1.2x.
2. memory of 64 open contexts: PSS of the Chromium processes (and the Playwright driver) with
   64 rollouts each holding a context with one page open, against the browser alone.

Needs Debian's chromium (apt-get install chromium fonts-liberation) and pip's playwright.

    python bench/bench_browser.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("HERMES_DISABLE_PLUGIN_AUTOLOAD", "1")
CHROMIUM = os.environ.get("HERMES_CHROMIUM", "/usr/bin/chromium")

PAGE = ("<html><head><title>Bench page</title></head><body><h1>Catalogue</h1><form>"
        "<label>Search <input name=q></label><button>Go</button></form><ul>"
        + "".join(f"<li><a href='/item/{i}'>Item {i}</a> <button>Add {i}</button></li>" for i in range(60))
        + "</ul><table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table></body></html>").encode()


def serve() -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def tree_pss_mb(root_pid: int) -> float:
    """Summed PSS (MB) of ``root_pid``'s descendants: shared pages are split between the
    processes that map them, so Chromium's many processes are not counted many times over."""
    children: dict[int, list[int]] = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                ppid = int(Path(f"/proc/{e}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(e))
    total = 0
    todo = list(children.get(root_pid, []))
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        todo.extend(children.get(p, []))
    return total / 1024


async def main(quick: bool) -> None:
    from playwright.async_api import async_playwright

    import hermes_toolset_browser
    from hermes_core import Runtime

    iters = 10 if quick else 60
    n_ctx = 8 if quick else 64
    httpd = serve()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"

    pw = await async_playwright().start()
    bare_browser = await pw.chromium.launch(executable_path=CHROMIUM, args=list(hermes_toolset_browser.DEFAULT_ARGS))
    bare_ctx = await bare_browser.new_context(viewport={"width": 1280, "height": 720})
    bare_page = await bare_ctx.new_page()

    rt = Runtime(plugins=[hermes_toolset_browser])
    hermes_toolset_browser.configure(rt, executable=CHROMIUM, max_contexts=n_ctx + 1)
    bare_t: list[float] = []
    ours_t: list[float] = []
    async with rt.rollout(backend="local", toolsets=["browser"]) as ctx:
        for warm in range(2):  # launch, first navigation, imports
            await ctx.call_tool("browser_navigate", {"url": url})
            await ctx.call_tool("browser_snapshot", {})
            await bare_page.goto(url, wait_until="domcontentloaded")
            await bare_page.aria_snapshot(mode="ai")
        for _ in range(iters):
            t = time.perf_counter()
            await bare_page.goto(url, wait_until="domcontentloaded")
            try:
                await bare_page.wait_for_load_state("load", timeout=2000)
            except Exception:  # noqa: BLE001
                pass
            bare_snap = await bare_page.aria_snapshot(mode="ai")
            bare_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            await ctx.call_tool("browser_navigate", {"url": url})
            ours = json.loads(await ctx.call_tool("browser_snapshot", {}))
            ours_t.append(time.perf_counter() - t)
        assert ours["snapshot"] == bare_snap, "both paths must see the same page"
        b, o = statistics.median(bare_t), statistics.median(ours_t)
        print(f"navigate + snapshot, {iters} interleaved iterations (p50)")
        print(f"  bare Playwright   {b * 1000:7.1f} ms")
        print(f"  hermes tools      {o * 1000:7.1f} ms")
        print(f"  ratio {o / b:.2f}x  (target <= 1.2x, {'ok' if o / b <= 1.2 else 'OVER'})")

        # memory: the hermes browser alone (one context), then with n_ctx rollouts open
        await bare_browser.close()
        await pw.stop()
        me = os.getpid()
        await asyncio.sleep(0.5)
        base_mb = tree_pss_mb(me)
        stack = []
        for _ in range(n_ctx):
            cm = rt.rollout(backend="local", toolsets=["browser"])
            c = await cm.__aenter__()
            stack.append(cm)
            await c.call_tool("browser_navigate", {"url": url})
        await asyncio.sleep(0.5)
        full_mb = tree_pss_mb(me)
        opened = len(hermes_toolset_browser.manager_for(ctx).sessions)
        for cm in reversed(stack):
            await cm.__aexit__(None, None, None)
        print(f"memory (PSS of Chromium + the Playwright driver), one page per context")
        print(f"  1 context                {base_mb:8.0f} MB")
        print(f"  {opened} contexts               {full_mb:8.0f} MB  (+{(full_mb - base_mb) / n_ctx:.1f} MB per added context)")
    await hermes_toolset_browser.close_browser(rt)
    await rt.aclose()
    httpd.shutdown()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="few iterations and 8 contexts (CI smoke)")
    asyncio.run(main(ap.parse_args().quick))
