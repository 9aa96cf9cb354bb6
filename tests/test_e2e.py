"""End to end: the demo gate under xdist, its results files, and its numbers against lm-eval."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTEST = str(Path(sys.executable).parent / "pytest")
from ckptgate.demo import BRIDGE_STEP, DEMO_STEPS, PLATEAU_STEPS

SERIES = tuple(f"step_{s:04d}" for s in DEMO_STEPS)  # what --checkpoint demo:all evaluates
EARLY = tuple(f"step_{s:04d}" for s in DEMO_STEPS if s < BRIDGE_STEP)  # before the bridge: regressions
PLATEAU = tuple(f"step_{s:04d}" for s in PLATEAU_STEPS)  # the learning rate annealed to zero
STEPS = SERIES[: SERIES.index(PLATEAU[0]) + 1]  # training still improves the model
BENCHMARKS = ("arithmetic", "choice", "text")


def gate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTEST, str(ROOT / "evaltests"), "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.fixture(scope="module")
def demo_run(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    results_dir = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("records")  # its own: every benchmark scored here, none read from another test's run
    proc = gate("-n", "2", "--checkpoint", "demo:all", "--results-dir", str(results_dir), "--record-cache", str(cache))
    return proc, results_dir


def summary(results_dir: Path) -> list[dict[str, str]]:
    with (results_dir / "eval_summary.csv").open() as handle:
        return list(csv.DictReader(handle))


def value(rows: list[dict[str, str]], checkpoint: str, metric: str) -> float:
    found = {r["value"] for r in rows if r["checkpoint"] == checkpoint and r["metric"] == metric}
    (number,) = found  # one value, however many rows (threshold, bridge) hold it against something
    return float(number)


def test_demo_gate_fails_the_early_steps_and_writes_results(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The whole series against the suite's bridge (step 500): the two steps before it are material
    regressions on every benchmark (NO-GO, exit 1), the later ones pass."""
    proc, results_dir = demo_run
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    late = len(SERIES) - len(EARLY)
    assert f"{len(EARLY) * len(BENCHMARKS)} failed, {(late + 1) * len(BENCHMARKS)} passed" in proc.stdout
    assert "ckptgate verdict: NO-GO" in proc.stdout
    for step in EARLY:
        for bench in BENCHMARKS:
            assert f"FAILED evaltests/test_demo.py::test_{bench}[{step}]" in proc.stdout
    assert "ckptgate summary: suite demo" in proc.stdout
    assert "self-check FAILED" not in proc.stdout
    for step in SERIES:
        for bench in BENCHMARKS:
            record = json.loads((results_dir / "by_checkpoint" / step / f"{bench}.json").read_text())
            assert record["checkpoint"]["label"] == step and len(record["checkpoint"]["fingerprint"]) == 64
            assert record["config"]["seeds"]["random_seed"] == 42
            assert record["provenance"]["versions"]["lm_eval"]
            assert record["timing"]["evaluated_with"] == list(BENCHMARKS)  # one lm-eval pass per checkpoint
            if bench == "arithmetic":
                assert record["config"]["truncated_generations"]["of"] == record["metrics"]["exact_match,strict-match"]["n"]
            samples = (results_dir / "by_checkpoint" / step / f"{bench}.samples.jsonl").read_text().splitlines()
            assert len(samples) == record["samples_count"] > 0
    rows = summary(results_dir)
    gated = [r for r in rows if r["primary"] == "True" and r["against"] == "bridge:bridge"]
    assert {r["verdict"] for r in gated if r["checkpoint"] in EARLY} == {"fail"}
    assert {r["verdict"] for r in gated if r["checkpoint"] not in EARLY} == {"pass"}
    assert {r["verdict"] for r in rows if r["primary"] != "True"} == {"info"}
    record = json.loads((results_dir / "by_checkpoint" / "step_0100" / "text.json").read_text())
    assert record["settled"] is True and "pending" not in {c["verdict"] for c in record["checks"]}
    assert {"checkpoint", "step", "benchmark", "metric", "value", "stderr", "n", "verdict", "margin",
            "p_noninferiority"} <= set(rows[0])
    assert (results_dir / "summary.md").read_text().startswith("# ckptgate summary")


