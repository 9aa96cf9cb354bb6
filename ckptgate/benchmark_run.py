"""One test item's work: score a benchmark on a checkpoint, judge it against the run's
references, write its record, and assert the verdict (``benchmark_run.check()`` in a test)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ckptgate import failures, gate, records, reports, results, status
from ckptgate.baselines import run_settings
from ckptgate.checkpoints import Checkpoint
from ckptgate.collection import Case
from ckptgate.errors import CkptgateError
from ckptgate.evaluation import Evaluator, Scored
from ckptgate.runplan import RunPlan
from ckptgate.runstate import RunState
from ckptgate.suites import Benchmark

INCONCLUSIVE_WORD = "INCONCLUSIVE"


@dataclass
class BenchmarkRun:
    """A benchmark evaluated on a checkpoint: its checks, and the assertion over them."""

    case: Case
    checks: list[gate.Check]
    policy: gate.Policy
    record_path: Path
    samples: int = 0  # per-sample records scored
    cached: bool = False  # read from the record cache

    def check(self) -> None:
        """Fail on a failed (or uncomputable) check; an undecided one makes the test INCONCLUSIVE."""
        failed = any(c.verdict in ("fail", "error") for c in self.checks)
        if failed or self.inconclusive:
            report = reports.failure_report(self.case.checkpoint, self.case.benchmark, self.checks, self.policy)
            if failed:
                pytest.fail(report, pytrace=False)
            pytest.skip(f"{INCONCLUSIVE_WORD}: {report}")

    @property
    def inconclusive(self) -> bool:
        return any(c.verdict in ("inconclusive", "pending") for c in self.checks)


def run(state: RunState, evaluator: Evaluator, case: Case, planned: Callable[[], list[Benchmark]],
        policy: gate.Policy) -> BenchmarkRun:
    """Evaluate ``case``; an evaluation that raises still leaves an error row in the summary.
    Its start and end are status lines (``--status-log``)."""
    target, started = state.plan.status_log, time.monotonic()
    where = {"run_id": state.plan.run_id, "checkpoint": case.checkpoint.label, "step": case.checkpoint.step,
             "role": case.checkpoint.role, "benchmark": case.benchmark.id, "worker": state.worker}
    status.emit(target, status.line("start", **where))
    try:
        done = _evaluate(state, evaluator, case, planned, policy)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, CkptgateError) else f"{type(exc).__name__}: {exc}"
        _add_rows(state, case.checkpoint, case.benchmark, gate.error_checks(case.benchmark, message))
        machine = failures.infrastructure(exc)
        if machine is not None:
            state.infrastructure.append(f"{case.checkpoint.label} {case.benchmark.id}: {machine}")
        status.emit(target, status.line("end", **where, outcome="error", error=message,
                                        infrastructure=machine, duration_s=round(time.monotonic() - started, 3)))
        if isinstance(exc, CkptgateError):
            pytest.fail(message, pytrace=False)
        raise
    verdicts = [c.verdict for c in done.checks]
    status.emit(target, status.line(
        "end", **where, outcome=status.outcome(verdicts, [c.primary for c in done.checks]),
        verdicts=status.counts(verdicts), samples=done.samples, cached=done.cached,
        duration_s=round(time.monotonic() - started, 3)))
    return done


def _evaluate(state: RunState, evaluator: Evaluator, case: Case, planned: Callable[[], list[Benchmark]],
              policy: gate.Policy) -> BenchmarkRun:
    plan = state.plan
    bench, ckpt = case.benchmark, case.checkpoint
    bridges = plan.bridges if ckpt.role == "candidate" else []
    scored = evaluator.reference(ckpt, bench, planned) if ckpt.role == "bridge" else evaluator.score(ckpt, bench, planned)
    # After the candidate: its first test scored all its benchmarks, so loading a bridge here (when
    # no other worker has scored it yet) never makes the candidate load twice.
    refs = [(b.label, evaluator.reference(b, bench, planned).result) for b in bridges]
    score = scored.result
    references = gate.References(bridges=refs, baseline=plan.baseline(), settings=_run_settings(plan, bench, scored))
    checks = gate.judge(bench, score, role=ckpt.role, references=references, policy=policy)
    if plan.report_only:
        checks = gate.report_only(checks)
    record = records.build(plan, ckpt, bench, scored, checks, policy, [label for label, _ in refs], state.worker)
    path = results.write_benchmark(plan.results_dir, ckpt.label, bench.id, record, score.samples)
    _add_rows(state, ckpt, bench, checks, cached=scored.cached)
    records.warn_if_truncated(ckpt, bench, score)
    return BenchmarkRun(case=case, checks=checks, policy=policy, record_path=path, samples=len(score.samples),
                        cached=scored.cached)


def _run_settings(plan: RunPlan, bench: Benchmark, scored: Scored) -> dict[str, Any]:
    """This run's settings that change a benchmark's numbers, as a baseline records them."""
    config = {"num_fewshot": bench.num_fewshot, **scored.result.config, "limit": plan.limit}
    return {"task": bench.task, **run_settings(config, scored.settings)}


def _add_rows(state: RunState, ckpt: Checkpoint, bench: Benchmark, checks: list[gate.Check], *,
              cached: bool = False) -> None:
    context = results.row_context(ckpt.to_dict(), bench.to_dict(), state.plan.limit, run_id=state.plan.run_id,
                                  cached=cached)
    state.rows.extend(results.SummaryRow.from_check(c.to_dict(), **context) for c in checks)
