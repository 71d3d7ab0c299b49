"""Each search provider against a loopback server speaking that provider's documented API: the
fakes check method, path, headers and parameters, and answer in the real response format."""

from __future__ import annotations

import json

import pytest

import hermes_toolset_web


def _json(body: object, status: int = 200) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


async def _search(ctx, **args):
    return json.loads(await ctx.call_tool("web_search", args))


async def test_searxng_json_api(ctx, runtime, server, monkeypatch):
    def handler(req):
        assert req.method == "GET"
        assert req.query["format"] == "json" and req.query["q"] == "hermes agents"
        assert "application/json" in req.headers["accept"]
        return _json({"query": "hermes agents", "number_of_results": 3, "results": [
            {"url": "https://a.example/1", "title": "A &amp; B", "content": "first <b>hit</b>", "engine": "ddg", "score": 1.0},
            {"url": "https://a.example/2", "title": "Two", "content": "second", "engine": "brave"},
            {"url": "https://a.example/3", "title": "Three", "content": "third", "engine": "brave"},
        ], "answers": [], "suggestions": [], "unresponsive_engines": []})

    server.route("/searx/search", handler)
    hermes_toolset_web.configure(runtime, provider="searxng", base_url=server.base + "/searx")
    out = await _search(ctx, query="hermes agents", limit=2)
    assert out["provider"] == "searxng"
    assert out["results"] == [
        {"title": "A & B", "url": "https://a.example/1", "snippet": "first hit"},
        {"title": "Two", "url": "https://a.example/2", "snippet": "second"},
    ]
    assert len(server.requests) == 1


async def test_searxng_without_json_format_says_how_to_enable_it(ctx, runtime, server):
    server.route("/search", (403, {"Content-Type": "text/html"}, b"<h1>403 Forbidden</h1>"))
    hermes_toolset_web.configure(runtime, provider="searxng", base_url=server.base)
    out = await _search(ctx, query="q")
    assert out["error"]["type"] == "provider_error"
    assert "search.formats" in out["error"]["message"]


async def test_brave_web_search_api(ctx, runtime, server, monkeypatch):
    monkeypatch.setenv("BRAVE_API_KEY", "brave-secret")

    def handler(req):
        assert req.method == "GET"
        assert req.headers["x-subscription-token"] == "brave-secret"
        assert req.headers["accept"] == "application/json"
        assert req.query == {"q": "rust async", "count": "3"}
        return _json({"type": "search", "query": {"original": "rust async"}, "web": {"type": "search", "results": [
            {"type": "search_result", "title": "Async <strong>Rust</strong>", "url": "https://r.example/",
             "description": "The <strong>async</strong> book", "language": "en", "family_friendly": True},
        ] * 3}})

    server.route("/res/v1/web/search", handler)
    hermes_toolset_web.configure(runtime, provider="brave", base_url=server.base)
    out = await _search(ctx, query="rust async", limit=3)
    assert out["provider"] == "brave"
    assert out["results"][0] == {"title": "Async Rust", "url": "https://r.example/", "snippet": "The async book"}
    assert len(out["results"]) == 3


async def test_tavily_search_api(ctx, runtime, server, monkeypatch):
    monkeypatch.setenv("MY_TAVILY", "tvly-abc")

    def handler(req):
        assert req.method == "POST"
        assert req.headers["authorization"] == "Bearer tvly-abc"
        assert req.headers["content-type"].startswith("application/json")
        body = json.loads(req.body)
        assert body["query"] == "llm evals" and body["max_results"] == 2
        return _json({"query": "llm evals", "answer": None, "images": [], "response_time": 0.9, "results": [
            {"title": "Evals", "url": "https://t.example/e", "content": "How to evaluate", "score": 0.9, "raw_content": None},
            {"title": "More", "url": "https://t.example/m", "content": "More evals", "score": 0.5, "raw_content": None},
        ]})

    server.route("/search", handler)
    hermes_toolset_web.configure(runtime, provider="tavily", base_url=server.base, api_key_env="MY_TAVILY")
    out = await _search(ctx, query="llm evals", limit=2)
    assert out == {"results": [
        {"title": "Evals", "url": "https://t.example/e", "snippet": "How to evaluate"},
        {"title": "More", "url": "https://t.example/m", "snippet": "More evals"},
    ], "provider": "tavily", "query": "llm evals"}


async def test_exa_search_api(ctx, runtime, server, monkeypatch):
    monkeypatch.setenv("EXA_API_KEY", "exa-key")

    def handler(req):
        assert req.method == "POST" and req.path == "/search"
        assert req.headers["x-api-key"] == "exa-key"
        body = json.loads(req.body)
        assert body["query"] == "vector db" and body["numResults"] == 2
        assert body["contents"]["text"]["maxCharacters"] > 0
        return _json({"requestId": "r1", "resolvedSearchType": "neural", "results": [
            {"id": "https://e.example/1", "title": "One", "url": "https://e.example/1", "publishedDate": None,
             "author": None, "text": "Vector databases store embeddings."},
            {"id": "https://e.example/2", "title": "Two", "url": "https://e.example/2", "highlights": ["a highlight"],
             "highlightScores": [0.4], "text": "long text"},
        ], "costDollars": {"total": 0.005}})

    server.route("/search", handler)
    hermes_toolset_web.configure(runtime, provider="exa", base_url=server.base)
    out = await _search(ctx, query="vector db", limit=2)
    assert out["provider"] == "exa"
    assert [r["snippet"] for r in out["results"]] == ["Vector databases store embeddings.", "a highlight"]