def test_each_checkpoint_loaded_once_on_one_worker(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, results_dir = demo_run
    for step in SERIES:
        hosts = {json.loads(p.read_text())["worker"] for p in (results_dir / "by_checkpoint" / step).glob("*.json")}
        assert len(hosts) == 1, (step, hosts)


def test_demo_metrics_rise_with_steps(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    rows = summary(demo_run[1])
    for metric in ("exact_match,strict-match", "exact_match,flexible-extract", "acc,none", "acc_norm,none"):
        series = [value(rows, step, metric) for step in STEPS]
        assert series == sorted(series) and series[0] < series[-1], (metric, series)
    for metric in ("bits_per_byte,none", "word_perplexity,none"):
        series = [value(rows, step, metric) for step in STEPS]
        assert series == sorted(series, reverse=True) and series[0] > series[-1], (metric, series)


def test_demo_plateau_checkpoints_are_of_equal_quality(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    # Consecutive checkpoints with the learning rate annealed towards zero: their scores differ by
    # a few items at most (n=200 per 0/1 metric: 0.04 is under two standard errors), their
    # bits per byte by under 1%. Fixed facts of the shipped weights, far beyond float rounding.
    rows = summary(demo_run[1])
    for metric, tolerance in (("exact_match,strict-match", 0.04), ("acc,none", 0.04), ("acc_norm,none", 0.04)):
        series = [value(rows, step, metric) for step in PLATEAU]
        assert max(series) - min(series) <= tolerance, (metric, series)
    bpb = [value(rows, step, "bits_per_byte,none") for step in PLATEAU]
    assert max(bpb) / min(bpb) - 1 < 0.01, bpb


def test_gate_numbers_match_lm_eval_run_directly(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], demo_root: Path
) -> None:
    """Correctness of numbers: the gate must report exactly what lm-eval reports on its own."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=str(demo_root / "step_0300"), device="cpu", dtype="float32", batch_size=32)
    tasks = TaskManager(include_path=str(ROOT / "evaltests" / "tasks" / "demo"), include_defaults=False)
    direct = simple_evaluate(
        model=lm, tasks=["demo_arithmetic", "demo_choice", "demo_text"], task_manager=tasks,
        gen_kwargs={"temperature": 0, "do_sample": False}, random_seed=42, numpy_random_seed=42,
        torch_random_seed=42, fewshot_random_seed=42,
    )
    assert direct is not None
    for bench in BENCHMARKS:
        record = json.loads((demo_run[1] / "by_checkpoint" / "step_0300" / f"{bench}.json").read_text())
        expected = {k: v for k, v in direct["results"][f"demo_{bench}"].items() if "," in k and "_stderr" not in k}
        assert set(expected) == set(record["metrics"])
        for key, number in expected.items():
            # Model outputs are scored in chunks (so a killed run resumes), which batches requests
            # differently from one lm-eval call: float32 log-likelihoods then round differently in
            # the last bits (measured: 4e-9 relative on word perplexity). Counts are exact.
            continuous = any(name in key for name in ("perplexity", "bits_per_byte"))
            tolerance = {"rel": 1e-6} if continuous else {"rel": 1e-12, "abs": 1e-12}
            assert record["metrics"][key]["value"] == pytest.approx(number, **tolerance), (bench, key)


def demo_suite(folder: Path, name: str, benchmarks: str) -> Path:
    """A suite file over the demo tasks; ``benchmarks`` is the YAML list under ``benchmarks:``."""
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\ntask_paths: [{ROOT / 'evaltests' / 'tasks' / 'demo'}]\n"
                    f"include_default_tasks: false\nbenchmarks:\n{benchmarks}")
    return path


def test_checkpoint_below_threshold_fails_with_a_report(demo_root: Path, tmp_path: Path) -> None:
    strict = demo_suite(
        tmp_path, "strict",
        "  - id: arithmetic\n    task: demo_arithmetic\n    num_fewshot: 3\n    metrics:\n"
        "      - {key: 'exact_match,strict-match', min: 0.99}\n      - {key: 'exact_match,flexible-extract'}\n"
    )
    proc = gate("--checkpoint", str(demo_root / "step_0100"), "--suite", str(strict), "--limit", "20",
                "--results-dir", str(tmp_path / "results"))
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert "arithmetic (task demo_arithmetic) on step_0100: 1 of 2 check(s) failed" in proc.stdout
    assert "FAIL    exact_match,strict-match  threshold: 0.0000 ± 0.0000  threshold >= 0.99  n=20" in proc.stdout
    rows = summary(tmp_path / "results")
    strict_row = next(r for r in rows if r["metric"] == "exact_match,strict-match")
    assert strict_row["verdict"] == "fail" and strict_row["limit"] == "20" and strict_row["n"] == "20"
    record = json.loads((tmp_path / "results" / "by_checkpoint" / "step_0100" / "arithmetic.json").read_text())
    assert record["config"]["limit"] == 20


def test_generations_cut_off_by_max_gen_toks_are_counted_and_warned(demo_root: Path, tmp_path: Path) -> None:
    suite = demo_suite(
        tmp_path, "short",
        "  - {id: arithmetic, task: demo_arithmetic, num_fewshot: 3, gen_kwargs: {max_gen_toks: 3},\n"
        "     metrics: [{key: 'exact_match,flexible-extract'}]}\n"
    )
    results_dir = tmp_path / "results"
    proc = gate("--checkpoint", str(demo_root / "step_0800"), "--suite", str(suite), "--limit", "10",
                "--results-dir", str(results_dir))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "GenerationTruncatedWarning: arithmetic on step_0800: 10 of 10 generations reached max_gen_toks 3" in proc.stdout
    record = json.loads((results_dir / "by_checkpoint" / "step_0800" / "arithmetic.json").read_text())
    assert record["config"]["truncated_generations"] == {"count": 10, "of": 10, "max_gen_toks": [3]}


def test_one_task_at_two_shot_counts(demo_root: Path, tmp_path: Path) -> None:
    """Benchmarks sharing an lm-eval task run in separate passes, each with its own shots."""
    suite = demo_suite(
        tmp_path, "shots",
        "  - {id: arith0, test: arithmetic, task: demo_arithmetic, num_fewshot: 0, metrics: [{key: 'exact_match,flexible-extract'}]}\n"
        "  - {id: arith3, test: arithmetic, task: demo_arithmetic, num_fewshot: 3, metrics: [{key: 'exact_match,flexible-extract'}]}\n"
        "  - {id: choice, test: choice, task: demo_choice, num_fewshot: 0, metrics: [{key: 'acc,none'}]}\n"
        "  - {id: text, test: text, task: demo_text, num_fewshot: 0, metrics: [{key: 'bits_per_byte,none'}]}\n"
    )
    results_dir = tmp_path / "results"
    proc = gate("--checkpoint", str(demo_root / "step_0800"), "--suite", str(suite), "--limit", "8",
                "--results-dir", str(results_dir), "--record-cache", str(tmp_path / "records"))  # scored here, all of it
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    records = {p.stem: json.loads(p.read_text()) for p in (results_dir / "by_checkpoint" / "step_0800").glob("*.json")}
    assert {bid: r["config"]["num_fewshot"] for bid, r in records.items()} == {"arith0": 0, "arith3": 3, "choice": 0, "text": 0}
    assert records["arith3"]["timing"]["evaluated_with"] == ["arith0", "arith3", "choice", "text"]
    prompts = {bid: json.loads((results_dir / "by_checkpoint" / "step_0800" / f"{bid}.samples.jsonl").open().readline())
               for bid in ("arith0", "arith3")}
    assert prompts["arith0"]["arguments"] != prompts["arith3"]["arguments"]
