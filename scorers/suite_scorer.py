"""The scorer of a suite: each benchmark goes to the scorer of its kind (an lm-eval task, or a
perplexity slice), so a suite mixes both and the engine sees one :class:`~ckptgate.scores.Scorer`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ckptgate.scores import LoadedModel, ScoreResult
from ckptgate.suites import Benchmark, Suite
from scorers import inputs
from scorers.lm_eval_task import LmEvalTaskScorer, yamls_of
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

    def inputs(self, suite: Suite, bench: Benchmark) -> dict[str, str | None]:
        """Digests of what the benchmark reads besides the checkpoint (the record cache's key):
        its data, its task files and the scoring code it runs (see :mod:`scorers.inputs`)."""
        if bench.kind == PERPLEXITY:
            spec = self.perplexity.slice_for(suite, bench)
            return {"data": self.perplexity.data_digest(suite, bench), "slice": repr(spec),
                    "code": inputs.code_digest(PERPLEXITY)}
        base = self.lm_eval.index(suite)
        files = inputs.task_files(yamls_of(base, bench.task))
        return {"data": self.lm_eval.data_digest(bench.task, base), "task_files": inputs.files_key(files),
                "code": inputs.code_digest("lm_eval", inputs.scorer_modules(files))}
