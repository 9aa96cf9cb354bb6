"""The results store across runs: run ids, each run's own summary, the folder's summary rebuilt
from every record, and the SQLite history (real concurrent processes)."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
from pathlib import Path

from ckptgate import cli, history
from test_e2e import PYTEST, ROOT


def _gate(results: Path, cache: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTEST, str(ROOT / "evaltests"), "-p", "no:cacheprovider", "-n", "0", "--limit", "10", "-k", "choice",
         "--record-cache", str(cache), "--results-dir", str(results), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_two_concurrent_runs_into_one_folder_each_keep_their_summary_and_the_folders_shows_both(
        demo_root: Path, tmp_path: Path) -> None:
    results, cache = tmp_path / "results", tmp_path / "records"
    runs = [_gate(results, cache, "--checkpoint", str(demo_root / step)) for step in ("step_0100", "step_0800")]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert all(run.returncode in (0, 1, 6) for run in runs), "\n".join(out[-2000:] for out in outputs)
    top = _csv(results / "eval_summary.csv")
    assert {row["checkpoint"] for row in top} == {"step_0100", "step_0800", "bridge"}
    run_dirs = sorted((results / "runs").iterdir())
    assert len(run_dirs) == 2
    mine = [{row["checkpoint"] for row in _csv(folder / "eval_summary.csv")} - {"bridge"} for folder in run_dirs]
    assert sorted(map(sorted, mine)) == [["step_0100"], ["step_0800"]]
    assert {row["run_id"] for row in top} == {folder.name for folder in run_dirs}
    for folder in run_dirs:
        assert all(row["run_id"] == folder.name for row in _csv(folder / "eval_summary.csv"))
    # the history holds both runs, each with its rows, its verdict and its settings
    recorded = history.runs(results)
    assert sorted(run.run_id for run in recorded) == [folder.name for folder in run_dirs]
    for run in recorded:
        assert f"**Verdict: {run.verdict}**" in (results / "runs" / run.run_id / "summary.md").read_text()
    rows = history.query(results, checkpoint="step_0100", metric="acc", primary_only=True)
    assert {r["against"] for r in rows} == {"bridge:bridge", "threshold"}
    assert all(r["metric"] == "acc,none" and r["n"] == 10 and r["fingerprint"] for r in rows)
    assert all('"limit": 10' in r["settings"] and '"backend": "hf"' in r["settings"] for r in rows)
    with sqlite3.connect(history.db_path(results)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_history_command_filters_and_prints_a_table(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from ckptgate.results import SummaryRow

    def row(checkpoint: str, metric: str, value: float) -> SummaryRow:
        return SummaryRow.from_dict({"checkpoint": checkpoint, "step": 1, "role": "candidate", "benchmark": "choice",
                                     "task": "demo_choice", "setting": "0-shot", "metric": metric,
                                     "against": "bridge:b", "primary": True, "value": value, "verdict": "pass",
                                     "fingerprint": "f" * 64, "run_id": "r1"})

    run = history.Run("r1", "2026-12-01T10:00:00+0000", "2026-12-01T10:05:00+0000", "demo", "hf", "GO", "pytest", None)
    history.record(tmp_path, run, [row("step_1", "acc,none", 0.5), row("step_2", "acc_norm,none", 0.6)],
                   {("step_1", "choice"): {"limit": 5}})
    later = history.Run("r2", "2026-12-02T10:00:00+0000", "2026-12-02T10:05:00+0000", "demo", "hf", "GO", "pytest", None)
    history.record(tmp_path, later, [row("step_1", "acc,none", 0.7)], {})
    assert [r["value"] for r in history.query(tmp_path, checkpoint="step_1", metric="acc")] == [0.5, 0.7]
    assert [r["run_id"] for r in history.query(tmp_path, since="2026-12-02")] == ["r2"]
    assert [r["run_id"] for r in history.query(tmp_path, until="2026-12-01")] == ["r1", "r1"]
    assert cli.main(["history", "--results-dir", str(tmp_path), "--metric", "acc_norm"]) == 0
    out = capsys.readouterr().out
    assert "step_2" in out and "acc_norm,none" in out and "step_1" not in out and "1 row(s) from 1 run(s)" in out
    assert cli.main(["history", "--results-dir", str(tmp_path / "none")]) == 4


# --------------------------------------------------------------------------- the record cache, every checkpoint


def test_a_rerun_reads_every_result_from_the_cache_marks_it_and_refresh_scores_again(demo_root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "records"

    def run(results: str, *extra: str) -> tuple[str, list[dict[str, str]]]:
        proc = _gate(tmp_path / results, cache, "--checkpoint", str(demo_root / "step_0800"), *extra)
        out = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, out[-3000:]
        return out, _csv(tmp_path / results / "eval_summary.csv")

    _, cold = run("cold")
    assert not any(row["cached"] == "True" for row in cold)
    out, warm = run("warm")
    assert all(row["cached"] == "True" for row in warm if row["checkpoint"] == "step_0800")
    assert "step_0800 (cached)" in out and "step_0800 (cached)" in (tmp_path / "warm" / "summary.md").read_text()
    record = __import__("json").loads((tmp_path / "warm/by_checkpoint/step_0800/choice.json").read_text())
    assert record["timing"]["from_cache"] and record["timing"]["load_s"] == 0
    same = ("value", "reference", "delta", "p_value", "verdict")
    assert [[r[k] for k in same] for r in warm] == [[r[k] for k in same] for r in cold]
    _, refreshed = run("refreshed", "--refresh", "choice")
    assert not any(row["cached"] == "True" for row in refreshed if row["checkpoint"] == "step_0800")
    proc = _gate(tmp_path / "typo", cache, "--checkpoint", str(demo_root / "step_0800"), "--refresh", "chioce")
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 4 and "--refresh chioce: suite 'demo' has no benchmark 'chioce'; did you mean 'choice'" in out


def test_a_fully_cached_run_starts_no_workers_and_loads_no_model(demo_root: Path, tmp_path: Path) -> None:
    """Every benchmark of the suite (no -k: a selection is known only after workers start)."""
    cache, args = tmp_path / "records", ("--checkpoint", str(demo_root / "step_0800"), "-k", "choice or text or arith")
    cold = _gate(tmp_path / "cold", cache, *args)
    assert cold.communicate(timeout=600)[0] and cold.returncode == 0
    warm = _gate(tmp_path / "warm", cache, *args, "-n", "2")  # the last -n wins
    out = warm.communicate(timeout=600)[0]
    assert warm.returncode == 0, out[-3000:]
    assert "every result is in the record cache: no model loads, no workers started" in out
    assert "workers" not in out.replace("no workers started", "")
    assert [r["value"] for r in _csv(tmp_path / "warm" / "eval_summary.csv")] == [
        r["value"] for r in _csv(tmp_path / "cold" / "eval_summary.csv")]
    partly = _gate(tmp_path / "partly", cache, *args, "-n", "2", "--refresh", "choice")  # something to score: workers
    out = partly.communicate(timeout=600)[0]
    assert partly.returncode == 0, out[-3000:]
    assert "no workers started" not in out and "created: 2/2 workers" in out


def _inputs_of(suite_path: Path) -> dict[str, dict[str, str | None]]:
    from ckptgate.runplan import data_scorer
    from ckptgate.suites import load_suite
    from scorers import inputs

    inputs.code_digest.cache_clear()
    suite = load_suite(str(suite_path))
    scorer, _ = data_scorer(suite, None)
    return {bench.id: scorer.inputs(suite, bench) for bench in suite.benchmarks}


def test_a_changed_task_file_invalidates_exactly_the_benchmarks_that_read_it(tmp_path: Path) -> None:
    import shutil

    tasks = tmp_path / "tasks"
    shutil.copytree(ROOT / "evaltests" / "tasks" / "demo", tasks)
    suite = tmp_path / "suite.yaml"
    suite.write_text((ROOT / "evaltests/suites/demo.yaml").read_text().replace("../tasks/demo", str(tasks)))
    before = _inputs_of(suite)
    with (tasks / "demo_choice.yaml").open("a") as handle:
        handle.write("# a changed prompt would change the numbers\n")
    after = _inputs_of(suite)
    assert after["choice"]["task_files"] != before["choice"]["task_files"]
    assert after["arithmetic"] == before["arithmetic"] and after["text"] == before["text"]
    with (tasks / "arithmetic_test.jsonl").open("a") as handle:  # a data file the arithmetic task names
        handle.write('{"question": "What is 1 plus 1?", "answer": "1 + 1 = 2\\n#### 2"}\n')
    again = _inputs_of(suite)
    assert again["arithmetic"] != after["arithmetic"] and again["choice"] == after["choice"]
    with (tasks / "utils.py").open("a") as handle:  # the loader every demo task calls
        handle.write("# changed\n")
    last = _inputs_of(suite)
    assert all(last[b]["task_files"] != again[b]["task_files"] for b in ("arithmetic", "choice", "text"))


def test_a_changed_tokenizer_changes_the_checkpoint_key(demo_root: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from ckptgate.checkpoints import fingerprint

    copy = tmp_path / "step_0800"
    shutil.copytree(demo_root / "step_0800", copy)
    before = fingerprint(copy)
    config = copy / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_max_length": 256}))
    assert fingerprint(copy) != before  # the record cache's entries are per fingerprint
