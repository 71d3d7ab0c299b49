"""The ``swe`` environment: function tasks (HumanEval style) and repository tasks (SWE-bench)."""

from __future__ import annotations

import asyncio
import re
import secrets
import shlex
from pathlib import Path
from typing import Any

from pydantic import Field

from hermes_core import Environment, EnvironmentConfig, SetupError, TaskItem
from hermes_core.errors import ConfigError, HermesError

from ._data import SAMPLE_DIR, FunctionTask, RepoTask, load_tasks

__all__ = ["Swe", "SweConfig", "SweVerifierError", "verify"]

_DIFF_FILE = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.MULTILINE)
DEFAULT_DATASETS = [str(SAMPLE_DIR / "function_tasks.jsonl"), str(SAMPLE_DIR / "repo_tasks.jsonl")]


class SweVerifierError(HermesError):
    """The tests could not be run (a patch does not apply, the repository is not where expected)."""


class SweConfig(EnvironmentConfig):
    """Config of ``swe`` (see ``default.yaml``)."""

    dataset: list[str] | str | None = Field(
        None, description="JSONL/JSON/parquet file(s) of tasks (default: the bundled samples)."
    )
    timeout: float = Field(1800.0, gt=0, description="Seconds per rollout for setup + agent.")
    verifier_timeout: float = Field(1800.0, gt=0, description="Seconds for the verifier (all tests).")
    function_image: str = Field("python:3.12-slim", description="Image of function tasks that name none.")
    repo_dir: str = Field("/testbed", description="Where repository tasks' images hold the repository.")
    test_cmd: str = Field("python3 -m pytest -q", description="Test command for instances without `test_cmd`.")
    test_timeout: float = Field(300.0, gt=0, description="Seconds per test (function tasks: for the whole check).")
    partial_credit: float = Field(
        0.0, ge=0, le=1, description="Reward of a function task whose tests fail but whose solution file "
        "was written (0: off, the default; the predecessor used 0.1)."
    )
    network: str = Field("none", description="Backend network mode of the sandboxes.")


def _heredoc(text: str) -> tuple[str, str]:
    marker = f"HERMES_EOF_{secrets.token_hex(8)}"
    body = text if text.endswith("\n") else text + "\n"
    return marker, body


def _function_item(t: FunctionTask, cfg: SweConfig) -> TaskItem:
    prompt = (
        f"Complete the Python function `{t.entry_point}` in the file solution.py of the current "
        "directory. The file holds its signature and docstring:\n\n"
        f"```python\n{t.prompt.rstrip()}\n```\n\n"
        "Write the function body (keep the signature and any imports). Hidden tests will call it."
    )
    solution = None
    if t.canonical_solution is not None:
        marker, body = _heredoc(t.prompt + t.canonical_solution)
        solution = f"cat > solution.py <<'{marker}'\n{body}{marker}\n"
    return TaskItem(
        id=t.task_id, prompt=prompt, image=t.image or cfg.function_image, files={"solution.py": t.prompt},
        solution=solution, backend_options={"network": cfg.network, "labels": {"swe.task": t.task_id}},
        metadata={
            "kind": "function", "entry_point": t.entry_point, "test": t.test, "test_setup": t.test_setup,
            "stub": t.prompt, "partial_credit": cfg.partial_credit, "test_timeout": cfg.test_timeout,
        },
    )


def _repo_item(t: RepoTask, cfg: SweConfig, dataset: Path) -> TaskItem:
    opts: dict[str, Any] = {"workdir": cfg.repo_dir, "network": cfg.network, "labels": {"swe.task": t.instance_id}}
    image = t.image_name
    if image is None:
        if t.image_build is None:
            raise ConfigError(
                f"{dataset}: instance {t.instance_id!r} names no image: give `image_name` (a prebuilt per-instance "
                "image) or `image_build` (a build context relative to the dataset file)"
            )
        context = (dataset.parent / t.image_build).resolve()
        if not (context / "Dockerfile").is_file():
            raise ConfigError(f"{dataset}: instance {t.instance_id!r}: {context}/Dockerfile does not exist")
        opts["build"] = {"context": str(context)}
    prompt = (
        f"{t.problem_statement.strip()}\n\n"
        f"The repository {t.repo or ''} is checked out in {cfg.repo_dir} (the current directory) at commit "
        f"{t.base_commit[:12]}. Change the code so that the issue above is resolved. Do not change the tests; "
        "hidden tests will be run afterwards."
    )
    solution = None
    if t.patch:
        marker, body = _heredoc(t.patch)
        solution = f"git apply --whitespace=nowarn - <<'{marker}'\n{body}{marker}\n"
    return TaskItem(
        id=t.instance_id, prompt=prompt, image=image, backend_options=opts, solution=solution,
        metadata={
            "kind": "repo", "repo": t.repo, "base_commit": t.base_commit, "test_patch": t.test_patch,
            "FAIL_TO_PASS": list(t.FAIL_TO_PASS), "PASS_TO_PASS": list(t.PASS_TO_PASS),
            "test_cmd": t.test_cmd or cfg.test_cmd, "test_timeout": cfg.test_timeout, "repo_dir": cfg.repo_dir,
        },
    )


