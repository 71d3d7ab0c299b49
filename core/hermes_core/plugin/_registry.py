"""Typed registrars handed to the registration hooks, and the registries behind them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from ..errors import DuplicateNameError, PluginError, UnknownNameError

__all__ = [
    "KNOWN_PACKAGES",
    "DISTRIBUTION_FOLDERS",
    "install_hint",
    "BackendSpec",
    "ToolSpec",
    "ToolsetSpec",
    "EnvironmentSpec",
    "VerifierSpec",
    "AgentSpec",
    "ParserSpec",
    "Ref",
    "Registry",
    "no_options_model",
    "BackendRegistry",
    "ToolRegistry",
    "ToolsetRegistry",
    "EnvironmentRegistry",
    "VerifierRegistry",
    "AgentRegistry",
    "ToolCallParserRegistry",
]

#: Names that belong to a distribution which may simply not be installed: kind → name →
#: distribution. Every distribution named here is built from this repository (the folder in
#: :data:`DISTRIBUTION_FOLDERS`); none is on the public package index under that name.
KNOWN_PACKAGES: dict[str, dict[str, str]] = {
    "backend": {
        "docker": "hermes-backend-docker",
        "modal": "hermes-backend-modal",
        "daytona": "hermes-backend-daytona",
        "ssh": "hermes-backend-ssh",
        "singularity": "hermes-backend-singularity",
        "apptainer": "hermes-backend-singularity",
    },
    "toolset": {"browser": "hermes-toolset-browser", "web": "hermes-toolset-web"},
    "tool": {
        **{f"browser_{t}": "hermes-toolset-browser" for t in (
            "navigate", "snapshot", "click", "type", "press", "scroll", "back", "console", "screenshot", "close")},
        "web_search": "hermes-toolset-web",
        "web_extract": "hermes-toolset-web",
    },
    "environment": {"terminal-bench": "hermes-env-terminal-bench", "swe": "hermes-env-swe"},
}

#: Where each distribution of :data:`KNOWN_PACKAGES` lives in a hermes-core checkout.
DISTRIBUTION_FOLDERS: dict[str, str] = {
    "hermes-backend-docker": "hermes_backend_docker",
    "hermes-backend-modal": "hermes_backend_modal",
    "hermes-backend-daytona": "hermes_backend_daytona",
    "hermes-backend-ssh": "hermes_backend_ssh",
    "hermes-backend-singularity": "hermes_backend_singularity",
    "hermes-toolset-browser": "plugins/hermes_toolset_browser",
    "hermes-toolset-web": "plugins/hermes_toolset_web",
    "hermes-env-terminal-bench": "plugins/hermes_env_terminal_bench",
    "hermes-env-swe": "plugins/hermes_env_swe",
    "hermes-atropos": "plugins/hermes_atropos",
}


def install_hint(dist: str) -> str:
    """How to install ``dist``: from this checkout when hermes-core runs from one (the path is
    then exact), else from a checkout of the repository or wheels built from it; the public
    package index has no such distribution (and its ``hermes-core`` is an unrelated project)."""
    from pathlib import Path

    folder = DISTRIBUTION_FOLDERS.get(dist)
    if folder is None:
        return f"pip install {dist}"
    root = Path(__file__).resolve().parents[3]  # <checkout>/core/hermes_core/plugin/_registry.py
    source = str(root / folder) if (root / folder / "pyproject.toml").is_file() else f"<hermes-core checkout>/{folder}"
    return (f"pip install {source} (or pip install {dist} --no-index --find-links DIR with wheels built "
            "from the repository; the public package index has no such name)")


#: ``"package.module:attribute"``: imported on first use, so registering costs no imports.
Ref = str


def _import_ref(ref: str, what: str) -> Any:
    import importlib

    module, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except Exception as e:
        raise PluginError(f"{what}: cannot import {ref!r}: {type(e).__name__}: {e}") from e
    return obj


class _Spec:
    """A small immutable record: fields are the class's annotations, in order; class attributes
    are defaults. (Not ``dataclasses``: generating their methods costs ~15 ms at import, and
    specs are made for every registered name on every start.)"""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in getattr(klass, "__annotations__", {}):
                if not name.startswith("_") and name not in names:
                    names.append(name)
        cls._fields = tuple(names)

    _fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(self._fields)} fields")
        values = dict(zip(self._fields, args))
        for key, value in kwargs.items():
            if key not in self._fields or key in values:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated field {key!r}")
            values[key] = value
        for name in self._fields:
            if name in values:
                object.__setattr__(self, name, values[name])
            elif not hasattr(type(self), name):
                raise TypeError(f"{type(self).__name__}: missing field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self._fields)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values() == self._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name))  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({inner})"


class _Lazy(_Spec):
    """Resolves ``*_ref`` fields given as :data:`Ref` strings once, on first access."""

    def _resolve(self, field_name: str, what: str) -> Any:
        value = getattr(self, field_name)
        if isinstance(value, str):
            value = _import_ref(value, f"{what} of {getattr(self, 'name', '?')!r}")
            object.__setattr__(self, field_name, value)
        return value


@functools.cache
def no_options_model() -> type:
    """The options model of plugins that take no options (built on first use)."""
    from pydantic import BaseModel, ConfigDict

    class NoOptions(BaseModel):
        """Options model for plugins that take no options."""

        model_config = ConfigDict(extra="forbid", frozen=True)

    return NoOptions


class BackendSpec(_Lazy):
    """A registered sandbox backend.

    Attributes:
        name: what users type (``--backend NAME``).
        factory: ``factory(options, *, sandbox_id, labels) -> Sandbox``.
        options_model: pydantic model that validates this backend's options.
        description: one line for ``hermes plugins``.
        plugin: the plugin that registered it.
        sweep: optional ``async sweep(older_than: float | None) -> list[str]`` that removes
            sandboxes left behind by a killed driver (found by their labels) and names them.
        images: whether a sandbox runs the ``image`` option (a container image); ``None``: the
            options model says so (an ``image`` option whose description does not start with
            "Ignored").
        close: optional ``close()`` called when the Runtime closes (see ``register``).
    """

    name: str
    factory_ref: Callable[..., Any] | Ref
    options_ref: type | Ref | None = None
    description: str = ""
    plugin: str = ""
    sweep_ref: Callable[..., Any] | Ref | None = None
    images: bool | None = None
    close: Callable[[], None] | None = None

    @property
    def runs_images(self) -> bool:
        """Whether a task's ``image`` is used by this backend (see ``images``)."""
        if self.images is not None:
            return self.images
        field = getattr(self.options_model, "model_fields", {}).get("image")
        return field is not None and not (field.description or "").lower().startswith("ignored")

    @property
    def factory(self) -> Callable[..., Any]:
        return self._resolve("factory_ref", "factory of backend")

    @property
    def options_model(self) -> Any:
        if self.options_ref is None:
            return no_options_model()
        return self._resolve("options_ref", "options model of backend")

    @property
    def sweep(self) -> Callable[..., Any] | None:
        return None if self.sweep_ref is None else self._resolve("sweep_ref", "sweep of backend")


