"""web_extract against real HTTP on 127.0.0.1: real-world-shaped pages, charsets, a PDF, and the
responses that go wrong (slow, huge, redirect loops, wrong types)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hermes_toolset_web

PAGES = Path(__file__).parent / "pages"
HTML = {"Content-Type": "text/html; charset=utf-8"}


async def _extract(ctx, *urls):
    return json.loads(await ctx.call_tool("web_extract", {"urls": list(urls)}))


def make_pdf(lines: list[str], title: str = "") -> bytes:
    """A small valid PDF with one page of text in Helvetica (xref offsets computed)."""
    text = "BT /F1 14 Tf 72 720 Td 18 TL " + " ".join(
        "(" + s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '" for s in lines) + " ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text.encode("latin-1")),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title (%s) >>" % title.encode("latin-1"),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


async def test_news_article_main_text_without_chrome(ctx, server):
    url = server.route("/news/tidal", (200, HTML, (PAGES / "article.html").read_bytes()))
    (page,) = (await _extract(ctx, url))["results"]
    assert page["status"] == 200 and page["content_type"] == "text/html"
    assert page["title"].startswith("Tidal power station opens")
    text = page["content"]
    assert "feeding electricity into the grid" in text and "salmon run" in text
    assert "Phase two" in text and "24" in text  # the table survives
    for junk in ("TRACKING_SECRET", "do-not-show-me", "BUY CHEAP WATCHES", "We use cookies", "Cup final", "first!!!", "gtag"):
        assert junk not in text, junk
    links = {link["url"]: link["text"] for link in page["links"]}
    assert links[f"{server.base}/science/tidal-faq"] == "tidal energy FAQ"  # made absolute
    assert links["https://energy.example.org/report.pdf"] == "full government report"
    assert not any(u.startswith(("javascript:", "mailto:")) for u in links)


@pytest.mark.parametrize("encoding,declared", [
    ("windows-1252", "header"), ("shift_jis", "meta"), ("koi8-r", "header"), ("iso-8859-15", "meta"),
    ("windows-1252", "nothing"),
])
async def test_non_utf8_pages(ctx, server, encoding, declared):
    words = {
        "windows-1252": "Café crème brûlée — déjà vu, naïve façade, “quoted”",
        "shift_jis": "日本語のテキストです。東京の天気は晴れ。",
        "koi8-r": "Съешь же ещё этих мягких французских булок",
        "iso-8859-15": "Le prix est de 20 € pour l'œuvre",
    }[encoding]
    meta = f'<meta charset="{encoding}">' if declared == "meta" else ""
    doc = f"<html><head>{meta}<title>{words[:12]}</title></head><body><article><p>{words}</p>" \
          f"<p>{words} {words}</p></article></body></html>"
    ctype = f"text/html; charset={encoding}" if declared == "header" else "text/html"
    url = server.route("/enc", (200, {"Content-Type": ctype}, doc.encode(encoding)))
    (page,) = (await _extract(ctx, url))["results"]
    assert words in page["content"], page
    assert page["title"] == words[:12].strip()


async def test_pdf_text(ctx, server):
    pdf = make_pdf(["Quarterly report on tidal energy", "Output rose by 12 percent."], title="Tidal Q1")
    url = server.route("/r.pdf", (200, {"Content-Type": "application/pdf"}, pdf))
    (page,) = (await _extract(ctx, url))["results"]
    assert page["content_type"] == "application/pdf" and page["pages"] == 1
    assert page["title"] == "Tidal Q1"
    assert "Quarterly report on tidal energy" in page["content"] and "12 percent" in page["content"]


async def test_pdf_without_content_type_is_sniffed_and_a_broken_pdf_is_an_error(ctx, server):
    good = server.route("/a", (200, {}, make_pdf(["sniffed pdf text"])))
    bad = server.route("/b", (200, {"Content-Type": "application/pdf"}, b"%PDF-1.4\ngarbage"))
    a, b = (await _extract(ctx, good, bad))["results"]
    assert "sniffed pdf text" in a["content"]
    assert b["error"]["type"] == "extraction_error"


async def test_slow_response_times_out_per_url(ctx, runtime, server, trickle):
    hermes_toolset_web.configure(runtime, allow_hosts=["127.0.0.1"], timeout=1.0)
    slow = server.route("/slow", lambda req: (200, HTML, trickle(3.0)))
    fast = server.route("/fast", (200, HTML, b"<html><body><p>quick page</p></body></html>"))
    a, b = (await _extract(ctx, slow, fast))["results"]
    assert a["error"]["type"] == "timeout"
    assert "quick page" in b["content"]


async def test_huge_responses_are_refused(ctx, runtime, server):
    hermes_toolset_web.configure(runtime, allow_hosts=["127.0.0.1"], max_bytes=100_000)
    declared = server.route("/declared", (200, {**HTML, "Content-Length": str(10**9)}, b""))
    streamed = server.route("/streamed", lambda req: (200, HTML, (b"<p>" + b"x" * 8192 + b"</p>" for _ in range(10_000))))
    small = server.route("/small", (200, HTML, b"<p>" + b"y" * 90_000 + b"</p>"))
    a, b, c = (await _extract(ctx, declared, streamed, small))["results"]
    assert a["error"]["type"] == "too_large" and b["error"]["type"] == "too_large"
    assert c["chars"] == 90_000


async def test_redirects(ctx, server):
    server.route("/loop1", (302, {"Location": "/loop2"}, b""))
    server.route("/loop2", (301, {"Location": "/loop1"}, b""))
    for i in range(10):
        server.route(f"/chain{i}", (307, {"Location": f"/chain{i + 1}"}, b""))
    server.route("/chain10", (200, HTML, b"<p>end of chain</p>"))
    server.route("/hop", (302, {"Location": "/chain8"}, b""))
    loop, chain, ok = (await _extract(ctx, server.base + "/loop1", server.base + "/chain0", server.base + "/hop"))["results"]
    assert loop["error"]["type"] == "redirect_loop"
    assert chain["error"]["type"] == "too_many_redirects"
    assert ok["final_url"] == server.base + "/chain10" and "end of chain" in ok["content"]


async def test_wrong_content_types_are_refused_without_reading(ctx, server):
    png = server.route("/img", (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + b"\0" * 100))
    octet = server.route("/bin", (200, {}, b"\x00\x01\x02 binary"))
    a, b = (await _extract(ctx, png, octet))["results"]
    assert a["error"]["type"] == "unsupported_content_type" and "image/png" in a["error"]["message"]
    assert b["error"]["type"] == "unsupported_content_type"


async def test_per_url_errors_do_not_fail_the_call(ctx, server):
    good = server.route("/good", (200, HTML, b"<html><body><p>fine page</p></body></html>"))
    out = await _extract(ctx, good, server.base + "/missing", "ftp://example.com/x", "http://10.1.2.3/", "not a url")
    kinds = [r.get("error", {}).get("type") for r in out["results"]]
    assert kinds == [None, "http_error", "invalid_url", "blocked_address", "invalid_url"]
    assert "fine page" in out["results"][0]["content"]
    assert ctx.tool_errors == []  # the call itself succeeded


async def test_output_is_bounded(ctx, runtime, server):
    hermes_toolset_web.configure(runtime, allow_hosts=["127.0.0.1"], max_chars=5_000)
    para = "".join(f"<p>Paragraph {i} of a very long document with plenty of words in it.</p>" for i in range(3000))
    url = server.route("/long", (200, HTML, f"<html><body><article>{para}</article></body></html>".encode()))
    (page,) = (await _extract(ctx, url))["results"]
    assert page["truncated"] is True and page["chars"] > 100_000
    assert 5_000 <= len(page["content"]) <= 5_200
    assert "Paragraph 0 " in page["content"] and "Paragraph 2999 " in page["content"]  # head and tail
    many = await ctx.call_tool("web_extract", {"urls": [url] * 1})
    assert len(many) <= ctx.max_output_chars + 1000


async def test_too_many_urls_and_empty_list_are_argument_errors(ctx, runtime):
    hermes_toolset_web.configure(runtime, max_urls=2)
    out = await _extract(ctx, "http://a.example/", "http://b.example/", "http://c.example/")
    assert out["error"]["type"] == "invalid_arguments"
    out = json.loads(await ctx.call_tool("web_extract", {"urls": []}))
    assert out["error"]["type"] == "invalid_arguments"


async def test_tool_context_methods_reach_the_tools(ctx, runtime, server):
    url = server.route("/v", (200, HTML, b"<html><head><title>Verifier view</title></head><body><p>checked</p></body></html>"))
    out = await ctx.web_extract([url])
    assert out["results"][0]["title"] == "Verifier view"
    server.route("/search", (200, {"Content-Type": "application/json"},
                             json.dumps({"results": [{"url": "https://x.example/", "title": "X", "content": "x"}]}).encode()))
    hermes_toolset_web.configure(runtime, provider="searxng", base_url=server.base, allow_hosts=["127.0.0.1"])
    found = await ctx.web_search("anything")
    assert found == {"results": [{"title": "X", "url": "https://x.example/", "snippet": "x"}],
                     "provider": "searxng", "query": "anything"}
