"""The ``terminal-bench`` environment: Harbor task directories run the way Harbor runs them."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import secrets
import shlex
import tarfile
from pathlib import Path
from typing import Any

from pydantic import Field

from hermes_core import AgentResult, Environment, EnvironmentConfig, SetupError, TaskItem
from hermes_core.errors import ConfigError, HermesError

from ._tasks import HarborTask, Step, load_dataset, resolve_env

__all__ = ["TerminalBench", "TerminalBenchConfig", "VerifierError", "verify_item"]

LOGS = "/logs"
AGENT_DIR, VERIFIER_DIR, ARTIFACTS_DIR = "/logs/agent", "/logs/verifier", "/logs/artifacts"
REWARD_TXT, REWARD_JSON = "/logs/verifier/reward.txt", "/logs/verifier/reward.json"
#: A reward file bigger than this is not a reward (and is not read into memory).
MAX_REWARD_BYTES = 64 * 1024


class VerifierError(HermesError):
    """The task's tests did not produce a reward (no reward file, unparsable, timed out)."""


class TerminalBenchConfig(EnvironmentConfig):
    """Config of ``terminal-bench`` (see ``default.yaml``)."""

    path: str | None = Field(None, description="A Harbor task directory, a folder of them, or a .parquet file.")
    timeout: float = Field(7200.0, gt=0, description="Seconds per rollout for setup + agent (all steps).")
    verifier_timeout: float = Field(
        7200.0, gt=0, description="Outer bound for the verifier; each task's [verifier] timeout_sec applies inside it."
    )
    artifacts_dir: str | None = Field(
        "hermes-runs/terminal-bench-artifacts",
        description="Per-rollout logs and artifacts go to DIR/<task>/<sandbox id>/ (null: not collected).",
    )
    max_log_bytes: int = Field(50 * 2**20, ge=0, description="Largest /logs subtree copied to the host, per directory.")
    storage: bool = Field(False, description="Apply [environment] storage_mb (needs an engine that supports it).")
    public_network: str = Field("bridge", description="Backend network mode for network_mode = 'public'.")
    cache_dir: str | None = Field(None, description="Where parquet datasets are unpacked (default ~/.cache/hermes).")


# --------------------------------------------------------------------------- task items


def _network(mode: str, cfg: TerminalBenchConfig) -> str:
    # "allowlist" would need an egress proxy: fail closed (no network) rather than open.
    return cfg.public_network if mode == "public" else "none"


def backend_options(task: HarborTask, cfg: TerminalBenchConfig) -> dict[str, Any]:
    """Docker-backend options for a task: image build, resources, workdir, env, network."""
    env = task.config.environment
    opts: dict[str, Any] = {}
    if task.build_context is not None:
        opts["build"] = {"context": str(task.build_context), "dockerfile": task.dockerfile, "timeout": env.build_timeout_sec}
    if env.cpus is not None:
        opts["cpus"] = float(env.cpus)
    if env.memory_mb is not None:
        opts["memory"] = f"{int(env.memory_mb)}m"
    if env.storage_mb is not None and cfg.storage:
        opts["storage"] = f"{int(env.storage_mb)}m"
    opts["workdir"] = env.workdir or task.compose_workdir  # None: the image's WORKDIR, as in Harbor
    merged = {**task.compose_env, **resolve_env(env.env, str(task.path / "task.toml"))}
    if merged:
        opts["env"] = merged
    phase = task.config.agent.network_mode or env.network_mode
    opts["network"] = _network(phase, cfg)
    if task.config.agent.user is not None:
        opts["user"] = str(task.config.agent.user)
    opts["labels"] = {"harbor.task": task.name}
    return opts


def _tar_b64(directory: Path) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(directory.rglob("*")):
            tar.add(p, arcname=p.relative_to(directory).as_posix(), recursive=False)
    return base64.b64encode(buf.getvalue()).decode()


