"""Scorer for lm-evaluation-harness tasks: one ``simple_evaluate`` call on a pre-loaded model.

Metrics, filters and stderr are lm-eval's own; this module only selects the task, passes the
mandated seeds and settings, and reshapes the output.
"""

from __future__ import annotations

import difflib
import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptgate.errors import SuiteError
from scorers.base import SEED, MetricValue, ScoreResult

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

    from ckptgate.backends import ModelSession
    from ckptgate.suites import Benchmark, Suite

# lm-eval's default; recorded with each result. Only metrics without a closed-form standard
# error (median, f1, perplexity, bleu, ...) are bootstrapped.
BOOTSTRAP_ITERS = 100_000


@functools.cache
def task_manager(task_paths: tuple[Path, ...], include_defaults: bool) -> TaskManager:
    """Indexing lm-eval's task tree takes seconds: build one manager per process and suite."""
    from lm_eval.tasks import TaskManager

    return TaskManager(
        include_path=[str(p) for p in task_paths] or None, include_defaults=include_defaults
    )


def suite_task_manager(suite: Suite) -> TaskManager:
    return task_manager(suite.task_paths, suite.include_default_tasks)


class LmEvalTaskScorer:
    """Runs a benchmark's lm-eval task through ``lm_eval.simple_evaluate``."""

    name = "lm_eval"

    def check(self, suite: Suite) -> None:
        known = set(suite_task_manager(suite).all_tasks)
        for bench in suite.benchmarks:
            if bench.task not in known:
                close = difflib.get_close_matches(bench.task, known, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise SuiteError(
                    f"{suite.path}: benchmark {bench.id!r} names lm-eval task {bench.task!r}, "
                    f"which is not among the tasks lm-eval knows here "
                    f"(task directories: {', '.join(map(str, suite.task_paths)) or 'none'}; "
                    f"built-in tasks {'included' if suite.include_default_tasks else 'excluded'}).{hint}"
                )

    def score(
        self, session: ModelSession, suite: Suite, benchmark: Benchmark, *, limit: int | None
    ) -> ScoreResult:
        from lm_eval import simple_evaluate

        gen_kwargs: dict[str, Any] = {"temperature": 0, "do_sample": False} | benchmark.gen_kwargs
        out = simple_evaluate(
            model=session.lm,
            tasks=[benchmark.task],
            num_fewshot=benchmark.num_fewshot,
            limit=limit,
            task_manager=suite_task_manager(suite),
            log_samples=True,
            gen_kwargs=gen_kwargs,
            bootstrap_iters=BOOTSTRAP_ITERS,
            random_seed=SEED,
            numpy_random_seed=SEED,
            torch_random_seed=SEED,
            fewshot_random_seed=SEED,
        )
        if out is None:
            raise RuntimeError("lm_eval.simple_evaluate returned no results (non-zero rank?)")
        return parse_output(out, benchmark.task, gen_kwargs)


def parse_output(out: dict[str, Any], task: str, gen_kwargs: dict[str, Any]) -> ScoreResult:
    """Reshape ``simple_evaluate``'s output for one task into a :class:`ScoreResult`."""
    task_results = out["results"][task]
    n = int(out["n-samples"][task]["effective"])
    metrics: dict[str, MetricValue] = {}
    for key, value in task_results.items():
        if "," not in key or "_stderr," in key:
            continue
        metric, _, filt = key.partition(",")
        stderr = task_results.get(f"{metric}_stderr,{filt}")
        metrics[key] = MetricValue(value=_number(value), stderr=_number(stderr), n=n)
    config = {
        "task_config": out["configs"][task],
        "task_version": out.get("versions", {}).get(task),
        "num_fewshot": out.get("n-shot", {}).get(task),
        "gen_kwargs": gen_kwargs,
        "limit": out["config"].get("limit"),
        "bootstrap_iters": out["config"].get("bootstrap_iters"),
        "seeds": {
            name: out["config"].get(name)
            for name in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")
        },
        "batch_sizes": out["config"].get("batch_sizes"),
        "task_hashes": out.get("task_hashes", {}).get(task),
    }
    return ScoreResult(metrics=metrics, samples=list(out["samples"][task]), config=config)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # lm-eval writes "N/A" for a stderr it did not compute
    value = float(value)
    return value if math.isfinite(value) else None
