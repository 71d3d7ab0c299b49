"""The distribution registers its tools and toolset through the hermes entry-point group."""

from __future__ import annotations

import importlib.metadata

import hermes_toolset_web
from hermes_core import Runtime


def test_entry_point_is_declared():
    eps = [ep for ep in importlib.metadata.entry_points(group="hermes") if ep.value == "hermes_toolset_web"]
    assert len(eps) == 1 and eps[0].dist.name == "hermes-toolset-web"


def test_tools_and_toolset_register_lazily():
    rt = Runtime(plugins=[hermes_toolset_web])
    assert rt.resolve_toolsets(["web"]) == ["web_search", "web_extract"]
    schema = rt.tools.get("web_extract").schema()
    assert schema["function"]["parameters"]["properties"]["urls"]["type"] == "array"
    schema = rt.tools.get("web_search").schema()
    assert set(schema["function"]["parameters"]["properties"]) == {"query", "limit"}


def test_registration_imports_no_heavy_module():
    import subprocess
    import sys

    code = ("import sys, hermes_toolset_web as w; from hermes_core import Runtime; Runtime(plugins=[w]);"
            "bad=[m for m in ('httpx','trafilatura','pypdf','lxml') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**__import__("os").environ, "HERMES_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
