"""The rollout runner: N tasks x group size, bounded concurrency, one fresh sandbox per rollout.

Each rollout: a fresh sandbox (per-task image / backend / options applied) → the environment's
setup → the agent, under the rollout's deadline → the verifier, in the same sandbox → cleanup,
always, also on Ctrl-C. Finished rollouts are written as they finish, so an interrupted run
keeps them and a rerun with the same output directory resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._agent import AgentResult, initial_messages, to_sharegpt
from ._environment import (
    Environment,
    EnvironmentConfig,
    SetupError,
    TaskItem,
    VerifierOutcome,
    error_text,
    run_verifier,
    traceback_text,
)
from ._results import ResultsDir, passed, summarize

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..tools._context import ToolContext
    from ._agent import Agent

__all__ = ["Runner", "RunReport", "Rollout"]


@dataclass
class Rollout:
    """One finished rollout: the record written to ``results.jsonl`` and the agent's result."""

    record: dict[str, Any]
    result: AgentResult
    outcome: VerifierOutcome | None


@dataclass
class RunReport:
    """What :meth:`Runner.run` did.

    Attributes:
        records: every finished record, including those of an earlier run that was resumed.
        ran: rollouts run this time.
        skipped: rollouts already finished in the output directory (not rerun).
        planned: rollouts the run asked for (tasks x group size).
        interrupted: the run was cancelled (Ctrl-C) before all rollouts finished.
        summary: the content of ``summary.json``.
        out_dir: where the files are (``None`` when not writing).
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    planned: int = 0
    interrupted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None


class Runner:
    """Runs rollouts of an agent over task items.

    Args:
        runtime: provides backends, tools and sandboxes.
        agent: an :class:`~hermes_core.rollout.Agent`.
        environment: supplies setup, config (turns, timeouts, toolsets) and the verifier.
            ``None`` runs bare prompts (``hermes batch``): no verifier, reward ``None``.
        config: turns, timeouts, system prompt and toolsets when there is no environment.
        verifier: overrides the environment's verifier.
        backend: backend name (default: the runtime config's); a task's ``backend`` wins.
        backend_options: options for the backend, merged over the runtime config's; a task's
            ``backend_options`` and ``image`` are merged over these.
        toolsets: toolsets offered to the agent (a task's own win; default: the environment's,
            else the runtime config's).
        concurrency: rollouts at once.
        group_size: rollouts per task.
        out_dir: directory for ``results.jsonl``, ``trajectories.jsonl``, ``summary.json``;
            resumed when it already holds results of the same run.
        run_info: describes the run in ``summary.json`` (and guards resume).
        on_start: ``on_start(planned, skipped)`` before the first rollout.
        on_result: ``on_result(record)`` after each rollout.
        guard_resume: record the task set, group size and backend in ``summary.json`` and
            refuse to resume a directory whose run had others (off for ``hermes run``, which
            appends single rollouts to a directory).
    """

    def __init__(
        self,
        runtime: Runtime,
        agent: Agent,
        *,
        environment: Environment | None = None,
        config: EnvironmentConfig | None = None,
        verifier: Callable[..., Any] | None = None,
        backend: str | None = None,
        backend_options: Mapping[str, Any] | None = None,
        toolsets: Sequence[str] | None = None,
        concurrency: int = 8,
        group_size: int = 1,
        out_dir: str | Path | None = None,
        run_info: Mapping[str, Any] | None = None,
        on_start: Callable[[int, int], None] | None = None,
        on_result: Callable[[dict[str, Any]], None] | None = None,
        guard_resume: bool = True,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if group_size < 1:
            raise ValueError(f"group size must be at least 1, got {group_size}")
        self.runtime = runtime
        self.agent = agent
        self.environment = environment
        self.env_config = environment.config if environment is not None else (config or EnvironmentConfig())
        #: The report of the current (or last) :meth:`run`; readable after a cancellation.
        self.report: RunReport | None = None
        self.verifier = verifier
        if self.verifier is None and environment is not None:
            name = environment.verifier_name()
            self.verifier = runtime.verifiers.get(name).fn if name else environment.verify
        self.backend = backend or runtime.config.backend
        self.backend_options = dict(backend_options or {})
        self.toolsets = list(toolsets) if toolsets is not None else None
        self.concurrency = concurrency
        self.group_size = group_size
        self.run_info = dict(run_info or {})
        self.guard_resume = guard_resume
        if guard_resume:
            self.run_info["backend"] = self.backend
            self.run_info["group_size"] = group_size
        sampling = _sampling(agent)
        if sampling is not None:  # what the model is sent, for whoever reads summary.json
            self.run_info.setdefault("sampling", sampling)
        self.out = ResultsDir(out_dir, self.run_info) if out_dir is not None else None
        self.on_start = on_start
        self.on_result = on_result
        self._warned_images: set[str] = set()

    # ------------------------------------------------------------------ planning

    def sandbox_plan(self, item: TaskItem) -> tuple[str, dict[str, Any], list[str] | None]:
        """(backend, options, toolsets) for a rollout of ``item``.

        A task's ``image`` is not passed to a backend that runs no images (``local``): that
        backend would ignore it, and the results would name an image that was never used.
        """
        backend = item.backend or self.backend
        options: dict[str, Any] = {}
        if backend == self.runtime.config.backend:
            options.update(self.runtime.config.backend_options)
        if backend == self.backend:
            options.update(self.backend_options)
        options.update(item.backend_options)
        if item.image:
            options["image"] = item.image
        if options.get("image") and not self._runs_images(backend):
            options.pop("image")
        toolsets = item.toolsets or self.toolsets or self.env_config.toolsets
        return backend, options, toolsets

    def _runs_images(self, backend: str) -> bool:
        try:
            return self.runtime.backends.get(backend).runs_images
        except Exception:
            return True  # an unknown backend fails in check() with its own message

    def ignored_images(self, items: Sequence[TaskItem]) -> dict[str, list[str]]:
        """``{backend: [image, ...]}`` of task images a backend without images will not run."""
        out: dict[str, list[str]] = {}
        for item in items:
            backend = item.backend or self.backend
            image = item.image or item.backend_options.get("image") or (
                self.backend_options.get("image") if backend == self.backend else None)
            if image and not self._runs_images(backend) and image not in out.get(backend, []):
                out.setdefault(backend, []).append(image)
        return out

    async def preflight(self, items: Sequence[TaskItem], timeout: float = 600.0) -> None:
        """Start and close one sandbox of each backend the items use, before any rollout: an
        unreachable engine then fails the run at once instead of every rollout one by one.

        Raises:
            RuntimeError: a backend could not start a sandbox (its own message included).
        """
        done: set[str] = set()
        for item in items:
            backend, options, _ = self.sandbox_plan(item)
            if backend in done:
                continue
            done.add(backend)
            try:
                async with asyncio.timeout(timeout):
                    async with self.runtime.rollout(backend=backend, options=options, toolsets=[]) as ctx:
                        await ctx.cleanup()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                if isinstance(e, TimeoutError):
                    why = f"no sandbox started within {timeout:g}s"
                raise RuntimeError(f"backend {backend!r} cannot start a sandbox: {why}") from None

    def check(self, items: Sequence[TaskItem]) -> None:
        """Validate every task's backend, options and toolsets before anything starts.

        Raises:
            UnknownNameError: an unknown backend or toolset (the message lists what exists).
            ConfigError: invalid backend options (the message names the key), or the output
                directory holds a different run.
        """
        if self.guard_resume:
            self.run_info["task_set"] = task_set_digest(items)
            self.run_info["tasks_planned"] = len(items)
            if self.out is not None:
                self.out.run_info = dict(self.run_info)
        if self.out is not None:
            self.out.check()
        seen: set[str] = set()
        for item in items:
            backend, options, toolsets = self.sandbox_plan(item)
            key = repr((backend, sorted(options.items(), key=lambda kv: kv[0]), toolsets))
            if key in seen:
                continue
            seen.add(key)
            self.runtime.backend_options(backend, options)
            self.runtime.tool_specs(toolsets)
        for backend, images in self.ignored_images(items).items():
            if backend not in self._warned_images:
                self._warned_images.add(backend)
                shown = ", ".join(images[:3]) + (f" and {len(images) - 3} more" if len(images) > 3 else "")
                print(f"hermes: warning: backend {backend!r} runs no container images; the task image(s) "
                      f"{shown} are not used and not recorded as used (run them with a container backend "
                      "such as --backend docker)", file=sys.stderr)

    # ------------------------------------------------------------------ running

    async def run(self, items: Sequence[TaskItem]) -> RunReport:
        """Run ``group_size`` rollouts of each item, ``concurrency`` at a time.

        Raises:
            asyncio.CancelledError: the run was cancelled (Ctrl-C). Running sandboxes are
                cleaned up and finished results are written before it propagates.
        """
        self.check(items)
        started = time.monotonic()
        report = RunReport(planned=len(items) * self.group_size, out_dir=self.out.path if self.out else None)
        self.report = report
        previous = self.out.load() if self.out is not None else []
        done = {r["rollout_id"] for r in previous}
        wanted = {rollout_id(i.id, g) for i in items for g in range(self.group_size)}
        report.records = [r for r in previous if r["rollout_id"] in wanted]
        report.skipped = len(report.records)
        queue: asyncio.Queue[tuple[TaskItem, int]] = asyncio.Queue()
        for g in range(self.group_size):
            for item in items:
                if rollout_id(item.id, g) not in done:
                    queue.put_nowait((item, g))
        if self.on_start is not None:
            self.on_start(report.planned, report.skipped)
        if self.out is not None:
            await self.out.write_summary(self._summary(report, started, interrupted=False, running=True))

        async def worker() -> None:
            while not queue.empty():
                item, g = queue.get_nowait()
                await self.run_one(item, g, _sink=finished)

        def finished(record: dict[str, Any]) -> None:
            report.records.append(record)
            report.ran += 1
            if self.on_result is not None:
                self.on_result(record)

        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.concurrency, queue.qsize()))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            # Ctrl-C, or a worker failed (a result could not be written, a callback raised): stop
            # the others and wait until their sandboxes are cleaned up, keep what finished, then
            # let the error propagate.
            report.interrupted = True
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            report.summary = self._summary(report, started, interrupted=True)
            if self.out is not None:
                await _uncancellable(self.out.write_summary(report.summary))
            raise
        report.summary = self._summary(report, started, interrupted=False)
        if self.out is not None:
            await self.out.write_summary(report.summary)
        return report

    def _summary(self, report: RunReport, started: float, *, interrupted: bool, running: bool = False) -> dict[str, Any]:
        summary = summarize(
            report.records, run_info=self.run_info, duration=round(time.monotonic() - started, 3),
            interrupted=interrupted, planned=report.planned, group_size=self.group_size,
        )
        if running:
            summary["status"] = "running"
        summary["ran"], summary["skipped"] = report.ran, report.skipped
        return summary

    async def run_one(
        self, item: TaskItem, group_index: int = 0, *, _sink: Callable[[dict[str, Any]], None] | None = None
    ) -> Rollout:
        """One rollout of ``item`` in a fresh sandbox, written to the output directory.

        Never raises for task, agent or verifier failures (they are recorded); cancellation
        propagates after the sandbox is cleaned up.
        """
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        backend, options, toolsets = self.sandbox_plan(item)
        cfg = self.env_config
        result = AgentResult(messages=initial_messages(item, cfg.system_prompt))
        outcome: VerifierOutcome | None = None
        error: str | None = None
        sandbox_id = None
        phase = _Phases(loop, t0)
        offered: list[dict[str, Any]] = []
        artifacts_dir = self.out.path / "artifacts" / rollout_id(item.id, group_index) if self.out is not None else None
        try:
            async with self.runtime.rollout(backend=backend, options=options, toolsets=toolsets) as ctx:
                sandbox_id = ctx.task_id
                if artifacts_dir is not None:  # where an environment collects this rollout's files
                    ctx.artifacts_dir = artifacts_dir
                try:
                    result, outcome, error = await self._inside(item, ctx, t0 + cfg.timeout, result, phase, offered)
                finally:
                    try:
                        await _uncancellable(ctx.cleanup())
                    except Exception as e:
                        error = error or f"cleanup of sandbox {sandbox_id} failed: {type(e).__name__}: {e}"
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the sandbox could not be created or started
            error = error_text(f"sandbox ({backend}) failed: {type(e).__name__}: {e}")
            phase.traceback = phase.traceback or traceback_text(e)
            phase.end("setup")  # a no-op when the sandbox failed after the setup phase
        # The sandbox could not start, the task's setup failed, or the model API failed (a 404,
        # 401, context overflow, 5xx after retries): the agent's work was not what ended the
        # rollout, so there is nothing to score. Such a rollout gets no reward (it is not counted
        # as the agent's failure in the mean or pass rate) and is run again on resume.
        api_error = result.stop_reason == "api_error"
        infra_error = (outcome is None and error is not None) or (api_error and outcome is None)
        reward = outcome.reward if outcome is not None else None
        errors = [e.to_dict() for e in result.tool_errors]
        record = {
            "rollout_id": rollout_id(item.id, group_index),
            "task_id": item.id,
            "group_index": group_index,
            "reward": reward,
            "scores": outcome.scores if outcome is not None else {},
            "passed": passed(reward),
            "finished": result.finished,
            "stop_reason": result.stop_reason,
            "turns": result.turns,
            "n_tool_errors": len(errors),
            "tool_errors": errors,
            "usage": result.usage,
            "error": error or (outcome.error if outcome is not None else None) or result.error,
            "infra_error": infra_error,
            "infra_kind": ("api" if api_error else "sandbox") if infra_error else None,
            "agent_error": result.error,
            "traceback": phase.traceback,
            "agent_traceback": phase.agent_traceback,
            "verifier_error": outcome.error if outcome is not None else None,
            "verifier_traceback": outcome.traceback if outcome is not None else None,
            "backend": backend,
            "image": options.get("image"),
            "image_unused": item.image if item.image and not options.get("image") else None,
            "sandbox_id": sandbox_id,
            "duration": round(loop.time() - t0, 4),
            "timings": phase.timings(),
            "artifacts": await _artifacts(artifacts_dir, self.out.path) if self.out is not None else None,
        }
        record["timings"]["total"] = record["duration"]
        if _sink is not None:
            _sink(record)
        if self.out is not None:
            trajectory = {
                "rollout_id": record["rollout_id"],
                "task_id": item.id,
                "group_index": group_index,
                "reward": reward,
                "tools": offered,
                "sampling": _sampling(self.agent),
                "messages": result.messages,
                "conversations": to_sharegpt(result.messages),
            }
            await _uncancellable(self.out.append(record, trajectory))
        return Rollout(record, result, outcome)

    async def _inside(
        self, item: TaskItem, ctx: ToolContext, deadline: float, result: AgentResult,
        phase: _Phases, offered: list[dict[str, Any]],
    ) -> tuple[AgentResult, VerifierOutcome | None, str | None]:
        cfg = self.env_config
        if self.environment is not None:
            try:
                async with asyncio.timeout_at(deadline) as limit:
                    try:
                        await self.environment.setup(item, ctx)
                    finally:
                        phase.end("setup")
            except TimeoutError as e:
                if limit.expired():
                    return result, None, f"setup of task {item.id!r} did not finish within {cfg.timeout:g}s"
                return result, None, error_text(f"setup of task {item.id!r} raised TimeoutError: {e}")
            except SetupError as e:
                return result, None, error_text(str(e))
            except Exception as e:
                phase.traceback = traceback_text(e)
                return result, None, error_text(f"setup of task {item.id!r} raised {type(e).__name__}: {e}")
        phase.end("setup")
        offered.extend(ctx.tool_schemas())  # what an agent is offered (the openai agent sends these)
        try:
            kw = dict(system_prompt=cfg.system_prompt, max_turns=cfg.max_turns, deadline=deadline)
            if self.environment is not None:
                result = await self.environment.run_agent(self.agent, item, ctx, **kw)
            else:
                result = await self.agent.run(item, ctx, **kw)
        except Exception as e:  # a buggy agent must not take the run down
            result.stop_reason = "agent_error"
            result.error = error_text(f"agent {type(self.agent).__name__} raised {type(e).__name__}: {e}")
            result.tool_errors = list(ctx.tool_errors)
            phase.agent_traceback = traceback_text(e)
        phase.end("agent")
        if result.stop_reason == "api_error":
            return result, None, None  # the model server failed: not the agent's score
        if self.verifier is None:
            return result, None, None
        outcome = await run_verifier(self.verifier, item, result, ctx, timeout=cfg.verifier_timeout)
        phase.end("verifier")
        return result, outcome, None


class _Phases:
    """The time split of one rollout: ``setup`` (sandbox start and the task's setup), ``agent``,
    ``verifier``, each ended once, in that order; a phase that never ran stays ``None``."""

    __slots__ = ("_loop", "_mark", "_spent", "agent_traceback", "traceback")

    def __init__(self, loop: asyncio.AbstractEventLoop, t0: float):
        self._loop = loop
        self._mark = t0
        self._spent: dict[str, float | None] = {"setup": None, "agent": None, "verifier": None}
        self.agent_traceback: str | None = None
        #: The traceback of a sandbox start or task setup that raised (the record's ``error``).
        self.traceback: str | None = None

    def end(self, name: str) -> None:
        if self._spent[name] is not None:
            return
        now = self._loop.time()
        self._spent[name] = round(now - self._mark, 6)  # a fast phase is not rounded to 0
        self._mark = now

    def timings(self) -> dict[str, float | None]:
        return dict(self._spent)


#: Files listed per rollout in a record's ``artifacts`` at most (the folder keeps them all).
MAX_ARTIFACTS = 1000


async def _artifacts(folder: Path | None, run_dir: Path) -> list[str]:
    """Files under a rollout's artifacts folder, as paths relative to the run directory."""
    if folder is None:
        return []

    def walk() -> list[str]:
        found: list[str] = []
        for top, dirs, files in os.walk(folder):  # symlinked folders are not followed
            dirs.sort()
            for name in sorted(files):
                path = Path(top, name)
                if path.is_file() and not path.is_symlink():
                    found.append(path.relative_to(run_dir).as_posix())
                    if len(found) >= MAX_ARTIFACTS:
                        return found
        return found

    if not folder.exists():  # the common case: no environment collected files; no thread hop
        return []
    return await asyncio.to_thread(walk)


def _sampling(agent: Any) -> dict[str, Any] | None:
    """The request settings an agent sends with every model call (its ``sampling`` mapping:
    model, temperature, max_tokens, tool_choice, extra_body...), ``None`` for agents without
    one (the oracle calls no model)."""
    value = getattr(agent, "sampling", None)
    return dict(value) if isinstance(value, Mapping) else None


def task_set_digest(items: Sequence[TaskItem]) -> str:
    """A fingerprint of the tasks (ids and prompts, order-free): resume refuses another set."""
    import hashlib
    import json

    rows = sorted(json.dumps([i.id, i.prompt], ensure_ascii=False) for i in items)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def rollout_id(task_id: str, group_index: int) -> str:
    """The key of one rollout in the result files (and for resume)."""
    return f"{task_id}#{group_index}"


async def _uncancellable(aw: Any) -> Any:
    """Await ``aw`` to completion even if the caller is cancelled meanwhile, then re-raise the
    cancellation. Used so a worker never ends before its sandbox is gone."""
    task = asyncio.ensure_future(aw)
    cancelled = False
    while True:
        try:
            value = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                if task.cancelled():
                    raise
                value = task.result()
                cancelled = True
                break
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return value
