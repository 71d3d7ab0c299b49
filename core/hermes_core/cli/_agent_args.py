"""What ``hermes eval``, ``hermes run`` and ``hermes batch`` share: agent and sandbox flags, the
run config file, building the agent, progress and the closing report."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import signal
import sys
from pathlib import Path
from typing import Any

from ._common import (
    CliError,
    check_config_backend,
    check_out_dir,
    check_path_options,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)

#: Agent options the CLI can set; each agent factory receives the ones its signature accepts.
AGENT_OPTIONS = ("model", "base_url", "api_key", "temperature", "max_tokens", "extra_body", "tool_choice")

#: ``--max-tokens`` when none is given (completion tokens per turn).
DEFAULT_MAX_TOKENS = 4096


def add_agent_arguments(p: argparse.ArgumentParser, *, agent_default: str) -> None:
    """The agent and sandbox flags of ``eval``, ``run`` and ``batch``."""
    g = p.add_argument_group("agent")
    g.add_argument("--agent", default=agent_default, help=f"agent name (default: {agent_default}); "
                   "built-ins: openai, oracle")
    g.add_argument("--model", help="model name (openai agent)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                   "(default: $OPENAI_BASE_URL)")
    g.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY; local servers need none)")
    g.add_argument("--temperature", type=float)
    g.add_argument("--max-tokens", type=nonnegative_int, default=None,
                   help=f"completion tokens per turn (default: {DEFAULT_MAX_TOKENS}, so one answer cannot "
                   "fill the whole context; 0: no limit)")
    g.add_argument("--tool-choice", metavar="CHOICE",
                   help="tool_choice sent whenever tools are offered (default: auto; also none, required; "
                   "'omit' sends none)")
    g.add_argument("--extra-body", metavar="JSON", help="extra request fields as a JSON object")
    g.add_argument("--max-turns", type=positive_int, help="model turns per rollout")
    g.add_argument("--timeout", type=positive_float, help="seconds per rollout (setup + agent)")
    s = p.add_argument_group("sandbox")
    s.add_argument("--backend", help="backend name (default: config, else 'local')")
    s.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option (value parsed as JSON when it can be); repeatable")
    s.add_argument("--toolset", action="append", metavar="NAME", help="toolset offered to the agent; repeatable")
    s.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                   help="YAML config: hermes keys (backend, toolsets, ...) plus an `environment:` section")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of commands that run many rollouts (``eval``, ``batch``)."""
    p.add_argument("-n", "--concurrency", type=positive_int, default=8, help="rollouts at once (default: 8)")
    p.add_argument("--group-size", type=positive_int, default=1, help="rollouts per task (default: 1)")
    p.add_argument("--out", metavar="DIR", help="output directory; an existing one is resumed")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="one progress line per finished rollout (on a terminal: above the bar)")
    p.add_argument("--progress-interval", type=nonnegative_float, default=10.0, metavar="SECONDS",
                   help="when stderr is not a terminal (CI, logs): a plain progress line every SECONDS "
                   "(default: 10; 0: only at the end)")


def error(msg: str) -> Exception:
    return CliError(msg)


def load_run_config(path: str | None) -> tuple[Any, dict[str, Any]]:
    """``--config FILE``: the hermes keys as a HermesConfig, plus its ``environment:`` section.

    Raises:
        ConfigError: names the file and the key.
    """
    import yaml
    from pydantic import ValidationError

    from ..config import HermesConfig, load_config, validation_message
    from ..errors import ConfigError

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


