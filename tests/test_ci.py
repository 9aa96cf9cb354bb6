"""The gate in CI: ci/gate_job.py runs it, appends the verdict table to the job summary, and exits
with the verdict's code; the GitHub Actions and GitLab templates call it as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from ckptgate import exitcodes
from test_e2e import ROOT

JOB = ROOT / "ci" / "gate_job.py"


def _job(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(JOB), *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, check=False)


def test_a_go_is_exit_0_with_the_verdict_table_in_the_github_job_summary(demo_root: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    proc = _job(tmp_path, "--checkpoint", str(demo_root / "step_0800"), "--suite", "demo", "--results-dir",
                str(tmp_path / "results"), "--", "--limit", "40", "-k", "arithmetic",
                "--record-cache", str(tmp_path / "records"), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == exitcodes.GO, proc.stdout[-3000:] + proc.stderr[-2000:]
    text = summary.read_text()
    assert text.startswith("## ckptgate: GO: every primary comparison passed (exit code 0)")
    assert "step_0800" in text and "| " in text  # the verdict table
    assert (tmp_path / "results" / "junit.xml").is_file() and "::error" not in proc.stdout


def test_a_no_go_fails_the_job_with_an_error_annotation(demo_root: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    proc = _job(tmp_path, "--checkpoint", str(demo_root / "step_0100"), "--suite", "demo", "--results-dir",
                str(tmp_path / "results"), "--summary", str(summary), "--", "--limit", "40", "-k", "arithmetic",
                "--record-cache", str(tmp_path / "records"))
    assert proc.returncode == exitcodes.NO_GO, proc.stdout[-3000:]
    assert "::error title=ckptgate::NO-GO: a primary comparison failed" in proc.stdout
    assert "NO-GO" in summary.read_text() and "FAIL" in summary.read_text()


def test_new_under_gates_a_training_runs_checkpoints_through_the_nightly_store(demo_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "step_0800").symlink_to(demo_root / "step_0800")
    args = ("--new-under", str(run), "--suite", "demo", "--results-dir", str(tmp_path / "results"),
            "--summary", str(tmp_path / "summary.md"), "--", "--limit", "40", "-k", "arithmetic")
    proc = _job(tmp_path, *args)
    assert proc.returncode == exitcodes.GO, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert (tmp_path / "results" / "junit.xml").is_file() and (tmp_path / "results" / "records").is_dir()
    assert "step_0800" in (tmp_path / "summary.md").read_text()


def _workflow() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "ci" / "github" / "gate.yml").read_text())


def test_the_github_workflow_gates_on_dispatch_or_nightly_and_publishes_everything() -> None:
    flow = _workflow()
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads the key `on` as true
    assert "checkpoint" in triggers["workflow_dispatch"]["inputs"] and triggers["schedule"]
    job = flow["jobs"]["gate"]
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    steps = {step.get("name"): step for step in job["steps"]}
    gate = steps["Gate"]["run"]
    assert "ci/gate_job.py" in gate and "--checkpoint" in gate and "--new-under" in gate
    junit = steps["Publish the JUnit report"]
    assert junit["if"] == "always()" and junit["with"]["report_paths"].endswith("/junit.xml")
    upload = steps["Upload the results folder"]
    assert upload["if"] == "always()" and upload["uses"].startswith("actions/upload-artifact@")
    assert "${{ env.RESULTS_DIR }}" in upload["with"]["path"]
    # The job summary comes from gate_job.py through $GITHUB_STEP_SUMMARY, which Actions sets.
    assert "GITHUB_STEP_SUMMARY" in JOB.read_text()


def test_the_gitlab_template_runs_the_same_job_and_reports_junit() -> None:
    data = yaml.safe_load((ROOT / "ci" / "gitlab" / "gate.gitlab-ci.yml").read_text())
    job = data["ckptgate"]
    assert any("ci/gate_job.py" in line and "--summary" in line for line in job["script"])
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["reports"]["junit"].endswith("junit.xml")
