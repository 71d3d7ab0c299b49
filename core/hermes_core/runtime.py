"""The Runtime: one plugin manager, its registries, its sandboxes and processes. No globals."""

from __future__ import annotations

import atexit
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError
from .plugin import _manager as _plugins
from .plugin._registry import (
    AgentRegistry,
    BackendRegistry,
    EnvironmentRegistry,
    Registry,
    ToolCallParserRegistry,
    ToolRegistry,
    ToolsetRegistry,
    ToolSpec,
    VerifierRegistry,
)
from .tools._toolsets import resolve_toolsets

# pydantic, asyncio and the sandbox machinery load on first use, not with the plugins: listing
# plugins or tools (`hermes plugins`, `hermes --help`) stays fast.
if TYPE_CHECKING:
    from pydantic import BaseModel

    from .config import HermesConfig
    from .processes import TaskProcesses
    from .sandbox import Sandbox
    from .tools._context import ToolContext

__all__ = ["Runtime"]

# (hook name, registry attribute), in the order the hooks are called.
_HOOKS = (
    ("hermes_register_backends", "backends"),
    ("hermes_register_tools", "tools"),
    ("hermes_register_toolsets", "toolsets"),
    ("hermes_register_tool_call_parsers", "parsers"),
    ("hermes_register_environments", "environments"),
    ("hermes_register_verifiers", "verifiers"),
    ("hermes_register_agents", "agents"),
)


