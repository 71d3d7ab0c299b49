"""Typed registrars handed to the registration hooks, and the registries behind them."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from .errors import DuplicateNameError, PluginError, UnknownNameError

__all__ = [
    "KNOWN_PACKAGES",
    "BackendSpec",
    "ToolSpec",
    "ToolsetSpec",
    "EnvironmentSpec",
    "VerifierSpec",
    "AgentSpec",
    "ParserSpec",
    "Registry",
    "BackendRegistry",
    "ToolRegistry",
    "ToolsetRegistry",
    "EnvironmentRegistry",
    "VerifierRegistry",
    "AgentRegistry",
    "ToolCallParserRegistry",
]

#: Names that belong to a distribution which may simply not be installed.
KNOWN_PACKAGES: dict[str, dict[str, str]] = {
    "backend": {
        "docker": "hermes-backend-docker",
        "modal": "hermes-backend-modal",
        "daytona": "hermes-backend-daytona",
        "ssh": "hermes-backend-ssh",
        "singularity": "hermes-backend-singularity",
    },
    "toolset": {"browser": "hermes-toolset-browser", "web": "hermes-toolset-web"},
    "tool": {
        "browser_navigate": "hermes-toolset-browser",
        "browser_snapshot": "hermes-toolset-browser",
        "web_search": "hermes-toolset-web",
        "web_extract": "hermes-toolset-web",
    },
}


class NoOptions(BaseModel):
    """Options model for plugins that take no options."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


@dataclass(frozen=True)
class BackendSpec:
    """A registered sandbox backend.

    Attributes:
        name: what users type (``--backend NAME``).
        factory: ``factory(options, *, sandbox_id, labels) -> Sandbox``.
        options_model: pydantic model that validates this backend's options.
        description: one line for ``hermes plugins``.
        plugin: the plugin that registered it.
        sweep: optional ``async sweep(older_than: float | None) -> list[str]`` that removes
            sandboxes left behind by a killed driver (found by their labels) and names them.
    """

    name: str
    factory: Callable[..., Any]
    options_model: type[BaseModel] = NoOptions
    description: str = ""
    plugin: str = ""
    sweep: Callable[..., Any] | None = None


@dataclass(frozen=True)
class ToolSpec:
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
    args_model: type[BaseModel]
    handler: Callable[..., Any]
    check: Callable[[], bool] | None = None
    plugin: str = ""

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools=[...]`` entry for this tool."""
        params = self.args_model.model_json_schema()
        params.pop("title", None)
        for prop in params.get("properties", {}).values():
            prop.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }

    def available(self) -> bool:
        return self.check is None or bool(self.check())


@dataclass(frozen=True)
class ToolsetSpec:
    """A named group of tools, which may include other toolsets."""

    name: str
    tools: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class EnvironmentSpec:
    """An environment class (see :class:`hermes_core.Environment`) and its default config.

    Both may be given lazily — the class as ``"package.module:Class"`` and the config as the path
    of a YAML file — so registering costs no imports; they are resolved on first use.
    """

    name: str
    cls_ref: type | str
    default_config_ref: Mapping[str, Any] | str | Path = field(default_factory=dict)
    description: str = ""
    plugin: str = ""

    @property
    def cls(self) -> type:
        """The environment class (imported on first use when registered by name).

        Raises:
            PluginError: the ``module:Class`` reference does not import.
        """
        if isinstance(self.cls_ref, str):
            object.__setattr__(self, "cls_ref", _import_ref(self.cls_ref, f"environment {self.name!r}"))
        return self.cls_ref  # type: ignore[return-value]

    @property
    def default_config(self) -> dict[str, Any]:
        """The default config (read from its YAML file on first use when given as a path).

        Raises:
            ConfigError: the file is unreadable or not a YAML mapping.
        """
        ref = self.default_config_ref
        if isinstance(ref, (str, Path)):
            from .config import read_yaml_mapping

            object.__setattr__(self, "default_config_ref", read_yaml_mapping(Path(ref)))
        return dict(self.default_config_ref)  # type: ignore[arg-type]


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


@dataclass(frozen=True)
class VerifierSpec:
    """``async def verifier(item, result, ctx) -> float | dict[str, float]``."""

    name: str
    fn: Callable[..., Any]
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class AgentSpec:
    """``factory(**options) -> Agent``; an agent drives one rollout through a ToolContext."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class ParserSpec:
    """A tool-call parser for raw-completion servers: ``parse(text) -> (content, tool_calls)``."""

    name: str
    parser: Callable[..., Any]
    description: str = ""
    plugin: str = ""


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
            msg += f" {name!r} is provided by a separate package: pip install {pkg}"
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
        factory: Callable[..., Any],
        *,
        options: type[BaseModel] = NoOptions,
        description: str = "",
        sweep: Callable[..., Any] | None = None,
    ) -> BackendSpec:
        """Register a sandbox backend.

        Args:
            name: the name users pass as ``--backend``.
            factory: ``factory(options, *, sandbox_id, labels) -> Sandbox``; import heavy SDKs
                inside it, not at module import.
            options: pydantic model validating the backend's options (``extra="forbid"``).
            description: one line shown by ``hermes plugins``.
            sweep: optional ``async sweep(older_than_seconds) -> list[str]`` removing leftovers
                of killed drivers (``hermes sandbox sweep``).
        """
        return self._add(name, BackendSpec(name, factory, options, description, self.current_plugin, sweep))


class ToolRegistry(Registry[ToolSpec]):
    kind = "tool"

    def register(
        self,
        name: str,
        handler: Callable[..., Any],
        *,
        args: type[BaseModel],
        description: str,
        check: Callable[[], bool] | None = None,
    ) -> ToolSpec:
        """Register a tool.

        Args:
            name: the function name the model calls.
            handler: ``handler(args, ctx)`` where ``args`` is an instance of ``args`` and ``ctx``
                the rollout's ToolContext; sync or async; returns ``str`` or JSON-able data.
            args: pydantic model of the arguments (its JSON schema is what the model sees).
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

    def register(self, name: str, fn: Callable[..., Any], *, description: str = "") -> VerifierSpec:
        """Register ``async def verifier(item, result, ctx) -> float | dict``."""
        return self._add(name, VerifierSpec(name, fn, description, self.current_plugin))


class AgentRegistry(Registry[AgentSpec]):
    kind = "agent"

    def register(self, name: str, factory: Callable[..., Any], *, description: str = "") -> AgentSpec:
        """Register an agent factory."""
        return self._add(name, AgentSpec(name, factory, description, self.current_plugin))


class ToolCallParserRegistry(Registry[ParserSpec]):
    kind = "tool-call parser"

    def register(self, name: str, parser: Callable[..., Any], *, description: str = "") -> ParserSpec:
        """Register a tool-call parser for raw-completion servers."""
        return self._add(name, ParserSpec(name, parser, description, self.current_plugin))