class Swe(Environment):
    """Function and repository tasks; ``--set dataset=FILE`` (default: the bundled samples)."""

    config_model = SweConfig
    verifier = "swe"

    @property
    def cfg(self) -> SweConfig:
        assert isinstance(self.config, SweConfig)
        return self.config

    async def load_tasks(self) -> list[TaskItem]:
        ds = self.cfg.dataset
        paths = DEFAULT_DATASETS if ds is None else [ds] if isinstance(ds, str) else list(ds)
        items: list[TaskItem] = []
        for p in paths:
            path = Path(p).expanduser().resolve()
            for t in await asyncio.to_thread(load_tasks, path):
                items.append(_repo_item(t, self.cfg, path) if isinstance(t, RepoTask) else _function_item(t, self.cfg))
        return items

    async def setup(self, item: TaskItem, ctx: Any) -> None:
        await super().setup(item, ctx)
        if item.metadata.get("kind") != "repo":
            return
        repo, base = item.metadata["repo_dir"], item.metadata["base_commit"]
        r = await ctx.sandbox.exec(
            ["git", "-c", "advice.detachedHead=false", "-C", repo, "checkout", "-q", base, "--"], timeout=120
        )
        head = await ctx.sandbox.exec(["git", "-C", repo, "rev-parse", "HEAD"], timeout=60)
        if r.exit_code != 0 or not head.output.strip().startswith(base):
            raise SetupError(
                f"task {item.id!r}: cannot check out base_commit {base} in {repo}: "
                f"{(r.output or head.output).strip()[-300:]}"
            )


# --------------------------------------------------------------------------- verifiers


async def _verify_function(item: TaskItem, ctx: Any) -> dict[str, float]:
    sb = ctx.sandbox
    meta = item.metadata
    marker = f"HERMES_SWE_PASSED_{secrets.token_hex(12)}"
    try:
        source = (await sb.read_bytes("solution.py")).decode("utf-8", "replace")
    except FileNotFoundError:
        source = None
    passed = 0.0
    if source is not None:
        # What HumanEval's harness runs: the completed program, the tests, then check(entry_point).
        program = "\n".join([
            source, meta.get("test_setup") or "", meta["test"], f"check({meta['entry_point']})",
            f"print({marker!r})", "",
        ])
        path = f"/tmp/hermes-swe-{secrets.token_hex(6)}/run_check.py"
        await sb.write_bytes(path, program.encode())
        r = await sb.exec(["python3", path], timeout=float(meta["test_timeout"]))
        passed = 1.0 if r.exit_code == 0 and r.output.rstrip().endswith(marker) else 0.0
        await sb.exec(["rm", "-rf", "--", path.rsplit("/", 1)[0]], timeout=30)
    reward = passed
    credit = float(meta.get("partial_credit") or 0.0)
    if not passed and credit and source is not None and source != meta.get("stub"):
        reward = credit
    return {"reward": reward, "tests_passed": passed}


async def _verify_repo(item: TaskItem, ctx: Any) -> dict[str, float]:
    sb = ctx.sandbox
    meta = item.metadata
    repo, base = meta["repo_dir"], meta["base_commit"]
    # As SWE-bench's harness does: the files the test patch touches go back to base_commit first,
    # so the agent's edits to tests cannot decide the result.
    for _, path in _DIFF_FILE.findall(meta["test_patch"]):
        exists = await sb.exec(["git", "-C", repo, "cat-file", "-e", f"{base}:{path}"], timeout=60)
        if exists.exit_code == 0:
            await sb.exec(["git", "-C", repo, "checkout", "-q", base, "--", path], timeout=60)
        else:
            await sb.exec(["rm", "-rf", "--", f"{repo}/{path}"], timeout=60)
    if meta["test_patch"].strip():
        patch = f"/tmp/hermes-swe-{secrets.token_hex(6)}.patch"
        await sb.write_bytes(patch, meta["test_patch"].encode())
        r = await sb.exec(["git", "-C", repo, "apply", "--whitespace=nowarn", patch], timeout=120)
        await sb.exec(["rm", "-f", "--", patch], timeout=30)
        if r.exit_code != 0:
            raise SweVerifierError(f"the test_patch of {item.id!r} does not apply: {r.output.strip()[-500:]}")
    scores: dict[str, float] = {}
    ok = {"FAIL_TO_PASS": 0, "PASS_TO_PASS": 0}
    for group, prefix in (("FAIL_TO_PASS", "F2P"), ("PASS_TO_PASS", "P2P")):
        for test in meta[group]:
            r = await sb.exec(["bash", "-c", f"{meta['test_cmd']} {shlex.quote(test)}"], cwd=repo,
                              timeout=float(meta["test_timeout"]))
            passed = r.exit_code == 0
            scores[f"{prefix}:{test}"] = 1.0 if passed else 0.0
            ok[group] += passed
    f2p, p2p = meta["FAIL_TO_PASS"], meta["PASS_TO_PASS"]
    scores["FAIL_TO_PASS"] = ok["FAIL_TO_PASS"] / len(f2p) if f2p else 1.0
    scores["PASS_TO_PASS"] = ok["PASS_TO_PASS"] / len(p2p) if p2p else 1.0
    scores["reward"] = 1.0 if ok["FAIL_TO_PASS"] == len(f2p) and ok["PASS_TO_PASS"] == len(p2p) else 0.0
    return scores


async def verify(item: TaskItem, result: Any, ctx: Any) -> dict[str, float]:
    """Score a ``swe`` rollout: hidden tests of a function task, or FAIL_TO_PASS / PASS_TO_PASS
    of a repository task after applying its test_patch.

    Raises:
        SweVerifierError: the tests could not be run (e.g. the test_patch does not apply).
    """
    kind = item.metadata.get("kind")
    if kind == "function":
        return await _verify_function(item, ctx)
    if kind == "repo":
        return await _verify_repo(item, ctx)
    raise SweVerifierError(f"task {item.id!r} is not a swe task (metadata kind {kind!r})")
