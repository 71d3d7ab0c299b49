"""Built-in tools through the single dispatch site: structured errors, never exceptions."""

from __future__ import annotations

import json
import threading

import pytest
from pydantic import BaseModel

from hermes_core import Runtime, ToolFailure, hookimpl


@pytest.fixture
async def ctx(tmp_path):
    rt = Runtime()
    async with rt.rollout(options={"root": str(tmp_path)}) as c:
        yield c
    await rt.aclose()


def err(text: str) -> dict:
    body = json.loads(text)
    assert "error" in body, text
    return body["error"]


async def test_bad_arguments_become_structured_errors(ctx):
    e = err(await ctx.call_tool("terminal", "{not json"))
    assert e["type"] == "invalid_json" and "not valid JSON" in e["message"]
    e = err(await ctx.call_tool("terminal", "[1, 2]"))
    assert e["type"] == "invalid_arguments" and "JSON object" in e["message"]
    e = err(await ctx.call_tool("terminal", {"command": 5}))
    assert e["type"] == "invalid_arguments" and "'command'" in e["message"]
    e = err(await ctx.call_tool("terminal", {}))
    assert "missing required argument 'command'" in e["message"]
    e = err(await ctx.call_tool("terminal", {"command": "ls", "bogus": 1}))
    assert "unexpected argument 'bogus'" in e["message"]
    e = err(await ctx.call_tool("terminal", {"command": "ls", "timeout": -5}))
    assert "'timeout'" in e["message"]
    e = err(await ctx.call_tool("no_such_tool", {}))
    assert e["type"] == "unknown_tool" and "terminal" in e["message"]
    kinds = [x.kind for x in ctx.tool_errors]
    assert kinds == ["invalid_json", "invalid_arguments", "invalid_arguments", "invalid_arguments",
                     "invalid_arguments", "invalid_arguments", "unknown_tool"]
    assert ctx.tool_calls == 7


async def test_terminal_tool(ctx):
    out = json.loads(await ctx.call_tool("terminal", {"command": "mkdir -p 'x y' && cd 'x y' && export V=1"}))
    assert out["exit_code"] == 0
    out = json.loads(await ctx.call_tool("terminal", {"command": "pwd; echo $V"}))
    assert out["output"].endswith("x y\n1\n")
    out = json.loads(await ctx.call_tool("terminal", {"command": "pwd", "workdir": "/"}))
    assert out["output"] == "/\n"
    out = json.loads(await ctx.call_tool("terminal", {"command": "pwd"}))
    assert out["output"].endswith("x y\n"), "workdir applies to one command only"
    out = json.loads(await ctx.call_tool("terminal", {"command": "sleep 20", "timeout": 1}))
    assert out["exit_code"] == 124 and out["error"] == "timeout"
    assert ctx.tool_errors == []


async def test_model_facing_output_is_bounded_head_and_tail(ctx):
    ctx.max_output_chars = 5000
    out = json.loads(await ctx.call_tool("terminal", {"command": "echo FIRST; seq 1 100000; echo LAST"}))
    assert len(out["output"]) < 6000
    assert out["output"].startswith("FIRST") and out["output"].rstrip().endswith("LAST")
    assert "characters omitted" in out["output"]


async def test_read_file(ctx):
    await ctx.write_file("f.txt", "".join(f"line {i}\n" for i in range(1, 1001)))
    out = json.loads(await ctx.call_tool("read_file", {"path": "f.txt", "offset": 10, "limit": 3}))
    assert out["content"] == "    10|line 10\n    11|line 11\n    12|line 12"
    assert out["total_lines"] == 1000 and out["next_offset"] == 13
    await ctx.sandbox.write_bytes("bin", b"\x7fELF\x00\x01\x02")
    e = err(await ctx.call_tool("read_file", {"path": "bin"}))
    assert e["type"] == "binary_file" and "binary" in e["message"]
    e = err(await ctx.call_tool("read_file", {"path": "missing"}))
    assert e["type"] == "not_found"
    e = err(await ctx.call_tool("read_file", {"path": "."}))
    assert e["type"] == "is_directory"


