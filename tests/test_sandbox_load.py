"""Verdicts do not depend on machine load: with every core saturated by busy processes,
HumanEval's 164 canonical solutions pass at the concurrency a worker of a two-worker xdist run
gets, and programs whose wall-clock time the load stretches past their CPU budget still pass."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from ckptgate import sandbox as sandbox_module
from ckptgate.sandbox import Limits, Sandbox, Status, cpu_share

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's isolation layers are Linux namespaces")

BUSY = "while True:\n    pass\n"


@pytest.fixture
def saturated_cores() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Twice as many busy-looping processes as cores, for the duration of the test; each in a
    session of its own, as each sandbox is, so that the scheduler's autogroups (one per session)
    do not shield the sandboxes from them."""
    busy = [subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.DEVNULL, start_new_session=True)
            for _ in range(2 * (os.cpu_count() or 1))]
    try:
        time.sleep(0.2)
        yield busy
    finally:
        for proc in busy:
            proc.kill()
        for proc in busy:
            proc.wait()


def test_humaneval_canonical_solutions_pass_while_the_cores_are_saturated(
        monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    from scorers.code_programs import humaneval_problems, humaneval_program

    problems = list(humaneval_problems().values())
    assert len(problems) == 164
    jobs = [(humaneval_program(p, p["canonical_solution"]), "") for p in problems]
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")  # as if this were one of two xdist workers
    pools: list[int] = []
    real = sandbox_module.ThreadPoolExecutor
    monkeypatch.setattr(sandbox_module, "ThreadPoolExecutor",
                        lambda max_workers: pools.append(max_workers) or real(max_workers=max_workers))
    box = Sandbox()  # the seed limits: 5 s of CPU per sample, the 30 s wall-clock guard
    assert box.limits == Limits()
    box.check()  # probe the isolation layers before the load starts
    busy = request.getfixturevalue("saturated_cores")
    verdicts = box.run_many(jobs)
    assert all(proc.poll() is None for proc in busy)  # the cores stayed saturated throughout
    assert pools == [cpu_share(2)]  # this process's share, not one sandbox per core
    failed = [(p["task_id"], v.to_dict(excerpt=300)) for p, v in zip(problems, verdicts) if not v.passed]
    assert [v.status for v in verdicts] == [Status.PASSED] * 164, failed[:3]
    # CPU time, which verdicts go by, stays far below the budget however long the wall clock took
    assert max(v.cpu_seconds or 0.0 for v in verdicts) < box.limits.cpu_s / 2


def test_load_stretching_the_wall_clock_past_the_cpu_budget_does_not_time_out(
        saturated_cores: list[subprocess.Popen[bytes]]) -> None:
    """Half the CPU budget of work each, several at once next to the busy processes: on a loaded
    machine their wall-clock time typically exceeds the budget (a wall-clock limit of that size
    would time them out), their CPU time does not."""
    box = Sandbox(Limits(cpu_s=1, timeout_s=30))
    work = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.5:\n    pass\n"
    verdicts = box.run_many([(work, "assert True")] * 4, workers=4)
    assert all(proc.poll() is None for proc in saturated_cores)
    assert [v.status for v in verdicts] == [Status.PASSED] * 4, [v.to_dict(excerpt=300) for v in verdicts]
    assert all(v.cpu_seconds is not None and 0.5 <= v.cpu_seconds < 1 for v in verdicts)
