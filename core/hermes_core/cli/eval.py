"""``hermes eval``: every task of an environment, scored, with results written."""

from __future__ import annotations

import argparse
import asyncio
import time

from ._agent_args import (
    add_agent_arguments,
    add_run_arguments,
    backend_options_from_args,
    cancel_on_sigterm,
    check_backends,
    close_agent,
    error,
    make_agent,
    out_dir,
    prepare_agent,
    print_report,
    resume_command,
    run_with_progress,
    runtime_and_environment,
    task_config,
)
from ._common import parse_options, positive_int


def register(sub) -> None:
    p = sub.add_parser("eval", help="run an environment's tasks with an agent, score them, write results",
                       description="Run every task of ENV in fresh sandboxes, score each with the "
                       "environment's verifier, print a table and write results.jsonl, "
                       "trajectories.jsonl and summary.json.")
    p.add_argument("env", metavar="ENV", help="environment name, e.g. terminal-test")
    add_agent_arguments(p, agent_default="oracle")
    add_run_arguments(p)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="environment config override (value parsed as JSON when it can be); repeatable")
    p.add_argument("--tasks", metavar="ID,ID", help="run only these task ids")
    p.add_argument("--limit", type=positive_int, help="run at most this many tasks")
    p.add_argument("--path", help="dataset location for environments that read one (sets the environment key `path`)")
    p.add_argument("--dataset", help="dataset file for environments that read one (sets the environment key `dataset`)")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..rollout._environment import Environment

    rt, env_section = runtime_and_environment(args)
    spec = rt.environments.get(args.env)
    if not (isinstance(spec.cls, type) and issubclass(spec.cls, Environment)):
        raise error(f"environment {args.env!r} is not a hermes_core.Environment subclass")
    cli_layer = parse_options(args.overrides, "--set")
    cli_layer.update(task_config(args))
    if args.tasks:
        cli_layer["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.limit is not None:
        cli_layer["limit"] = args.limit
    for key in ("path", "dataset"):
        if getattr(args, key, None):
            cli_layer[key] = getattr(args, key)
    layers = [(f"default config of environment {args.env!r}", spec.default_config)]
    if "toolsets" in rt.config.model_fields_set:  # hermes.yaml's top-level `toolsets:` is honoured
        layers.append((f"{getattr(args, 'config', '')}: toolsets", {"toolsets": list(rt.config.toolsets)}))
    backend_options = backend_options_from_args(rt, args)
    env = spec.cls.from_layers([
        *layers,
        (f"{getattr(args, 'config', '')}: environment", env_section),
        ("command line (--set/--max-turns/--timeout/--toolset/--tasks/--limit)", cli_layer),
    ])
    agent = make_agent(rt, args)
    out = out_dir(args, f"{args.env}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_info = {
        "command": "eval", "environment": args.env, "agent": args.agent, "model": args.model,
        "base_url": args.base_url, "backend": args.backend or rt.config.backend,
        "group_size": args.group_size, "concurrency": args.concurrency, "config": env.config.model_dump(),
    }

    async def main() -> int:
        from ..rollout._runner import Runner

        cancel_on_sigterm()
        try:
            items = await env.tasks()
            runner = Runner(
                rt, agent, environment=env, backend=args.backend, backend_options=backend_options,
                concurrency=args.concurrency, group_size=args.group_size, out_dir=out, run_info=run_info,
            )
            runner.check(items)
            await prepare_agent(agent)
            await check_backends(runner, items)
            report, interrupted = await run_with_progress(runner, items, args.env, args, quiet=args.json)
        finally:
            await close_agent(agent)
            await rt.aclose()
        resume = resume_command(args, out)
        return print_report(report, f"{args.env} · agent {args.agent}", resume, interrupted, args.json,
                            group_size=args.group_size)

    return asyncio.run(main())