async def test_write_and_patch(ctx):
    out = json.loads(await ctx.call_tool("write_file", {"path": "d/e/x.py", "content": "a = 1\nb = 1\n"}))
    assert out["success"] and out["bytes_written"] == 12
    e = err(await ctx.call_tool("patch", {"path": "d/e/x.py", "old_string": "= 1", "new_string": "= 2"}))
    assert e["type"] == "ambiguous_match" and "2 places" in e["message"]
    e = err(await ctx.call_tool("patch", {"path": "d/e/x.py", "old_string": "c = 1", "new_string": ""}))
    assert e["type"] == "no_match"
    out = json.loads(await ctx.call_tool("patch", {"path": "d/e/x.py", "old_string": "b = 1", "new_string": "b = 2"}))
    assert out["replacements"] == 1 and "+b = 2" in out["diff"]
    assert (await ctx.read_file("d/e/x.py"))["content"] == "a = 1\nb = 2\n"
    out = json.loads(await ctx.call_tool("patch", {"path": "d/e/x.py", "old_string": "= ", "new_string": "== ", "replace_all": True}))
    assert out["replacements"] == 2


async def test_search_files(ctx):
    await ctx.write_file("src/a.py", "def foo():\n    return 1\n")
    await ctx.write_file("src/b.txt", "foo bar\n")
    await ctx.write_file("src/.git/HEAD", "foo\n")
    out = json.loads(await ctx.call_tool("search_files", {"pattern": "fo+", "path": "src"}))
    assert {(m["path"], m["line"]) for m in out["matches"]} == {("src/a.py", 1), ("src/b.txt", 1)}
    out = json.loads(await ctx.call_tool("search_files", {"pattern": "foo", "path": "src", "file_glob": "*.py"}))
    assert [m["path"] for m in out["matches"]] == ["src/a.py"]
    out = json.loads(await ctx.call_tool("search_files", {"pattern": r"\.py$", "target": "files", "path": "src"}))
    assert out["files"] == ["src/a.py"]
    out = json.loads(await ctx.call_tool("search_files", {"pattern": "nothing-here", "path": "src"}))
    assert out == {"total_count": 0, "matches": []}
    e = err(await ctx.call_tool("search_files", {"pattern": "(", "target": "files"}))
    assert e["type"] == "invalid_arguments"
    found = await ctx.search("return", path="src")
    assert found["matches"][0]["content"] == "    return 1" and found["total_count"] == 1


async def test_sync_and_failing_handlers():
    class Args(BaseModel):
        x: int

    seen = {}

    def sync_tool(args, ctx):
        seen["thread"] = threading.current_thread() is not threading.main_thread()
        if args.x < 0:
            raise ToolFailure("x must be positive; try x=1", kind="bad_x")
        if args.x == 0:
            raise ZeroDivisionError("division by zero")
        return {"double": args.x * 2}

    class P:
        @hookimpl
        def hermes_register_tools(self, registry):
            registry.register("double", sync_tool, args=Args, description="doubles")

    rt = Runtime(plugins=[P()])
    async with rt.rollout(toolsets=[]) as ctx:
        ctx.tools["double"] = rt.tools.get("double")
        assert json.loads(await ctx.call_tool("double", '{"x": 21}')) == {"double": 42}
        assert seen["thread"], "sync handlers must not run on the event loop"
        assert err(await ctx.call_tool("double", {"x": -1}))["type"] == "bad_x"
        e = err(await ctx.call_tool("double", {"x": 0}))
        assert e["type"] == "exception" and "ZeroDivisionError" in e["message"]
        assert [x.kind for x in ctx.tool_errors] == ["bad_x", "exception"]


async def test_schemas_are_openai_function_format(ctx):
    schemas = {s["function"]["name"]: s for s in ctx.tool_schemas()}
    term = schemas["terminal"]
    assert term["type"] == "function"
    params = term["function"]["parameters"]
    assert params["type"] == "object" and params["required"] == ["command"]
    assert params["properties"]["command"]["type"] == "string"
