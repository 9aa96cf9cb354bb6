"""Structured status lines (--status-log): one JSON line per checkpoint x benchmark at start and end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ckptgate import status
from test_e2e import PYTEST, ROOT


def test_outcome_is_the_benchmarks_gating_word() -> None:
    assert status.outcome(["pass", "info", "fail"], [True, False, True]) == "fail"
    assert status.outcome(["pass", "error"], [True, True]) == "fail"
    assert status.outcome(["pass", "pending"], [True, True]) == "inconclusive"
    assert status.outcome(["pass", "fail"], [True, False]) == "pass"  # a secondary metric never decides
    assert status.outcome(["info", "info"], [True, False]) == "report"


def test_every_benchmark_gets_a_start_and_an_end_line_from_every_worker(demo_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "status.jsonl"
    proc = subprocess.run(
        [PYTEST, str(ROOT / "evaltests"), "-p", "no:cacheprovider", "-n", "2", "--limit", "5", "-k", "choice or text",
         "--checkpoint", str(demo_root / "step_0100"), "--checkpoint", str(demo_root / "step_0800"),
         "--results-dir", str(tmp_path / "results"), "--status-log", str(log)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode in (0, 1, 6), proc.stdout[-3000:]
    lines = [json.loads(text) for text in log.read_text().splitlines()]
    items = {(c, b) for c in ("step_0100", "step_0800", "bridge") for b in ("choice", "text")}
    for event in ("start", "end"):
        assert sorted((r["checkpoint"], r["benchmark"]) for r in lines if r["event"] == event) == sorted(items)
    ends = [r for r in lines if r["event"] == "end"]
    assert all(r["samples"] == 5 and r["duration_s"] >= 0 and r["run_id"] and r["worker"].startswith("gw") for r in ends)
    assert {r["outcome"] for r in ends if r["role"] == "bridge"} == {"report"}
    assert all(r["outcome"] in ("pass", "fail", "inconclusive") for r in ends if r["role"] == "candidate")
    assert all(sum(r["verdicts"].values()) >= 1 for r in ends)
