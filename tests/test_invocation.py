"""The design card's command, typed literally: ``pytest -n 2 --checkpoint PATH`` runs the gate's
benchmarks and nothing else, from the repository root or any other folder, and pytest writes
nothing into the checkpoint folder (no rootdir there, no .pytest_cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTEST = str(Path(sys.executable).parent / "pytest")


def pytest_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not the outer xdist run's
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([PYTEST, *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)


@pytest.fixture
def outside_checkpoint(demo_root: Path, tmp_path: Path) -> Path:
    """A checkpoint folder outside the repository, read-only like a shared one may be."""
    target = tmp_path / "runs" / "step_0100"
    shutil.copytree(demo_root / "step_0100", target)
    return target


def written_into(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name == "__pycache__")


@pytest.mark.parametrize("where", ["repository", "elsewhere"])
def test_checkpoint_alone_runs_the_gate_benchmarks(where: str, outside_checkpoint: Path, tmp_path: Path) -> None:
    cwd = ROOT if where == "repository" else tmp_path / "work"
    cwd.mkdir(exist_ok=True)
    proc = pytest_in(cwd, "-n", "2", "--checkpoint", str(outside_checkpoint), "-k", "text", "--limit", "4",
                     "--record-cache", "none", "--results-dir", str(tmp_path / "results"), "--report-only")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout and "tests/" not in proc.stdout  # the checkpoint, and the suite's bridge
    assert "ckptgate verdict: REPORT ONLY" in proc.stdout
    assert f"rootdir: {ROOT if where == 'repository' else cwd}" in proc.stdout
    assert written_into(outside_checkpoint) == [] and written_into(outside_checkpoint.parent) == []
    assert (tmp_path / "results" / "by_checkpoint" / "step_0100" / "text.json").is_file()


def test_collect_only_lists_just_the_gate(outside_checkpoint: Path) -> None:
    proc = pytest_in(ROOT, "--checkpoint", str(outside_checkpoint), "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert len(ids) == 6 and all(i.startswith("evaltests/test_demo.py::") for i in ids), ids  # and the suite's bridge
    assert sum(i.endswith("[bridge]") for i in ids) == 3


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_checkpoint_with_paths_that_hold_no_gate_test_is_a_usage_error(workers: list[str], outside_checkpoint: Path) -> None:
    proc = pytest_in(ROOT, *workers, "tests/test_suites.py", "--checkpoint", str(outside_checkpoint), "-p", "no:cacheprovider")
    assert proc.returncode == 4, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "hold no benchmark of the gate" in proc.stderr and "pytest tests" in proc.stderr
    assert "INTERNALERROR" not in proc.stdout + proc.stderr


def test_collect_only_needs_no_fetched_datasets(outside_checkpoint: Path, tmp_path: Path) -> None:
    empty_cache = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf")}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, **empty_cache, "HF_HUB_OFFLINE": "1"}
    args = [PYTEST, "--suite", "qwen3", "--checkpoint", str(outside_checkpoint), "-p", "no:cacheprovider", "--report-only"]
    listed = subprocess.run([*args, "--collect-only", "-q"], cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-2000:]
    assert "evaltests/test_math.py::test_gsm8k[gsm8k_8shot-step_0100]" in listed.stdout
    run = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 7 and "ckptgate prefill --suite qwen3" in run.stderr  # a real run still stops first
