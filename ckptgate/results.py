"""The results store: one JSON record and one per-sample JSONL file per checkpoint x benchmark.

Layout under the results directory::

    by_checkpoint/<label>/<benchmark>.json           metrics, verdicts, config, provenance
    by_checkpoint/<label>/<benchmark>.samples.jsonl  lm-eval's per-sample records
    runs/<run id>/eval_summary.csv, summary.md       one run's rows: checkpoint x benchmark x metric
    eval_summary.csv, summary.md                     the folder's: the latest record of every
                                                     checkpoint x benchmark, whichever run wrote it
    history.sqlite                                   every row of every run (ckptgate.history)

Every file is written atomically (temporary file in the same folder, fsync, rename): an
interrupted run never leaves a file that looks complete. The JSON record is written last and
names the samples file's hash, so a record on disk always has its samples beside it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ckptgate.atomicio import write_bytes, write_text
from typing import Any

SCHEMA_VERSION = 3  # 3: checks carry p_noninferiority, margin, material; verdicts settled after Holm
SUMMARY_COLUMNS = (
    "checkpoint",
    "step",
    "role",
    "benchmark",
    "task",
    "setting",
    "metric",
    "against",
    "primary",
    "value",
    "stderr",
    "n",
    "reference",
    "delta",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "p_noninferiority",
    "margin",
    "material",
    "mde",
    "underpowered",
    "threshold",
    "verdict",
    "method",
    "note",
    "limit",
    "fingerprint",
    "cached",
    "run_id",
)


_ROW_DEFAULTS: dict[str, Any] = {
    "setting": "", "against": "", "primary": False, "underpowered": False, "threshold": "", "method": "", "note": "",
    "material": False, "cached": False, "run_id": "",
}


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary: a checkpoint x benchmark x metric held against one thing
    (a threshold, a bridge, a baseline), or reported alone."""

    checkpoint: str
    step: int | None
    role: str
    benchmark: str
    task: str
    setting: str
    metric: str
    against: str
    primary: bool
    value: float | None
    stderr: float | None
    n: int | None
    reference: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_holm: float | None
    p_noninferiority: float | None
    margin: float | None
    material: bool
    mde: float | None
    underpowered: bool
    threshold: str
    verdict: str  # pass | fail | inconclusive | pending | error | info
    method: str
    note: str
    limit: int | None
    fingerprint: str
    cached: bool  # read from the record cache: no model ran for it in this run
    run_id: str  # the run that produced it (``runs/<run_id>/``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SummaryRow:
        return cls(**{name: data.get(name, _ROW_DEFAULTS.get(name)) for name in SUMMARY_COLUMNS})  # type: ignore[arg-type]

    @classmethod
    def from_check(cls, check: dict[str, Any], **context: Any) -> SummaryRow:
        """``check`` is a :class:`ckptgate.gate.Check` as a dict; ``context`` the checkpoint and benchmark."""
        return cls.from_dict({**check, **context})


