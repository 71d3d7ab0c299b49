"""Toolset composition and configuration."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_core import ConfigError, HermesConfig, Runtime, ToolsetError, UnknownNameError, load_config
from hermes_core.plugin._registry import ToolRegistry, ToolsetRegistry
from hermes_core.tools._toolsets import resolve_toolsets
from pydantic import BaseModel


def registries(tools, toolsets):
    tr = ToolRegistry()
    for t in tools:
        tr.register(t, lambda a, c: "", args=BaseModel, description=t)
    ts = ToolsetRegistry()
    for name, (ts_tools, inc) in toolsets.items():
        ts.register(name, tools=ts_tools, includes=inc)
    return tr, ts


def test_resolution_is_order_stable_and_deduplicated():
    tr, ts = registries(
        ["a", "b", "c", "d"],
        {"x": (["b", "a"], []), "y": (["c", "a"], ["x"]), "z": (["d"], ["y", "x"])},
    )
    assert resolve_toolsets(["z"], ts, tr) == ["d", "c", "a", "b"]
    assert resolve_toolsets(["x", "z"], ts, tr) == ["b", "a", "d", "c"]


def test_cycle_names_the_chain():
    tr, ts = registries(["a"], {"p": (["a"], ["q"]), "q": ([], ["r"]), "r": ([], ["p"])})
    with pytest.raises(ToolsetError, match=r"toolset cycle: p -> q -> r -> p"):
        resolve_toolsets(["p"], ts, tr)


def test_unknown_toolset_and_tool_are_errors_never_empty():
    tr, ts = registries(["a"], {"p": (["a"], ["ghost"]), "bad": (["nope"], [])})
    with pytest.raises(UnknownNameError, match=r"unknown toolset 'ghost'.*included by p"):
        resolve_toolsets(["p"], ts, tr)
    with pytest.raises(ToolsetError, match=r"toolset 'bad' names an unknown tool.*'nope'"):
        resolve_toolsets(["bad"], ts, tr)
    with pytest.raises(UnknownNameError, match=r"unknown toolset 'browser'.*pip install hermes-toolset-browser"):
        resolve_toolsets(["browser"], ts, tr)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_resolution_matches_a_reference_walk(data):
    """Random acyclic toolset graphs: every reachable tool exactly once, in first-visit order."""
    n = data.draw(st.integers(1, 8))
    tools = [f"t{i}" for i in range(6)]
    spec = {}
    for i in range(n):
        own = data.draw(st.lists(st.sampled_from(tools), max_size=4))
        inc = data.draw(st.lists(st.sampled_from([f"s{j}" for j in range(i)] or ["s0"]), max_size=3)) if i else []
        spec[f"s{i}"] = (own, inc)
    tr, ts = registries(tools, spec)
    roots = data.draw(st.lists(st.sampled_from(list(spec)), min_size=1, max_size=3))

    expected: list[str] = []

    def walk(name):
        own, inc = spec[name]
        for t in own:
            if t not in expected:
                expected.append(t)
        for i in inc:
            walk(i)

    for r in roots:
        walk(r)
    assert resolve_toolsets(roots, ts, tr) == expected


def test_config_round_trip_and_custom_toolsets(tmp_path):
    cfg = tmp_path / "hermes.yaml"
    cfg.write_text(
        "backend: local\n"
        "backend_options: {env: {FOO: bar}}\n"
        "toolsets: [mine]\n"
        "custom_toolsets:\n"
        "  mine: {tools: [terminal], includes: [file]}\n"
    )
    config = load_config(cfg)
    assert config == HermesConfig.model_validate(config.model_dump())
    rt = Runtime(config)
    assert list(rt.tool_specs()) == ["terminal", "read_file", "write_file", "patch", "search_files"]
    assert rt.toolsets.get("mine").plugin == "config"
    with pytest.raises(Exception):
        config.backend = "x"  # frozen


def test_config_errors_name_file_key_and_fix(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("backend: local\ntoolset: [default]\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert str(cfg) in msg and "unknown key 'toolset'" in msg and "toolsets" in msg
    cfg.write_text("max_output_chars: lots\n")
    with pytest.raises(ConfigError, match=r"key 'max_output_chars'.*lots"):
        load_config(cfg)
    cfg.write_text("custom_toolsets:\n  mine: {tool: [terminal]}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'custom_toolsets.mine.tool'.*allowed keys here: tools, includes"):
        load_config(cfg)
    cfg.write_text("toolsets: [a\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+"):
        load_config(cfg)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")


def test_backend_options_validated_by_the_backend(tmp_path):
    rt = Runtime()
    with pytest.raises(ConfigError, match=r"options of backend 'local': unknown key 'imagee'"):
        rt.create_sandbox("local", {"imagee": "x"})
    with pytest.raises(ConfigError, match=r"key 'env.A'"):
        rt.create_sandbox("local", {"env": {"A": 1}})


def test_cli_tools_shows_the_composed_toolset(tmp_path):
    cfg = tmp_path / "h.yaml"
    cfg.write_text("custom_toolsets:\n  mine: {tools: [patch], includes: [terminal]}\n")
    out = subprocess.run(
        [sys.executable, "-m", "hermes_core.cli", "--config", str(cfg), "tools", "--toolset", "mine"],
        capture_output=True, text=True, check=True,
    ).stdout
    names = [line.split()[0] for line in out.splitlines()]
    assert names[:2] == ["patch", "terminal"]
    bad = subprocess.run(
        [sys.executable, "-m", "hermes_core.cli", "tools", "--toolset", "nosuch"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown toolset 'nosuch'" in bad.stderr
