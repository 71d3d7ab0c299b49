"""Finding, importing and registering plugins: built-ins and third parties by the same path."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from .. import hookspecs
from ..errors import DuplicateNameError, PluginError
from ._entry_points import entry_points

__all__ = ["DEFAULT_PLUGINS", "PluginInfo", "discover", "load_into"]

BUILTIN_DIST = "hermes-core"
#: The built-in plugins, in load order; the same names and modules as the
#: ``[project.entry-points.hermes]`` table of the root ``pyproject.toml``.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("local", "hermes_plugins.local"),
    ("tools-terminal", "hermes_plugins.terminal_tools"),
    ("tools-file", "hermes_plugins.file_tools"),
    ("tools-process", "hermes_plugins.process_tools"),
    ("toolsets", "hermes_plugins.toolsets"),
    ("agents", "hermes_plugins.agents"),
    ("terminal-test", "hermes_plugins.terminal_test"),
    ("tool-call-parsers", "hermes_plugins.tool_call_parsers"),
)


@dataclass
class PluginInfo:
    """One loaded plugin, for ``hermes plugins``."""

    name: str
    module: str
    distribution: str
    version: str
    builtin: bool
    registers: dict[str, list[str]] = field(default_factory=dict)


def _disabled() -> set[str]:
    raw = os.environ.get("HERMES_DISABLE_PLUGINS", "")
    return {x.strip() for x in raw.split(",") if x.strip()}


def _autoload() -> bool:
    return os.environ.get("HERMES_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() not in ("1", "true", "yes")


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def discover() -> list[tuple[str, str, str, str]]:
    """Entry points of group ``hermes`` as (name, module, distribution, version), built-ins first.

    Honours ``HERMES_DISABLE_PLUGINS`` and ``HERMES_DISABLE_PLUGIN_AUTOLOAD``.
    """
    disabled = _disabled()
    builtins: list[tuple[str, str, str, str]] = []
    others: list[tuple[str, str, str, str]] = []
    for row in entry_points(hookspecs.PROJECT):
        (builtins if _norm(row[2]) == BUILTIN_DIST else others).append(row)
    if not builtins:  # running from a source tree that was never pip-installed
        builtins = [(n, m, BUILTIN_DIST, "source") for n, m in DEFAULT_PLUGINS]
    order = {name: i for i, (name, _) in enumerate(DEFAULT_PLUGINS)}
    builtins.sort(key=lambda r: order.get(r[0], len(order)))
    rows = builtins + (others if _autoload() else [])
    return [r for r in rows if r[0] not in disabled]


def load_into(pm: pluggy.PluginManager, rows: list[tuple[str, str, str, str]]) -> list[PluginInfo]:
    """Import each plugin module and register it with ``pm``.

    Raises:
        PluginError: a plugin failed to import (names its entry point, distribution and the
            switch that disables it).
        DuplicateNameError: two distributions declare the same plugin name.
    """
    infos: list[PluginInfo] = []
    owners: dict[str, str] = {}
    builtin_names = {n for n, _ in DEFAULT_PLUGINS}
    for name, value, dist, version in rows:
        if name in owners:
            raise DuplicateNameError(
                f"plugin name {name!r} is declared by two distributions: {owners[name]!r} and "
                f"{dist!r}. Uninstall one of them."
            )
        owners[name] = dist
        modname = value.split(":")[0].strip()
        try:
            obj: Any = importlib.import_module(modname)
            if ":" in value:
                for attr in value.split(":", 1)[1].strip().split("."):
                    obj = getattr(obj, attr)
        except Exception as e:
            raise PluginError(
                f"plugin {name!r} (entry point '{name} = {value}' of distribution {dist!r}) failed "
                f"to import: {type(e).__name__}: {e}. Fix or uninstall {dist!r}, or disable it "
                f"with HERMES_DISABLE_PLUGINS={name}."
            ) from e
        pm.register(obj, name=name)
        if not pm.get_hookcallers(obj):
            where = getattr(obj, "__file__", None) or getattr(obj, "__path__", None) or "?"
            raise PluginError(
                f"plugin {name!r} (entry point '{name} = {value}' of distribution {dist!r}) "
                f"implements no hermes hook; {modname!r} was loaded from {where}. Add a "
                f"@hookimpl to it, or disable it with HERMES_DISABLE_PLUGINS={name}."
            )
        builtin = _norm(dist) == BUILTIN_DIST and name in builtin_names
        infos.append(PluginInfo(name, modname, dist, version, builtin))
    return infos
