"""``hermes eval``, ``hermes run``, ``hermes batch``: the main job, from the command line."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ._cli_basic import parse_options

#: Agent options the CLI can set; each agent factory receives the ones its signature accepts.
AGENT_OPTIONS = ("model", "base_url", "api_key", "temperature", "max_tokens", "extra_body")


# --------------------------------------------------------------------------- arguments


def _common(p: argparse.ArgumentParser, *, agent_default: str) -> None:
    g = p.add_argument_group("agent")
    g.add_argument("--agent", default=agent_default, help=f"agent name (default: {agent_default}); "
                   "built-ins: openai, oracle")
    g.add_argument("--model", help="model name (openai agent)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                   "(default: $OPENAI_BASE_URL)")
    g.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY; local servers need none)")
    g.add_argument("--temperature", type=float)
    g.add_argument("--max-tokens", type=int, help="completion tokens per turn")
    g.add_argument("--extra-body", metavar="JSON", help="extra request fields as a JSON object")
    g.add_argument("--max-turns", type=int, help="model turns per rollout")
    g.add_argument("--timeout", type=float, help="seconds per rollout (setup + agent)")
    s = p.add_argument_group("sandbox")
    s.add_argument("--backend", help="backend name (default: config, else 'local')")
    s.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option (value parsed as JSON when it can be); repeatable")
    s.add_argument("--toolset", action="append", metavar="NAME", help="toolset offered to the agent; repeatable")
    s.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                   help="YAML config: hermes keys (backend, toolsets, ...) plus an `environment:` section")


def _runs(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--concurrency", type=int, default=8, help="rollouts at once (default: 8)")
    p.add_argument("--group-size", type=int, default=1, help="rollouts per task (default: 1)")
    p.add_argument("--out", metavar="DIR", help="output directory; an existing one is resumed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub) -> None:
    p = sub.add_parser("eval", help="run an environment's tasks with an agent, score them, write results",
                       description="Run every task of ENV in fresh sandboxes, score each with the "
                       "environment's verifier, print a table and write results.jsonl, "
                       "trajectories.jsonl and summary.json.")
    p.add_argument("env", metavar="ENV", help="environment name, e.g. terminal-test")
    _common(p, agent_default="oracle")
    _runs(p)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="environment config override (value parsed as JSON when it can be); repeatable")
    p.add_argument("--tasks", metavar="ID,ID", help="run only these task ids")
    p.add_argument("--limit", type=int, help="run at most this many tasks")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("run", help="run one agent rollout on a prompt and print the conversation")
    p.add_argument("prompt", metavar="PROMPT")
    _common(p, agent_default="openai")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--out", metavar="DIR", help="also append the rollout to DIR/results.jsonl and DIR/trajectories.jsonl")
    p.add_argument("--json", action="store_true", help="print the result and messages as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("batch", help="generate trajectories for a JSONL file of prompts (resumable)",
                       description="Each line of PROMPTS is a JSON object with `prompt` and optionally "
                       "`id`, `system_prompt`, `image`, `backend`, `backend_options`, `toolsets`, "
                       "`files`, `setup`, `max_turns`, `metadata`.")
    p.add_argument("prompts", metavar="PROMPTS.jsonl")
    _common(p, agent_default="openai")
    _runs(p)
    p.add_argument("--system", help="system prompt for rows that have none")
    p.set_defaults(func=cmd_batch)


# --------------------------------------------------------------------------- helpers


def _error(msg: str) -> Exception:
    from .cli import CliError

    return CliError(msg)


def load_run_config(path: str | None) -> tuple[Any, dict[str, Any]]:
    """``--config FILE``: the hermes keys as a HermesConfig, plus its ``environment:`` section.

    Raises:
        ConfigError: names the file and the key.
    """
    import yaml
    from pydantic import ValidationError

    from .config import HermesConfig, load_config, validation_message
    from .errors import ConfigError

    if not path:
        return HermesConfig(), {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        load_config(path)  # raises the precise read / YAML error
        raise
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    env = data.pop("environment", None) or {}
    if not isinstance(env, dict):
        raise ConfigError(f"{path}: key 'environment' must be a mapping of environment config keys")
    try:
        return HermesConfig.model_validate(data), env
    except ValidationError as e:
        raise ConfigError(validation_message(e, HermesConfig, path)) from None


def _runtime(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from . import Runtime

    config, env_section = load_run_config(getattr(args, "config", None))
    return Runtime(config), env_section


def make_agent(rt: Any, args: argparse.Namespace) -> Any:
    """Build the ``--agent`` from the agent options given on the command line.

    Raises:
        UnknownNameError: unknown agent (the message lists the registered ones).
        CliError: a required option is missing or a value is malformed.
    """
    spec = rt.agents.get(args.agent)
    given: dict[str, Any] = {k: getattr(args, k) for k in AGENT_OPTIONS if getattr(args, k, None) is not None}
    if "extra_body" in given:
        try:
            given["extra_body"] = json.loads(given["extra_body"])
        except json.JSONDecodeError as e:
            raise _error(f"--extra-body is not valid JSON ({e.msg} at position {e.pos})") from None
        if not isinstance(given["extra_body"], dict):
            raise _error("--extra-body must be a JSON object")
    params = inspect.signature(spec.factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    options = {k: v for k, v in given.items() if takes_all or k in params}
    ignored = sorted(set(given) - set(options))
    if ignored:
        flags = ", ".join("--" + k.replace("_", "-") for k in ignored)
        print(f"hermes: note: agent {args.agent!r} ignores {flags}", file=sys.stderr)
    for name, p in params.items():
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in options:
            raise _error(f"agent {args.agent!r} needs --{name.replace('_', '-')}")
    try:
        return spec.factory(**options)
    except (TypeError, ValueError) as e:
        raise _error(f"agent {args.agent!r} could not be created: {e}") from None


async def _prepare_agent(agent: Any) -> None:
    check = getattr(agent, "check_reachable", None)
    if check is None:
        return
    try:
        await check()
    except ConnectionError as e:
        raise _error(f"{e}. Is the server running? Check --base-url.") from None


async def _close_agent(agent: Any) -> None:
    close = getattr(agent, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            pass


def _task_config(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.max_turns is not None:
        out["max_turns"] = args.max_turns
    if args.timeout is not None:
        out["timeout"] = args.timeout
    if args.toolset:
        out["toolsets"] = args.toolset
    return out


def _on_sigterm() -> None:
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def _out_dir(args: argparse.Namespace, default: str) -> Path:
    return Path(args.out) if args.out else Path("hermes-runs") / default


async def _run_with_progress(runner: Any, items: list[Any], label: str, quiet: bool) -> tuple[Any, bool]:
    from ._cli_render import EvalProgress

    with EvalProgress(label, enabled=not quiet) as progress:
        runner.on_start, runner.on_result = progress.on_start, progress.on_result
        try:
            return await runner.run(items), False
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return runner.report, True


def _report(report: Any, title: str, resume_cmd: str, interrupted: bool, as_json: bool) -> int:
    from ._cli_render import print_table

    if as_json:
        print(json.dumps(report.summary, indent=2, default=str))
    elif report.records:
        print_table(report.summary, title, report.records)
    if report.out_dir is not None:
        files = ", ".join(str(report.out_dir / n) for n in ("results.jsonl", "trajectories.jsonl", "summary.json"))
        print(f"wrote {files}", file=sys.stderr)
    if report.skipped:
        print(f"resumed: {report.skipped} rollouts were already done and not rerun", file=sys.stderr)
    if interrupted:
        print(f"hermes: interrupted after {len(report.records)} of {report.planned} rollouts; "
              f"sandboxes cleaned up. Resume with: {resume_cmd}", file=sys.stderr)
        return 130
    return 0


# --------------------------------------------------------------------------- eval


def cmd_eval(args: argparse.Namespace) -> int:
    from .environment import Environment

    rt, env_section = _runtime(args)
    spec = rt.environments.get(args.env)
    if not (isinstance(spec.cls, type) and issubclass(spec.cls, Environment)):
        raise _error(f"environment {args.env!r} is not a hermes_core.environment.Environment subclass")
    cli_layer = parse_options(args.overrides, "--set")
    cli_layer.update(_task_config(args))
    if args.tasks:
        cli_layer["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.limit is not None:
        cli_layer["limit"] = args.limit
    env = spec.cls.from_layers([
        (f"default config of environment {args.env!r}", spec.default_config),
        (f"{getattr(args, 'config', '')}: environment", env_section),
        ("command line (--set/--max-turns/--timeout/--toolset/--tasks/--limit)", cli_layer),
    ])
    agent = make_agent(rt, args)
    out = _out_dir(args, f"{args.env}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_info = {
        "command": "eval", "environment": args.env, "agent": args.agent, "model": args.model,
        "base_url": args.base_url, "backend": args.backend or rt.config.backend,
        "group_size": args.group_size, "concurrency": args.concurrency, "config": env.config.model_dump(),
    }

    async def main() -> int:
        from .runner import Runner

        _on_sigterm()
        try:
            items = await env.tasks()
            runner = Runner(
                rt, agent, environment=env, backend=args.backend, backend_options=parse_options(args.option, "--option"),
                concurrency=args.concurrency, group_size=args.group_size, out_dir=out, run_info=run_info,
            )
            runner.check(items)
            await _prepare_agent(agent)
            report, interrupted = await _run_with_progress(runner, items, args.env, args.quiet or args.json)
        finally:
            await _close_agent(agent)
            await rt.aclose()
        resume = f"hermes eval {args.env} --agent {args.agent} ... --out {out}"
        return _report(report, f"{args.env} · agent {args.agent}", resume, interrupted, args.json)

    return asyncio.run(main())


# --------------------------------------------------------------------------- batch


def load_prompts(path: str, system: str | None = None) -> list[Any]:
    """Read a prompts JSONL file into task items.

    Raises:
        CliError: the file cannot be read, or a line is malformed (the message names the line).
    """
    from pydantic import ValidationError

    from .config import validation_message
    from .environment import TaskItem

    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise _error(f"{path}: cannot read prompts file: {e.strerror}") from None
    items: list[TaskItem] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise _error(f"{path}: line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise _error(f"{path}: line {n}: expected a JSON object with a \"prompt\", got {type(row).__name__}")
        row.setdefault("id", f"line-{n}")
        if system and "system_prompt" not in row:
            row["system_prompt"] = system
        try:
            item = TaskItem.model_validate(row)
        except ValidationError as e:
            raise _error(validation_message(e, TaskItem, f"{path}: line {n}")) from None
        if item.id in seen:
            raise _error(f"{path}: line {n}: id {item.id!r} was already used on line {seen[item.id]}")
        seen[item.id] = n
        items.append(item)
    if not items:
        raise _error(f"{path}: no prompts (expected one JSON object per line)")
    return items


def cmd_batch(args: argparse.Namespace) -> int:
    from .environment import EnvironmentConfig

    items = load_prompts(args.prompts, args.system)
    rt, env_section = _runtime(args)
    config = EnvironmentConfig.model_validate({**env_section, **_task_config(args)})
    agent = make_agent(rt, args)
    out = _out_dir(args, f"batch-{Path(args.prompts).stem}")
    run_info = {"command": "batch", "environment": None, "agent": args.agent, "model": args.model,
                "prompts": str(args.prompts), "base_url": args.base_url, "group_size": args.group_size}

    async def main() -> int:
        from .runner import Runner

        _on_sigterm()
        try:
            runner = Runner(
                rt, agent, config=config, backend=args.backend, backend_options=parse_options(args.option, "--option"),
                concurrency=args.concurrency, group_size=args.group_size, out_dir=out, run_info=run_info,
            )
            runner.check(items)
            await _prepare_agent(agent)
            report, interrupted = await _run_with_progress(runner, items, Path(args.prompts).name, args.quiet)
        finally:
            await _close_agent(agent)
            await rt.aclose()
        return _report(report, f"batch {Path(args.prompts).name}", f"hermes batch {args.prompts} ... --out {out}", interrupted, False)

    return asyncio.run(main())


# --------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    from ._cli_render import print_conversation
    from .environment import EnvironmentConfig, TaskItem

    rt, env_section = _runtime(args)
    config = EnvironmentConfig.model_validate({**env_section, **_task_config(args)})
    item = TaskItem(id="prompt", prompt=args.prompt, system_prompt=args.system)
    agent = make_agent(rt, args)

    async def main() -> Any:
        from .runner import Runner

        _on_sigterm()
        try:
            runner = Runner(rt, agent, config=config, backend=args.backend,
                            backend_options=parse_options(args.option, "--option"), out_dir=args.out,
                            run_info={"command": "run", "agent": args.agent, "model": args.model})
            runner.check([item])
            await _prepare_agent(agent)
            return await runner.run_one(item)
        finally:
            await _close_agent(agent)
            await rt.aclose()

    rollout = asyncio.run(main())
    if args.json:
        print(json.dumps({**rollout.record, "messages": rollout.result.messages}, indent=2, default=str))
    else:
        print_conversation(rollout.result.messages)
        rec = rollout.record
        print(f"\nstop: {rec['stop_reason']} · turns {rec['turns']} · tool errors {rec['n_tool_errors']} · "
              f"tokens {rec['usage'].get('total_tokens', 0)} · {rec['duration']:.1f}s", file=sys.stderr)
        if rec["error"]:
            print(f"error: {rec['error']}", file=sys.stderr)
    return 0 if not rollout.record["error"] else 1