def oracle_script(task: HarborTask, step: Step) -> str | None:
    """The shell script the ``oracle`` agent runs: unpack the solution to /solution, then run
    ``solve.sh`` with ``DEBIAN_FRONTEND=noninteractive``, the solution env and the agent timeout,
    its output going to /logs/agent/oracle.txt (as Harbor's oracle agent does).

    The solution travels inside the script, so nothing of it is in the sandbox before the
    oracle runs (a model agent never sees it).
    """
    if step.solution_dir is None:
        return None
    marker = f"HERMES_SOLUTION_{secrets.token_hex(8)}"
    env = {"DEBIAN_FRONTEND": "noninteractive", **resolve_env(task.config.solution.env, str(task.path / "task.toml"))}
    timeout = (step.config.agent.timeout_sec if step.config and step.config.agent.timeout_sec is not None
               else task.config.agent.timeout_sec)
    run = ["env", *(f"{k}={v}" for k, v in env.items())]
    if timeout:
        run = ["timeout", "-k", "5", str(max(1, int(timeout))), *run]
    run.append("/solution/solve.sh")
    return (
        "rm -rf /solution && mkdir -p /solution /logs/agent && "
        f"base64 -d <<'{marker}' | tar -xzf - -C /solution\n{_tar_b64(step.solution_dir)}\n{marker}\n"
        "chmod +x /solution/solve.sh\n"
        f"{' '.join(shlex.quote(a) for a in run)} > /logs/agent/oracle.txt 2>&1\n"
        "__hermes_rc=$?; [ $__hermes_rc -ne 0 ] && echo $__hermes_rc > /logs/agent/exit-code.txt; "
        "echo \"solve.sh exited $__hermes_rc\"; (exit $__hermes_rc)"
    )


def task_item(task: HarborTask, cfg: TerminalBenchConfig) -> TaskItem:
    first = task.steps[0]
    return TaskItem(
        id=task.name,
        prompt=first.instruction,
        image=task.image,
        backend_options=backend_options(task, cfg),
        solution=oracle_script(task, first),
        metadata={
            "task_dir": str(task.path),
            "steps": [s.name for s in task.steps] if task.multi_step else [],
            "artifacts_dir": cfg.artifacts_dir,
            "max_log_bytes": cfg.max_log_bytes,
            "category": task.config.metadata.get("category"),
            "notes": list(task.notes),
        },
    )


# --------------------------------------------------------------------------- verifier


def _parse_reward_text(data: bytes) -> dict[str, float]:
    if not data.strip():
        raise VerifierError("reward.txt is empty")
    try:
        value = float(data.decode())
    except (ValueError, UnicodeDecodeError):
        raise VerifierError(f"reward.txt does not hold a number: {data[:100]!r}") from None
    if not math.isfinite(value):
        raise VerifierError(f"reward.txt holds a non-finite reward {value!r}")
    return {"reward": value}


def _parse_reward_json(data: bytes) -> dict[str, float]:
    if not data.strip():
        raise VerifierError("reward.json is empty")
    try:
        rewards = json.loads(data)
    except ValueError:
        raise VerifierError(f"reward.json is not valid JSON: {data[:100]!r}") from None
    values = rewards if isinstance(rewards, dict) else {"reward": rewards}
    if not values:
        raise VerifierError("reward.json holds an empty object")
    out = {}
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise VerifierError(f"reward.json: {k!r} is not a finite number: {v!r}")
        out[str(k)] = float(v)
    return out


async def _size(sb: Any, path: str) -> int | None:
    r = await sb.exec(["stat", "-c", "%s", "--", path], timeout=30)
    out = r.output.strip()
    return int(out) if r.exit_code == 0 and out.isdigit() else None


async def _read_reward(sb: Any) -> dict[str, float]:
    for path, parse in ((REWARD_JSON, _parse_reward_json), (REWARD_TXT, _parse_reward_text)):
        size = await _size(sb, path)
        if size is None:
            continue
        if size > MAX_REWARD_BYTES:
            raise VerifierError(f"{path} is {size} bytes; a reward file holds a number or a small JSON object")
        return parse(await sb.read_bytes(path))
    return {}


async def _tail(sb: Any, path: str, n: int = 1500) -> str:
    r = await sb.exec(["tail", "-c", str(n), "--", path], timeout=30)
    return r.output.strip() if r.exit_code == 0 else ""


