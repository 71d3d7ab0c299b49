"""Search providers: each turns (query, limit) into ``[{title, url, snippet}]`` through its real
HTTP API. A provider is a small class; third parties name theirs as ``"module:Class"``.

A provider class has ``name``, ``default_base_url``, ``key_env`` (the default variable holding
its key, or ``None`` when it needs none) and ``async search(client, query, limit, *, base_url,
key) -> list[dict]``; it raises :class:`ProviderError` for failures the model should see.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = ["PROVIDERS", "ProviderError", "SearXNG", "Brave", "Tavily", "Exa", "DuckDuckGo", "load_provider"]

_TAGS = re.compile(r"<[^>]+>")


class ProviderError(Exception):
    """A provider failed; ``kind`` is one of auth_error, quota_exceeded, timeout, provider_error,
    config_error."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _text(value: Any) -> str:
    return html.unescape(_TAGS.sub("", str(value or ""))).strip()


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300].strip()
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("detail") or value.get("error") or value.get("message") or value
            if value:
                return str(value)[:300]
    return str(body)[:300]


def check(resp: httpx.Response, provider: str) -> None:
    """Map an error status to a :class:`ProviderError` naming the provider."""
    code = resp.status_code
    if code < 400:
        return
    detail = _message(resp)
    if code in (401, 403):
        raise ProviderError("auth_error", f"{provider} rejected the API key (HTTP {code}): {detail}")
    if code in (402, 429, 432, 433):
        raise ProviderError("quota_exceeded", f"{provider} quota or rate limit reached (HTTP {code}): {detail}")
    raise ProviderError("provider_error", f"{provider} answered HTTP {code}: {detail}")


