"""Opt-in: the backend against a REAL Modal account. Skipped unless credentials are in the
environment when pytest starts (``MODAL_TOKEN_ID`` and ``MODAL_TOKEN_SECRET``; the fake's own
token does not count). It creates one small sandbox (lifetime 10 minutes) in the app
``hermes-live-test`` and terminates it."""

from __future__ import annotations

import os

import pytest

from hermes_core import Runtime

pytestmark = pytest.mark.modal_live

#: Captured at import, before the fake fixture points the environment at the fake.
_LIVE = {k: os.environ.get(k) for k in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_SERVER_URL", "MODAL_CONFIG_PATH")}
_FAKE_TOKEN = "ak-hermes-fake"


def _skip_reason() -> str | None:
    if not _LIVE["MODAL_TOKEN_ID"] or not _LIVE["MODAL_TOKEN_SECRET"] or _LIVE["MODAL_TOKEN_ID"] == _FAKE_TOKEN:
        return "live Modal test: no MODAL_TOKEN_ID/MODAL_TOKEN_SECRET in the environment"
    return None


@pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")
async def test_live_round_trip(monkeypatch):
    for k, v in _LIVE.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    rt = Runtime()
    try:
        async with rt.rollout(backend="modal", options={"app_name": "hermes-live-test", "timeout": 600}) as ctx:
            sb = ctx.sandbox
            r = await sb.exec("echo out; echo err >&2; exit 3")
            assert r.exit_code == 3 and "out\n" in r.output and "err\n" in r.output
            r = await sb.exec("echo started; sleep 30", timeout=2)
            assert r.exit_code == 124 and "started" in r.output
            assert (await sb.exec("echo usable")).output == "usable\n"
            data = bytes(range(256)) * 4096
            await sb.write_bytes("live.bin", data)
            assert await sb.read_bytes("live.bin") == data
            assert (await sb.shell("cd /tmp && export X=1")).exit_code == 0
            assert (await sb.shell('pwd; echo "$X"')).output == "/tmp\n1\n"
    finally:
        await rt.aclose()
