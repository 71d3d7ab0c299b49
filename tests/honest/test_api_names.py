"""Issue 10, items 9-11: `search` reports its errors; install hints name only distributions of
this repository; the original hermes verifier API's names and result keys."""

from __future__ import annotations

import asyncio
import glob
import importlib
import json
import sys
import tomllib
from pathlib import Path

import pytest

from hermes_core import Runtime
from hermes_core.errors import UnknownNameError
from hermes_core.plugin import KNOWN_PACKAGES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def ctx(tmp_path):
    async with Runtime() as rt, rt.rollout(backend="local", options={"root": str(tmp_path)}) as c:
        yield c


# ------------------------------------------------------------------------------------ item 9


async def test_search_reports_a_missing_path_and_a_bad_pattern(ctx):
    await ctx.write_file("src/a.py", "x = 1\n")
    missing = await ctx.search("x", "no/such/dir")
    assert "error" in missing and "no/such/dir" in json.dumps(missing["error"])
    bad = await ctx.search("(")
    assert "error" in bad and "(" in json.dumps(bad["error"])
    ok = await ctx.search("x", "src")
    assert ok["total_count"] == 1 and "error" not in ok
    none = await ctx.search("absent-text", "src")
    assert none == {"total_count": 0, "matches": []}
    names = json.loads(await ctx.call_tool("search_files", {"pattern": "a", "target": "files", "path": "nope"}))
    assert names["error"]["type"] == "not_found"


# ------------------------------------------------------------------------------------ item 10


def _distributions() -> dict[str, tuple[Path, dict]]:
    out = {}
    for pp in glob.glob(str(ROOT / "hermes_backend_*/pyproject.toml")) + glob.glob(str(ROOT / "plugins/hermes_*/pyproject.toml")):
        data = tomllib.loads(Path(pp).read_text())
        out[data["project"]["name"]] = (Path(pp).parent, data)
    return out


def test_install_hints_name_only_distributions_that_exist_here_and_register_the_name(monkeypatch):
    dists = _distributions()
    registered: dict[str, dict[str, set[str]]] = {}
    for name, (folder, data) in dists.items():
        monkeypatch.syspath_prepend(str(folder / "src"))
        kinds: dict[str, set[str]] = {}
        for mod in data["project"].get("entry-points", {}).get("hermes", {}).values():
            rt = Runtime(plugins=[importlib.import_module(mod)], load_installed=False)
            for kind, reg in (("backend", rt.backends), ("toolset", rt.toolsets), ("tool", rt.tools),
                              ("environment", rt.environments)):
                kinds.setdefault(kind, set()).update(reg._items)
        registered[name] = kinds
    for kind, names in KNOWN_PACKAGES.items():
        for name, dist in names.items():
            assert dist in dists, f"{kind} {name!r}: distribution {dist!r} is not in this repository"
            assert name in registered[dist].get(kind, set()), f"{dist} does not register {kind} {name!r}"
    # ...and every backend / toolset / environment of those distributions has a hint.
    for dist, kinds in registered.items():
        for kind in ("backend", "toolset", "environment"):
            for name in kinds.get(kind, set()) - set(Runtime(load_installed=False).__getattribute__(
                    {"backend": "backends", "toolset": "toolsets", "environment": "environments"}[kind])._items):
                assert KNOWN_PACKAGES.get(kind, {}).get(name) == dist, (kind, name, dist)


def test_install_hint_is_a_command_that_works_from_this_checkout():
    rt = Runtime(load_installed=False)
    with pytest.raises(UnknownNameError) as e:
        rt.backends.get("modal")
    msg = str(e.value)
    assert f"pip install {ROOT / 'hermes_backend_modal'}" in msg
    assert (ROOT / "hermes_backend_modal" / "pyproject.toml").is_file()


# ------------------------------------------------------------------------------------ item 11


async def test_original_api_names_and_result_keys(ctx, tmp_path):
    out = json.loads(await ctx.call_tool(tool_name="terminal", arguments={"command": "echo via-keyword"}))
    assert out["exit_code"] == 0 and "via-keyword" in out["output"]
    written = await ctx.write_file("w.txt", "héllo")
    assert written["success"] is True and written["bytes_written"] == len("héllo".encode())
    tool_written = json.loads(await ctx.call_tool("write_file", {"path": "t.txt", "content": "héllo"}))
    assert tool_written["bytes_written"] == written["bytes_written"]  # the same key both ways
    failed = await ctx.upload_file(tmp_path / "does-not-exist", "x")
    assert failed["exit_code"] == -1
    found = await ctx.search("llo", ".")
    assert set(found) >= {"total_count", "matches"} and found["total_count"] == 2
    assert set(found["matches"][0]) == {"path", "line", "content"}
    sid = json.loads(await ctx.call_tool("terminal", {"command": "echo bg-out; exec sleep 30", "background": True}))["session_id"]
    for _ in range(200):
        polled = json.loads(await ctx.call_tool("process", {"action": "poll", "session_id": sid}))
        if "bg-out" in polled.get("output_preview", ""):
            break
        await asyncio.sleep(0.05)
    assert "bg-out" in polled["output_preview"] and "uptime_seconds" in polled and "output" not in polled
    listed = json.loads(await ctx.call_tool("process", {"action": "list"}))
    (entry,) = listed["processes"]
    assert entry["session_id"] == sid and "uptime_seconds" in entry and "bg-out" in entry["output_preview"]
    waited = json.loads(await ctx.call_tool("process", {"action": "wait", "session_id": sid, "timeout": 0.1}))
    assert waited["status"] == "timeout" and "bg-out" in waited["output"]
    json.loads(await ctx.call_tool("process", {"action": "kill", "session_id": sid}))


def test_compatibility_table_lists_the_remaining_differences():
    doc = (ROOT / "docs" / "compatibility.md").read_text()
    for needle in ("call_tool", "bytes_written", "total_count", "output_preview", "uptime_seconds", "processes",
                   "total_bytes", "async"):
        assert needle in doc, needle


if sys.version_info < (3, 11):  # tomllib
    pytest.skip("needs Python 3.11", allow_module_level=True)
