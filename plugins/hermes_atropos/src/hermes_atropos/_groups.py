"""From finished hermes rollouts to Atropos groups, and the metrics logged about them.

Nothing here imports atroposlib: a group is the plain dict a ``ScoredDataGroup`` is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["is_infra_failure", "rollout_sequence", "build_group", "GroupStats"]


def is_infra_failure(rollout: Any) -> str | None:
    """Why a rollout says nothing about the policy (so its group must not be trained on), or
    ``None``: the sandbox or the task's setup failed, the prompt alone is too long, the model
    server failed or produced nothing before the deadline, or the verifier failed."""
    record = rollout.record
    if record.get("infra_error"):
        return record.get("error") or "infra error"
    if rollout.result.stop_reason == "length" and rollout.result.turns == 0:
        return "the prompt alone reaches max_token_length (raise --env.max_token_length)"
    if rollout.result.stop_reason == "api_error":
        return rollout.result.error or "model server error"
    masks = getattr(rollout.result, "masks", None)
    if masks is not None and getattr(rollout.result, "tokens", None) and not any(m != -100 for m in masks):
        return f"the model produced no tokens before the rollout stopped ({rollout.result.stop_reason})"
    if record.get("verifier_error"):
        return f"verifier: {record['verifier_error']}"
    reward = record.get("reward")
    if reward is None or not math.isfinite(float(reward)):
        return f"no finite reward ({reward!r})"
    return None


def rollout_sequence(rollout: Any, template: Any, tools: Sequence[dict[str, Any]] | None) -> tuple[list[int], list[int], list[float] | None]:
    """``(tokens, masks, logprobs)`` of a rollout: the agent's own token trajectory when it has
    one (``openai-completions``), else the conversation re-tokenized with the chat template, the
    assistant turns trained (``logprobs`` is then ``None``: nothing was sampled token by token)."""
    result = rollout.result
    tokens = getattr(result, "tokens", None)
    if tokens:
        masks, lps = list(result.masks), list(result.logprobs)
        if not (len(tokens) == len(masks) == len(lps)):
            raise ValueError(f"misaligned rollout: {len(tokens)} tokens, {len(masks)} masks, {len(lps)} logprobs")
        return list(tokens), masks, lps
    tokens, masks = template.tokenize_conversation(result.messages, tools)
    return tokens, masks, None


def _wire_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        msg = dict(m)
        if msg.get("content") is None:
            msg["content"] = ""
        out.append(msg)
    return out


def build_group(rollouts: Sequence[Any], template: Any, tools: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
    """A ``ScoredDataGroup`` dict: ``tokens``, ``masks``, ``scores`` (the verifier's rewards),
    ``messages``, and ``inference_logprobs`` when every rollout has them.

    Raises:
        ValueError: a rollout has no finite reward or misaligned tokens.
    """
    group: dict[str, Any] = {"tokens": [], "masks": [], "scores": [], "messages": [], "inference_logprobs": []}
    all_lps = True
    for r in rollouts:
        reason = is_infra_failure(r)
        if reason is not None:
            raise ValueError(f"rollout {r.record.get('rollout_id')} cannot be trained on: {reason}")
        tokens, masks, lps = rollout_sequence(r, template, tools)
        group["tokens"].append(tokens)
        group["masks"].append(masks)
        group["scores"].append(float(r.record["reward"]))
        group["messages"].append(_wire_messages(r.result.messages))
        if lps is None:
            all_lps = False
        else:
            group["inference_logprobs"].append(lps)
    if not all_lps:
        group["inference_logprobs"] = None
    return group


@dataclass
class GroupStats:
    """Counters between two ``wandb_log`` calls."""

    rewards: list[float] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)
    tool_calls: int = 0
    tool_errors: int = 0
    malformed_tool_calls: int = 0
    rollouts: int = 0
    infra_errors: int = 0
    groups_sent: int = 0
    groups_retried: int = 0
    groups_dropped: int = 0
    misaligned: int = 0
    tool_error_kinds: dict[str, int] = field(default_factory=dict)

    def add_rollout(self, rollout: Any) -> None:
        self.rollouts += 1
        if is_infra_failure(rollout) is not None:
            self.infra_errors += 1
            return
        self.rewards.append(float(rollout.record["reward"]))
        self.turns.append(int(rollout.record.get("turns") or 0))
        self.tool_calls += sum(1 for m in rollout.result.messages if m.get("role") == "tool")
        for e in rollout.result.tool_errors:
            self.tool_errors += 1
            self.tool_error_kinds[e.kind] = self.tool_error_kinds.get(e.kind, 0) + 1
            if e.kind == "malformed_tool_call":
                self.malformed_tool_calls += 1
        if getattr(rollout.result, "aligned", True) is False:
            self.misaligned += 1

    def metrics(self, prefix: str = "train") -> dict[str, float]:
        n = len(self.rewards)
        mean = sum(self.rewards) / n if n else 0.0
        std = math.sqrt(sum((x - mean) ** 2 for x in self.rewards) / n) if n else 0.0
        attempts = self.tool_calls + self.malformed_tool_calls
        out = {
            f"{prefix}/reward_mean": mean,
            f"{prefix}/reward_std": std,
            f"{prefix}/turns_mean": (sum(self.turns) / len(self.turns)) if self.turns else 0.0,
            f"{prefix}/tool_calls": float(self.tool_calls),
            f"{prefix}/tool_errors_count": float(self.tool_errors),
            f"{prefix}/tool_error_rate": (self.tool_errors / attempts) if attempts else 0.0,
            f"{prefix}/malformed_tool_calls": float(self.malformed_tool_calls),
            f"{prefix}/rollouts": float(self.rollouts),
            f"{prefix}/infra_errors": float(self.infra_errors),
            f"{prefix}/infra_error_rate": (self.infra_errors / self.rollouts) if self.rollouts else 0.0,
            f"{prefix}/groups_sent": float(self.groups_sent),
            f"{prefix}/groups_retried": float(self.groups_retried),
            f"{prefix}/groups_dropped": float(self.groups_dropped),
            f"{prefix}/misaligned_rollouts": float(self.misaligned),
        }
        for kind, count in sorted(self.tool_error_kinds.items()):
            out[f"{prefix}/tool_errors/{kind}"] = float(count)
        return out
