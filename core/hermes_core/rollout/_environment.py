"""Environments, task items, and what a verifier's return value means.

An environment is a plugin class that yields :class:`TaskItem` objects and names a verifier.
A verifier is ``async def verifier(item, result, ctx) -> float | dict[str, float]``: it inspects
the rollout's sandbox through the :class:`~hermes_core.ToolContext` after the agent finished.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import validation_message
from ..errors import ConfigError, SetupError
from ..tools._dispatch import truncate
from ._task import AgentResult, TaskItem, VerifierOutcome

if TYPE_CHECKING:
    from ..tools._context import ToolContext

__all__ = [
    "TaskItem",
    "EnvironmentConfig",
    "Environment",
    "SetupError",
    "VerifierOutcome",
    "Verifier",
    "normalize_score",
    "run_verifier",
    "error_text",
    "traceback_text",
]

#: Characters kept of an error message and of a traceback in a result record (head and tail).
ERROR_CHARS = 4000
TRACEBACK_CHARS = 16000


def error_text(text: str, limit: int = ERROR_CHARS) -> str:
    """``text`` bounded to ``limit`` characters (head and tail, with a note of the cut): an
    exception's message can hold whatever the sandbox printed."""
    return truncate(text, limit)


def traceback_text(exc: BaseException, limit: int = TRACEBACK_CHARS) -> str:
    """The formatted traceback of ``exc`` (chained causes included), bounded like :func:`error_text`."""
    import traceback

    return truncate("".join(traceback.format_exception(exc)), limit)

#: ``async def verifier(item, result, ctx) -> float | dict[str, float]`` (sync functions too).
Verifier = Callable[..., Any]


class EnvironmentConfig(BaseModel):
    """Settings every environment understands; subclasses add their own fields.

    Read from the YAML default config the plugin ships, then the ``environment:`` section of
    ``--config FILE``, then ``--set KEY=VALUE`` on the command line.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    tasks: list[str] | None = Field(None, description="Run only these task ids (default: all).")
    limit: int | None = Field(None, ge=1, description="Run at most this many tasks.")
    max_turns: int = Field(20, ge=1, description="Model turns per rollout.")
    timeout: float = Field(300.0, gt=0, description="Seconds per rollout for setup + agent.")
    verifier_timeout: float = Field(120.0, gt=0, description="Seconds for the verifier.")
    system_prompt: str | None = Field(None, description="System message sent before each task.")
    toolsets: list[str] | None = Field(None, description="Toolsets offered to the agent.")
    image: str | None = Field(None, description="Image for every task that names none.")
    verifier: str | None = Field(None, description="Registered verifier to use instead of the default.")


class Environment:
    """Base class of environments.

    Subclasses set :attr:`config_model` (a subclass of :class:`EnvironmentConfig`) and
    :attr:`verifier` (the name of a registered verifier), and implement :meth:`load_tasks`.
    They may override :meth:`setup` (prepare a sandbox) and :meth:`verify` (score without a
    registered verifier).

    Args:
        config: a validated instance of :attr:`config_model`.
    """

    config_model: ClassVar[type[EnvironmentConfig]] = EnvironmentConfig
    #: Name of the registered verifier that scores this environment's tasks.
    verifier: ClassVar[str | None] = None

    def __init__(self, config: EnvironmentConfig | None = None):
        self.config = config if config is not None else self.config_model()

    @classmethod
    def from_config(cls, *layers: Mapping[str, Any] | None, where: str = "environment config") -> Environment:
        """Build from config layers (later ones win, key by key).

        Raises:
            ConfigError: a key is unknown or a value invalid (the message names it).
        """
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer or {})
        return cls.from_layers([(where, merged)])

    @classmethod
    def from_layers(cls, layers: Sequence[tuple[str, Mapping[str, Any] | None]]) -> Environment:
        """Build from labelled config layers, e.g. ``[("default.yaml", d), ("--set", s)]``.

        Raises:
            ConfigError: names the layer that made the config invalid, and the key.
        """
        merged: dict[str, Any] = {}
        config = None
        for label, layer in layers:
            merged.update(layer or {})
            try:
                config = cls.config_model.model_validate(merged)
            except ValidationError as e:
                raise ConfigError(validation_message(e, cls.config_model, label)) from None
        return cls(config)

    async def load_tasks(self) -> list[TaskItem]:
        """Every task of this environment. Override this."""
        raise NotImplementedError(f"{type(self).__name__} must implement load_tasks()")

    async def tasks(self) -> list[TaskItem]:
        """The tasks selected by the config (``tasks``, ``limit``, ``image``).

        Raises:
            ConfigError: a task id in ``tasks`` does not exist (the message lists them), or two
                tasks share an id.
        """
        items = list(await self.load_tasks())
        by_id: dict[str, TaskItem] = {}
        for item in items:
            if item.id in by_id:
                raise ConfigError(f"{type(self).__name__}: two tasks have the id {item.id!r}")
            by_id[item.id] = item
        if self.config.tasks is not None:
            unknown = [t for t in self.config.tasks if t not in by_id]
            if unknown:
                raise ConfigError(
                    f"unknown task id(s) {', '.join(map(repr, unknown))} in key 'tasks'; "
                    f"available: {', '.join(by_id)}"
                )
            items = [by_id[t] for t in self.config.tasks]
        if self.config.limit is not None:
            items = items[: self.config.limit]
        if self.config.image:
            items = [i if i.image else i.model_copy(update={"image": self.config.image}) for i in items]
        return items

    def verifier_name(self) -> str | None:
        """The registered verifier to use: the config's ``verifier`` or the class default."""
        return self.config.verifier or self.verifier

    async def setup(self, item: TaskItem, ctx: ToolContext) -> None:
        """Prepare the sandbox: write ``item.files``, then run ``item.setup``.

        Raises:
            SetupError: a file could not be written or the setup command failed.
        """
        for path, text in item.files.items():
            res = await ctx.write_file(path, text)
            if not res.get("success"):
                raise SetupError(f"task {item.id!r}: could not write {path!r}: {res.get('error')}")
        if item.setup:
            res = await ctx.terminal(item.setup, timeout=self.config.timeout)
            if res["exit_code"] != 0:
                raise SetupError(
                    f"task {item.id!r}: setup command exited {res['exit_code']}: "
                    f"{res['output'][-500:].strip()}"
                )

    async def run_agent(
        self,
        agent: Any,
        item: TaskItem,
        ctx: ToolContext,
        *,
        system_prompt: str | None = None,
        max_turns: int | None = None,
        deadline: float | None = None,
    ) -> AgentResult:
        """The agent phase of a rollout: by default one ``agent.run``. An environment with
        several steps per task (Harbor's ``[[steps]]``) overrides this to drive the agent step
        by step (per-step instructions, tests, early stop)."""
        return await agent.run(item, ctx, system_prompt=system_prompt, max_turns=max_turns, deadline=deadline)

    async def verify(self, item: TaskItem, result: AgentResult, ctx: ToolContext) -> float | dict[str, float]:
        """Score a rollout when the environment names no registered verifier. Override this."""
        raise NotImplementedError(
            f"{type(self).__name__} names no verifier; set `verifier` or override verify()"
        )


