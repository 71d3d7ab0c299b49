"""``HermesAtroposEnv``: an Atropos ``BaseEnv`` serving any registered hermes environment.

Imports ``atroposlib`` (heavy: ~6 s): only loaded when the class is used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

from atroposlib.envs.base import APIServerConfig, BaseEnv, BaseEnvConfig
from pydantic import Field
from pydantic_core import core_schema

from ._groups import GroupStats, build_group, is_infra_failure

__all__ = ["HermesAtroposConfig", "HermesAtroposEnv"]

logger = logging.getLogger("hermes_atropos")


def _json_text(value: Any) -> Any:
    """On the command line a mapping or list arrives as text: JSON (or a comma list)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("{", "[")):
            return json.loads(text)
        return [t for t in text.split(",") if t]
    return value


class JsonMapping(dict):  # type: ignore[type-arg]
    """A mapping option that also takes JSON text (``--env.environment_config '{"tasks": [...]}'``).

    A type of its own, not a validator: atroposlib's CLI copies only field annotations."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        return core_schema.no_info_before_validator_function(_json_text, handler.generate_schema(dict[str, Any]))


class JsonList(list):  # type: ignore[type-arg]
    """A list option that also takes JSON text or ``a,b,c``."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        return core_schema.no_info_before_validator_function(_json_text, handler.generate_schema(list[str]))


class HermesAtroposConfig(BaseEnvConfig):
    """``BaseEnvConfig`` plus what a hermes rollout needs (``--env.<field>`` on the CLI)."""

    environment: str = Field("terminal-test", description="Registered hermes environment to serve.")
    environment_config: JsonMapping = Field(default_factory=dict, description="Config of the environment (over its default config).")
    eval_environment_config: JsonMapping = Field(default_factory=dict, description="Config layer for evaluate (over environment_config).")
    backend: str = Field("local", description="hermes backend for the sandboxes (local, docker, ...).")
    backend_options: JsonMapping = Field(default_factory=dict, description="Options of the backend.")
    toolsets: JsonList | None = Field(None, description="Toolsets offered (default: the environment's).")
    agent: Literal["openai-completions", "openai"] = Field(
        "openai-completions",
        description="openai-completions: token ids in/out (vLLM/SGLang), token-exact; openai: chat completions, "
        "tokens re-tokenized from the conversation.")
    completions_api: Literal["vllm", "sglang"] = Field("vllm", description="Wire format of --openai.base_url for openai-completions.")
    tool_call_parser: str = Field("hermes", description="Registered hermes tool-call parser for the model's output.")
    chat_template: str | None = Field(None, description="Jinja chat template (text or file); default: the tokenizer's.")
    max_turns: int | None = Field(None, ge=1, description="Model turns per rollout (default: the environment's).")
    max_tokens_per_turn: int = Field(1024, ge=1, description="Completion tokens per model turn.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature.")
    allow_text_only: bool = Field(False, description="Accept completions servers that return text without token ids "
                                  "(re-tokenized: not token-exact, no logprobs).")
    infra_retries: int = Field(2, ge=0, description="Times a group's infra-failed rollouts are rerun before the group is dropped.")
    metrics_path: str | None = Field(None, description="Also append every wandb_log / evaluate metrics dict to this JSONL file.")


