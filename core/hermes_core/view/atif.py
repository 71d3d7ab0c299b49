"""Export rollouts to ATIF, the Agent Trajectory Interchange Format of Harbor (RFC 0001), v1.6.

One JSON file per rollout. Messages map to steps: ``system`` → a system step, ``user`` → a
user step, ``assistant`` → an agent step (its ``reasoning_content`` or leading ``<think>``
block as ``reasoning_content``, its tool calls with parsed arguments), and the ``tool``
messages that answer it → that step's ``observation.results`` (``source_call_id`` = the call
id; ``content`` = exactly what the model was shown). Images (``data:image/...`` in OpenAI
content parts) are written next to the file and referenced by relative path, as ATIF wants.
Reward, scores, stop reason and the verifier's error go to ``final_metrics.extra`` and
``extra.hermes``; token totals to ``final_metrics``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .loader import Run, _safe_name

__all__ = ["SCHEMA_VERSION", "export_run", "to_atif"]

SCHEMA_VERSION = "ATIF-v1.6"
_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.S)
_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|gif|webp));base64,(.*)$", re.S)
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hermes-core")
    except PackageNotFoundError:
        return "unknown"


class _Images:
    """Writes the images of one trajectory to ``<stem>.images/`` and returns their paths."""

    def __init__(self, folder: Path | None, rel: str):
        self.folder, self.rel, self.count = folder, rel, 0

    def part(self, url: Any) -> dict[str, Any] | None:
        m = _DATA_URL.match(url) if isinstance(url, str) else None
        if m is None or self.folder is None:
            return None
        try:
            data = base64.b64decode(m.group(2), validate=False)
        except (binascii.Error, ValueError):
            return None
        self.count += 1
        name = f"{self.count}.{_EXT[m.group(1)]}"
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / name).write_bytes(data)
        return {"type": "image", "source": {"media_type": m.group(1), "path": f"{self.rel}/{name}"}}


def _content(value: Any, images: _Images) -> str | list[dict[str, Any]]:
    """A message's content: a string as it is; OpenAI content parts as ATIF content parts."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        parts: list[dict[str, Any]] = []
        for p in value:
            if isinstance(p, Mapping) and p.get("type") == "text":
                parts.append({"type": "text", "text": str(p.get("text", ""))})
                continue
            if isinstance(p, Mapping) and p.get("type") in ("image_url", "image"):
                url = p.get("image_url")
                url = url.get("url") if isinstance(url, Mapping) else url
                img = images.part(url)
                if img is not None:
                    parts.append(img)
                    continue
            parts.append({"type": "text", "text": json.dumps(p, ensure_ascii=False, default=str)})
        if all(p["type"] == "text" for p in parts):
            return "".join(p["text"] for p in parts)
        return parts
    return json.dumps(value, ensure_ascii=False, default=str)


