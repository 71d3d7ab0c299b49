"""The distribution registers its tools and toolset through the hermes entry-point group, lazily."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import hermes_toolset_browser
from hermes_core import Runtime

TOOLS = ["browser_navigate", "browser_snapshot", "browser_click", "browser_type", "browser_press",
         "browser_scroll", "browser_back", "browser_screenshot", "browser_console", "browser_close"]


def test_entry_point_is_declared():
    eps = [ep for ep in importlib.metadata.entry_points(group="hermes") if ep.value == "hermes_toolset_browser"]
    assert len(eps) == 1 and eps[0].dist.name == "hermes-toolset-browser"


def test_toolset_and_schemas():
    rt = Runtime(plugins=[hermes_toolset_browser])
    assert rt.resolve_toolsets(["browser"]) == TOOLS
    click = rt.tools.get("browser_click").schema()["function"]
    assert click["parameters"]["required"] == ["ref"]
    typ = rt.tools.get("browser_type").schema()["function"]["parameters"]
    assert set(typ["properties"]) == {"ref", "text", "submit"}


def test_registration_imports_no_playwright():
    code = ("import sys, hermes_toolset_browser as b; from hermes_core import Runtime; Runtime(plugins=[b]);"
            "bad=[m for m in ('playwright', 'hermes_toolset_browser._tools') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "HERMES_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_option_is_a_config_error():
    import pytest

    from hermes_core import ConfigError

    rt = Runtime(plugins=[hermes_toolset_browser])
    with pytest.raises(ConfigError, match="max_context"):
        hermes_toolset_browser.configure(rt, max_context=3)