class ToolSpec(_Lazy):
    """A registered tool in OpenAI function-calling form.

    Attributes:
        name: the function name the model calls.
        description: what the model is told the tool does.
        args_model: pydantic model of the arguments; the JSON schema is derived from it.
        handler: ``handler(args, ctx)``; sync or async; returns ``str`` or a JSON-able object.
        check: optional ``check() -> bool``; a tool whose check fails is not offered.
    """

    name: str
    description: str
    args_ref: type | Ref
    handler_ref: Callable[..., Any] | Ref
    check: Callable[[], bool] | None = None
    plugin: str = ""

    @property
    def args_model(self) -> Any:
        return self._resolve("args_ref", "argument model of tool")

    @property
    def handler(self) -> Callable[..., Any]:
        return self._resolve("handler_ref", "handler of tool")

    @property
    def is_async(self) -> bool:
        import inspect

        return inspect.iscoroutinefunction(self.handler)

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools=[...]`` entry for this tool (a fresh copy each call; pydantic's
        schema generation, ~5 ms per tool, runs once per spec)."""
        import json

        cached = self.__dict__.get("_schema_json")
        if cached is None:
            params = self.args_model.model_json_schema()
            params.pop("title", None)
            for prop in params.get("properties", {}).values():
                prop.pop("title", None)
            cached = json.dumps({
                "type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": params},
            })
            object.__setattr__(self, "_schema_json", cached)
        return json.loads(cached)

    def available(self) -> bool:
        return self.check is None or bool(self.check())


class ToolsetSpec(_Spec):
    """A named group of tools, which may include other toolsets."""

    name: str
    tools: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    description: str = ""
    plugin: str = ""


class EnvironmentSpec(_Lazy):
    """An environment class (see :class:`hermes_core.Environment`) and its default config.

    Both may be given lazily — the class as ``"package.module:Class"`` and the config as the path
    of a YAML file — so registering costs no imports; they are resolved on first use.
    """

    name: str
    cls_ref: type | str
    default_config_ref: Mapping[str, Any] | str | Path = MappingProxyType({})
    description: str = ""
    plugin: str = ""

    @property
    def cls(self) -> type:
        """The environment class (imported on first use when registered by name).

        Raises:
            PluginError: the ``module:Class`` reference does not import.
        """
        return self._resolve("cls_ref", "class of environment")

    @property
    def default_config(self) -> dict[str, Any]:
        """The default config (read from its YAML file on first use when given as a path).

        Raises:
            ConfigError: the file is unreadable or not a YAML mapping.
        """
        ref = self.default_config_ref
        if isinstance(ref, (str, Path)):
            from ..config import read_yaml_mapping

            object.__setattr__(self, "default_config_ref", read_yaml_mapping(Path(ref)))
        return dict(self.default_config_ref)  # type: ignore[arg-type]


class VerifierSpec(_Lazy):
    """``async def verifier(item, result, ctx) -> float | dict[str, float]``."""

    name: str
    fn_ref: Callable[..., Any] | Ref
    description: str = ""
    plugin: str = ""

    @property
    def fn(self) -> Callable[..., Any]:
        return self._resolve("fn_ref", "verifier")


class AgentSpec(_Lazy):
    """``factory(**options) -> Agent``; an agent drives one rollout through a ToolContext."""

    name: str
    factory_ref: Callable[..., Any] | Ref
    description: str = ""
    plugin: str = ""

    @property
    def factory(self) -> Callable[..., Any]:
        return self._resolve("factory_ref", "factory of agent")


class ParserSpec(_Lazy):
    """A tool-call parser for raw-completion servers: ``parse(text) -> (content, tool_calls)``."""

    name: str
    parser_ref: Callable[..., Any] | Ref
    description: str = ""
    plugin: str = ""

    @property
    def parser(self) -> Any:
        return self._resolve("parser_ref", "tool-call parser")


T = TypeVar("T")


class Registry(Generic[T]):
    """Name → spec, refusing duplicates and explaining unknown names."""

    kind = "item"

    def __init__(self) -> None:
        self._items: dict[str, T] = {}
        #: Set by the plugin manager while a plugin's hook runs, so specs know their origin.
        self.current_plugin = "<direct>"

    def _add(self, name: str, spec: T) -> T:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._items:
            first = getattr(self._items[name], "plugin", "?")
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice: by plugin {first!r} and by plugin "
                f"{self.current_plugin!r}. Uninstall or disable one of them "
                f"(HERMES_DISABLE_PLUGINS={self.current_plugin})."
            )
        self._items[name] = spec
        return spec

    def get(self, name: str) -> T:
        """Return the spec for ``name``.

        Raises:
            UnknownNameError: the name is not registered; the message lists what is, and which
                package to install when the name is a known one.
        """
        try:
            return self._items[name]
        except KeyError:
            pass
        have = ", ".join(sorted(self._items)) or "(none)"
        msg = f"unknown {self.kind} {name!r}; registered: {have}."
        pkg = KNOWN_PACKAGES.get(self.kind, {}).get(name)
        if pkg:
            msg += f" {name!r} is provided by the distribution {pkg}, which is not installed: {install_hint(pkg)}"
        raise UnknownNameError(msg)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)

    def values(self) -> list[T]:
        return list(self._items.values())


class BackendRegistry(Registry[BackendSpec]):
    kind = "backend"

    def register(
        self,
        name: str,
        factory: Callable[..., Any] | Ref,
        *,
        options: type | Ref | None = None,
        description: str = "",
        sweep: Callable[..., Any] | Ref | None = None,
        images: bool | None = None,
        close: Callable[[], None] | None = None,
    ) -> BackendSpec:
        """Register a sandbox backend.

        Args:
            name: the name users pass as ``--backend``.
            factory: ``factory(options, *, sandbox_id, labels) -> Sandbox``, or a
                ``"module:attr"`` reference imported on first use. Import heavy SDKs inside it,
                not at module import.
            options: pydantic model validating the backend's options (``extra="forbid"``), or a
                ``"module:Model"`` reference; ``None`` means the backend takes no options.
            description: one line shown by ``hermes plugins``.
            sweep: optional ``async sweep(older_than_seconds) -> list[str]`` removing leftovers
                of killed drivers (``hermes sandbox sweep``).
            images: whether the backend runs a task's ``image`` (``None``: inferred from the
                options model, see :attr:`BackendSpec.images`).
            close: optional ``close()`` the Runtime calls once when it closes, after its
                sandboxes (also at exit if it was never closed): releases what the backend keeps
                between sandboxes. Synchronous, quick, must not raise.
        """
        return self._add(
            name, BackendSpec(name, factory, options, description, self.current_plugin, sweep, images, close)
        )


class ToolRegistry(Registry[ToolSpec]):
    kind = "tool"

    def register(
        self,
        name: str,
        handler: Callable[..., Any] | Ref,
        *,
        args: type | Ref,
        description: str,
        check: Callable[[], bool] | None = None,
    ) -> ToolSpec:
        """Register a tool.

        Args:
            name: the function name the model calls.
            handler: ``handler(args, ctx)`` where ``args`` is an instance of ``args`` and ``ctx``
                the rollout's ToolContext; sync or async; returns ``str`` or JSON-able data.
                A ``"module:function"`` reference is imported on first use.
            args: pydantic model of the arguments (its JSON schema is what the model sees), or a
                ``"module:Model"`` reference.
            description: what the model is told.
            check: optional availability check.
        """
        return self._add(name, ToolSpec(name, description, args, handler, check, self.current_plugin))


class ToolsetRegistry(Registry[ToolsetSpec]):
    kind = "toolset"

    def register(
        self,
        name: str,
        *,
        tools: Sequence[str] = (),
        includes: Sequence[str] = (),
        description: str = "",
    ) -> ToolsetSpec:
        """Register a toolset: named tools plus the tools of the included toolsets."""
        return self._add(
            name, ToolsetSpec(name, tuple(tools), tuple(includes), description, self.current_plugin)
        )


class EnvironmentRegistry(Registry[EnvironmentSpec]):
    kind = "environment"

    def register(
        self,
        name: str,
        cls: type | str,
        *,
        default_config: Mapping[str, Any] | str | Path | None = None,
        description: str = "",
    ) -> EnvironmentSpec:
        """Register an environment class with its default config.

        Args:
            name: what users type (``hermes eval NAME``).
            cls: the class, or ``"package.module:Class"`` to import it on first use.
            default_config: a mapping, or the path of a YAML file read on first use.
            description: one line for ``hermes plugins``.
        """
        if default_config is None:
            default_config = {}
        elif not isinstance(default_config, (str, Path)):
            default_config = dict(default_config)
        return self._add(name, EnvironmentSpec(name, cls, default_config, description, self.current_plugin))


class VerifierRegistry(Registry[VerifierSpec]):
    kind = "verifier"

    def register(self, name: str, fn: Callable[..., Any] | Ref, *, description: str = "") -> VerifierSpec:
        """Register ``async def verifier(item, result, ctx) -> float | dict``."""
        return self._add(name, VerifierSpec(name, fn, description, self.current_plugin))


class AgentRegistry(Registry[AgentSpec]):
    kind = "agent"

    def register(self, name: str, factory: Callable[..., Any] | Ref, *, description: str = "") -> AgentSpec:
        """Register an agent factory."""
        return self._add(name, AgentSpec(name, factory, description, self.current_plugin))


class ToolCallParserRegistry(Registry[ParserSpec]):
    kind = "tool-call parser"

    def register(self, name: str, parser: Callable[..., Any] | Ref, *, description: str = "") -> ParserSpec:
        """Register a tool-call parser for raw-completion servers."""
        return self._add(name, ParserSpec(name, parser, description, self.current_plugin))