class Runtime:
    """Owns a fresh plugin manager, the registries it fills, and everything rollouts start.

    Args:
        config: settings (toolsets, backend, custom toolsets, output bound).
        plugins: extra plugin objects (modules or classes with ``@hookimpl`` methods), registered
            after the installed ones; handy in tests and notebooks.
        load_installed: load entry-point plugins (built-ins always load unless disabled by name).

    Raises:
        PluginError: a plugin failed to import or to register.
        DuplicateNameError: two plugins registered the same name.
    """

    def __init__(
        self,
        config: HermesConfig | None = None,
        *,
        plugins: Sequence[object] = (),
        load_installed: bool = True,
    ):
        self.id = os.urandom(6).hex()
        self._config = config
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.backends = BackendRegistry()
        self.tools = ToolRegistry()
        self.toolsets = ToolsetRegistry()
        self.parsers = ToolCallParserRegistry()
        self.environments = EnvironmentRegistry()
        self.verifiers = VerifierRegistry()
        self.agents = AgentRegistry()
        self.plugins = _plugins.load_into(self.pm, _plugins.discover() if load_installed else [])
        for i, obj in enumerate(plugins):
            name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{i}"
            self.pm.register(obj, name=name)
            self.plugins.append(_plugins.PluginInfo(name, getattr(obj, "__module__", "?"), "<runtime>", "", False))
        self._collect()
        self._add_config_toolsets()
        self._sandboxes: set[Sandbox] = set()
        self._processes: Any = None
        self._counter = 0
        self._close_callbacks: list[Callable[[], Awaitable[None]]] = []
        self._tool_specs_cache: dict[tuple[Any, ...], dict[str, ToolSpec]] = {}
        # Validated options of frozen (immutable) options models, by backend and option values.
        self._options_cache: dict[tuple[Any, ...], BaseModel] = {}
        _raise_nofile_limit()
        # The backstop for a driver that ends without closing (sys.exit, an unhandled
        # exception): it holds the set of open sandboxes (not the Runtime, which may be gone by
        # then), and is unregistered by aclose().
        self._backend_closers = [spec.close for spec in self.backends.values() if spec.close is not None]
        self._atexit = functools.partial(_close_at_exit, self._sandboxes, self._backend_closers)
        atexit.register(self._atexit)

    # ------------------------------------------------------------------ plugins

    def _collect(self) -> None:
        by_name = {p.name: p for p in self.plugins}
        for hook_name, attr in _HOOKS:
            registry: Registry[Any] = getattr(self, attr)
            caller = getattr(self.pm.hook, hook_name)
            for impl in reversed(caller.get_hookimpls()):  # registration order
                registry.current_plugin = impl.plugin_name
                before = set(registry)
                try:
                    impl.function(**{a: registry for a in impl.argnames})
                except PluginError:
                    raise
                except Exception as e:
                    raise PluginError(
                        f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(e).__name__}: {e}. "
                        f"Disable it with HERMES_DISABLE_PLUGINS={impl.plugin_name}."
                    ) from e
                info = by_name.get(impl.plugin_name)
                added = [n for n in registry if n not in before]
                if info is not None and added:
                    info.registers.setdefault(registry.kind, []).extend(added)
            registry.current_plugin = "<direct>"

    @property
    def config(self) -> HermesConfig:
        """The settings this runtime was made with (defaults when none were given)."""
        if self._config is None:
            from .config import HermesConfig

            self._config = HermesConfig()
        return self._config

    def _add_config_toolsets(self) -> None:
        if self._config is None:
            return
        self.toolsets.current_plugin = "config"
        for name, ts in self.config.custom_toolsets.items():
            self.toolsets.register(name, tools=ts.tools, includes=ts.includes, description=ts.description)
        self.toolsets.current_plugin = "<direct>"

    # ------------------------------------------------------------------ tools

    def resolve_toolsets(self, names: Iterable[str]) -> list[str]:
        """Tool names of the given toolsets (order-stable, de-duplicated)."""
        return resolve_toolsets(names, self.toolsets, self.tools)

    def tool_specs(self, toolsets: Iterable[str] | None = None) -> dict[str, ToolSpec]:
        """The tools of these toolsets (default: the config's), resolved once per composition."""
        names = tuple(self.config.toolsets if toolsets is None else toolsets)
        key = (names, len(self.tools), len(self.toolsets))  # a registration made later invalidates
        specs = self._tool_specs_cache.get(key)
        if specs is None:
            specs = {n: self.tools.get(n) for n in self.resolve_toolsets(names)}
            self._tool_specs_cache[key] = specs
        return specs

    # ------------------------------------------------------------------ sandboxes

    def backend_options(self, backend: str, options: Mapping[str, Any] | BaseModel | None = None) -> BaseModel:
        """Validate ``options`` with the backend's own model.

        Raises:
            UnknownNameError: no such backend.
            ConfigError: an option is invalid (the message names it).
        """
        from pydantic import BaseModel, ValidationError

        from .config import validation_message

        spec = self.backends.get(backend)
        model = spec.options_model
        if isinstance(options, model):
            return options
        key = None
        if not isinstance(options, BaseModel) and model.model_config.get("frozen"):
            key = _frozen_key(backend, options)
            cached = self._options_cache.get(key) if key is not None else None
            if cached is not None:
                return cached
        data = options.model_dump() if isinstance(options, BaseModel) else dict(options or {})
        try:
            validated = model.model_validate(data)
        except ValidationError as e:
            raise ConfigError(validation_message(e, model, f"options of backend {backend!r}")) from None
        if key is not None:
            if len(self._options_cache) >= 128:
                self._options_cache.clear()
            self._options_cache[key] = validated
        return validated

    def new_task_id(self) -> str:
        self._counter += 1
        return f"{self.id}-{self._counter}"

    def create_sandbox(
        self,
        backend: str = "local",
        options: Mapping[str, Any] | BaseModel | None = None,
        *,
        task_id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Sandbox:
        """Build (but do not start) a sandbox of ``backend``; it is closed with the runtime."""
        spec = self.backends.get(backend)
        opts = self.backend_options(backend, options)
        task_id = task_id or self.new_task_id()
        all_labels = {
            "hermes.rollout": task_id,
            "hermes.runtime": self.id,
            "hermes.created": str(int(time.time())),
            **dict(labels or {}),
        }
        sandbox = spec.factory(opts, sandbox_id=task_id, labels=all_labels)
        sandbox.output_limit = self.config.command_output_bytes
        sandbox.max_read_bytes = self.config.max_read_bytes
        sandbox.max_download_bytes = self.config.max_download_bytes
        self._sandboxes.add(sandbox)
        return sandbox

    @asynccontextmanager
    async def rollout(
        self,
        task_id: str | None = None,
        *,
        backend: str | None = None,
        options: Mapping[str, Any] | BaseModel | None = None,
        toolsets: Iterable[str] | None = None,
    ) -> AsyncIterator[ToolContext]:
        """A fresh sandbox and its ToolContext; everything is cleaned up on exit, exception or
        cancellation.

        Args:
            task_id: the rollout id (default: a fresh one).
            backend: backend name (default: the config's).
            options: backend options (default: the config's ``backend_options``).
            toolsets: toolsets offered to the model (default: the config's).
        """
        backend = backend or self.config.backend
        if options is None and backend == self.config.backend:
            options = self.config.backend_options
        tools = self.tool_specs(toolsets)
        sandbox = self.create_sandbox(backend, options, task_id=task_id)
        from .tools._context import ToolContext

        ctx = ToolContext(
            sandbox, task_id=sandbox.sandbox_id, tools=tools, processes=self.task_processes(sandbox.sandbox_id),
            installed_tools=self.tools, runtime=self, max_output_chars=self.config.max_output_chars,
            tool_output_bytes=self.config.tool_output_bytes,
        )
        ctx.add_cleanup(functools.partial(self._kill_task_processes, ctx.task_id))
        try:
            await sandbox.start()
            yield ctx
        finally:
            try:
                await ctx.cleanup()
            finally:
                self._sandboxes.discard(sandbox)

    # ------------------------------------------------------------------ processes

    @property
    def processes(self) -> Any:
        """The background-process registry of this runtime (created on first use)."""
        if self._processes is None:
            from .processes._registry import ProcessRegistry

            self._processes = ProcessRegistry(self.config.processes, runtime_id=self.id)
        return self._processes

    def process_events(self, task_id: str | None = None) -> AsyncIterator[Any]:
        """Completion and ``check_interval`` progress events of background processes, as an async
        iterator (``exited``, ``killed``, ``progress``, ``recovered``); one rollout's with
        ``task_id``. Ends at :meth:`aclose`. Shorthand for ``runtime.processes.events()``."""
        return self.processes.events(task_id)

    def on_process_event(self, callback: Any, task_id: str | None = None) -> Any:
        """Call ``callback(event)`` (sync or async) for each process event; returns a function
        that unsubscribes. Shorthand for ``runtime.processes.subscribe()``."""
        return self.processes.subscribe(callback, task_id)

    def task_processes(self, task_id: str) -> TaskProcesses:
        """One rollout's scoped handle on this runtime's process registry."""
        from .processes import TaskProcesses

        return TaskProcesses(_LazyRegistry(self), task_id)  # type: ignore[arg-type]

    async def _kill_task_processes(self, task_id: str) -> None:
        if self._processes is not None:  # no registry yet: the rollout started no process
            await self._processes.kill_task(task_id)

    def add_close_callback(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``await fn()`` at :meth:`aclose`, before processes and sandboxes go (e.g. to stop
        a browser process shared by this runtime's rollouts). Last added runs first; one that
        raises does not stop the others."""
        self._close_callbacks.append(fn)

    async def aclose(self) -> None:
        """Kill every process and close every sandbox this runtime started."""
        callbacks, self._close_callbacks = self._close_callbacks[::-1], []
        for fn in callbacks:
            try:
                await fn()
            except Exception:  # noqa: BLE001 - closing must go on
                pass
        if self._processes is not None:
            await self._processes.kill_all()
        sandboxes = list(self._sandboxes)
        self._sandboxes.clear()  # the same set the atexit backstop holds
        import asyncio  # here, not at the top: `import hermes_core` stays light

        await asyncio.gather(*(s.close() for s in sandboxes), return_exceptions=True)
        _close_backends(self._backend_closers)
        atexit.unregister(self._atexit)

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@functools.cache
def _raise_nofile_limit() -> None:
    """Raise the soft open-files limit toward the hard one, once per process: every live
    rollout holds pipes and pidfds, and a thousand rollouts need more than the usual 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    if soft < 4096:
        import logging  # only here: importing it costs ~5 ms of every start

        logging.getLogger("hermes").warning(
            "open-files limit is %d (hard limit %s): a few hundred concurrent rollouts will run out of "
            "file descriptors; raise it with `ulimit -n` or the service's LimitNOFILE", soft, hard)


def _close_backends(closers: list[Callable[[], None]]) -> None:
    """Let each backend release what it keeps between sandboxes (once)."""
    todo = closers[:]
    closers.clear()
    for fn in todo:
        try:
            fn()
        except Exception:  # noqa: BLE001 - closing must go on
            pass


def _frozen_key(backend: str, options: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """A hashable key of ``options`` (plain values, lists and mappings; types kept apart, so
    ``1`` and ``True`` differ), or ``None`` if some value is anything else (then not cached)."""

    def freeze(v: Any) -> Any:
        t = type(v)
        if t in (str, int, float, bool) or v is None:
            return (t.__name__, v)
        if isinstance(v, Mapping):
            return ("map", tuple(sorted((str(k), freeze(x)) for k, x in v.items())))
        if t in (list, tuple):
            return ("seq", tuple(freeze(x) for x in v))
        raise TypeError

    try:
        return (backend, freeze(dict(options or {})))
    except TypeError:
        return None


def _close_at_exit(sandboxes: set[Sandbox], closers: list[Callable[[], None]]) -> None:
    if sandboxes:
        # The driver's own loop is gone by now: close on a fresh one, in a thread of its own
        # (the interpreter may be exiting from inside a running loop), and give up after a while.
        import asyncio

        thread = threading.Thread(target=lambda: asyncio.run(_close_leftovers(sandboxes)), name="hermes-atexit",
                                  daemon=True)
        thread.start()
        thread.join(60)
    _close_backends(closers)


async def _close_leftovers(sandboxes: set[Sandbox]) -> None:
    """Close every sandbox still open (atexit). The objects were made on another event loop, so
    their shells may not close cleanly: the backend's own teardown runs anyway."""
    import asyncio

    left = list(sandboxes)
    sandboxes.clear()

    async def close(sb: Sandbox) -> None:
        try:
            async with asyncio.timeout(20):
                await sb.close()
            return
        except BaseException:
            pass
        try:
            async with asyncio.timeout(20):
                await sb._close()
        except BaseException:
            pass

    await asyncio.gather(*(close(s) for s in left), return_exceptions=True)


class _LazyRegistry:
    """Stands in for the process registry until a rollout first uses it (most never do)."""

    __slots__ = ("_runtime",)

    def __init__(self, runtime: Runtime):
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime.processes, name)
