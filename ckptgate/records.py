"""The results record of one benchmark on one checkpoint: what was measured, how it was judged,
under which settings, and where it came from (see :mod:`ckptgate.results` for the store)."""

from __future__ import annotations

import time
import warnings
from typing import Any

from ckptgate import gate
from ckptgate.checkpoints import Checkpoint
from ckptgate.evaluation import Scored
from ckptgate.pairing import PairingError, item_stderr
from ckptgate.provenance import provenance
from ckptgate.runplan import RunPlan
from ckptgate.scores import ScoreResult
from ckptgate.suites import Benchmark


class GenerationTruncatedWarning(UserWarning):
    """Generations ran into the benchmark's max_gen_toks."""


def build(plan: RunPlan, checkpoint: Checkpoint, bench: Benchmark, scored: Scored, checks: list[gate.Check],
          policy: gate.Policy, bridges: list[str], worker: str) -> dict[str, Any]:
    """The JSON record (samples are stored beside it, see :func:`ckptgate.results.write_benchmark`)."""
    score = scored.result
    return {
        "run": {"id": plan.run_id},
        "checkpoint": checkpoint.to_dict(),
        "benchmark": {**bench.to_dict(), "suite": plan.suite.name},
        "metrics": _metrics_with_derived_stderr(score),
        "higher_is_better": score.higher_is_better,
        "checks": [c.to_dict() for c in checks],
        "policy": {"alpha": policy.alpha, "family_size": policy.family_size, "report_only": plan.report_only},
        "settled": False,  # set when the run ends and Holm's correction has decided pending checks
        "references": {"bridges": bridges, "baseline": plan.baseline_name},
        "config": {**score.config, "limit": plan.limit},
        "backend": scored.settings,
        "reproducible": plan.tensor_parallel == 1,
        "timing": {
            "load_s": round(scored.load_seconds, 3),
            "eval_s": round(scored.eval_seconds, 3),
            "evaluated_with": list(scored.evaluated_with),
            "from_cache": scored.cached,
            "chunks": scored.chunks,  # model outputs scored now, and read back from an interrupted run
        },
        "worker": worker,
        "provenance": provenance(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _metrics_with_derived_stderr(score: ScoreResult) -> dict[str, Any]:
    """lm-eval's metrics; where lm-eval gives no stderr (the perplexity family), also the one
    derived from per-item values, as ``stderr_derived`` (used for baseline comparisons)."""
    metrics = score.to_dict()["metrics"]
    for key, metric in metrics.items():
        if metric["stderr"] is None and metric["value"] is not None:
            try:
                metric["stderr_derived"] = item_stderr(score.samples, key)
            except PairingError:
                pass  # corpus-level metric: no per-item values
    return metrics


def warn_if_truncated(checkpoint: Checkpoint, bench: Benchmark, score: ScoreResult) -> None:
    cut = score.config.get("truncated_generations")
    if cut and cut["count"]:
        warnings.warn(GenerationTruncatedWarning(
            f"{bench.id} on {checkpoint.label}: {cut['count']} of {cut['of']} generations reached max_gen_toks "
            f"{'/'.join(map(str, cut['max_gen_toks']))} and were cut off (counted in the results); if the task "
            "needs longer answers, raise max_gen_toks in the suite's gen_kwargs"), stacklevel=2)
