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


def primary(out: Path, checkpoint: str) -> dict[str, dict[str, str]]:
    return {r["benchmark"]: r for r in bridge_rows(out, checkpoint) if r["primary"] == "True"}


def test_identical_and_near_identical_copies_pass_and_few_items_are_inconclusive(
    demo_root: Path, tmp_path: Path, run  # type: ignore[no-untyped-def]
) -> None:
    """A bit-identical copy of step_0800 and one with 0.1% weight noise are shown not worse than
    step_0800 by the demo's margins on the full benchmarks (GO); on 5 items per task the same
    comparisons of the 0/1 metrics cannot be decided: INCONCLUSIVE, never PASS, and so is the run."""
    copy = copy_checkpoint(demo_root / "step_0800", tmp_path / "copy_final")
    noisy = degrade(demo_root / "step_0800", tmp_path / "noisy_final", scale=0.001)
    full = gate("--record-cache", str(tmp_path / "records"), "--results-dir", str(tmp_path / "full"), "-n", "2",
                "--checkpoint", str(copy), "--checkpoint", str(noisy), "--bridge", str(demo_root / "step_0800"))
    assert full.returncode == 0, full.stdout[-4000:] + full.stderr[-3000:]
    assert "ckptgate verdict: GO" in full.stdout
    identical = primary(tmp_path / "full", "copy_final")
    assert set(identical) == {"arithmetic", "choice", "text"}
    assert all(float(r["delta"]) == 0 and float(r["p_value"]) == 1 and r["verdict"] == "pass" for r in identical.values())
    assert {r["verdict"] for r in primary(tmp_path / "full", "noisy_final").values()} == {"pass"}

    few, out = run("--checkpoint", str(noisy), "--bridge", str(demo_root / "step_0800"), "--limit", "5",
                   "--junitxml", str(tmp_path / "junit.xml"), results="few")
    assert few.returncode == 6, few.stdout[-4000:] + few.stderr[-3000:]
    rows_few = primary(out, "noisy_final")
    assert rows_few["arithmetic"]["verdict"] == rows_few["choice"]["verdict"] == "inconclusive"
    assert "ckptgate verdict: INCONCLUSIVE" in few.stdout and "inconclusive" in few.stdout.splitlines()[-1]
    junit = (tmp_path / "junit.xml").read_text()
    assert 'message="INCONCLUSIVE: arithmetic (task demo_arithmetic) on noisy_final' in junit
    assert '<property name="verdict" value="inconclusive"' in junit
    record = json.loads((out / "by_checkpoint" / "noisy_final" / "choice.json").read_text())
    assert record["settled"] and next(c for c in record["checks"] if c["against"].startswith("bridge")
                                      and c["primary"])["verdict"] == "inconclusive"
    accepted, _ = run("--checkpoint", str(noisy), "--bridge", str(demo_root / "step_0800"), "--limit", "5",
                      "--accept-inconclusive", results="accepted")
    assert accepted.returncode == 0 and "ckptgate verdict: INCONCLUSIVE" in accepted.stdout, accepted.stdout[-3000:]


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
                     "-k", "choice", "--report-only", results="again")
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
    # The same numbers, but a stored number is an independent sample: 60 items against 60 cannot
    # show "within 5 points", so the baseline comparisons are INCONCLUSIVE (exit 6), never PASS.
    assert same.returncode == 6, same.stdout[-4000:]
    assert {r["verdict"] for r in rows(out) if r["against"] == "baseline:demo-final" and r["primary"] == "True"} == {
        "inconclusive"}
    worse, out = run("--checkpoint", str(demo_root / "step_0100"), "--baseline", str(baseline), results="worse")
    assert worse.returncode == 1, worse.stdout[-4000:]
    against = {r["against"] for r in rows(out) if r["verdict"] == "fail"}
    assert against == {"baseline:demo-final", "bridge:bridge"}  # the suite's bridge (step 500) gates too


def test_calibrated_margins_pass_the_plateau_against_each_other(demo_root: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """`ckptgate calibrate` on the demo's late plateau (steps 800-900, learning rate annealed to zero)
    writes margins never below the measured noise, with which the plateau's checkpoints PASS
    against each other, either way round."""
    import subprocess
    import sys

    import yaml

    ckptgate = str(Path(sys.executable).parent / "ckptgate")
    results_dir, out = tmp_path / "calibration", tmp_path / "margins.yaml"
    proc = subprocess.run([ckptgate, "calibrate", "--checkpoint", str(demo_root), "--suite", "demo", "--last", "3",
                           "--results-dir", str(results_dir), "--out", str(out)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "step_0800, step_0850, step_0900" in proc.stdout and "noise (sd)" in proc.stdout
    written = yaml.safe_load(out.read_text())
    assert written["checkpoints"] == [str(demo_root / f"step_0{s}") for s in (800, 850, 900)]
    for metric in (written["margins"]["arithmetic"]["exact_match,strict-match"], written["margins"]["choice"]["acc,none"]):
        assert metric["margin"] >= metric["noise"] and metric["margin"] >= metric["needed"] > 0
    assert str(written["margins"]["text"]["bits_per_byte,none"]["margin"]).endswith("%")
    # Again: the stored results are reused, nothing is measured twice.
    again = subprocess.run([ckptgate, "calibrate", "--checkpoint", str(demo_root), "--suite", "demo",
                            "--results-dir", str(results_dir), "--out", str(tmp_path / "again.yaml")],
                           capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "measuring" not in again.stderr, again.stderr[-2000:]
    forward, fwd_out = run("-n", "2", "--checkpoint", str(demo_root / "step_0850"), "--checkpoint",
                           str(demo_root / "step_0900"), "--bridge", str(demo_root / "step_0800"), "--margins", str(out),
                           "--limit", "1000", results="forward")
    assert forward.returncode == 0 and "ckptgate verdict: GO" in forward.stdout, forward.stdout[-4000:]
    assert {r["threshold"] for r in primary(fwd_out, "step_0850").values()} >= {
        "margin 0.048 (margins file margins.yaml)", "margin 0.063 (margins file margins.yaml)"}
    backward, _ = run("--checkpoint", str(demo_root / "step_0800"), "--bridge", str(demo_root / "step_0900"),
                      "--margins", str(out), "--limit", "1000", results="backward")
    assert backward.returncode == 0 and "ckptgate verdict: GO" in backward.stdout, backward.stdout[-4000:]
    # With the suite's own margins (5 points) the plateau's choice accuracy is not shown equal.
    plain, plain_out = run("--checkpoint", str(demo_root / "step_0850"), "--bridge", str(demo_root / "step_0800"),
                           "-k", "choice", "--limit", "1000", results="plain")
    assert plain.returncode == 6, plain.stdout[-3000:]
