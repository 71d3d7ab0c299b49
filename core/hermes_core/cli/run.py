"""``hermes run``: one rollout on a prompt, printed as a readable transcript as it happens."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
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
    p = sub.add_parser("run", help="run one agent rollout on a prompt and print the conversation",
                       description="Run one rollout on PROMPT in a fresh sandbox and print the conversation "
                       "as it happens: role labels, reasoning labelled, tool calls as name(args), tool "
                       "results decoded (output as text, exit code on the header line, long output folded).")
    p.add_argument("prompt", metavar="PROMPT")
    add_agent_arguments(p, agent_default="openai")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--out", metavar="DIR", help="also append the rollout to DIR/results.jsonl and DIR/trajectories.jsonl "
                   "(an interrupted rollout too, marked interrupted)")
    p.add_argument("--json", action="store_true",
                   help="print the raw messages instead, one JSON object per line, as they happen")
    p.add_argument("--full", action="store_true", help="do not fold long tool output or reasoning")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from ..rollout._environment import EnvironmentConfig, TaskItem

    rt, env_section = runtime_and_environment(args)
    config = EnvironmentConfig.model_validate({**env_section, **task_config(args)})
    item = TaskItem(id="prompt", prompt=args.prompt, system_prompt=args.system)
    backend_options = backend_options_from_args(rt, args)
    if args.out:
        from pathlib import Path

        from ._common import check_out_dir

        check_out_dir(Path(args.out))
    agent = make_agent(rt, args)
    if args.json:
        def emit(message: dict[str, Any]) -> None:
            sys.stdout.write(json.dumps(message, ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
    else:
        from ._render import transcript_printer

        emit = transcript_printer(full=args.full).print
    streamed: list[dict[str, Any]] = []
    if hasattr(agent, "on_message"):
        # Messages are shown as they happen, so Ctrl-C keeps what was said (and --out writes it).
        def show(message: dict[str, Any]) -> None:
            streamed.append(message)
            emit(message)

        agent.on_message = show

    async def main() -> Any:
        from ..rollout._runner import Runner

        cancel_on_sigterm()
        runner = None
        started = None
        try:
            runner = Runner(rt, agent, config=config, backend=args.backend,
                            backend_options=backend_options, out_dir=args.out, guard_resume=False,
                            run_info={"command": "run", "agent": args.agent, "model": args.model})
            runner.check([item])
            await prepare_agent(agent)
            await check_backends(runner, [item])
            started = time.monotonic()
            return await runner.run_one(item)
        except asyncio.CancelledError:
            if runner is not None and runner.out is not None and started is not None:
                await _write_interrupted(runner, item, streamed, config, time.monotonic() - started)
            raise
        finally:
            await close_agent(agent)
            await rt.aclose()

    try:
        rollout = asyncio.run(main())
    except asyncio.CancelledError:  # SIGTERM: reported like Ctrl-C
        raise KeyboardInterrupt from None
    # Messages the agent did not stream (another agent type, or the runner's own).
    for m in rollout.result.messages[len(streamed):]:
        emit(m)
    rec = rollout.record
    print(f"\nstop: {rec['stop_reason']} · turns {rec['turns']} · tool errors {rec['n_tool_errors']} · "
          f"tokens {rec['usage'].get('total_tokens', 0)} · {rec['duration']:.1f}s", file=sys.stderr)
    if rec["error"]:
        print(f"error: {rec['error']}", file=sys.stderr)
    return 0 if not rec["error"] else 1


async def _write_interrupted(runner: Any, item: Any, streamed: list[dict[str, Any]], config: Any,
                             duration: float) -> None:
    """Append the conversation so far to ``--out``, marked interrupted (not scored)."""
    from ..rollout._agent import initial_messages, to_sharegpt
    from ..rollout._runner import rollout_id

    messages = list(streamed) or initial_messages(item, config.system_prompt)
    backend, _, _ = runner.sandbox_plan(item)
    rid = rollout_id(item.id, 0)
    record = {
        "rollout_id": rid, "task_id": item.id, "group_index": 0, "reward": None, "scores": {}, "passed": False,
        "finished": False, "stop_reason": "interrupted", "interrupted": True,
        "turns": sum(1 for m in messages if m.get("role") == "assistant"),
        "n_tool_errors": 0, "tool_errors": [], "usage": {},
        "error": "interrupted (Ctrl-C) before the rollout finished: the conversation so far is kept, not scored",
        "infra_error": False, "infra_kind": None, "agent_error": None, "verifier_error": None,
        "backend": backend, "image": None, "image_unused": None, "sandbox_id": None, "duration": round(duration, 4),
    }
    trajectory = {"rollout_id": rid, "task_id": item.id, "group_index": 0, "reward": None, "interrupted": True,
                  "messages": messages, "conversations": to_sharegpt(messages)}
    try:
        await runner.out.append(record, trajectory)
    except OSError as e:
        print(f"hermes: could not write the interrupted rollout to {runner.out.path}: {e}", file=sys.stderr)
        return
    print(f"hermes: wrote the interrupted rollout ({len(messages)} messages) to {runner.out.path}", file=sys.stderr)
