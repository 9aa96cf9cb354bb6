"""End to end on the demo: the statistical gate against bridge checkpoints and stored baselines."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from test_e2e import gate

LIMIT = "60"  # items per task: enough to see the demo's regressions, quick on CI


def rows(results_dir: Path) -> list[dict[str, str]]:
    with (results_dir / "eval_summary.csv").open() as handle:
        return list(csv.DictReader(handle))


def bridge_rows(results_dir: Path, checkpoint: str) -> list[dict[str, str]]:
    return [r for r in rows(results_dir) if r["checkpoint"] == checkpoint and r["against"].startswith("bridge:")]


def copy_checkpoint(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def degrade(source: Path, target: Path, scale: float) -> Path:
    """A copy of ``source`` with Gaussian noise added to every weight matrix."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    weights = load_file(str(source / "model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    noisy = {
        name: t + scale * t.float().std() * torch.randn(t.shape, generator=generator) if t.dim() == 2 else t
        for name, t in weights.items()
    }
    save_file({k: v.contiguous() for k, v in noisy.items()}, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    cache = tmp_path / "records"

    def _run(*args: str, results: str = "results"):  # type: ignore[no-untyped-def]
        out = tmp_path / results
        proc = gate("--limit", LIMIT, "--record-cache", str(cache), "--results-dir", str(out), *args)
        return proc, out

    return _run


def test_bit_identical_copy_passes_against_the_original_as_bridge(demo_root: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    copy = copy_checkpoint(demo_root / "step_0800", tmp_path / "copy_final")
    proc, out = run("--checkpoint", str(copy), "--bridge", str(demo_root / "step_0800"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    compared = bridge_rows(out, "copy_final")
    assert {r["metric"] for r in compared if r["primary"] == "True"} == {
        "exact_match,strict-match", "acc,none", "bits_per_byte,none"}
    assert all(float(r["delta"]) == 0 and float(r["p_value"]) == 1 for r in compared)
    assert {r["verdict"] for r in compared if r["primary"] == "True"} == {"pass"}


def test_earlier_step_fails_against_a_later_bridge(demo_root: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    proc, out = run("-n", "2", "--checkpoint", str(demo_root / "step_0100"), "--bridge", str(demo_root / "step_0800"))
    assert proc.returncode == 1, proc.stdout[-4000:]
    failed = {r["benchmark"] for r in bridge_rows(out, "step_0100") if r["verdict"] == "fail"}
    assert failed == {"arithmetic", "choice", "text"}
    assert "arithmetic (task demo_arithmetic) on step_0100:" in proc.stdout
    # The failure names the bridge's value it was compared with (whatever the shipped step_0800 scores).
    from ckptgate.reports import format_value

    strict = next(r for r in bridge_rows(out, "step_0100") if r["metric"] == "exact_match,strict-match")
    assert float(strict["reference"]) > float(strict["value"])
    assert f"vs {format_value(float(strict['reference']))}" in proc.stdout
    assert "[95% CI" in proc.stdout and "MDE" in proc.stdout
    assert "self-check FAILED" not in proc.stdout  # the bridge was loaded once, by one worker
    # The bridge's records are cached by fingerprint: the next run does not score it again.
    copy = copy_checkpoint(demo_root / "step_0800", tmp_path / "copy_final")
    again, out = run("--checkpoint", str(copy), "--bridge", str(demo_root / "step_0800"),
                     "-k", "choice", results="again")
    assert again.returncode == 0 and "2 passed" in again.stdout, again.stdout[-3000:]
    bridge_record = json.loads((out / "by_checkpoint" / "step_0800" / "choice.json").read_text())
    assert bridge_record["timing"]["from_cache"] is True


def test_degraded_weights_fail_naming_the_benchmarks_that_dropped(demo_root: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    noisy = degrade(demo_root / "step_0800", tmp_path / "noisy_final", scale=0.5)
    proc, out = run("--checkpoint", str(noisy), "--bridge", str(demo_root / "step_0800"))
    assert proc.returncode == 1, proc.stdout[-4000:]
    failed = {r["benchmark"] for r in bridge_rows(out, "noisy_final") if r["verdict"] == "fail"}
    assert failed, proc.stdout[-4000:]
    for benchmark in failed:
        assert f"{benchmark} (task demo_{benchmark}) on noisy_final:" in proc.stdout


def test_update_baselines_writes_then_gates(demo_root: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    baseline = tmp_path / "demo-final.yaml"
    proc, _ = run("--checkpoint", str(demo_root / "step_0800"), "--baseline", str(baseline), "--update-baselines")
    assert proc.returncode == 1, proc.stdout[-4000:]  # an update never passes silently
    assert f"--update-baselines wrote {baseline}" in proc.stdout and "+  - benchmark: arithmetic" in proc.stdout
    assert "acc,none" in baseline.read_text()
    same, out = run("--checkpoint", str(demo_root / "step_0800"), "--baseline", str(baseline), results="same")
    assert same.returncode == 0, same.stdout[-4000:]
    worse, out = run("--checkpoint", str(demo_root / "step_0100"), "--baseline", str(baseline), results="worse")
    assert worse.returncode == 1, worse.stdout[-4000:]
    against = {r["against"] for r in rows(out) if r["verdict"] == "fail"}
    assert against == {"baseline:demo-final"}
