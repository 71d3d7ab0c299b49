"""The plugin system: discovery through entry points, kill switches, and the errors it gives."""

from __future__ import annotations

import inspect
import textwrap

import pytest

from hermes_core import DuplicateNameError, PluginError, Runtime, UnknownNameError, hookimpl, hookspecs
from hermes_core.runtime import _HOOKS


def make_dist(root, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A real installed distribution on ``sys.path``: dist-info metadata plus modules."""
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[hermes]\n{lines}\n")
    for name, src in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(src))


GOOD = """
from hermes_core import hookimpl
from hermes_plugins.local import LocalOptions, LocalSandbox

@hookimpl
def hermes_register_backends(registry):
    registry.register("thirdparty", lambda o, *, sandbox_id, labels: LocalSandbox(o, sandbox_id=sandbox_id, labels=labels),
                      options=LocalOptions, description="a third-party backend")
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("HERMES_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("HERMES_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return tmp_path


def test_builtins_load_through_entry_points():
    rt = Runtime()
    by_name = {p.name: p for p in rt.plugins}
    assert by_name["local"].distribution == "hermes-core"
    assert by_name["local"].registers == {"backend": ["local"]}
    assert "terminal" in by_name["tools-terminal"].registers["tool"]
    assert {"terminal", "read_file", "write_file", "patch", "search_files"} <= set(rt.tools)


def test_entry_points_match_default_plugins():
    """The pyproject table and DEFAULT_PLUGINS (used from an uninstalled tree) must agree."""
    import tomllib
    from pathlib import Path

    from hermes_core.plugin._manager import DEFAULT_PLUGINS

    root = Path(__file__).resolve().parents[1]
    table = tomllib.loads((root / "pyproject.toml").read_text())["project"]["entry-points"]["hermes"]
    assert dict(DEFAULT_PLUGINS) == table


def test_third_party_plugin_is_found_by_entry_point(site):
    make_dist(site, "hermes-backend-thirdparty", {"thirdparty": "hermes_tp_good"}, {"hermes_tp_good": GOOD})
    rt = Runtime()
    info = {p.name: p for p in rt.plugins}["thirdparty"]
    assert info.distribution == "hermes-backend-thirdparty" and info.version == "1.2.3"
    assert rt.backends.get("thirdparty").plugin == "thirdparty"


async def test_third_party_backend_runs_a_rollout(site):
    make_dist(site, "hermes-backend-thirdparty", {"thirdparty": "hermes_tp_good2"}, {"hermes_tp_good2": GOOD})
    rt = Runtime()
    async with rt.rollout(backend="thirdparty") as ctx:
        assert (await ctx.terminal("echo via plugin"))["output"] == "via plugin\n"


def test_broken_plugin_fails_loudly_and_can_be_disabled(site, monkeypatch):
    make_dist(site, "hermes-broken-dist", {"broken": "hermes_tp_broken"}, {"hermes_tp_broken": "raise ImportError('no sdk here')\n"})
    with pytest.raises(PluginError) as e:
        Runtime()
    msg = str(e.value)
    assert "'broken'" in msg and "hermes_tp_broken" in msg and "hermes-broken-dist" in msg
    assert "no sdk here" in msg and "HERMES_DISABLE_PLUGINS=broken" in msg
    monkeypatch.setenv("HERMES_DISABLE_PLUGINS", "broken")
    assert "broken" not in {p.name for p in Runtime().plugins}


def test_autoload_switch_loads_builtins_only(site, monkeypatch):
    make_dist(site, "hermes-backend-thirdparty", {"thirdparty": "hermes_tp_good3"}, {"hermes_tp_good3": GOOD})
    monkeypatch.setenv("HERMES_DISABLE_PLUGIN_AUTOLOAD", "1")
    rt = Runtime()
    assert "thirdparty" not in rt.backends
    assert "local" in rt.backends
    assert all(p.distribution == "hermes-core" for p in rt.plugins)


def test_duplicate_names_name_both_plugins():
    class A:
        @hookimpl
        def hermes_register_backends(self, registry):
            registry.register("local", lambda *a, **k: None)

    with pytest.raises(DuplicateNameError) as e:
        Runtime(plugins=[A()])
    assert "'local'" in str(e.value) and "'local'" in str(e.value).split("by plugin", 1)[1]
    assert "A-0" in str(e.value)


def test_duplicate_plugin_name_across_distributions(site):
    hook = "from hermes_core import hookimpl\n@hookimpl\ndef hermes_register_agents(registry): pass\n"
    make_dist(site, "hermes-dup-a", {"samename": "hermes_tp_dup_a"}, {"hermes_tp_dup_a": hook})
    make_dist(site, "hermes-dup-b", {"samename": "hermes_tp_dup_b"}, {"hermes_tp_dup_b": hook})
    with pytest.raises(DuplicateNameError, match="hermes-dup-a.*hermes-dup-b|hermes-dup-b.*hermes-dup-a"):
        Runtime()


def test_unknown_names_list_what_exists_and_what_to_install():
    rt = Runtime()
    with pytest.raises(UnknownNameError) as e:
        rt.backends.get("modal")
    assert "registered: " in str(e.value) and "local" in str(e.value)
    assert "pip install hermes-backend-modal" in str(e.value)
    with pytest.raises(UnknownNameError, match="unknown tool 'nope'"):
        rt.tools.get("nope")


def test_failing_hook_names_the_plugin():
    class Bad:
        @hookimpl
        def hermes_register_tools(self, registry):
            raise ValueError("boom")

    with pytest.raises(PluginError, match=r"'Bad-0' failed in hermes_register_tools: ValueError: boom"):
        Runtime(plugins=[Bad()])


def test_every_hook_is_documented_called_and_reaches_its_registry():
    """Meta-test: each hookspec has a docstring with its version, and a plugin implementing it
    lands in the matching registry."""
    specs = {n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("hermes_")}
    assert specs == {h for h, _ in _HOOKS}
    for name in specs:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Added in" in doc, f"{name} lacks a docstring with its version"

    class All:
        @hookimpl
        def hermes_register_backends(self, registry):
            registry.register("b-meta", lambda *a, **k: None)

        @hookimpl
        def hermes_register_tools(self, registry):
            from pydantic import BaseModel

            registry.register("t_meta", lambda a, c: "ok", args=BaseModel, description="d")

        @hookimpl
        def hermes_register_toolsets(self, registry):
            registry.register("ts-meta", tools=["t_meta"])

        @hookimpl
        def hermes_register_tool_call_parsers(self, registry):
            registry.register("p-meta", lambda text: (text, []))

        @hookimpl
        def hermes_register_environments(self, registry):
            registry.register("e-meta", object)

        @hookimpl
        def hermes_register_verifiers(self, registry):
            registry.register("v-meta", lambda item, result, ctx: 1.0)

        @hookimpl
        def hermes_register_agents(self):  # a subset of the arguments is allowed
            pass

    rt = Runtime(plugins=[All()])
    assert "b-meta" in rt.backends and "t_meta" in rt.tools and "ts-meta" in rt.toolsets
    assert "p-meta" in rt.parsers and "e-meta" in rt.environments and "v-meta" in rt.verifiers
    assert rt.resolve_toolsets(["ts-meta"]) == ["t_meta"]


def test_runtimes_do_not_share_state():
    class Extra:
        @hookimpl
        def hermes_register_backends(self, registry):
            registry.register("only-here", lambda *a, **k: None)

    a = Runtime(plugins=[Extra()])
    b = Runtime()
    assert "only-here" in a.backends and "only-here" not in b.backends
    assert a.pm is not b.pm and a.id != b.id


def test_plugin_that_implements_nothing_is_an_error(site):
    """E.g. a source folder without __init__.py shadowing the installed package."""
    (site / "hermes_tp_shadowed").mkdir()  # a namespace package: imports fine, holds nothing
    make_dist(site, "hermes-shadowed", {"shadowed": "hermes_tp_shadowed"}, {})
    with pytest.raises(PluginError, match=r"'shadowed'.*implements no hermes hook.*HERMES_DISABLE_PLUGINS=shadowed"):
        Runtime()


def test_entry_point_scan_agrees_with_importlib_metadata(site):
    """The fast dist-info reader finds exactly what importlib.metadata finds."""
    from importlib import metadata

    from hermes_core.plugin._entry_points import entry_points

    make_dist(site, "hermes-backend-thirdparty", {"thirdparty": "hermes_tp_x", "other": "hermes_tp_y:obj"}, {})
    make_dist(site, "Hermes.Odd_Name", {"odd": "hermes_tp_odd"}, {})
    want = sorted((e.name, e.value, e.dist.name, e.dist.version) for e in metadata.entry_points(group="hermes"))
    assert sorted(entry_points("hermes")) == want
    assert ("odd", "hermes_tp_odd", "Hermes.Odd_Name", "1.2.3") in want


def test_tool_schema_is_built_once_and_returned_as_a_fresh_copy():
    from hermes_core import Runtime

    rt = Runtime()
    spec = rt.tools.get("terminal")
    calls = []
    model = spec.args_model
    original = model.model_json_schema

    first = spec.schema()
    try:
        model.model_json_schema = classmethod(lambda cls, *a, **k: calls.append(1) or original(*a, **k))
        second = spec.schema()
    finally:
        del model.model_json_schema
    assert calls == []  # not generated again
    assert first == second and first is not second
    second["function"]["parameters"]["properties"].clear()  # a caller may change its copy
    assert spec.schema()["function"]["parameters"]["properties"] == first["function"]["parameters"]["properties"]
    assert "command" in first["function"]["parameters"]["properties"]