def to_json(data: Any, **kwargs: Any) -> str:
    """JSON with non-finite floats as null and anything else unserialisable as its repr."""
    try:  # most data is finite with string keys: serialised directly, without a sanitised copy
        return json.dumps(data, allow_nan=False, default=repr, ensure_ascii=False, **kwargs)
    except (ValueError, TypeError):
        return json.dumps(_finite(data), default=repr, ensure_ascii=False, **kwargs)


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {str(k): _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def benchmark_dir(results_dir: Path, label: str) -> Path:
    return results_dir / "by_checkpoint" / label


def write_benchmark(
    results_dir: Path,
    label: str,
    benchmark_id: str,
    record: dict[str, Any],
    samples: Sequence[dict[str, Any]],
) -> Path:
    """Write the samples file, then the record that names its hash; returns the record's path."""
    folder = benchmark_dir(results_dir, label)
    samples_bytes = "".join(to_json(s) + "\n" for s in samples).encode("utf-8")
    samples_path = folder / f"{benchmark_id}.samples.jsonl"
    write_bytes(samples_path, samples_bytes)
    full = {
        "schema": SCHEMA_VERSION,
        **record,
        "samples_file": samples_path.name,
        "samples_sha256": hashlib.sha256(samples_bytes).hexdigest(),
        "samples_count": len(samples),
    }
    record_path = folder / f"{benchmark_id}.json"
    write_text(record_path, to_json(full, indent=2) + "\n")
    return record_path


def read_records(results_dir: Path) -> list[dict[str, Any]]:
    """Every complete benchmark record in the store, in a stable order."""
    records = []
    for path in sorted((results_dir / "by_checkpoint").glob("*/*.json")):
        if not path.with_suffix(".samples.jsonl").is_file():
            continue  # not a benchmark record (a staged evaluation's tier summary, say)
        records.append(json.loads(path.read_text(encoding="utf-8")))
    return records


def row_context(checkpoint: dict[str, Any], benchmark: dict[str, Any], limit: int | None, *,
                run_id: str = "", cached: bool = False) -> dict[str, Any]:
    """The columns a summary row takes from its checkpoint, benchmark and run."""
    return {
        "run_id": run_id,
        "cached": cached,
        "checkpoint": checkpoint["label"],
        "step": checkpoint.get("step"),
        "role": checkpoint.get("role", "candidate"),
        "benchmark": benchmark["id"],
        "task": benchmark["task"],
        "setting": setting(benchmark.get("num_fewshot")),
        "limit": limit,
        "fingerprint": checkpoint.get("fingerprint", ""),
    }


def setting(num_fewshot: int | None) -> str:
    """The usual baseline table's name for a benchmark's setting: "4-shot", "0-shot"."""
    return "task default shots" if num_fewshot is None else f"{num_fewshot}-shot"


def rows_from_record(record: dict[str, Any]) -> list[SummaryRow]:
    context = row_context(record["checkpoint"], record["benchmark"], record.get("config", {}).get("limit"),
                          run_id=record.get("run", {}).get("id", ""),
                          cached=bool(record.get("timing", {}).get("from_cache")))
    return [SummaryRow.from_check(check, **context) for check in record["checks"]]


def sort_rows(rows: Iterable[SummaryRow]) -> list[SummaryRow]:
    def key(row: SummaryRow) -> tuple[Any, ...]:
        step = row.step if row.step is not None else math.inf
        return (row.role != "candidate", step, row.checkpoint, row.benchmark, row.metric)

    return sorted(rows, key=key)


def summary_csv(rows: Sequence[SummaryRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.to_dict().items()})
    return buffer.getvalue()


def run_dir(results_dir: Path, run_id: str) -> Path:
    return results_dir / "runs" / run_id


def write_summary(results_dir: Path, rows: Sequence[SummaryRow], markdown: str) -> None:
    write_text(results_dir / "eval_summary.csv", summary_csv(rows))
    write_text(results_dir / "summary.md", markdown)


def settle_records(results_dir: Path, rows: Sequence[SummaryRow]) -> int:
    """Write the run's settled verdicts (after Holm) into the benchmark records they came from, so a
    record on disk never holds a *pending* verdict; returns how many records changed."""
    by_record: dict[tuple[str, str], dict[tuple[str, str], SummaryRow]] = {}
    for row in rows:
        by_record.setdefault((row.checkpoint, row.benchmark), {})[(row.metric, row.against)] = row
    changed = 0
    for (label, benchmark_id), settled in by_record.items():
        path = benchmark_dir(results_dir, label) / f"{benchmark_id}.json"
        if not path.is_file():
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        checks = record.get("checks", [])
        updated = []
        for check in checks:
            row = settled.get((check.get("metric"), check.get("against")))
            updated.append(check if row is None else {**check, "verdict": row.verdict, "p_holm": row.p_holm})
        if updated != checks or not record.get("settled"):
            write_text(path, to_json({**record, "checks": updated, "settled": True}, indent=2) + "\n")
            changed += 1
    return changed
