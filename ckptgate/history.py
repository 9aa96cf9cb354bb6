"""The history of every run: one SQLite database per results folder (``history.sqlite``).

One row per run x checkpoint x benchmark x metric x reference (threshold, bridge, baseline),
with the checkpoint's fingerprint, the settings that shaped the number, the value, its interval,
the verdict, the run's id and its start time; plus one row per run (suite, backend, verdict,
command). Written once per run by the controller, in one transaction, so a reader never sees
half a run. WAL mode lets readers (``ckptgate history``, a trend report) read while a run
writes, and concurrent runs' writers take turns through SQLite's own locking (``busy_timeout``).

The schema is plain SQL (text, integers, reals; settings as JSON text): any other database can
load it (``sqlite3 history.sqlite .dump``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptgate.results import SummaryRow

DB_NAME = "history.sqlite"
BUSY_TIMEOUT_MS = 60_000  # concurrent runs finishing together wait for each other this long

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started TEXT NOT NULL,          -- ISO 8601, local time with offset
    finished TEXT NOT NULL,
    suite TEXT NOT NULL,
    backend TEXT NOT NULL,
    verdict TEXT,                   -- GO, NO-GO, INCONCLUSIVE, REPORT ONLY
    command TEXT NOT NULL,
    git_sha TEXT
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    started TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    step INTEGER,
    role TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    suite TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    task TEXT NOT NULL,
    setting TEXT NOT NULL,
    metric TEXT NOT NULL,
    against TEXT NOT NULL,          -- '' (report only), threshold, bridge:<label>, baseline:<name>, improve:<label>
    is_primary INTEGER NOT NULL,
    value REAL,
    stderr REAL,
    n INTEGER,
    reference REAL,
    delta REAL,
    ci_low REAL,
    ci_high REAL,
    p_value REAL,
    p_holm REAL,
    margin REAL,
    verdict TEXT NOT NULL,
    cached INTEGER NOT NULL,
    settings TEXT NOT NULL          -- JSON: the settings that shaped the number
);
CREATE INDEX IF NOT EXISTS results_by_checkpoint ON results (checkpoint, benchmark, metric);
CREATE INDEX IF NOT EXISTS results_by_time ON results (started);
"""
_RESULT_COLUMNS = ("run_id", "started", "checkpoint", "step", "role", "fingerprint", "suite", "benchmark", "task",
                   "setting", "metric", "against", "is_primary", "value", "stderr", "n", "reference", "delta", "ci_low",
                   "ci_high", "p_value", "p_holm", "margin", "verdict", "cached", "settings")


@dataclass(frozen=True)
class Run:
    run_id: str
    started: str
    finished: str
    suite: str
    backend: str
    verdict: str | None
    command: str
    git_sha: str | None


def db_path(results_dir: Path) -> Path:
    return results_dir / DB_NAME


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as db:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(SCHEMA)
        yield db


def record(results_dir: Path, run: Run, rows: Sequence[SummaryRow], settings: dict[tuple[str, str], dict[str, Any]]) -> int:
    """Add one run and its rows (``settings``: (checkpoint, benchmark) -> the settings that shaped
    its numbers) in one transaction; returns the number of rows written."""
    values = [_values(run, row, settings.get((row.checkpoint, row.benchmark), {})) for row in rows]
    with connect(db_path(results_dir)) as db, db:  # the second ``db``: one transaction, committed at the end
        db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (run.run_id, run.started, run.finished, run.suite, run.backend, run.verdict, run.command, run.git_sha))
        db.executemany(f"INSERT INTO results ({', '.join(_RESULT_COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(_RESULT_COLUMNS))})", values)
    return len(values)


def _values(run: Run, row: SummaryRow, settings: dict[str, Any]) -> tuple[Any, ...]:
    return (run.run_id, run.started, row.checkpoint, row.step, row.role, row.fingerprint, run.suite, row.benchmark,
            row.task, row.setting, row.metric, row.against, int(row.primary), row.value, row.stderr, row.n,
            row.reference, row.delta, row.ci_low, row.ci_high, row.p_value, row.p_holm, row.margin, row.verdict,
            int(row.cached), json.dumps(settings, sort_keys=True, default=str))


def query(results_dir: Path, *, checkpoint: str | None = None, benchmark: str | None = None, metric: str | None = None,
          since: str | None = None, until: str | None = None, primary_only: bool = False) -> list[dict[str, Any]]:
    """Rows of the history, oldest run first; filters match exactly (``metric`` also by its name
    without the filter: ``acc`` matches ``acc,none``); ``since``/``until`` compare ISO dates
    (``2026-12-01``) with each run's start time."""
    path = db_path(results_dir)
    if not path.is_file():
        return []
    clauses, params = [], []
    for column, value in (("checkpoint", checkpoint), ("benchmark", benchmark)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if metric is not None:
        clauses.append("(metric = ? OR metric LIKE ?)")
        params += [metric, f"{metric},%"]
    if since is not None:
        clauses.append("started >= ?")
        params.append(since)
    if until is not None:
        clauses.append("substr(started, 1, ?) <= ?")
        params += [len(until), until]
    if primary_only:
        clauses.append("is_primary = 1")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    with connect(path) as db:
        db.row_factory = sqlite3.Row
        found = db.execute(f"SELECT * FROM results {where} ORDER BY started, run_id, step, checkpoint, benchmark, "
                           "metric, against", params).fetchall()
    return [dict(row) for row in found]


def runs(results_dir: Path) -> list[Run]:
    path = db_path(results_dir)
    if not path.is_file():
        return []
    with connect(path) as db:
        return [Run(*row) for row in db.execute("SELECT * FROM runs ORDER BY started, run_id")]


HISTORY_COLUMNS = ("started", "run_id", "checkpoint", "benchmark", "metric", "against", "value", "ci", "verdict")


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The rows as a plain-text table (``ckptgate history``)."""
    cells = [HISTORY_COLUMNS] + [(
        row["started"][:19].replace("T", " "), row["run_id"], row["checkpoint"] + (" (cached)" if row["cached"] else ""),
        row["benchmark"], row["metric"], row["against"] or "report only", _number(row["value"]),
        "" if row["ci_low"] is None else f"[{row['ci_low']:+.4g}, {row['ci_high']:+.4g}]", row["verdict"].upper(),
    ) for row in rows]
    widths = [max(len(str(line[i])) for line in cells) for i in range(len(HISTORY_COLUMNS))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    return [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
