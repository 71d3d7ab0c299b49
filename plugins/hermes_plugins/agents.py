"""Registers the built-in agents (implementation in ``_agents``, loaded on first use):
``openai`` (the model-driven loop) and ``oracle`` (a task's reference solution, the way
benchmark harnesses validate their tasks)."""

from __future__ import annotations

from hermes_core import AgentRegistry, hookimpl


@hookimpl
def hermes_register_agents(registry: AgentRegistry) -> None:
    registry.register(
        "openai",
        "hermes_plugins._agents:openai_factory",
        description="the agent loop over an OpenAI-compatible chat-completions endpoint (--model, --base-url)",
    )
    registry.register(
        "oracle",
        "hermes_plugins._agents:oracle_factory",
        description="runs each task's reference solution (validates tasks; needs no model)",
    )
