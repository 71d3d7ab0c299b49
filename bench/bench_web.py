"""web_extract benchmark: pages per second through the tool against the bare extractor, same run.

The bare baseline is what web_extract does without hermes: one long-lived httpx client GETs the
same pages from the same loopback server (same concurrency) and trafilatura extracts each one in
a worker thread, with the extractor settings web_extract uses. hermes adds the SSRF check on each connection, the redirect/size/type checks, the links
and title, bounding and the tool dispatch. Rounds interleave (and alternate which goes first) so
both see the same machine state. Target (issue 15): hermes <= 1.2x the bare time, i.e. >= 0.83x its pages/s.

    python bench/bench_web.py [--quick]
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

ARTICLE = Path(__file__).resolve().parents[1] / "plugins/hermes_toolset_web/tests/pages/article.html"


def make_pages(n: int) -> dict[str, bytes]:
    base = ARTICLE.read_text(encoding="utf-8")
    pages = {}
    for i in range(n):
        extra = "".join(f"<p>Paragraph {j} of page {i}: the estuary, the turbines and the tide tables.</p>" for j in range(40))
        pages[f"/p{i}"] = base.replace("</article>", extra + "</article>").encode()
    return pages


def serve(pages: dict[str, bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            body = pages.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


async def bare_round(client, urls: list[str], concurrency: int) -> int:
    import trafilatura

    sem = asyncio.Semaphore(concurrency)

    async def one(client, url: str) -> str:
        async with sem:
            resp = await client.get(url)
        # the extractor settings web_extract uses, so the ratio is hermes' overhead alone
        return await asyncio.to_thread(trafilatura.extract, resp.text, url=url, include_tables=True,
                                       include_comments=False) or ""

    texts = await asyncio.gather(*(one(client, u) for u in urls))
    return sum(bool(t) for t in texts)


async def hermes_round(ctx, urls: list[str]) -> int:
    out = json.loads(await ctx.call_tool("web_extract", {"urls": urls}))
    return sum("content" in r and bool(r["content"]) for r in out["results"])


async def main(quick: bool) -> None:
    import hermes_toolset_web
    from hermes_core import Runtime

    n_pages, rounds = (10, 4) if quick else (10, 30)
    pages = make_pages(n_pages)
    httpd = serve(pages)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    urls = [base + p for p in pages]
    rt = Runtime(plugins=[hermes_toolset_web])
    opts = hermes_toolset_web.configure(rt, allow_hosts=["127.0.0.1"], max_urls=len(urls))
    bare_t: list[float] = []
    ours_t: list[float] = []
    bare_c: list[float] = []
    ours_c: list[float] = []
    import httpx

    # The strict baseline: one long-lived client (kept-alive connections, one TLS context),
    # while each web_extract call builds its own guarded client.
    async with rt, rt.rollout(backend="local", toolsets=["web"]) as ctx, httpx.AsyncClient(trust_env=False) as client:
        assert await bare_round(client, urls, opts.concurrency) == n_pages  # warm-up (imports), checked
        assert await hermes_round(ctx, urls) == n_pages
        for i in range(rounds):
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):  # alternate who goes first
                t, c = time.perf_counter(), time.process_time()
                if which == 0:
                    await bare_round(client, urls, opts.concurrency)
                    bare_t.append(time.perf_counter() - t)
                    bare_c.append(time.process_time() - c)
                else:
                    await hermes_round(ctx, urls)
                    ours_t.append(time.perf_counter() - t)
                    ours_c.append(time.process_time() - c)
    httpd.shutdown()
    b, o = statistics.median(bare_t), statistics.median(ours_t)
    ratio = o / b
    print(f"web_extract, {n_pages} pages per call, {rounds} rounds (p50 of each)")
    print(f"  bare httpx + trafilatura  {n_pages / b:7.1f} pages/s  ({b * 1000:7.1f} ms per round)")
    print(f"  hermes web_extract        {n_pages / o:7.1f} pages/s  ({o * 1000:7.1f} ms per round)")
    print(f"  time ratio {ratio:.2f}x  (target <= 1.2x, {'ok' if ratio <= 1.2 else 'OVER'})")
    # CPU time of this process (client, extractor threads and the loopback server alike): what
    # the work costs, less disturbed than wall time by other load on a shared machine.
    cb, co = statistics.median(bare_c), statistics.median(ours_c)
    print(f"  CPU per round: bare {cb * 1000:.1f} ms, hermes {co * 1000:.1f} ms, ratio {co / cb:.2f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="few rounds (CI smoke)")
    asyncio.run(main(ap.parse_args().quick))