def normalize_score(value: Any) -> tuple[float, dict[str, float]]:
    """Turn a verifier's return value into ``(reward, named scores)``.

    A number is the reward. A dict of numbers is a set of named scores; the reward is its
    ``"reward"`` entry when present, else the mean of the values.

    Raises:
        TypeError: the value is neither a finite number nor a dict of finite numbers.
    """
    if isinstance(value, bool):
        value = float(value)
    if isinstance(value, (int, float)):
        reward = float(value)
        if not math.isfinite(reward):
            raise TypeError(f"verifier returned a non-finite reward {value!r}")
        return reward, {}
    if isinstance(value, Mapping) and value:
        scores: dict[str, float] = {}
        for k, v in value.items():
            if isinstance(v, bool):
                v = float(v)
            if not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise TypeError(f"verifier score {k!r} is not a finite number: {v!r}")
            scores[str(k)] = float(v)
        reward = scores["reward"] if "reward" in scores else sum(scores.values()) / len(scores)
        return reward, scores
    raise TypeError(
        f"a verifier must return a number or a non-empty dict of numbers, got {type(value).__name__}: "
        f"{str(value)[:100]!r}"
    )


async def _in_own_thread(fn: Any, *args: Any) -> Any:
    """Run blocking ``fn`` on a thread of its own, not asyncio's shared pool: a sync verifier
    waits on ToolContext calls that themselves need pool threads, so sharing the pool can
    deadlock once as many verifiers run as the pool has threads."""
    import threading

    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not fut.done():
            fut.set_result(value) if ok else fut.set_exception(value)

    def target() -> None:
        try:
            value = fn(*args)
        except BaseException as e:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, False, e)
        else:
            loop.call_soon_threadsafe(settle, True, value)

    threading.Thread(target=target, name="hermes-sync-verifier", daemon=True).start()
    return await fut


async def run_verifier(
    fn: Verifier | Callable[..., Awaitable[Any]],
    item: TaskItem,
    result: AgentResult,
    ctx: ToolContext,
    *,
    timeout: float | None = None,
) -> VerifierOutcome:
    """Run a verifier (async, or sync in a worker thread with a blocking ToolContext).

    Never raises (except on cancellation): an exception, a timeout or a bad return value
    scores 0.0 and is recorded as the outcome's ``error`` (bounded); when the verifier
    raised, its bounded traceback is the outcome's ``traceback``.
    """
    try:
        async with asyncio.timeout(timeout) as deadline:
            if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
                value = await fn(item, result, ctx)
            else:
                value = await _in_own_thread(fn, item, result, ctx.sync())
                if inspect.isawaitable(value):
                    value = await value
    except TimeoutError as e:
        if deadline.expired():
            return VerifierOutcome(0.0, {}, f"verifier timed out after {timeout:g}s")
        return VerifierOutcome(0.0, {}, error_text(f"verifier raised TimeoutError: {e}"), traceback_text(e))
    except Exception as e:
        return VerifierOutcome(0.0, {}, error_text(f"verifier raised {type(e).__name__}: {e}"), traceback_text(e))
    try:
        reward, scores = normalize_score(value)
    except TypeError as e:  # a bad return value: the message says what came back; no traceback
        return VerifierOutcome(0.0, {}, error_text(f"verifier raised TypeError: {e}"))
    return VerifierOutcome(reward, scores)
