"""SSRF protection (checked after DNS resolution, on every redirect hop) and credentials that
never follow a redirect to another origin."""

from __future__ import annotations

import ipaddress
import json

import pytest

import hermes_toolset_web
from hermes_toolset_web import Guard, why_blocked

HTML = {"Content-Type": "text/html"}


async def _extract(ctx, *urls):
    return json.loads(await ctx.call_tool("web_extract", {"urls": list(urls)}))


@pytest.mark.parametrize("ip", [
    "127.0.0.1", "127.5.5.5", "::1", "10.0.0.1", "172.16.3.4", "192.168.1.1", "169.254.169.254",
    "169.254.10.10", "fe80::1", "fc00::1", "fd00:ec2::254", "100.100.100.200", "100.64.0.1", "0.0.0.0",
    "::", "224.0.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:7f00:1::1", "240.0.0.1",
])
def test_policy_refuses_non_public_addresses(ip):
    assert why_blocked(ipaddress.ip_address(ip)) is not None


@pytest.mark.parametrize("ip", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_policy_allows_public_addresses(ip):
    assert why_blocked(ipaddress.ip_address(ip)) is None


async def test_allow_list_by_address_network_and_name():
    g = Guard(["127.0.0.1", "10.0.0.0/8", "intranet.test"])
    assert await g.resolve("127.0.0.1", 80) == ["127.0.0.1"]
    assert await g.resolve("10.9.8.7", 80) == ["10.9.8.7"]
    assert g.allowed("intranet.test", ipaddress.ip_address("192.168.0.5")) is None
    assert g.allowed("other.test", ipaddress.ip_address("192.168.0.5")) is not None


async def test_default_refuses_loopback_after_resolution(server):
    """Without an allow-list, every spelling of this machine is refused, and nothing connects."""
    rt_ctx_urls = [
        f"{server.base}/x", f"http://localhost:{server.port}/x", f"http://[::1]:{server.port}/x",
        f"http://2130706433:{server.port}/x", f"http://0x7f.0.0.1:{server.port}/x", f"http://0.0.0.0:{server.port}/x",
        f"http://127.1:{server.port}/x", "http://169.254.169.254/latest/meta-data/",
    ]
    server.route("/x", (200, HTML, b"<p>secret internal page</p>"))
    opts = hermes_toolset_web.WebOptions()  # the defaults: no allow-list
    out = await hermes_toolset_web.extract_urls(opts, rt_ctx_urls)
    for r in out["results"]:
        assert r.get("error", {}).get("type") in ("blocked_address", "invalid_url"), r
    assert any(r["error"]["type"] == "blocked_address" and "localhost" in r["error"]["message"] for r in out["results"])
    assert server.requests == []


async def test_every_redirect_hop_is_checked(ctx, server, make_server):
    """An allowed server redirecting to a refused address: the second hop never connects."""
    inner = make_server("127.0.0.2")
    inner.route("/admin", (200, HTML, b"<p>internal admin</p>"))
    server.route("/go", (302, {"Location": f"{inner.base}/admin"}, b""))
    (r,) = (await _extract(ctx, server.base + "/go"))["results"]
    assert r["error"]["type"] == "blocked_address" and "127.0.0.2" in r["error"]["message"]
    assert inner.requests == [] and len(server.requests) == 1


async def test_credentials_are_not_forwarded_to_another_origin(ctx, server, make_server):
    other = make_server()  # same host, another port: another origin
    other.route("/landing", (200, HTML, b"<p>landed</p>"))
    server.route("/same", (302, {"Location": "/login"}, b""))
    server.route("/login", (302, {"Location": f"{other.base}/landing"}, b""))
    url = server.base.replace("http://", "http://alice:s3cret@") + "/same"
    (r,) = (await _extract(ctx, url))["results"]
    assert "landed" in r["content"]
    first, second = server.requests
    assert first.headers["authorization"].startswith("Basic ")   # sent to its own origin
    assert second.headers["authorization"] == first.headers["authorization"]  # same origin keeps it
    (landing,) = other.requests
    assert "authorization" not in landing.headers and "cookie" not in landing.headers


async def test_proxy_variables_do_not_bypass_the_guard(ctx, server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", server.base)
    monkeypatch.setenv("http_proxy", server.base)
    server.route("/direct", (200, HTML, b"<p>direct</p>"))
    (r,) = (await _extract(ctx, server.base + "/direct"))["results"]
    assert "direct" in r["content"]
    assert [q.path for q in server.requests] == ["/direct"]  # not a proxy-style absolute request
