"""The ``web_search`` and ``web_extract`` tool handlers."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from hermes_core import ToolFailure

from ._net import BlockedAddressError, FetchError, Guard, fetch, guarded_client
from ._options import WebOptions, options_for
from ._providers import ProviderError, load_provider

__all__ = ["WebSearchArgs", "WebExtractArgs", "web_search", "web_extract", "search", "extract_urls"]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class WebSearchArgs(_Args):
    query: str = Field(min_length=1, max_length=2000, description="What to search the web for.")
    limit: int = Field(5, ge=1, le=50, description="How many results to return.")


class WebExtractArgs(_Args):
    urls: list[str] = Field(min_length=1, max_length=100, description="http(s) URLs to read.")


async def search(opts: WebOptions, query: str, limit: int) -> dict[str, Any]:
    """Run one search with the configured provider.

    Raises:
        ProviderError: bad key, quota, timeout, a provider-side error, or a config problem.
    """
    provider = load_provider(opts.provider)
    name = getattr(provider, "name", opts.provider)
    base_url = opts.base_url or getattr(provider, "default_base_url", None)
    if not base_url:
        raise ProviderError("config_error", f"search provider {name!r} needs base_url (the instance's address) "
                            "in the web options")
    key_env = opts.api_key_env or getattr(provider, "key_env", None)
    key = None
    if key_env:
        key = os.environ.get(key_env)
        if not key:
            raise ProviderError("config_error", f"search provider {name!r} needs an API key: set the environment "
                                f"variable {key_env} (or name another one with the web option api_key_env)")
    limit = max(1, min(limit, opts.max_results))
    # Provider endpoints are chosen by the operator, not by the model: no SSRF guard here, and
    # no proxy variables either (trust_env=False keeps the request where it was configured).
    async with httpx.AsyncClient(timeout=opts.search_timeout, trust_env=False, follow_redirects=True) as client:
        try:
            async with asyncio.timeout(opts.search_timeout):
                results = await provider.search(client, query, limit, base_url=base_url, key=key)
        except TimeoutError:
            raise ProviderError("timeout", f"{name} did not answer within {opts.search_timeout:g} s") from None
        except httpx.TimeoutException:
            raise ProviderError("timeout", f"{name} did not answer within {opts.search_timeout:g} s") from None
        except httpx.HTTPError as e:
            raise ProviderError("provider_error", f"cannot reach {name} at {base_url}: {type(e).__name__}: {e}") from None
    return {"results": list(results)[:limit], "provider": name, "query": query}


async def web_search(args: WebSearchArgs, ctx: Any) -> dict[str, Any]:
    """Search the web with the provider chosen in the web options."""
    try:
        return await search(options_for(ctx), args.query, args.limit)
    except ProviderError as e:
        raise ToolFailure(str(e), kind=e.kind) from None


async def _one(client: httpx.AsyncClient, url: str, opts: WebOptions, sem: asyncio.Semaphore) -> dict[str, Any]:
    from ._extract import extract

    async with sem:
        try:
            async with asyncio.timeout(opts.timeout):
                got = await fetch(client, url, max_bytes=opts.max_bytes, max_redirects=opts.max_redirects,
                                  content_types=opts.content_types, user_agent=opts.user_agent)
        except FetchError as e:
            return {"url": url, "error": {"type": e.kind, "message": str(e)}}
        except BlockedAddressError as e:
            return {"url": url, "error": {"type": "blocked_address", "message": str(e)}}
        except TimeoutError:
            return {"url": url, "error": {"type": "timeout", "message": f"{url} took longer than {opts.timeout:g} s"}}
        except httpx.TimeoutException as e:
            return {"url": url, "error": {"type": "timeout", "message": f"{url}: {type(e).__name__}"}}
        except httpx.HTTPError as e:
            return {"url": url, "error": {"type": "network_error", "message": f"{url}: {type(e).__name__}: {e}"}}
    try:
        page = await asyncio.to_thread(extract, got.body, got.media_type, got.charset, got.final_url,
                                       max_links=opts.max_links)
    except ValueError as e:
        return {"url": url, "error": {"type": "extraction_error", "message": f"{url}: {e}"}}
    content = page.get("content", "")
    out: dict[str, Any] = {
        "url": url, "final_url": got.final_url, "status": got.status, "content_type": got.media_type,
        "title": page.get("title", ""), "content": _bound(content, opts.max_chars),
        "chars": len(content), "truncated": len(content) > opts.max_chars,
    }
    if "pages" in page:
        out["pages"] = page["pages"]
    if page.get("links"):
        out["links"] = page["links"]
    return out


def _bound(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = int(limit * 0.8)
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters omitted ...]\n{text[-tail:]}"


async def extract_urls(opts: WebOptions, urls: list[str]) -> dict[str, Any]:
    """Fetch and extract ``urls`` (each URL succeeds or fails on its own)."""
    unique = list(dict.fromkeys(u.strip() for u in urls))
    if len(unique) > opts.max_urls:
        raise ToolFailure(f"{len(unique)} URLs asked for; at most {opts.max_urls} per call", kind="invalid_arguments")
    guard = Guard(opts.allow_hosts, resolve_timeout=opts.connect_timeout)
    sem = asyncio.Semaphore(opts.concurrency)
    async with guarded_client(guard, connect_timeout=opts.connect_timeout, read_timeout=opts.timeout) as client:
        results = await asyncio.gather(*(_one(client, u, opts, sem) for u in unique))
    return {"results": list(results)}


async def web_extract(args: WebExtractArgs, ctx: Any) -> dict[str, Any]:
    """Fetch URLs and return their readable text, title and links (HTML, PDF, text)."""
    return await extract_urls(options_for(ctx), args.urls)
