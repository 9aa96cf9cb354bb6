"""The results store: atomic files, records that name their samples, the summary table."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest

from ckptgate import atomicio, reports, results


def record(label: str, bench: str, verdict: str = "pass") -> dict:
    return {
        "checkpoint": {"label": label, "step": 100, "role": "candidate", "fingerprint": "ab" * 32},
        "benchmark": {"id": bench, "task": f"demo_{bench}"},
        "metrics": {"acc,none": {"value": 0.5, "stderr": 0.05, "n": 100}},
        "checks": [
            {"metric": "acc,none", "against": "threshold", "primary": False, "value": 0.5, "stderr": 0.05, "n": 100,
             "threshold": ">= 0.3", "verdict": verdict}
        ],
        "config": {"limit": None},
    }


def test_record_names_the_hash_of_its_samples(tmp_path: Path) -> None:
    samples = [{"doc_id": 0, "acc": 1.0}, {"doc_id": 1, "acc": float("nan")}]
    path = results.write_benchmark(tmp_path, "step_0100", "choice", record("step_0100", "choice"), samples)
    data = json.loads(path.read_text())
    samples_path = path.with_name(data["samples_file"])
    assert data["samples_sha256"] == hashlib.sha256(samples_path.read_bytes()).hexdigest()
    assert data["samples_count"] == 2
    lines = [json.loads(line) for line in samples_path.read_text().splitlines()]
    assert lines[1]["acc"] is None  # NaN is not valid JSON
    assert not list(tmp_path.rglob("*.tmp"))


def test_interrupted_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "eval_summary.csv"

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomicio.os, "fsync", boom)
    with pytest.raises(OSError):
        atomicio.write_text(target, "checkpoint,value\n")
    assert not target.exists()
    assert not list(tmp_path.iterdir())


def test_summary_rows_round_trip_through_the_store(tmp_path: Path) -> None:
    for label in ("step_0300", "step_0100"):
        results.write_benchmark(tmp_path, label, "choice", record(label, "choice"), [])
    rows = results.sort_rows(
        row for rec in results.read_records(tmp_path) for row in results.rows_from_record(rec)
    )
    results.write_summary(tmp_path, rows, reports.markdown(rows, {"suite": "demo"}))
    with (tmp_path / "eval_summary.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert {"checkpoint", "step", "benchmark", "metric", "value", "stderr", "n", "verdict"} <= set(table[0])
    assert [r["checkpoint"] for r in table] == ["step_0100", "step_0300"]
    md = (tmp_path / "summary.md").read_text()
    assert "| step_0100 | choice | acc,none | >= 0.3 | 0.5000 ± 0.0500 |  |  |  |  |  | 100 |  | PASS |" in md


def test_text_table_is_aligned() -> None:
    rows = [results.SummaryRow.from_dict({**r, "checkpoint": "c", "step": 1, "role": "candidate", "benchmark": "b",
                                          "task": "t", "limit": None, "fingerprint": ""})
            for r in record("c", "b")["checks"]]
    lines = reports.text_table(rows)
    assert lines[0].startswith("checkpoint") and set(lines[1]) <= {"-", " "}
    assert "PASS" in lines[2]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_result_files_follow_the_umask(tmp_path: Path, mask: int) -> None:
    # Temporary files are created 0600: written atomically, results must still get the mode a
    # plain open() would give them, so teammates and artifact uploaders can read them.
    old = os.umask(mask)
    try:
        atomicio.write_text(tmp_path / "record.json", "{}")
        entry = atomicio.publish_dir(tmp_path / "entry", lambda d: (d / "f").write_text("x"))
    finally:
        os.umask(old)
    assert (tmp_path / "record.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert entry.stat().st_mode & 0o777 == 0o777 & ~mask
