"""``hermes run``: one rollout on a prompt, printed as a conversation."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ._agent_args import (
    add_agent_arguments,
    backend_options_from_args,
    cancel_on_sigterm,
    check_backends,
    close_agent,
    make_agent,
    prepare_agent,
    runtime_and_environment,
    task_config,
)


def register(sub) -> None:
    p = sub.add_parser("run", help="run one agent rollout on a prompt and print the conversation")
    p.add_argument("prompt", metavar="PROMPT")
    add_agent_arguments(p, agent_default="openai")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--out", metavar="DIR", help="also append the rollout to DIR/results.jsonl and DIR/trajectories.jsonl")
    p.add_argument("--json", action="store_true", help="print the result and messages as JSON")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from ..rollout._environment import EnvironmentConfig, TaskItem
    from ._render import print_message

    rt, env_section = runtime_and_environment(args)
    config = EnvironmentConfig.model_validate({**env_section, **task_config(args)})
    item = TaskItem(id="prompt", prompt=args.prompt, system_prompt=args.system)
    backend_options = backend_options_from_args(rt, args)
    if args.out:
        from pathlib import Path

        from ._common import check_out_dir

        check_out_dir(Path(args.out))
    agent = make_agent(rt, args)
    streamed: list[dict[str, Any]] = []
    if not args.json and hasattr(agent, "on_message"):
        # The conversation is printed as it happens, so Ctrl-C keeps what was said.
        def show(message: dict[str, Any]) -> None:
            streamed.append(message)
            print_message(message)

        agent.on_message = show

    async def main() -> Any:
        from ..rollout._runner import Runner

        cancel_on_sigterm()
        try:
            runner = Runner(rt, agent, config=config, backend=args.backend,
                            backend_options=backend_options, out_dir=args.out, guard_resume=False,
                            run_info={"command": "run", "agent": args.agent, "model": args.model})
            runner.check([item])
            await prepare_agent(agent)
            await check_backends(runner, [item])
            return await runner.run_one(item)
        finally:
            await close_agent(agent)
            await rt.aclose()

    rollout = asyncio.run(main())
    if args.json:
        print(json.dumps({**rollout.record, "messages": rollout.result.messages}, indent=2, default=str))
    else:
        from ._render import print_conversation

        shown = len(streamed)
        # Messages the agent did not stream (another agent type, or the runner's own).
        if not streamed:
            print_conversation(rollout.result.messages)
        elif len(rollout.result.messages) > shown:
            print_conversation(rollout.result.messages[shown:])
        rec = rollout.record
        print(f"\nstop: {rec['stop_reason']} · turns {rec['turns']} · tool errors {rec['n_tool_errors']} · "
              f"tokens {rec['usage'].get('total_tokens', 0)} · {rec['duration']:.1f}s", file=sys.stderr)
        if rec["error"]:
            print(f"error: {rec['error']}", file=sys.stderr)
    return 0 if not rollout.record["error"] else 1
