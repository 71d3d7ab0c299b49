"""HTTP fetching for web_extract: SSRF guard at connect time, manual redirects, size cap.

The guard sits in the connection layer (an httpcore network backend): every TCP connection —
the first request and every redirect hop — resolves the host once, refuses it when any of its
addresses is loopback, private, link-local, metadata or otherwise not globally routable (unless
allow-listed), and connects to the address it checked. Checking the URL and then letting the
client resolve again would leave a DNS-rebinding window; this does not.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["BlockedAddressError", "FetchError", "Fetched", "Guard", "fetch", "guarded_client"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata endpoints that are not covered by "not globally routable" everywhere.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254"),
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REDIRECTS = {301, 302, 303, 307, 308}


class BlockedAddressError(Exception):
    """A URL resolved to an address the SSRF policy refuses."""


class FetchError(Exception):
    """One URL could not be fetched; ``kind`` is the structured error type."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def why_blocked(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be dialled by default, or ``None`` when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = why_blocked(embedded)
            return f"{inner} (embedded in {ip})" if inner else None
    if ip in _METADATA:
        return "a cloud metadata address"
    for attr, label in (
        ("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_private", "private"),
        ("is_multicast", "multicast"), ("is_unspecified", "unspecified"), ("is_reserved", "reserved"),
    ):
        if getattr(ip, attr):
            return f"a {label} address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


