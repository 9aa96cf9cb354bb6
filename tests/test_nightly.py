"""ckptgate nightly over a training run's folder: what is new is gated, what is not is left alone,
folders still being written are skipped, and the history and trend report grow each night;
and --control, a base model shown beside the candidates and never gated."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ckptgate import cli, exitcodes, nightly
from test_e2e import PYTEST, ROOT

QUICK = ["--", "--limit", "5"]


@pytest.fixture
def training_run(demo_root: Path, tmp_path: Path) -> Path:
    """A run's output folder in the naming styles trainers use, plus one folder still being written."""
    run = tmp_path / "run"
    run.mkdir()
    for name, source in {"epoch_0": "step_0300", "checkpoint-800": "step_0800", "run7_step850": "step_0850"}.items():
        (run / name).symlink_to(demo_root / source)
    (run / "step_0950").mkdir()
    (run / "step_0950" / "config.json").write_text("{}")  # the trainer has not written the weights yet
    (run / "logs").mkdir()  # not named like a checkpoint: ignored
    return run


def _runs(results: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(results / "history.sqlite") as db:
        return db.execute("SELECT run_id, verdict FROM runs ORDER BY started, run_id").fetchall()


def _candidates_of(results: Path, run_id: str) -> set[str]:
    with sqlite3.connect(results / "history.sqlite") as db:
        rows = db.execute("SELECT DISTINCT checkpoint FROM results WHERE run_id = ? AND role = 'candidate'", (run_id,))
        return {row[0] for row in rows}


def test_discovery_orders_by_step_and_names_what_it_skips(training_run: Path) -> None:
    found = nightly.find(training_run)
    assert [p.name for p in found.checkpoints] == ["epoch_0", "checkpoint-800", "run7_step850"]
    assert len(found.skipped) == 1 and found.skipped[0].startswith("step_0950: ")


def test_a_second_nightly_over_unchanged_checkpoints_evaluates_nothing(
        demo_root: Path, training_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    args = ["nightly", str(training_run), "--suite", "demo", "--results-dir", str(results)]
    first = cli.main([*args, *QUICK])
    assert first in (exitcodes.GO, exitcodes.NO_GO, exitcodes.INCONCLUSIVE)
    out = capfd.readouterr().out
    assert "skipped (not a usable checkpoint yet): step_0950" in out and (results / "trend.html").is_file()
    (run_id, _), = _runs(results)
    assert _candidates_of(results, run_id) == {"epoch_0", "checkpoint-800", "run7_step850"}
    assert cli.main([*args, *QUICK]) == exitcodes.GO  # nothing new
    captured = capfd.readouterr()
    assert "already evaluated" in captured.out + captured.err and len(_runs(results)) == 1
    (training_run / "step_0900").symlink_to(demo_root / "step_0900")  # the trainer wrote one more
    assert cli.main([*args, *QUICK]) in (exitcodes.GO, exitcodes.INCONCLUSIVE)
    runs = _runs(results)
    assert len(runs) == 2 and _candidates_of(results, runs[-1][0]) == {"step_0900"}
    assert "step_0900" in (results / "trend.html").read_text()


def test_a_control_is_evaluated_beside_the_candidates_and_never_gated(demo_root: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = subprocess.run(
        [PYTEST, str(ROOT / "evaltests"), "-p", "no:cacheprovider", "--limit", "40", "-k", "arithmetic",
         "--checkpoint", str(demo_root / "step_0800"), "--control", str(demo_root / "step_0100"),
         "--record-cache", str(tmp_path / "records"), "--results-dir", str(results)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    # step_0100 would be a regression as a candidate; as the control it is shown, not gated.
    assert proc.returncode == exitcodes.GO, proc.stdout[-3000:]
    summary = (results / "summary.md").read_text()
    assert "step_0100 (control)" in summary
    side = summary.split("## Candidates beside the control step_0100", 1)[1]
    assert "| Benchmark | Metric | step_0100 (control) | step_0800 |" in side
    assert "| arithmetic | exact_match,strict-match | " in side  # the candidate's value and its difference
    with sqlite3.connect(results / "history.sqlite") as db:
        verdicts = {v for (v,) in db.execute("SELECT verdict FROM results WHERE role = 'control'")}
    assert verdicts == {"info"}
