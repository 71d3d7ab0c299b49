"""Open run directories lazily: index ``results.jsonl``, read one trajectory by byte offset.

Opening a run reads ``summary.json`` and ``results.jsonl`` (one small record per rollout) and
nothing of ``trajectories.jsonl``. The first time a trajectory is asked for, the trajectories
file is scanned forward only as far as that rollout, remembering the byte offset of each line
by its ``rollout_id`` prefix (no JSON parsing of the lines skipped); later reads seek straight
to the line. The runner writes trajectories in the order of the results, so the scan for the
n-th rollout usually stops at line n.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from hermes_core.errors import HermesError

from .stats import RunStats, passed, run_stats, tokens

__all__ = ["RESULTS", "SUMMARY", "TRAJECTORIES", "Filter", "Run", "ViewError", "open_runs"]

RESULTS = "results.jsonl"
TRAJECTORIES = "trajectories.jsonl"
SUMMARY = "summary.json"
_PREFIX = b'{"rollout_id": "'


class ViewError(HermesError):
    """Bad input to ``hermes view``: printed as one line, exit code 2."""


@dataclass(frozen=True)
class Filter:
    """Which rollouts a listing shows. Every set condition must hold."""

    failed: bool = False
    infra: bool = False
    task: str | None = None
    min_reward: float | None = None
    max_reward: float | None = None

    def __call__(self, rec: Mapping[str, Any]) -> bool:
        if self.failed and passed(_reward(rec)):
            return False
        if self.infra and not rec.get("infra_error"):
            return False
        if self.task and rec.get("task_id") != self.task:
            return False
        r = _reward(rec)
        if self.min_reward is not None and (r is None or r < self.min_reward):
            return False
        if self.max_reward is not None and (r is None or r > self.max_reward):
            return False
        return True

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filter:
        """From URL query values (``failed=1&infra=1&task=T&min=0&max=0.5``); bad numbers are ignored."""
        def num(key: str) -> float | None:
            try:
                return float(query[key]) if query.get(key, "") != "" else None
            except ValueError:
                return None

        return cls(
            failed=query.get("failed") in ("1", "on", "true"),
            infra=query.get("infra") in ("1", "on", "true"),
            task=query.get("task") or None,
            min_reward=num("min"),
            max_reward=num("max"),
        )

    def active(self) -> bool:
        return self != Filter()


def _reward(rec: Mapping[str, Any]) -> float | None:
    r = rec.get("reward")
    return float(r) if isinstance(r, (int, float)) and not isinstance(r, bool) else None


@dataclass
class Run:
    """One run directory, opened lazily.

    Attributes:
        path: the directory.
        index: position of this run among the runs being viewed (used in links).
        summary: ``summary.json`` (``{}`` when missing or unreadable).
        records: the rows of ``results.jsonl`` in file order; each gets a ``_n`` key (its
            position) so rollouts with the same ``rollout_id`` (``hermes run --out`` appends
            ``prompt#0`` each time) stay distinct.
        bad_lines: complete lines of ``results.jsonl`` that did not parse.
        incomplete_tail: the last line of ``results.jsonl`` has no newline yet (a rollout being
            written, or a write cut short by a crash); it is read by :meth:`refresh` once complete.
    """

    path: Path
    index: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self.incomplete_tail = False
        self._results_pos = 0
        self._results_size = -1
        self._results_id: tuple[int, int] | None = None
        self._summary_key: tuple[int, int] | None = None
        self._seen: dict[str, int] = {}
        self._offsets: dict[tuple[str, int], int] = {}
        self._scan_pos = 0
        self._scan_seen: dict[str, int] = {}
        self._occurrence: list[int] = []

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | Path, index: int = 0) -> Run:
        """Read ``summary.json`` and index ``results.jsonl`` (trajectories are not read).

        Raises:
            ViewError: the path is not a directory or holds no ``results.jsonl``.
        """
        p = Path(path)
        if not p.exists():
            raise ViewError(f"{str(p)!r} does not exist; give a run directory written by `hermes eval --out DIR`")
        if not p.is_dir():
            raise ViewError(f"{str(p)!r} is not a directory; give a run directory written by `hermes eval --out DIR`")
        results = p / RESULTS
        if not results.is_file():
            raise ViewError(f"{str(p)!r} holds no {RESULTS}; is it a run directory written by `hermes eval --out DIR`?")
        run = cls(p.resolve(), index)
        run._read_summary()
        run._read_results()
        return run

    def _summary_stat(self) -> tuple[int, int] | None:
        try:
            sst = (self.path / SUMMARY).stat()
        except OSError:
            return None
        return (sst.st_mtime_ns, sst.st_size)

    def _read_summary(self) -> None:
        self._summary_key = self._summary_stat()
        try:
            summary = json.loads((self.path / SUMMARY).read_bytes())
            self.summary = summary if isinstance(summary, dict) else {}
        except (OSError, ValueError):
            self.summary = {}

    def _read_results(self) -> None:
        """Index the complete lines of ``results.jsonl`` from where the last read stopped."""
        results = self.path / RESULTS
        loads = json.loads
        seen = self._seen
        with results.open("rb") as f:
            st = os.fstat(f.fileno())
            self._results_id = (st.st_ino, st.st_dev)
            f.seek(self._results_pos)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.incomplete_tail = bool(data[end:].strip())  # being written, or cut short by a crash
        lines = [line for line in data[:end].split(b"\n") if line.strip()]
        try:  # one parse of the whole file as an array: far fewer calls than a loads per line
            parsed: list[Any] = loads(b"[" + b",".join(lines) + b"]")
        except ValueError:  # a broken line somewhere: find it line by line
            parsed = []
            for line in lines:
                try:
                    parsed.append(loads(line))
                except ValueError:
                    parsed.append(None)
        records, occurrence = self.records, self._occurrence
        for rec in parsed:
            if type(rec) is not dict or type(rec.get("rollout_id")) is not str:
                self.bad_lines += 1
                continue
            rid = rec["rollout_id"]
            occ = seen.get(rid, 0)
            seen[rid] = occ + 1
            rec["_n"] = len(records)
            records.append(rec)
            occurrence.append(occ)
        self._results_pos += end
        self._results_size = st.st_size

    def refresh(self) -> bool:
        """Pick up what a run still in progress wrote since the last look (cheap: one ``stat``
        when nothing changed). A rewritten ``results.jsonl`` (a resume compacts it) is read
        again from the start. Returns whether anything changed."""
        try:
            st = (self.path / RESULTS).stat()
        except OSError:
            return False
        summary_key = self._summary_stat()
        with self._lock:
            same_file = self._results_id == (st.st_ino, st.st_dev) and st.st_size >= self._results_pos
            if same_file and st.st_size == self._results_size and summary_key == self._summary_key:
                return False
            self._read_summary()
            if not same_file:  # rewritten: start over, offsets of the trajectories too
                self.records, self._occurrence, self._seen, self.bad_lines = [], [], {}, 0
                self._results_pos = 0
                self._offsets, self._scan_pos, self._scan_seen = {}, 0, {}
            self._read_results()
            self.__dict__.pop("stats", None)
            return True

    # ------------------------------------------------------------------ describing

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def info(self) -> dict[str, Any]:
        """The run description of ``summary.json`` (environment, agent, model, config, ...)."""
        run = self.summary.get("run")
        return run if isinstance(run, dict) else {}

    @property
    def group_size(self) -> int | None:
        g = self.info.get("group_size")
        return g if isinstance(g, int) and g > 0 else None

    @cached_property
    def stats(self) -> RunStats:
        return run_stats(self.records, group_size=self.group_size)

    @property
    def title(self) -> str:
        info = self.info
        env = info.get("environment") or info.get("command") or "run"
        who = info.get("model") or info.get("agent")
        return f"{env} · {who}" if who else str(env)

    def task_ids(self) -> list[str]:
        return list(self.stats.tasks)

    def rollouts(self, flt: Filter | None = None) -> list[dict[str, Any]]:
        """The records that pass ``flt`` (all when ``None``)."""
        return [r for r in self.records if flt is None or flt(r)]

    def find(self, rollout_id: str) -> dict[str, Any] | None:
        """The record with this ``rollout_id`` (or ``_n`` position as a string)."""
        for rec in self.records:
            if rec["rollout_id"] == rollout_id:
                return rec
        if rollout_id.isdigit() and int(rollout_id) < len(self.records):
            return self.records[int(rollout_id)]
        return None

    def record(self, n: int) -> dict[str, Any] | None:
        return self.records[n] if 0 <= n < len(self.records) else None

    # ------------------------------------------------------------------ trajectories

    @property
    def scanned_bytes(self) -> int:
        """How far into ``trajectories.jsonl`` the offset scan has read (0 until a trajectory is asked for)."""
        return self._scan_pos

    def trajectory(self, n: int) -> dict[str, Any] | None:
        """The trajectory line of the ``n``-th record, read by byte offset; ``None`` if absent."""
        rec = self.record(n)
        if rec is None:
            return None
        key = (rec["rollout_id"], self._occurrence[n])
        path = self.path / TRAJECTORIES
        with self._lock:
            offset = self._offsets.get(key)
            if offset is None:
                offset = self._scan_until(path, key)
        if offset is None:
            return None
        try:
            with path.open("rb") as f:
                f.seek(offset)
                value = json.loads(f.readline())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def _scan_until(self, path: Path, key: tuple[str, int]) -> int | None:
        try:
            f = path.open("rb")
        except OSError:
            return None
        with f:
            f.seek(self._scan_pos)
            pos = self._scan_pos
            while True:
                line = f.readline()
                if not line:
                    return None
                if not line.endswith(b"\n"):
                    return None  # a line still being written (or cut short): look again next time
                start, pos = pos, pos + len(line)
                self._scan_pos = pos
                rid = _rollout_id(line)
                if rid is None:
                    continue
                occ = self._scan_seen.get(rid, 0)
                self._scan_seen[rid] = occ + 1
                self._offsets.setdefault((rid, occ), start)
                if (rid, occ) == key:
                    return start

    def iter_trajectories(self) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Every record with its trajectory, reading the trajectories file once, in order."""
        for n, rec in enumerate(self.records):
            yield rec, self.trajectory(n)

    def artifacts(self, rec: Mapping[str, Any]) -> list[str]:
        """Files of a rollout, relative to the run directory: the record's ``artifacts`` list,
        plus whatever is under ``artifacts/<rollout_id>/`` (a layout proposed for the runner)."""
        out: list[str] = []
        listed = rec.get("artifacts")
        if isinstance(listed, list):
            out.extend(str(a) for a in listed if isinstance(a, str) and self.safe_path(a) is not None)
        folder = self.path / "artifacts" / _safe_name(str(rec.get("rollout_id")))
        if folder.is_dir():
            for p in sorted(folder.rglob("*"))[:200]:
                if p.is_file():
                    rel = p.relative_to(self.path).as_posix()
                    if rel not in out:
                        out.append(rel)
        return out

    def safe_path(self, rel: str) -> Path | None:
        """``rel`` resolved inside the run directory, or ``None`` if it would leave it."""
        try:
            p = (self.path / rel).resolve()
        except (OSError, ValueError):
            return None
        return p if p.is_relative_to(self.path) and p != self.path else None


def _safe_name(rollout_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.#" else "_" for c in rollout_id)


def _rollout_id(line: bytes) -> str | None:
    """The ``rollout_id`` of a trajectory line, read from its prefix (the runner writes it
    first); any other line shape is parsed in full."""
    if line.startswith(_PREFIX):
        end = line.find(b'"', len(_PREFIX))
        if end > 0 and b"\\" not in line[len(_PREFIX):end]:
            return line[len(_PREFIX):end].decode("utf-8", "replace")
    try:
        value = json.loads(line)
    except ValueError:
        return None
    rid = value.get("rollout_id") if isinstance(value, dict) else None
    return rid if isinstance(rid, str) else None


def open_runs(paths: list[str] | list[Path], *, on_open: Callable[[Run], None] | None = None) -> list[Run]:
    """Open several run directories (in order).

    Raises:
        ViewError: one of them is not a run directory.
    """
    runs = []
    for i, p in enumerate(paths):
        run = Run.open(p, i)
        runs.append(run)
        if on_open is not None:
            on_open(run)
    return runs


def record_tokens(rec: Mapping[str, Any]) -> int:
    usage = rec.get("usage")
    return tokens(usage if isinstance(usage, Mapping) else None)
