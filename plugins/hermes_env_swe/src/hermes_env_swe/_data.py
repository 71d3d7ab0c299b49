"""SWE task formats: HumanEval-style function tasks and SWE-bench repository instances.

Read from JSONL, JSON (a list) or parquet; the format of each row is told by its keys
(``instance_id`` → repository task, ``entry_point`` → function task).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hermes_core.config import validation_message
from hermes_core.errors import ConfigError

__all__ = ["FunctionTask", "RepoTask", "load_rows", "load_tasks", "SAMPLE_DIR"]

SAMPLE_DIR = Path(__file__).with_name("sample")


class FunctionTask(BaseModel):
    """A HumanEval-style task: complete a function; hidden tests call ``check(candidate)``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    task_id: str = Field(min_length=1)
    prompt: str
    entry_point: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    test: str
    canonical_solution: str | None = None
    #: HumanEvalPack names the test-harness import line separately; prepended to the tests.
    test_setup: str | None = None
    image: str | None = None


def _json_list(v: Any) -> Any:
    if isinstance(v, str):
        try:
            v = json.loads(v) if v.strip() else []
        except json.JSONDecodeError:
            raise ValueError(f"expected a JSON list of test ids, got {v[:80]!r}") from None
    return v


class RepoTask(BaseModel):
    """A SWE-bench instance (the extra keys of the dataset are kept in ``extra``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    instance_id: str = Field(min_length=1)
    repo: str = ""
    base_commit: str = Field(min_length=4)
    problem_statement: str
    patch: str | None = None
    test_patch: str = ""
    FAIL_TO_PASS: list[str] = Field(default_factory=list)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    #: The per-instance image (``image_name`` in SWE-bench-style datasets that ship one).
    image_name: str | None = None
    #: hermes addition: a build context (relative to the dataset file) for the instance's image.
    image_build: str | None = None
    #: hermes addition: the command a test id is appended to (SWE-bench derives it from repo/version).
    test_cmd: str | None = None

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _json_list(v)


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL, JSON or parquet file.

    Raises:
        ConfigError: unreadable or malformed (the message names the line).
    """
    if not path.is_file():
        raise ConfigError(f"dataset {path} does not exist (set it with --set dataset=FILE)")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("reading parquet datasets needs pyarrow: pip install pyarrow") from None
        return pq.read_table(path).to_pylist()
    text = path.read_text()
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(data, list):
            raise ConfigError(f"{path}: expected a JSON list of tasks")
        return data
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: line {n}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: line {n}: expected a JSON object")
        rows.append(row)
    return rows


def load_tasks(path: Path) -> list[FunctionTask | RepoTask]:
    """Parse every row of ``path`` as a function or repository task.

    Raises:
        ConfigError: a row is neither, or a key is missing or invalid (the message names the row).
    """
    out: list[FunctionTask | RepoTask] = []
    for n, row in enumerate(load_rows(path), 1):
        model: type[BaseModel]
        if "instance_id" in row:
            model = RepoTask
        elif "entry_point" in row:
            model = FunctionTask
        else:
            raise ConfigError(
                f"{path}: row {n}: neither a SWE-bench instance (instance_id, base_commit, ...) nor a "
                "function task (task_id, prompt, entry_point, test)"
            )
        try:
            out.append(model.model_validate(row))  # type: ignore[arg-type]
        except ValidationError as e:
            raise ConfigError(validation_message(e, model, f"{path}: row {n}")) from None
    if not out:
        raise ConfigError(f"{path}: no tasks")
    return out