async def run_tests(task: HarborTask, step: Step, ctx: Any) -> dict[str, float]:
    """Harbor's verifier, in the rollout's sandbox.

    Removes stale reward files, uploads ``tests/`` (and the step's tests) to /tests, runs
    ``/tests/test.sh`` with its output in /logs/verifier/test-stdout.txt under the task's
    verifier timeout and env, then reads reward.json (named scores) or reward.txt (one float).

    Raises:
        VerifierError: no reward file, an unparsable one, or the tests timed out.
    """
    sb = ctx.sandbox
    vcfg = step.config.verifier if step.config is not None else task.config.verifier
    where = str(task.path / "task.toml")
    env = resolve_env({**task.config.verifier.env, **vcfg.env}, where)
    prep = await sb.exec(
        ["sh", "-c", f"rm -rf /tests && rm -f -- {REWARD_TXT} {REWARD_JSON} && mkdir -p /tests {VERIFIER_DIR} "
         f"&& chmod 777 {VERIFIER_DIR}"], timeout=60,
    )
    if prep.exit_code != 0:
        raise VerifierError(f"could not prepare /tests and {VERIFIER_DIR}: {prep.output.strip()[-300:]}")
    for d in step.tests_dirs:
        await sb.put_dir(d, "/tests")
    script = "/tests/" + step.test_script.relative_to(step.test_script.parent).as_posix()
    await sb.exec(["chmod", "+x", script], timeout=30)
    timeout = vcfg.timeout_sec
    run = await sb.exec(
        ["bash", "-c", f"({shlex.quote(script)}) > {VERIFIER_DIR}/test-stdout.txt 2>&1"],
        timeout=timeout, env=env or None,
    )
    if run.timed_out:
        raise VerifierError(
            f"{script} did not finish within {timeout:g}s ([verifier] timeout_sec of {where}); "
            f"last output: {await _tail(sb, VERIFIER_DIR + '/test-stdout.txt', 500)!r}"
        )
    rewards = await _read_reward(sb)
    if not rewards:
        raise VerifierError(
            f"{script} exited {run.exit_code} and wrote no reward file ({REWARD_TXT} or {REWARD_JSON}); "
            f"last output: {await _tail(sb, VERIFIER_DIR + '/test-stdout.txt', 500)!r}"
        )
    return rewards


