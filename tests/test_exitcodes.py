"""Exit codes a pipeline can rely on: GO 0, NO-GO 1, usage or input error 4, INCONCLUSIVE 6, and
the machine's failures 7 (busy GPU, sandbox unavailable, dataset missing offline, engine crash)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from ckptgate import cli, exitcodes
from ckptgate.errors import DataUnavailable, GpuUnavailable, SandboxUnavailable, SuiteError
from ckptgate.failures import infrastructure
from test_e2e import PYTEST, ROOT


class EngineDeadError(Exception):
    pass


EngineDeadError.__module__ = "vllm.v1.engine.exceptions"  # as vLLM's own engine errors are


@pytest.mark.parametrize("exc", [
    GpuUnavailable("--gpus names busy GPU(s)"), DataUnavailable("not fetched"), SandboxUnavailable("no namespaces"),
    MemoryError(), RuntimeError("CUDA error: an illegal memory access was encountered"),
    RuntimeError("NCCL error in: ...: unhandled system error"), EngineDeadError("EngineCore died unexpectedly"),
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_the_machines_failures_are_told_from_the_models_and_the_inputs(exc: BaseException) -> None:
    assert infrastructure(exc)


@pytest.mark.parametrize("exc", [SuiteError("bad suite"), ValueError("bad value"), KeyError("acc"),
                                 RuntimeError("shapes do not match"), OSError(errno.ENOENT, "No such file")])
def test_bugs_and_bad_input_are_not_infrastructure(exc: BaseException) -> None:
    assert infrastructure(exc) is None


def test_the_codes_are_distinct_and_keep_pytests_meanings() -> None:
    codes = [exitcodes.GO, exitcodes.NO_GO, exitcodes.USAGE, exitcodes.INCONCLUSIVE, exitcodes.INFRA]
    assert codes == [0, 1, 4, 6, 7] and len(set(codes)) == len(codes)
    assert exitcodes.GO == pytest.ExitCode.OK and exitcodes.NO_GO == pytest.ExitCode.TESTS_FAILED
    assert exitcodes.USAGE == pytest.ExitCode.USAGE_ERROR


def test_the_command_line_exits_4_on_bad_input(tmp_path: Path) -> None:
    assert cli.main(["history", "--results-dir", str(tmp_path / "none")]) == exitcodes.USAGE


def _gate(tmp_path: Path, checkpoint: Path, broken: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BROKEN_BENCHMARKS": broken,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "fixtures" / "plugins"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [PYTEST, str(ROOT / "evaltests"), "-p", "no:cacheprovider", "-p", "broken_device", "--limit", "10",
         "--checkpoint", str(checkpoint), "--record-cache", "none", "--results-dir", str(tmp_path / "results"),
         "--status-log", str(tmp_path / "status.jsonl"), *args],
        cwd=ROOT, capture_output=True, text=True, env=env, check=False)


def test_a_device_failure_mid_run_exits_7_and_says_the_machine_failed(demo_root: Path, tmp_path: Path) -> None:
    proc = _gate(tmp_path, demo_root / "step_0800", "text", "-n", "2")
    out = proc.stdout + proc.stderr
    assert proc.returncode == exitcodes.INFRA, out[-3000:]
    assert "ckptgate infrastructure failure: step_0800 text: device or engine failure (RuntimeError: CUDA error" in out
    assert "ckptgate verdict: INFRASTRUCTURE FAILURE" in out
    ends = [json.loads(line) for line in (tmp_path / "status.jsonl").read_text().splitlines()]
    broken = [r for r in ends if r["event"] == "end" and r["benchmark"] == "text" and r["role"] == "candidate"]
    assert broken and broken[0]["outcome"] == "error" and broken[0]["infrastructure"].startswith("device or engine")
    assert "INFRASTRUCTURE FAILURE" in (tmp_path / "results" / "summary.md").read_text()


def test_a_model_regression_is_no_go_whatever_else_broke(demo_root: Path, tmp_path: Path) -> None:
    proc = _gate(tmp_path, demo_root / "step_0100", "text", "-k", "arithmetic or text", "--limit", "40")  # a regression
    assert proc.returncode == exitcodes.NO_GO, (proc.stdout + proc.stderr)[-3000:]
    assert "ckptgate infrastructure failure: step_0100 text" in proc.stdout and "ckptgate verdict: NO-GO" in proc.stdout