class Guard:
    """The SSRF policy: which hosts and addresses may be dialled.

    Args:
        allow: hosts, IP addresses or CIDR ranges that are allowed although the policy would
            refuse them (``["127.0.0.1"]``, ``["10.0.0.0/8"]``, ``["intranet.example"]``).
        resolve_timeout: seconds for one DNS lookup.
    """

    def __init__(self, allow: Iterable[str] = (), *, resolve_timeout: float = 5.0):
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        for entry in allow:
            entry = entry.strip()
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))
        self.resolve_timeout = resolve_timeout

    def allowed(self, host: str, ip: IPAddress) -> str | None:
        """``None`` when ``ip`` (an address of ``host``) may be dialled, else why not."""
        if host.lower().rstrip(".") in self.hosts or any(ip in n for n in self.networks):
            return None
        return why_blocked(ip)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` that may be dialled (all of them, or an error).

        Raises:
            BlockedAddressError: any address of the host is refused (a name with one public and
                one private address is refused: the attacker may control which one is used).
            FetchError: the name does not resolve.
        """
        bare = host.strip("[]")
        try:
            ips: list[IPAddress] = [ipaddress.ip_address(bare)]
        except ValueError:
            try:
                async with asyncio.timeout(self.resolve_timeout):
                    infos = await asyncio.get_running_loop().getaddrinfo(bare, port, type=socket.SOCK_STREAM)
            except TimeoutError:
                raise FetchError("dns_error", f"resolving {host!r} took longer than {self.resolve_timeout:g} s") from None
            except OSError as e:
                raise FetchError("dns_error", f"cannot resolve {host!r}: {e.strerror or e}") from None
            ips = []
            for info in infos:
                ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
                if ip not in ips:
                    ips.append(ip)
        for ip in ips:
            reason = self.allowed(bare, ip)
            if reason is not None:
                shown = host if str(ip) == bare else f"{host} ({ip})"
                raise BlockedAddressError(
                    f"refused to connect to {shown}: {reason}. Private and local addresses are blocked "
                    "(SSRF protection); an operator can allow a host with the web option allow_hosts."
                )
        return [str(ip) for ip in ips]


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks every host before connecting, then dials the checked address."""

    def __init__(self, guard: Guard):
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for ip in await self._guard.resolve(host, port):
            try:
                return await self._inner.connect_tcp(ip, port, timeout=timeout, local_address=local_address,
                                                      socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        raise last or httpcore.ConnectError(f"no address to connect to for {host}")

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError("unix sockets are not reachable from web_extract")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Stream(httpx.AsyncByteStream):
    def __init__(self, inner: Any, request: httpx.Request):
        self._inner = inner
        self._request = request

    async def __aiter__(self):  # type: ignore[override]
        try:
            async for part in self._inner:
                yield part
        except httpcore.TimeoutException as e:
            raise httpx.ReadTimeout(str(e), request=self._request) from e
        except httpcore.NetworkError as e:
            raise httpx.ReadError(str(e), request=self._request) from e
        except httpcore.ProtocolError as e:
            raise httpx.RemoteProtocolError(str(e), request=self._request) from e

    async def aclose(self) -> None:
        if hasattr(self._inner, "aclose"):
            await self._inner.aclose()


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~0.1 s; one verifying context serves every call (SSLContext
    # is safe to share between connections and threads).
    return httpx.create_ssl_context(verify=True)


class _GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an httpcore pool whose every connection goes through the guard."""

    def __init__(self, guard: Guard):
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(), max_connections=32,
            network_backend=_GuardedBackend(guard),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions,
        )
        try:
            resp = await self._pool.handle_async_request(req)
        except httpcore.TimeoutException as e:
            cls = getattr(httpx, type(e).__name__, httpx.TimeoutException)
            raise cls(str(e), request=request) from e
        except httpcore.ConnectError as e:
            raise httpx.ConnectError(str(e), request=request) from e
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as e:
            cls = getattr(httpx, type(e).__name__, httpx.TransportError)
            raise cls(str(e), request=request) from e
        return httpx.Response(status_code=resp.status, headers=resp.headers,
                              stream=_Stream(resp.stream, request), extensions=resp.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()


def guarded_client(guard: Guard, *, connect_timeout: float, read_timeout: float) -> httpx.AsyncClient:
    """An httpx client whose connections obey ``guard``; it ignores proxy variables (a proxy
    would dial for us, past the guard) and never follows redirects by itself."""
    return httpx.AsyncClient(
        transport=_GuardedTransport(guard), trust_env=False, follow_redirects=False,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
    )


class Fetched:
    """A fetched body (at most the size cap) and what the server said about it."""

    __slots__ = ("url", "final_url", "status", "media_type", "charset", "body", "redirects")

    def __init__(self, url: str, final_url: str, status: int, media_type: str, charset: str | None,
                 body: bytes, redirects: int):
        self.url, self.final_url, self.status = url, final_url, status
        self.media_type, self.charset, self.body, self.redirects = media_type, charset, body, redirects


def _origin(u: httpx.URL) -> tuple[str, str, int | None]:
    return (u.scheme, u.host, u.port)


def parse_content_type(value: str | None) -> tuple[str, str | None]:
    if not value:
        return "", None
    parts = [p.strip() for p in value.split(";")]
    charset = None
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset":
            charset = v.strip().strip("\"'") or None
    return parts[0].lower(), charset


def sniff(body: bytes) -> str:
    head = body[:1024].lstrip().lower()
    if head.startswith(b"%pdf-"):
        return "application/pdf"
    if head.startswith((b"<!doctype html", b"<html")) or b"<body" in head or b"<head" in head:
        return "text/html"
    return "application/octet-stream"


async def fetch(client: httpx.AsyncClient, url: str, *, max_bytes: int, max_redirects: int,
                content_types: Iterable[str], user_agent: str) -> Fetched:
    """GET ``url`` following at most ``max_redirects`` redirects, each hop through the guard.

    Credentials in the URL (``user:pass@``) are sent to that origin only: a redirect to another
    origin (scheme, host or port), or any downgrade, drops ``Authorization`` and ``Cookie``.

    Raises:
        FetchError: with ``kind`` in invalid_url, redirect_loop, too_many_redirects, http_error,
            unsupported_content_type, too_large (and what the client raised, mapped by the caller).
        BlockedAddressError: a hop resolved to a refused address.
    """
    try:
        current = httpx.URL(url)
    except Exception as e:  # noqa: BLE001 - httpx raises several types for a bad URL
        raise FetchError("invalid_url", f"not a valid URL: {url!r} ({e})") from None
    if current.scheme not in ("http", "https") or not current.host:
        raise FetchError("invalid_url", f"only http and https URLs can be fetched, not {url!r}")
    headers = {
        "User-Agent": user_agent,
        "Accept": "text/html,application/xhtml+xml,application/pdf;q=0.9,text/plain;q=0.8,*/*;q=0.1",
    }
    auth: tuple[str, str] | None = None
    if current.userinfo:
        auth = (current.username, current.password)
        current = current.copy_with(username=None, password=None)
    auth_origin = _origin(current)
    allowed = {t.lower() for t in content_types}
    seen = {str(current)}
    for hop in range(max_redirects + 1):
        req = client.build_request("GET", current, headers=headers)
        if auth is not None and _origin(current) == auth_origin:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            req.headers["Authorization"] = f"Basic {token}"
        resp = await client.send(req, stream=True)
        try:
            if resp.status_code in _REDIRECTS and resp.headers.get("location"):
                try:
                    target = current.join(resp.headers["location"])
                except Exception:  # noqa: BLE001
                    raise FetchError("http_error", f"{current} redirected to an invalid URL {resp.headers['location']!r}") from None
                if target.scheme not in ("http", "https"):
                    raise FetchError("invalid_url", f"{current} redirected to a non-HTTP URL {str(target)!r}")
                if _origin(target) != _origin(current):
                    auth = None  # never carry credentials to another origin
                if str(target) in seen:
                    raise FetchError("redirect_loop", f"redirect loop: {current} redirects back to {target}")
                seen.add(str(target))
                current = target
                continue
            if resp.status_code >= 400:
                raise FetchError("http_error", f"HTTP {resp.status_code} {resp.reason_phrase} from {current}")
            media, charset = parse_content_type(resp.headers.get("content-type"))
            if media and media not in allowed:
                raise FetchError(
                    "unsupported_content_type",
                    f"{current} is {media}; web_extract reads {', '.join(sorted(allowed))}",
                )
            length = resp.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise FetchError("too_large", f"{current} is {int(length)} bytes; the limit is {max_bytes}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError("too_large", f"{current} sent more than {max_bytes} bytes (the limit)")
                chunks.append(chunk)
            body = b"".join(chunks)
            if not media:
                media = sniff(body)
                if media not in allowed:
                    raise FetchError("unsupported_content_type", f"{current} has no content type and does not look like HTML or PDF")
            return Fetched(url, str(current), resp.status_code, media, charset, body, hop)
        finally:
            await resp.aclose()
    raise FetchError("too_many_redirects", f"{url} redirected more than {max_redirects} times")