def to_atif(
    record: Mapping[str, Any],
    trajectory: Mapping[str, Any],
    run_info: Mapping[str, Any] | None = None,
    *,
    session_id: str | None = None,
    images_dir: Path | None = None,
    images_rel: str = "images",
) -> dict[str, Any]:
    """One rollout as an ATIF trajectory (a JSON-ready dict).

    Args:
        record: the rollout's line of ``results.jsonl``.
        trajectory: its line of ``trajectories.jsonl`` (``messages``, optional ``tools``, ``sampling``).
        run_info: ``summary.json`` → ``run`` (agent, model, environment).
        session_id: default ``rollout_id``.
        images_dir: where to write images; without it images become their JSON text.
        images_rel: how the file refers to ``images_dir``.

    Raises:
        ValueError: the trajectory has no messages (ATIF needs at least one step).
    """
    info = dict(run_info or {})
    images = _Images(images_dir, images_rel)
    messages = [m for m in trajectory.get("messages") or [] if isinstance(m, Mapping)]
    if not messages:
        raise ValueError(f"rollout {record.get('rollout_id')!r} has no messages")
    steps: list[dict[str, Any]] = []
    last_agent: dict[str, Any] | None = None
    for m in messages:
        role = m.get("role")
        if role == "tool":
            result = {"source_call_id": m.get("tool_call_id"), "content": _content(m.get("content"), images)}
            if result["source_call_id"] is None:
                del result["source_call_id"]
            holder = last_agent
            if holder is None:  # a tool result nothing asked for: a system event
                holder = {"source": "system", "message": ""}
                steps.append(holder)
            holder.setdefault("observation", {"results": []})["results"].append(result)
            continue
        if role == "assistant":
            content = m.get("content")
            reasoning = m.get("reasoning_content") or m.get("reasoning")
            if isinstance(content, str) and not reasoning:
                think = _THINK.match(content)
                if think:
                    reasoning, content = think.group(1).strip(), content[think.end():]
            step: dict[str, Any] = {"source": "agent", "message": _content(content, images)}
            if reasoning:
                step["reasoning_content"] = str(reasoning)
            calls, unparsed = [], {}
            for i, call in enumerate(m.get("tool_calls") or []):
                if not isinstance(call, Mapping):
                    continue
                fn = call.get("function") if isinstance(call.get("function"), Mapping) else {}
                raw = fn.get("arguments")
                try:
                    args = json.loads(raw) if isinstance(raw, str) and raw.strip() else (raw if isinstance(raw, Mapping) else {})
                except ValueError:
                    args = None
                cid = str(call.get("id") or f"call_{len(steps)}_{i}")
                if not isinstance(args, Mapping):
                    unparsed[cid] = raw
                    args = {}
                calls.append({"tool_call_id": cid, "function_name": str(fn.get("name") or ""), "arguments": dict(args)})
            if calls:
                step["tool_calls"] = calls
            if unparsed:
                step["extra"] = {"unparsed_arguments": unparsed}
            steps.append(step)
            last_agent = step
            continue
        steps.append({"source": "user" if role == "user" else "system", "message": _content(m.get("content"), images)})
        if role not in ("user", "system"):
            steps[-1]["extra"] = {"role": role}
        last_agent = None if role == "user" else last_agent
    for i, step in enumerate(steps, 1):
        step["step_id"] = i
    usage = record.get("usage") if isinstance(record.get("usage"), Mapping) else {}
    final: dict[str, Any] = {"total_steps": len(steps)}
    for src, dst in (("prompt_tokens", "total_prompt_tokens"), ("completion_tokens", "total_completion_tokens")):
        if isinstance(usage.get(src), int):
            final[dst] = usage[src]
    final["extra"] = {k: record.get(k) for k in ("reward", "scores", "passed", "stop_reason", "turns", "n_tool_errors",
                                                 "duration", "timings") if record.get(k) is not None}
    agent: dict[str, Any] = {"name": str(info.get("agent") or "hermes"), "version": _version()}
    sampling = trajectory.get("sampling") if isinstance(trajectory.get("sampling"), Mapping) else info.get("sampling")
    model = info.get("model") or (sampling.get("model") if isinstance(sampling, Mapping) else None)
    if model:
        agent["model_name"] = str(model)
    agent_extra: dict[str, Any] = {"framework": "hermes-core"}
    if sampling:
        agent_extra["sampling"] = sampling
    if trajectory.get("tools"):
        agent_extra["tool_definitions"] = trajectory["tools"]
    agent["extra"] = agent_extra
    hermes = {k: record.get(k) for k in ("rollout_id", "task_id", "group_index", "error", "infra_error", "agent_error",
                                         "verifier_error", "verifier_traceback", "tool_errors", "backend", "image",
                                         "sandbox_id") if record.get(k) not in (None, [], "")}
    hermes["run"] = {k: info.get(k) for k in ("command", "environment", "agent", "model", "backend", "group_size") if k in info}
    return {
        "schema_version": SCHEMA_VERSION,
        "session_id": session_id or str(record.get("rollout_id")),
        "agent": agent,
        "steps": steps,
        "final_metrics": final,
        "extra": {"hermes": hermes},
    }


def export_run(run: Run, out_dir: str | Path) -> dict[str, int]:
    """Write every rollout of ``run`` as ``<out_dir>/<rollout_id>.json`` (images beside it).

    Returns:
        ``{"written": ..., "skipped": ...}`` (skipped: no trajectory or no messages).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {"written": 0, "skipped": 0}
    used: set[str] = set()
    for n, rec in enumerate(run.records):
        traj = run.trajectory(n)
        stem = _safe_name(str(rec["rollout_id"]))
        base, k = stem, 1
        while stem in used:  # `hermes run --out` repeats prompt#0
            k += 1
            stem = f"{base}~{k}"
        used.add(stem)
        if traj is None:
            counts["skipped"] += 1
            continue
        try:
            doc = to_atif(rec, traj, run.info, session_id=f"{run.name}/{rec['rollout_id']}",
                          images_dir=out / f"{stem}.images", images_rel=f"{stem}.images")
        except ValueError:
            counts["skipped"] += 1
            continue
        tmp = out / f".{stem}.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        tmp.replace(out / f"{stem}.json")
        counts["written"] += 1
    return counts
