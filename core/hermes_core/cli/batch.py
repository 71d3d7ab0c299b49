"""``hermes batch``: trajectories for a JSONL file of prompts (resumable)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

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


def register(sub) -> None:
    p = sub.add_parser("batch", help="generate trajectories for a JSONL file of prompts (resumable)",
                       description="Each line of PROMPTS is a JSON object with `prompt` and optionally "
                       "`id`, `system_prompt`, `image`, `backend`, `backend_options`, `toolsets`, "
                       "`files`, `setup`, `max_turns`, `metadata`.")
    p.add_argument("prompts", metavar="PROMPTS.jsonl")
    add_agent_arguments(p, agent_default="openai")
    add_run_arguments(p)
    p.add_argument("--system", help="system prompt for rows that have none")
    p.set_defaults(func=cmd_batch)


def load_prompts(path: str, system: str | None = None) -> list[Any]:
    """Read a prompts JSONL file into task items.

    Raises:
        CliError: the file cannot be read, or a line is malformed (the message names the line).
    """
    from pydantic import ValidationError

    from ..config import validation_message
    from ..rollout._environment import TaskItem

    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise error(f"{path}: cannot read prompts file: {e.strerror}") from None
    items: list[TaskItem] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{path}: line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise error(f"{path}: line {n}: expected a JSON object with a \"prompt\", got {type(row).__name__}")
        row.setdefault("id", f"line-{n}")
        if system and "system_prompt" not in row:
            row["system_prompt"] = system
        try:
            item = TaskItem.model_validate(row)
        except ValidationError as e:
            raise error(validation_message(e, TaskItem, f"{path}: line {n}")) from None
        if item.id in seen:
            raise error(f"{path}: line {n}: id {item.id!r} was already used on line {seen[item.id]}")
        seen[item.id] = n
        items.append(item)
    if not items:
        raise error(f"{path}: no prompts (expected one JSON object per line)")
    return items


def cmd_batch(args: argparse.Namespace) -> int:
    from ..rollout._environment import EnvironmentConfig

    items = load_prompts(args.prompts, args.system)
    rt, env_section = runtime_and_environment(args)
    config = EnvironmentConfig.model_validate({**env_section, **task_config(args)})
    backend_options = backend_options_from_args(rt, args)
    agent = make_agent(rt, args)
    prompts = Path(args.prompts)
    # Two prompt files with the same name in different folders get different default folders.
    where = hashlib.sha256(str(prompts.resolve()).encode()).hexdigest()[:8]
    out = out_dir(args, f"batch-{prompts.stem}-{where}")
    run_info = {"command": "batch", "environment": None, "agent": args.agent, "model": args.model,
                "prompts": str(args.prompts), "prompts_sha256": hashlib.sha256(prompts.read_bytes()).hexdigest(),
                "base_url": args.base_url}

    async def main() -> int:
        from ..rollout._runner import Runner

        cancel_on_sigterm()
        try:
            runner = Runner(
                rt, agent, config=config, backend=args.backend, backend_options=backend_options,
                concurrency=args.concurrency, group_size=args.group_size, out_dir=out, run_info=run_info,
            )
            runner.check(items)
            await prepare_agent(agent)
            await check_backends(runner, items)
            report, interrupted = await run_with_progress(runner, items, Path(args.prompts).name, args)
        finally:
            await close_agent(agent)
            await rt.aclose()
        return print_report(report, f"batch {Path(args.prompts).name}", resume_command(args, out), interrupted, False,
                            group_size=args.group_size)

    return asyncio.run(main())