class HermesAtroposEnv(BaseEnv):
    """Serves the hermes environment ``config.environment`` to Atropos.

    * ``get_next_item``: the environment's tasks, round robin.
    * ``collect_trajectories``: ``group_size`` rollouts through the hermes Runner at once (one
      fresh sandbox each), rewards from the environment's verifier; rollouts that failed for
      infrastructure reasons are rerun up to ``infra_retries`` times, then the group is dropped
      (logged and counted) — never sent short.
    * ``evaluate``: every task of the eval config once; metrics through ``evaluate_log``.
    * ``wandb_log``: reward mean/std, turns, tool calls and errors (by kind), infra errors,
      retried and dropped groups.
    """

    name = "hermes"
    env_config_cls = HermesAtroposConfig

    @classmethod
    def config_init(cls) -> tuple[HermesAtroposConfig, list[APIServerConfig]]:
        config = HermesAtroposConfig(group_size=4, use_wandb=True, max_token_length=8192, wandb_name="hermes")
        server = APIServerConfig(base_url="http://127.0.0.1:8000/v1", model_name="default", api_key="EMPTY",
                                 server_type="openai", health_check=False)
        return config, [server]

    # ------------------------------------------------------------------ setup

    async def setup(self) -> None:
        from hermes_core import Runtime

        self.stats = GroupStats()
        self.runtime = Runtime()
        self.hermes_env = self._make_environment(self.config.environment_config)
        self.items = await self.hermes_env.tasks()
        if not self.items:
            raise ValueError(f"hermes environment {self.config.environment!r} has no tasks with this config")
        self.iter = 0
        self.agents = [self._make_agent(s.config) for s in self.server.servers]
        self.runners = [self._runner(a, self.hermes_env) for a in self.agents]
        self.runners[0].check(self.items)  # unknown backend, options, toolsets fail here, not mid-run
        self._group_counter = 0

    def _make_environment(self, *layers: dict[str, Any]) -> Any:
        spec = self.runtime.environments.get(self.config.environment)
        return spec.cls.from_config(spec.default_config, *layers)

    def _template(self) -> Any:
        from hermes_plugins.parsers import ChatTemplate

        if not hasattr(self, "_chat_template"):
            self._chat_template = ChatTemplate.load(self.tokenizer, self.config.chat_template)
        return self._chat_template

    def _make_agent(self, server: Any) -> Any:
        cfg = self.config
        if cfg.agent == "openai":
            from hermes_core import OpenAIAgent

            self._template()  # fail at start when the tokenizer cannot render the conversations
            return OpenAIAgent(server.model_name, base_url=server.base_url, api_key=server.api_key or None,
                               temperature=cfg.temperature, max_tokens=cfg.max_tokens_per_turn,
                               request_timeout=float(server.timeout))
        from hermes_plugins.parsers import CompletionsAgent, get_parser

        base = server.base_url.rstrip("/")
        if cfg.completions_api == "sglang" and base.endswith("/v1"):
            base = base[:-3]
        return CompletionsAgent(
            base, self._template(), parser=get_parser(cfg.tool_call_parser, self.runtime), model=server.model_name,
            server=cfg.completions_api, temperature=cfg.temperature, max_tokens=cfg.max_tokens_per_turn,
            max_context=cfg.max_token_length - 1 if cfg.max_token_length > 0 else None,
            request_timeout=float(server.timeout), api_key=server.api_key or None, allow_text_only=cfg.allow_text_only,
        )

    def _runner(self, agent: Any, environment: Any) -> Any:
        from hermes_core import Runner

        return Runner(self.runtime, agent, environment=environment, backend=self.config.backend,
                      backend_options=self.config.backend_options, toolsets=self.config.toolsets,
                      concurrency=max(1, self.config.group_size), group_size=1)

    def _tools(self, item: Any) -> list[dict[str, Any]]:
        _, _, toolsets = self.runners[0].sandbox_plan(item)
        return [spec.schema() for spec in self.runtime.tool_specs(toolsets).values() if spec.available()]

    # ------------------------------------------------------------------ training

    async def get_next_item(self) -> Any:
        item = self.items[self.iter % len(self.items)]
        self.iter += 1
        return item

    async def collect_trajectory(self, item: Any) -> tuple[Any, list[Any]]:
        raise NotImplementedError("HermesAtroposEnv scores whole groups in collect_trajectories")

    async def _group(self, runner: Any, item: Any, size: int, stats: GroupStats | None) -> list[Any] | None:
        """``size`` rollouts of ``item`` with no infra failure, or ``None`` (dropped)."""
        cap = self.max_token_len if self.max_token_len > 0 else None
        agent = runner.agent
        if cap is not None and getattr(agent, "max_context", None) is not None:
            agent.max_context = min(agent.max_context, cap - 1)
        self._group_counter += 1
        base = self._group_counter * 1000
        good: list[Any] = []
        need = size
        for attempt in range(self.config.infra_retries + 1):
            rollouts = await asyncio.gather(*(runner.run_one(item, base + attempt * size + g) for g in range(need)))
            failed = []
            for r in rollouts:
                if stats is not None:
                    stats.add_rollout(r)
                reason = is_infra_failure(r)
                (failed if reason else good).append(reason or r)
            if not failed:
                return good
            need = len(failed)
            logger.warning("task %s: %d of %d rollouts failed for infrastructure reasons (%s)%s", item.id, need, size,
                           failed[0], "; rerunning them" if attempt < self.config.infra_retries else "")
            if stats is not None and attempt < self.config.infra_retries:
                stats.groups_retried += 1
        if stats is not None:
            stats.groups_dropped += 1
        logger.error("task %s: group dropped after %d attempts: rollouts kept failing for infrastructure reasons",
                     item.id, self.config.infra_retries + 1)
        return None

    async def collect_trajectories(self, item: Any) -> tuple[dict[str, Any] | None, list[Any]]:
        runner = self.runners[self._group_counter % len(self.runners)]
        rollouts = await self._group(runner, item, self.config.group_size, self.stats)
        if rollouts is None:
            return None, []
        # Tool schemas are only needed to re-tokenize chat-completions rollouts.
        tokenized = all(getattr(r.result, "tokens", None) for r in rollouts)
        group = build_group(rollouts, self._template(), None if tokenized else self._tools(item))
        self.stats.groups_sent += 1
        return group, []

    # ------------------------------------------------------------------ evaluation

    async def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        start = time.time()
        env = self._make_environment(self.config.environment_config, self.config.eval_environment_config)
        items = await env.tasks()
        runner = self._runner(self.agents[0], env)
        stats = GroupStats()
        sem = asyncio.Semaphore(max(1, self.config.max_eval_workers))

        async def one(item: Any) -> Any:
            async with sem:
                rollout = await runner.run_one(item, 0)
                stats.add_rollout(rollout)
                return rollout

        rollouts = await asyncio.gather(*(one(i) for i in items))
        scored = [r for r in rollouts if is_infra_failure(r) is None]
        metrics = stats.metrics("eval")
        metrics["eval/tasks"] = float(len(items))
        metrics["eval/pass_rate"] = (sum(1 for r in scored if r.record.get("passed")) / len(scored)) if scored else 0.0
        samples = [{"task_id": r.record["task_id"], "reward": r.record["reward"], "passed": r.record.get("passed"),
                    "turns": r.record["turns"], "error": r.record.get("error"), "messages": r.result.messages}
                   for r in rollouts]
        await self.evaluate_log(metrics, task_name=f"hermes_{self.config.environment}", start_time=start,
                                end_time=time.time(), samples=samples,
                                generation_parameters={"temperature": self.config.temperature,
                                                       "max_tokens": self.config.max_tokens_per_turn})
        self._write_metrics("evaluate", metrics)
        if self.config.use_wandb:
            import wandb

            if wandb.run is not None:
                wandb.log(metrics, step=self.curr_step)
        return metrics

    # ------------------------------------------------------------------ logging

    async def wandb_log(self, wandb_metrics: dict[str, Any] | None = None) -> None:
        metrics = dict(wandb_metrics or {})
        stats = getattr(self, "stats", None)
        if stats is not None:
            metrics.update(stats.metrics("train"))
            self.stats = GroupStats()
        self._write_metrics("train", metrics)
        await super().wandb_log(metrics)

    def _write_metrics(self, kind: str, metrics: dict[str, Any]) -> None:
        if not self.config.metrics_path:
            return
        path = Path(self.config.metrics_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {"kind": kind, "step": self.curr_step, "time": time.time(),
                **{k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}}
        with path.open("a") as f:
            f.write(json.dumps(line) + "\n")

    async def cleanup(self) -> None:
        """Called by atroposlib after every group; the hermes runtime stays up until close."""

    async def aclose(self) -> None:
        for agent in getattr(self, "agents", []):
            close = getattr(agent, "aclose", None)
            if close is not None:
                await close()
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            await runtime.aclose()