DDG_PAGE = """<!DOCTYPE html><html><head><title>q at DuckDuckGo</title></head><body>
<div class="serp__results"><div id="links" class="results">
 <div class="result results_links results_links_deep result--ad">
  <div class="links_main links_deep result__body"><h2 class="result__title">
   <a rel="nofollow" class="result__a" href="https://duckduckgo.com/y.js?ad_provider=x">Buy things</a></h2>
   <a class="result__snippet" href="#">An ad</a></div></div>
 <div class="result results_links results_links_deep web-result ">
  <div class="links_main links_deep result__body"><h2 class="result__title">
   <a rel="nofollow" class="result__a" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Fpython.org%2Fdocs%3Fa%3D1&amp;rut=abc">Python <b>docs</b></a></h2>
   <a class="result__snippet" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Fpython.org%2Fdocs">The <b>official</b> docs</a></div></div>
 <div class="result results_links results_links_deep web-result ">
  <div class="links_main links_deep result__body"><h2 class="result__title">
   <a rel="nofollow" class="result__a" href="https://example.org/direct">Direct</a></h2>
   <div class="result__snippet">Second result</div></div></div>
</div></div></body></html>"""


async def test_duckduckgo_html_endpoint(ctx, runtime, server):
    def handler(req):
        assert req.method == "POST" and req.path == "/html/"
        assert req.headers["content-type"] == "application/x-www-form-urlencoded"
        assert b"q=python+docs" in req.body
        assert req.headers.get("user-agent")
        return 200, {"Content-Type": "text/html; charset=UTF-8"}, DDG_PAGE.encode()

    server.route("/html/", handler)
    hermes_toolset_web.configure(runtime, provider="duckduckgo", base_url=server.base)
    out = await _search(ctx, query="python docs", limit=5)
    assert out["results"] == [
        {"title": "Python docs", "url": "https://python.org/docs?a=1", "snippet": "The official docs"},
        {"title": "Direct", "url": "https://example.org/direct", "snippet": "Second result"},
    ]


async def test_duckduckgo_bot_check_is_quota_error(ctx, runtime, server):
    server.route("/html/", (202, {"Content-Type": "text/html"}, b"<div class='anomaly-modal'>are you a robot</div>"))
    hermes_toolset_web.configure(runtime, provider="duckduckgo", base_url=server.base)
    out = await _search(ctx, query="x")
    assert out["error"]["type"] == "quota_exceeded"


@pytest.mark.parametrize("provider,path,status,body,kind", [
    ("brave", "/res/v1/web/search", 422, {"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID", "detail": "The provided subscription token is invalid.", "status": 422}}, "provider_error"),
    ("brave", "/res/v1/web/search", 401, {"type": "ErrorResponse", "error": {"detail": "Unauthorized", "status": 401}}, "auth_error"),
    ("brave", "/res/v1/web/search", 429, {"type": "ErrorResponse", "error": {"code": "RATE_LIMITED", "detail": "Request rate limit exceeded", "status": 429}}, "quota_exceeded"),
    ("tavily", "/search", 401, {"detail": {"error": "Unauthorized: missing or invalid API key."}}, "auth_error"),
    ("tavily", "/search", 432, {"detail": {"error": "This request exceeds your plan's set usage limit."}}, "quota_exceeded"),
    ("exa", "/search", 401, {"requestId": "x", "error": "Invalid API key", "tag": "INVALID_API_KEY"}, "auth_error"),
    ("exa", "/search", 500, {"error": "internal"}, "provider_error"),
])
async def test_provider_errors_are_structured(ctx, runtime, server, monkeypatch, provider, path, status, body, kind):
    monkeypatch.setenv(f"{provider.upper()}_API_KEY", "k")
    server.route(path, _json(body, status))
    hermes_toolset_web.configure(runtime, provider=provider, base_url=server.base)
    out = await _search(ctx, query="q")
    assert out["error"]["type"] == kind
    assert str(status) in out["error"]["message"]
    assert ctx.tool_errors and ctx.tool_errors[-1].kind == kind


async def test_missing_key_names_the_variable(ctx, runtime, server, monkeypatch):
    monkeypatch.delenv("BRAVE_API_KEY", raising=False)
    hermes_toolset_web.configure(runtime, provider="brave", base_url=server.base)
    out = await _search(ctx, query="q")
    assert out["error"]["type"] == "config_error"
    assert "BRAVE_API_KEY" in out["error"]["message"]
    assert server.requests == []  # nothing was sent without a key


async def test_provider_timeout(ctx, runtime, server):
    import time

    server.route("/search", lambda req: (time.sleep(2), _json({"results": []}))[1])
    hermes_toolset_web.configure(runtime, provider="searxng", base_url=server.base, search_timeout=0.5)
    out = await _search(ctx, query="q")
    assert out["error"]["type"] == "timeout"


async def test_unknown_provider_lists_the_builtins(ctx, runtime):
    hermes_toolset_web.configure(runtime, provider="bing")
    out = await _search(ctx, query="q")
    assert out["error"]["type"] == "config_error"
    for name in ("searxng", "brave", "tavily", "exa", "duckduckgo"):
        assert name in out["error"]["message"]


class EchoProvider:
    name = "echo"
    default_base_url = "unused://"
    key_env = None

    async def search(self, client, query, limit, *, base_url, key):
        return [{"title": query, "url": f"https://echo/{i}", "snippet": ""} for i in range(limit + 5)]


async def test_third_party_provider_by_reference_and_limit_bound(ctx, runtime):
    hermes_toolset_web.configure(runtime, provider=f"{__name__}:EchoProvider", max_results=3)
    out = await _search(ctx, query="hi", limit=10)
    assert out["provider"] == "echo"
    assert len(out["results"]) == 3


def test_unknown_option_is_a_config_error(runtime):
    from hermes_core import ConfigError

    with pytest.raises(ConfigError, match="allow_host"):
        hermes_toolset_web.configure(runtime, allow_host=["x"])
