"""The scorer of a suite: each benchmark goes to the scorer of its kind (an lm-eval task, or a
perplexity slice), so a suite mixes both and the engine sees one :class:`~ckptgate.scores.Scorer`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ckptgate.scores import LoadedModel, ScoreResult
from ckptgate.suites import Benchmark, Suite
from scorers.lm_eval_task import LmEvalTaskScorer, suite_task_manager
from scorers.slice_scorer import KIND as PERPLEXITY
from scorers.slice_scorer import PerplexityScorer


def only(suite: Suite, kind: str) -> Suite:
    """The suite with only its benchmarks of ``kind``."""
    return replace(suite, benchmarks=tuple(b for b in suite.benchmarks if b.kind == kind))


class SuiteScorer:
    def __init__(self, lm_eval: LmEvalTaskScorer, perplexity: PerplexityScorer) -> None:
        self.lm_eval = lm_eval
        self.perplexity = perplexity

    def check(self, suite: Suite) -> None:
        if only(suite, "lm_eval").benchmarks:
            self.lm_eval.check(only(suite, "lm_eval"))
        self.perplexity.check(suite)

    def score(self, session: LoadedModel, suite: Suite, benchmarks: Sequence[Benchmark], *,
              limit: int | None) -> dict[str, ScoreResult]:
        tasks = [b for b in benchmarks if b.kind != PERPLEXITY]
        found = self.lm_eval.score(session, only(suite, "lm_eval"), tasks, limit=limit) if tasks else {}
        return found | self.perplexity.score(session, suite, [b for b in benchmarks if b.kind == PERPLEXITY],
                                             limit=limit)

    def data_digest(self, suite: Suite, bench: Benchmark) -> str | None:
        """What the benchmark reads instead of the hub's current data: part of the record cache key."""
        if bench.kind == PERPLEXITY:
            return self.perplexity.data_digest(suite, bench)
        return self.lm_eval.data_digest(bench.task, suite_task_manager(suite))
