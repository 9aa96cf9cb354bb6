"""What scorers and the engine share: scores, metric values, the loaded-model and scorer
protocols, the run's seed and the metric families that are not proportions.

The bottom floor of the project: it imports nothing of ckptgate's at run time, so scorers
(``scorers/``), backends and the gate can all depend on it without a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ckptgate.suites import Benchmark, Suite

SEED = 42  # every seed of a run: sampling, few-shot order, the backends' own

# Metrics lm-eval aggregates as a ratio of sums of per-document log-likelihood and weight.
# ``token_perplexity`` is the perplexity slices' (per token of the model's own tokenizer).
RATIO_METRICS = frozenset({"word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity"})
# Per-document log-likelihood aggregated as exp(-mean): loglikelihood tasks' ``perplexity``.
LOGLIK_METRICS = frozenset({"perplexity"})
# The perplexity family: not proportions, and paired on per-document log-likelihood.
PERPLEXITY_FAMILY = RATIO_METRICS | LOGLIK_METRICS


@dataclass(frozen=True)
class MetricValue:
    """One aggregated metric: its value, standard error (None when unknown) and sample count."""

    value: float | None
    stderr: float | None
    n: int


@dataclass
class ScoreResult:
    """What a scorer measured for one benchmark on one checkpoint.

    ``higher_is_better`` maps metric names (without the filter) to their direction, as the
    task declares it; ``samples`` are the per-item records paired tests work on.
    """

    metrics: dict[str, MetricValue]
    samples: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)

    def better_is_higher(self, metric_key: str) -> bool:
        name = metric_key.partition(",")[0]
        if name not in self.higher_is_better:
            raise KeyError(f"the task does not say whether higher {name!r} is better")
        return self.higher_is_better[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (samples excluded: they are stored beside it, one per line)."""
        return {
            "metrics": {k: {"value": m.value, "stderr": m.stderr, "n": m.n} for k, m in self.metrics.items()},
            "config": self.config,
            "higher_is_better": self.higher_is_better,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], samples: list[dict[str, Any]]) -> ScoreResult:
        return cls(
            metrics={k: MetricValue(**m) for k, m in data["metrics"].items()},
            samples=samples,
            config=data.get("config", {}),
            higher_is_better=data.get("higher_is_better", {}),
        )


class LoadedModel(Protocol):
    """A checkpoint loaded once by a backend, as scorers use it."""

    @property
    def lm(self) -> Any:
        """lm-eval's ``LM`` for the checkpoint."""

    @property
    def settings(self) -> dict[str, Any]:
        """The settings the model was loaded with (recorded with every result)."""


class Scorer(Protocol):
    """Scores benchmarks of a suite on a loaded model."""

    def check(self, suite: Suite) -> None:
        """Fail fast (before any model loads) on benchmarks this scorer cannot run."""

    def score(
        self,
        session: LoadedModel,
        suite: Suite,
        benchmarks: Sequence[Benchmark],
        *,
        limit: int | None,
    ) -> dict[str, ScoreResult]:
        """Run the benchmarks (in as few passes as the scorer can) and return each one's
        metrics and per-sample records, keyed by benchmark id."""
