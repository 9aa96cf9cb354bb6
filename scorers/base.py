"""The scorer interface: what turns a loaded model and a benchmark into numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ckptgate.backends import ModelSession
    from ckptgate.suites import Benchmark, Suite

SEED = 42


@dataclass(frozen=True)
class MetricValue:
    """One aggregated metric: its value, standard error (None when unknown) and sample count."""

    value: float | None
    stderr: float | None
    n: int


@dataclass
class ScoreResult:
    """What a scorer measured for one benchmark on one checkpoint."""

    metrics: dict[str, MetricValue]
    samples: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    """Scores one benchmark of a suite on a loaded model."""

    def check(self, suite: Suite) -> None:
        """Fail fast (before any model loads) on benchmarks this scorer cannot run."""

    def score(
        self, session: ModelSession, suite: Suite, benchmark: Benchmark, *, limit: int | None
    ) -> ScoreResult:
        """Run the benchmark and return its metrics and per-sample records."""
