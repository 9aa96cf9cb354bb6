"""Verdicts: a benchmark's measured metrics against the thresholds its suite declares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ckptgate.errors import SuiteError
from ckptgate.suites import Benchmark
from ckptgate.reports import format_value
from scorers.base import MetricValue

if TYPE_CHECKING:
    from ckptgate.checkpoints import Checkpoint


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    value: float | None
    stderr: float | None
    n: int | None
    threshold: str
    verdict: str  # pass | fail | info | error

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "stderr": self.stderr,
            "n": self.n,
            "threshold": self.threshold,
            "verdict": self.verdict,
        }


def judge(benchmark: Benchmark, metrics: dict[str, MetricValue]) -> list[MetricVerdict]:
    """One verdict per declared metric; a declared metric the scorer did not report is an error."""
    missing = [m.key for m in benchmark.metrics if m.key not in metrics]
    if missing:
        raise SuiteError(
            f"benchmark {benchmark.id!r} (task {benchmark.task!r}) declares metric(s) "
            f"{', '.join(missing)} but the task reported only: {', '.join(sorted(metrics))}"
        )
    verdicts = []
    for gate in benchmark.metrics:
        measured = metrics[gate.key]
        if not gate.gating:
            verdict = "info"
        elif measured.value is None:
            verdict = "error"
        else:
            verdict = "pass" if gate.passes(measured.value) else "fail"
        verdicts.append(
            MetricVerdict(
                metric=gate.key,
                value=measured.value,
                stderr=measured.stderr,
                n=measured.n,
                threshold=gate.threshold_text(),
                verdict=verdict,
            )
        )
    return verdicts


def error_verdicts(benchmark: Benchmark) -> list[MetricVerdict]:
    """Placeholder verdicts for a benchmark whose evaluation raised."""
    return [
        MetricVerdict(m.key, None, None, None, m.threshold_text(), "error") for m in benchmark.metrics
    ]


def failure_report(
    checkpoint: Checkpoint, benchmark: Benchmark, verdicts: list[MetricVerdict]
) -> str:
    """The assertion message: reads like a report line per gated metric."""
    failed = [v for v in verdicts if v.verdict == "fail"]
    gated = [v for v in verdicts if v.verdict in {"pass", "fail"}]
    lines = [
        f"{benchmark.id} (task {benchmark.task}) on {checkpoint.label}: "
        f"{len(failed)} of {len(gated)} gated metric(s) outside their threshold"
    ]
    width = max(len(v.metric) for v in verdicts)
    for v in verdicts:
        lines.append(
            f"  {v.verdict.upper():5} {v.metric:<{width}}  = {format_value(v.value, v.stderr):<20} "
            f"threshold {v.threshold:<12} n={v.n}"
        )
    return "\n".join(lines)