def _json(resp: httpx.Response, provider: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise ProviderError("provider_error", f"{provider} sent a non-JSON answer: {resp.text[:200]!r}") from None


class SearXNG:
    """A SearXNG instance's JSON API: ``GET /search?q=&format=json`` (JSON must be enabled in the
    instance's ``search.formats``)."""

    name = "searxng"
    default_base_url: str | None = None
    key_env: str | None = None

    async def search(self, client: httpx.AsyncClient, query: str, limit: int, *, base_url: str, key: str | None) -> list[dict]:
        resp = await client.get(f"{base_url.rstrip('/')}/search", params={"q": query, "format": "json", "pageno": 1},
                                headers={"Accept": "application/json"})
        if resp.status_code == 403:
            raise ProviderError("provider_error", "SearXNG refused format=json (HTTP 403): enable 'json' under "
                                "search.formats in the instance's settings.yml")
        check(resp, "SearXNG")
        data = _json(resp, "SearXNG")
        return [{"title": _text(r.get("title")), "url": r.get("url", ""), "snippet": _text(r.get("content"))}
                for r in (data.get("results") or [])[:limit] if r.get("url")]


class Brave:
    """Brave Search API: ``GET /res/v1/web/search?q=&count=`` with ``X-Subscription-Token``."""

    name = "brave"
    default_base_url = "https://api.search.brave.com"
    key_env = "BRAVE_API_KEY"

    async def search(self, client: httpx.AsyncClient, query: str, limit: int, *, base_url: str, key: str | None) -> list[dict]:
        resp = await client.get(
            f"{base_url.rstrip('/')}/res/v1/web/search", params={"q": query, "count": min(limit, 20)},
            headers={"Accept": "application/json", "Accept-Encoding": "gzip", "X-Subscription-Token": key or ""},
        )
        check(resp, "Brave Search")
        data = _json(resp, "Brave Search")
        results = ((data.get("web") or {}).get("results")) or []
        return [{"title": _text(r.get("title")), "url": r.get("url", ""), "snippet": _text(r.get("description"))}
                for r in results[:limit] if r.get("url")]


class Tavily:
    """Tavily: ``POST /search`` with a JSON body and ``Authorization: Bearer``."""

    name = "tavily"
    default_base_url = "https://api.tavily.com"
    key_env = "TAVILY_API_KEY"

    async def search(self, client: httpx.AsyncClient, query: str, limit: int, *, base_url: str, key: str | None) -> list[dict]:
        resp = await client.post(
            f"{base_url.rstrip('/')}/search",
            json={"query": query, "max_results": min(limit, 20), "search_depth": "basic"},
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        check(resp, "Tavily")
        data = _json(resp, "Tavily")
        return [{"title": _text(r.get("title")), "url": r.get("url", ""), "snippet": _text(r.get("content"))}
                for r in (data.get("results") or [])[:limit] if r.get("url")]


class Exa:
    """Exa: ``POST /search`` with ``x-api-key``; snippets from the requested text contents."""

    name = "exa"
    default_base_url = "https://api.exa.ai"
    key_env = "EXA_API_KEY"

    async def search(self, client: httpx.AsyncClient, query: str, limit: int, *, base_url: str, key: str | None) -> list[dict]:
        resp = await client.post(
            f"{base_url.rstrip('/')}/search",
            json={"query": query, "numResults": limit, "contents": {"text": {"maxCharacters": 500}}},
            headers={"x-api-key": key or "", "Content-Type": "application/json", "Accept": "application/json"},
        )
        check(resp, "Exa")
        data = _json(resp, "Exa")
        out = []
        for r in (data.get("results") or [])[:limit]:
            if not r.get("url"):
                continue
            highlights = r.get("highlights") or []
            snippet = highlights[0] if highlights else (r.get("text") or r.get("summary") or "")
            out.append({"title": _text(r.get("title")), "url": r["url"], "snippet": _text(snippet)[:500]})
        return out


class DuckDuckGo:
    """DuckDuckGo's HTML endpoint: ``POST /html/`` with form field ``q``; results parsed from the
    page (ads skipped, redirect links ``/l/?uddg=`` unwrapped). No key; rate limited."""

    name = "duckduckgo"
    default_base_url = "https://html.duckduckgo.com"
    key_env: str | None = None

    async def search(self, client: httpx.AsyncClient, query: str, limit: int, *, base_url: str, key: str | None) -> list[dict]:
        import lxml.html

        resp = await client.post(
            f"{base_url.rstrip('/')}/html/", data={"q": query, "b": ""},
            headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) hermes-toolset-web",
                     "Accept": "text/html", "Referer": f"{base_url.rstrip('/')}/"},
        )
        check(resp, "DuckDuckGo")
        if resp.status_code == 202 or "anomaly-modal" in resp.text or "challenge-form" in resp.text:
            raise ProviderError("quota_exceeded", "DuckDuckGo asked for a bot check (rate limited); retry later or configure another provider")
        tree = lxml.html.document_fromstring(resp.text or "<html></html>")
        out = []
        for div in tree.xpath('//div[contains(concat(" ", normalize-space(@class), " "), " result ")]'):
            if "result--ad" in (div.get("class") or ""):
                continue
            links = div.xpath('.//a[contains(@class, "result__a")]')
            if not links:
                continue
            url = _unwrap(links[0].get("href") or "")
            if not url:
                continue
            snippet = div.xpath('.//*[contains(@class, "result__snippet")]')
            out.append({"title": " ".join(links[0].text_content().split()), "url": url,
                        "snippet": " ".join(snippet[0].text_content().split()) if snippet else ""})
            if len(out) >= limit:
                break
        return out


def _unwrap(href: str) -> str:
    parts = urlsplit(href)
    if parts.path.startswith("/l/"):
        target = parse_qs(parts.query).get("uddg")
        return target[0] if target else ""
    if href.startswith("//"):
        return "https:" + href
    return href if parts.scheme in ("http", "https") else ""


PROVIDERS: dict[str, type] = {cls.name: cls for cls in (SearXNG, Brave, Tavily, Exa, DuckDuckGo)}


def load_provider(name: str) -> Any:
    """An instance of a built-in provider or of a ``"module:Class"`` reference.

    Raises:
        ProviderError: unknown name (config_error), listing the built-ins.
    """
    if name in PROVIDERS:
        return PROVIDERS[name]()
    if ":" in name:
        import importlib

        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)()
        except Exception as e:  # noqa: BLE001 - reported as a config error
            raise ProviderError("config_error", f"cannot load search provider {name!r}: {type(e).__name__}: {e}") from None
    raise ProviderError("config_error", f"unknown search provider {name!r}; built-in: {', '.join(PROVIDERS)} "
                        "(or 'module:Class' for your own)")