async def _copy_out(sb: Any, src: str, dest: Path, limit: int, exclude: list[str] | None = None) -> str | None:
    """Copy a sandbox path to the host (bounded); return why not, or ``None``."""
    r = await sb.exec(["du", "-sb", "--", src], timeout=60)
    if r.exit_code != 0:
        return f"{src}: not found"
    try:
        size = int(r.output.split()[0])
    except (ValueError, IndexError):
        return f"{src}: cannot measure"
    if size > limit:
        return f"{src}: {size} bytes is over max_log_bytes={limit}; not copied"
    kind = await sb.exec(["test", "-d", src], timeout=30)
    try:
        if kind.exit_code == 0:
            await sb.get_dir(src, dest)
            if exclude:
                import fnmatch

                for p in sorted(dest.rglob("*"), reverse=True):
                    rel = p.relative_to(dest).as_posix()
                    if any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(p.name, pat) for pat in exclude):
                        if p.is_dir() and not p.is_symlink():
                            import shutil

                            shutil.rmtree(p, ignore_errors=True)
                        else:
                            p.unlink(missing_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            await sb.get_file(src, dest)
    except Exception as e:  # noqa: BLE001 - recorded, never fatal
        return f"{src}: {type(e).__name__}: {e}"
    return None


async def collect(task: HarborTask, step: Step | None, ctx: Any, out: Path, limit: int) -> list[str]:
    """Copy /logs/agent, /logs/verifier and the task's artifacts (plus /logs/artifacts) to ``out``."""
    from ._schema import ArtifactConfig

    sb = ctx.sandbox
    problems = []
    for src, sub in ((AGENT_DIR, "agent"), (VERIFIER_DIR, "verifier")):
        why = await _copy_out(sb, src, out / sub, limit)
        if why and "not found" not in why:
            problems.append(why)
    entries = [ArtifactConfig(source=a) if isinstance(a, str) else a for a in task.config.artifacts]
    if step is not None and step.config is not None:
        entries += [ArtifactConfig(source=a) if isinstance(a, str) else a for a in step.config.artifacts]
    if not any(e.source.rstrip("/") == ARTIFACTS_DIR for e in entries):
        entries.insert(0, ArtifactConfig(source=ARTIFACTS_DIR))
    manifest = []
    for e in entries:
        if e.service not in (None, "main"):
            manifest.append({"source": e.source, "status": "skipped", "reason": f"service {e.service!r} is not supported"})
            continue
        rel = e.destination or e.source.lstrip("/")
        dest = out / "artifacts" / Path(*[p for p in Path(rel).parts if p not in ("", "/", "..")])
        src = e.source if e.source.startswith("/") else sb.path(e.source)
        why = await _copy_out(sb, src, dest, limit, e.exclude)
        manifest.append({"source": e.source, "destination": str(dest.relative_to(out)), "status": "failed" if why else "ok",
                         **({"reason": why} if why else {})})
    (out / "artifacts").mkdir(parents=True, exist_ok=True)
    (out / "artifacts" / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return problems


# --------------------------------------------------------------------------- environment


class TerminalBench(Environment):
    """Terminal-Bench 2 / Harbor task directories (``--set path=DIR``).

    Needs a backend that builds images from a Dockerfile (``docker``): task items carry the
    backend options ``build``, ``network``, ``cpus``, ``memory``, ``workdir`` and ``env``.
    """

    config_model = TerminalBenchConfig
    verifier = None  # scored by verify() below: multi-step rewards live on this instance

    def __init__(self, config: EnvironmentConfig | None = None):
        super().__init__(config)
        self._tasks: dict[str, HarborTask] = {}
        #: Step rewards of multi-step rollouts, by rollout (sandbox) id, filled by run_agent().
        self._step_results: dict[str, dict[str, Any]] = {}

    @property
    def cfg(self) -> TerminalBenchConfig:
        assert isinstance(self.config, TerminalBenchConfig)
        return self.config

    async def load_tasks(self) -> list[TaskItem]:
        if not self.cfg.path:
            raise ConfigError(
                "terminal-bench needs a dataset: --set path=DIR (a Harbor task directory, a folder of them, "
                "or a .parquet file)"
            )
        cache = Path(self.cfg.cache_dir) if self.cfg.cache_dir else None
        tasks = await asyncio.to_thread(load_dataset, self.cfg.path, cache_dir=cache)
        self._tasks = {t.name: t for t in tasks}
        return [task_item(t, self.cfg) for t in tasks]

    def task(self, item: TaskItem) -> HarborTask:
        task = self._tasks.get(item.id)
        if task is None:
            from ._tasks import load_task

            task = load_task(item.metadata["task_dir"])
            self._tasks[item.id] = task
        return task

    async def setup(self, item: TaskItem, ctx: Any) -> None:
        """Create /logs/{agent,verifier,artifacts}, run the healthcheck, stage step 1's workdir."""
        task = self.task(item)
        r = await ctx.sandbox.exec(
            ["sh", "-c", f"mkdir -p {AGENT_DIR} {VERIFIER_DIR} {ARTIFACTS_DIR} && chmod 777 {AGENT_DIR} "
             f"{VERIFIER_DIR} {ARTIFACTS_DIR}"], timeout=60,
        )
        if r.exit_code != 0:
            raise SetupError(f"task {item.id!r}: cannot create {LOGS}/*: {r.output.strip()[-300:]}")
        if task.config.environment.healthcheck is not None:
            await _healthcheck(task.config.environment.healthcheck, ctx, item.id)
        if not task.multi_step:
            await super().setup(item, ctx)

    async def run_agent(
        self, agent: Any, item: TaskItem, ctx: Any, *, system_prompt: str | None = None,
        max_turns: int | None = None, deadline: float | None = None,
    ) -> AgentResult:
        """Run the agent as Harbor does: once, or step by step for a multi-step task (each step's
        workdir staged and setup.sh run, the agent on the step's instruction under the step's
        timeout, the step's tests, ``min_reward`` stopping early). Step rewards are kept for
        :meth:`verify`.

        The rollout runner calls this when it supports environment-driven agent phases;
        otherwise it calls ``agent.run`` once and :meth:`verify` reports that only the first
        step of a multi-step task ran.
        """
        task = self.task(item)
        loop = asyncio.get_running_loop()
        if not task.multi_step:
            limit = task.config.agent.timeout_sec
            dl = _min_deadline(deadline, loop.time() + limit if limit else None)
            return await agent.run(item, ctx, system_prompt=system_prompt, max_turns=max_turns, deadline=dl)
        record: dict[str, Any] = {"steps": [], "stopped": None}
        self._step_results[ctx.task_id] = record
        total = AgentResult()
        for index, step in enumerate(task.steps):
            entry: dict[str, Any] = {"name": step.name, "rewards": None, "error": None}
            record["steps"].append(entry)
            try:
                await self._prepare_step(task, step, ctx, first=index == 0)
            except Exception as e:  # noqa: BLE001 - a failed step setup stops the task, as in Harbor
                entry["error"] = f"step {step.name!r} setup failed: {e}"
                record["stopped"] = entry["error"]
                break
            step_item = item.model_copy(update={"prompt": step.instruction, "solution": oracle_script(task, step)})
            sc = step.config
            limit = sc.agent.timeout_sec if sc and sc.agent.timeout_sec is not None else task.config.agent.timeout_sec
            dl = _min_deadline(deadline, loop.time() + limit if limit else None)
            result = await agent.run(step_item, ctx, system_prompt=system_prompt, max_turns=max_turns, deadline=dl)
            _merge(total, result, first=index == 0)
            try:
                entry["rewards"] = await run_tests(task, step, ctx)
            except Exception as e:  # noqa: BLE001 - recorded as this step's verifier error
                entry["error"] = f"step {step.name!r}: {type(e).__name__}: {e}"
            await self._collect(task, step, item, ctx, sub=Path("steps") / step.name)
            failure = _min_reward_failure(entry["rewards"], sc.min_reward if sc else None)
            if entry["rewards"] is None or failure:
                record["stopped"] = entry["error"] if entry["rewards"] is None else f"step {step.name!r}: {failure}"
                break
            if deadline is not None and loop.time() >= deadline:
                record["stopped"] = "the rollout's deadline passed"
                break
        return total

    async def _prepare_step(self, task: HarborTask, step: Step, ctx: Any, *, first: bool) -> None:
        sb = ctx.sandbox
        if not first:  # the previous step's tests and verifier outputs must not be visible
            await sb.exec(["sh", "-c", f"rm -rf /tests {VERIFIER_DIR}/* {AGENT_DIR}/*"], timeout=60)
        if step.workdir_dir is not None:
            await sb.put_dir(step.workdir_dir, sb.workdir)
            if (step.workdir_dir / "setup.sh").is_file():
                r = await sb.exec(["bash", sb.path("setup.sh")], timeout=600)
                if r.exit_code != 0:
                    raise SetupError(f"setup.sh exited {r.exit_code}: {r.output.strip()[-300:]}")
        if step.config is not None and step.config.healthcheck is not None:
            await _healthcheck(step.config.healthcheck, ctx, task.name)

    async def verify(self, item: TaskItem, result: AgentResult, ctx: Any) -> float | dict[str, float]:
        task = self.task(item)
        if not task.multi_step:
            try:
                return await run_tests(task, task.steps[0], ctx)
            finally:
                await self._collect(task, None, item, ctx)
        record = self._step_results.pop(ctx.task_id, None)
        if record is None:
            raise VerifierError(
                f"multi-step task {task.name!r}: the runner did not call TerminalBench.run_agent, so only the "
                "first step's agent phase ran; this hermes-core runner lacks environment-driven agent phases"
            )
        scored = [s["rewards"] for s in record["steps"] if s["rewards"] is not None]
        self._write_steps(task, item, ctx, record)
        if task.config.multi_step_reward_strategy == "final":
            last = record["steps"][-1]["rewards"] if record["steps"] else None
            if last is None:
                raise VerifierError(f"multi-step task {task.name!r}: the last step has no reward ({record['stopped']})")
            return last
        if not scored:
            raise VerifierError(f"multi-step task {task.name!r}: no step produced a reward ({record['stopped']})")
        # Harbor's "mean": per key over the steps that were scored, a missing key counting 0.
        # A step that never ran (early stop) is not scored, so it does not lower the mean;
        # the run's "steps" scores say how many ran.
        keys = sorted({k for r in scored for k in r})
        out = {k: sum(r.get(k, 0.0) for r in scored) / len(scored) for k in keys}
        out["steps_completed"] = float(len(scored))
        if "reward" not in out:
            out["reward"] = sum(v for k, v in out.items() if k != "steps_completed") / max(1, len(keys))
        return out

    def _rollout_dir(self, item: TaskItem, ctx: Any) -> Path | None:
        # A runner that gives each rollout a folder of its own (ctx.artifacts_dir) wins over the
        # environment's artifacts_dir/<task>/<sandbox id>.
        own = getattr(ctx, "artifacts_dir", None)
        if own:
            return Path(own)
        base = item.metadata.get("artifacts_dir")
        if not base:
            return None
        return Path(base) / item.id / ctx.task_id

    async def _collect(self, task: HarborTask, step: Step | None, item: TaskItem, ctx: Any, sub: Path = Path()) -> None:
        out = self._rollout_dir(item, ctx)
        if out is None:
            return
        try:
            await collect(task, step, ctx, out / sub, int(item.metadata.get("max_log_bytes") or 0))
        except Exception:  # noqa: BLE001 - artifacts never decide a reward
            pass

    def _write_steps(self, task: HarborTask, item: TaskItem, ctx: Any, record: dict[str, Any]) -> None:
        out = self._rollout_dir(item, ctx)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "steps.json").write_text(json.dumps(record, indent=2))


def _min_deadline(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _min_reward_failure(rewards: dict[str, float] | None, min_reward: float | dict[str, float] | None) -> str | None:
    if min_reward is None:
        return None
    thresholds = {"reward": float(min_reward)} if isinstance(min_reward, (int, float)) else min_reward
    for key, threshold in thresholds.items():
        actual = (rewards or {}).get(key, float("-inf"))
        if actual < threshold:
            return f"{key}={actual} is below min_reward {threshold}"
    return None


def _merge(total: AgentResult, step: AgentResult, *, first: bool) -> None:
    total.messages.extend(step.messages if first else [m for m in step.messages if m.get("role") != "system"])
    total.turns += step.turns
    total.tool_errors.extend(step.tool_errors)
    for k, v in step.usage.items():
        total.usage[k] = total.usage.get(k, 0) + v
    total.finished = step.finished
    total.stop_reason = step.stop_reason
    total.error = total.error or step.error


async def _healthcheck(hc: Any, ctx: Any, task_id: str) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    failures = 0
    while True:
        r = await ctx.sandbox.exec(["sh", "-c", hc.command], timeout=hc.timeout_sec)
        if r.exit_code == 0:
            return
        in_grace = loop.time() - start < hc.start_period_sec
        if not in_grace:
            failures += 1
            if failures >= hc.retries:
                raise SetupError(f"task {task_id!r}: healthcheck {hc.command!r} failed {failures} times: "
                                 f"{r.output.strip()[-300:]}")
        await asyncio.sleep(hc.start_interval_sec if in_grace else hc.interval_sec)


async def verify_item(item: TaskItem, result: Any, ctx: Any) -> dict[str, float]:
    """The registered ``terminal-bench`` verifier, for single-step items used outside the
    environment class (e.g. by another runner). Multi-step tasks need :class:`TerminalBench`."""
    from ._tasks import load_task

    task = await asyncio.to_thread(load_task, item.metadata["task_dir"])
    if task.multi_step:
        raise VerifierError(f"{task.name!r} is a multi-step task: score it through the terminal-bench environment")
    return await run_tests(task, task.steps[0], ctx)