def runtime_and_environment(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The Runtime of ``--config`` and its ``environment:`` section; the file's backend options
    and the ``-o`` options are checked now, so an error names where it came from.

    Raises:
        ConfigError / CliError: one line naming the file or flag.
    """
    from .. import Runtime

    path = getattr(args, "config", None)
    config, env_section = load_run_config(path)
    rt = Runtime(config)
    if path:
        check_config_backend(rt, path)
    return rt, env_section


def backend_options_from_args(rt: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``-o KEY=VALUE`` options, with host-directory options checked (no folders made by a typo)."""
    from ._common import parse_options

    options = parse_options(args.option, "--option")
    check_path_options(args.backend or rt.config.backend, options, "-o")
    return options


def make_agent(rt: Any, args: argparse.Namespace) -> Any:
    """Build the ``--agent`` from the agent options given on the command line.

    Raises:
        UnknownNameError: unknown agent (the message lists the registered ones).
        CliError: a required option is missing or a value is malformed.
    """
    spec = rt.agents.get(args.agent)
    given: dict[str, Any] = {k: getattr(args, k) for k in AGENT_OPTIONS if getattr(args, k, None) is not None}
    if given.get("tool_choice") == "omit":
        given["tool_choice"] = None
    elif isinstance(given.get("tool_choice"), str) and given["tool_choice"] not in ("auto", "none", "required"):
        given["tool_choice"] = {"type": "function", "function": {"name": given["tool_choice"]}}
    if "extra_body" in given:
        try:
            given["extra_body"] = json.loads(given["extra_body"])
        except json.JSONDecodeError as e:
            raise error(f"--extra-body is not valid JSON ({e.msg} at position {e.pos})") from None
        if not isinstance(given["extra_body"], dict):
            raise error("--extra-body must be a JSON object")
    params = inspect.signature(spec.factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    options = {k: v for k, v in given.items() if takes_all or k in params}
    # --max-tokens has a default for agents that take it; it is not "given" for the others.
    if "max_tokens" not in given and (takes_all or "max_tokens" in params):
        options["max_tokens"] = DEFAULT_MAX_TOKENS
    ignored = sorted(set(given) - set(options))
    if ignored:
        flags = ", ".join("--" + k.replace("_", "-") for k in ignored)
        print(f"hermes: note: agent {args.agent!r} ignores {flags}", file=sys.stderr)
    for name, p in params.items():
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in options:
            raise error(f"agent {args.agent!r} needs --{name.replace('_', '-')}")
    try:
        return spec.factory(**options)
    except (TypeError, ValueError) as e:
        raise error(f"agent {args.agent!r} could not be created: {e}") from None


async def prepare_agent(agent: Any) -> None:
    """Check the agent's model endpoint for real before the first rollout.

    Raises:
        CliError: the endpoint is unreachable, wrong (404: "add /v1?") or refuses the key.
    """
    check = getattr(agent, "check_reachable", None)
    if check is None:
        return
    try:
        await check()
    except ConnectionError as e:
        raise error(str(e)) from None


async def check_backends(runner: Any, items: list[Any]) -> None:
    """Start and close one sandbox of each backend the run uses, before the first rollout, so
    an unreachable engine fails the run at once with the engine's own message.

    Raises:
        CliError: a backend could not start a sandbox.
    """
    try:
        await runner.preflight(items)
    except Exception as e:  # the backend's own error, whatever its type
        raise error(str(e)) from None


async def close_agent(agent: Any) -> None:
    close = getattr(agent, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            pass


def task_config(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.max_turns is not None:
        out["max_turns"] = args.max_turns
    if args.timeout is not None:
        out["timeout"] = args.timeout
    if args.toolset:
        out["toolsets"] = args.toolset
    return out


def cancel_on_sigterm() -> None:
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def out_dir(args: argparse.Namespace, default: str) -> Path:
    """``--out``, else ``hermes-runs/<default>``; checked to be a writable directory.

    Raises:
        CliError: the directory cannot be created or written.
    """
    path = Path(args.out) if args.out else Path("hermes-runs") / default
    check_out_dir(path)
    return path


def resume_command(args: argparse.Namespace, out: Path) -> str:
    """The command that resumes this run: the command line as given, plus ``--out``."""
    import shlex

    argv = list(getattr(args, "argv", None) or sys.argv[1:])
    if "--out" not in argv and not any(a.startswith("--out=") for a in argv):
        argv += ["--out", str(out)]
    return shlex.join(["hermes", *argv])


async def run_with_progress(runner: Any, items: list[Any], label: str, args: argparse.Namespace,
                            quiet: bool = False) -> tuple[Any, bool]:
    """Run the rollouts with the progress display of ``--quiet`` / ``-v`` / ``--progress-interval``;
    returns ``(report, interrupted)``."""
    from ._render import EvalProgress

    with EvalProgress(label, enabled=not (quiet or args.quiet), interval=args.progress_interval,
                      verbose=args.verbose) as progress:
        runner.on_start, runner.on_result = progress.on_start, progress.on_result
        try:
            return await runner.run(items), False
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return runner.report, True


def print_report(report: Any, title: str, resume_cmd: str, interrupted: bool, as_json: bool,
                 group_size: int | None = None) -> int:
    from ._render import print_table

    if as_json:
        print(json.dumps(report.summary, indent=2, default=str))
    elif report.records:
        print_table(report.summary, title, report.records, group_size=group_size)
    if report.out_dir is not None:
        files = ", ".join(str(report.out_dir / n) for n in ("results.jsonl", "trajectories.jsonl", "summary.json"))
        print(f"wrote {files}", file=sys.stderr)
    if report.skipped:
        print(f"resumed: {report.skipped} rollouts were already done and not rerun", file=sys.stderr)
    infra = [r for r in report.records if r.get("infra_error")]
    if infra:
        print(f"hermes: {len(infra)} of {len(report.records)} rollouts ended in an infrastructure or API error "
              f"(not scored; rerun them with: {resume_cmd}); first: {infra[0].get('error')}", file=sys.stderr)
    if interrupted:
        print(f"hermes: interrupted after {len(report.records)} of {report.planned} rollouts; "
              f"sandboxes cleaned up. Resume with: {resume_cmd}", file=sys.stderr)
        return 130
    if report.records and len(infra) == len(report.records):
        print("hermes: error: no rollout ran to a result (every one was an infrastructure or API error)",
              file=sys.stderr)
        return 1
    return 0
