"""The layout holds: no import cycle inside hermes_core (type-only imports included), no private
hermes module imported from outside its package, every lazy export and every registered
``"module:attr"`` reference resolves, and every registration hook annotates its registrar."""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "hermes_core"


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports (at top level, in functions, under TYPE_CHECKING)."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            for a in node.names:  # `from . import _mod` imports a module
                out.add(f"{target}.{a.name}")
    return out


def _core_graph() -> dict[str, set[str]]:
    files = {_module_name(p, CORE.parent): p for p in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        deps = set()
        for imp in _imports(path, mod):
            # an import of a.b.c depends on module a.b.c if it exists, else on its package
            while imp and imp not in files:
                imp = imp.rpartition(".")[0]
            if imp and imp != mod and imp.startswith("hermes_core"):
                deps.add(imp)
        graph[mod] = deps
    return graph


def _is_package_parent(a: str, b: str) -> bool:
    # A package's __init__ re-exporting its own submodules, and a submodule importing a sibling
    # through the package, are one room, not a cycle.
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycle_in_core():
    graph = _core_graph()
    # package -> own submodule edges are re-exports; drop them before looking for cycles
    edges = {m: {d for d in deps if not _is_package_parent(m, d)} for m, deps in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles in hermes_core:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle(tmp_path):
    """The check itself can fail: two modules importing each other are reported."""
    pkg = tmp_path / "hermes_core"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import y\n")
    global CORE
    saved, CORE = CORE, pkg
    try:
        with pytest.raises(AssertionError, match="hermes_core.a -> hermes_core.b -> hermes_core.a"):
            test_no_import_cycle_in_core()
    finally:
        CORE = saved


def _outside_files() -> list[Path]:
    out = []
    for base in [ROOT / "plugins", *ROOT.glob("hermes_backend_*")]:
        for p in base.rglob("*.py"):
            if "tests" in p.relative_to(ROOT).parts or ".venv" in p.parts or "build" in p.parts:
                continue
            out.append(p)
    return out


def test_plugins_import_only_public_hermes_core_modules():
    bad = []
    for path in _outside_files():
        for imp in _imports(path, path.stem):
            parts = imp.split(".")
            if parts[0] == "hermes_core" and any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
                bad.append(f"{path.relative_to(ROOT)}: {imp}")
            # one plugin distribution never reaches into another's private modules
            if parts[0].startswith("hermes_") and parts[0] != "hermes_core" and len(parts) > 1 \
                    and parts[1].startswith("_") and parts[0] not in path.parts:
                bad.append(f"{path.relative_to(ROOT)}: {imp}")
    assert not bad, "private imports outside their package:\n" + "\n".join(sorted(bad))
    assert len(_outside_files()) > 10  # the walk found the plugins


def _public_packages() -> list[str]:
    return ["hermes_core", "hermes_core.plugin", "hermes_core.sandbox", "hermes_core.processes",
            "hermes_core.tools", "hermes_core.rollout", "hermes_core.testing", "hermes_core.errors",
            "hermes_core.cli"]


@pytest.mark.parametrize("name", _public_packages())
def test_every_public_name_resolves(name):
    mod = importlib.import_module(name)
    assert mod.__all__, f"{name} has no __all__"
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ names what it does not have: {missing}"


def test_every_registered_reference_of_every_installed_plugin_resolves():
    """A typo in a ``"module:attr"`` registration fails here, not at a user's first call."""
    from hermes_core import Runtime
    from hermes_core.plugin._registry import _Lazy

    rt = Runtime()
    checked = 0
    for attr in ("backends", "tools", "toolsets", "parsers", "environments", "verifiers", "agents"):
        registry = getattr(rt, attr)
        for spec in registry.values():
            if not isinstance(spec, _Lazy):
                continue
            for field in type(spec)._fields:
                value = getattr(spec, field)
                if field.endswith("_ref") and isinstance(value, str):
                    spec._resolve(field, f"{attr} {field}")  # raises PluginError on a typo
                    checked += 1
    assert checked >= 5, f"only {checked} lazy references found; the walk is broken"


def test_every_registration_hook_annotates_its_registrar():
    from hermes_core import Runtime, hookspecs

    rt = Runtime()
    bad = []
    spec_names = {n for n in dir(hookspecs) if n.startswith("hermes_register_")}
    for plugin in rt.pm.get_plugins():
        for name in spec_names:
            fn = getattr(plugin, name, None)
            if fn is None:
                continue
            hints = inspect.signature(fn).parameters.get("registry")
            ann = hints.annotation if hints else inspect.Parameter.empty
            if ann is inspect.Parameter.empty or ann in ("Any", "typing.Any"):
                bad.append(f"{rt.pm.get_name(plugin)}.{name}")
    assert not bad, f"registration hooks without a typed registrar: {bad}"


def test_import_hermes_core_loads_no_heavy_module():
    import subprocess

    code = ("import sys, hermes_core; from hermes_core import Runtime; Runtime(); "
            "heavy = [m for m in ('asyncio', 'pydantic', 'openai', 'docker', 'asyncssh', 'atroposlib', 'modal', 'daytona', "
            "'playwright', 'httpx') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"loading plugins imported heavy modules: {out.stdout.strip()}"


def test_a_typo_in_a_reference_is_caught():
    from hermes_core import PluginError, Runtime, hookimpl

    class Typo:
        @hookimpl
        def hermes_register_backends(self, registry):
            registry.register("typo", "hermes_plugins.local:no_such_factory")

    rt = Runtime(plugins=[Typo()], load_installed=False)
    with pytest.raises(PluginError, match="no_such_factory"):
        rt.backends.get("typo")._resolve("factory_ref", "factory")
