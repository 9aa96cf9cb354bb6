"""Pair two checkpoints' per-sample records item by item and test the difference.

lm-eval logs one record per document (and per filter, for generation tasks) holding each
metric's per-item value: ``1.0`` / ``0.0`` for accuracy and exact match, a list for metrics
scored per sub-item (IFEval's instruction-level accuracy), or ``[log-likelihood, weight]`` for
the perplexity family, which lm-eval aggregates as a ratio of sums. Each form is turned into
per-item numbers whose mean moves exactly as the metric does, tested with :mod:`ckptgate.stats`,
and the result is mapped back into the metric's own units for the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ckptgate import stats
from ckptgate.errors import CkptgateError
from ckptgate.scores import LOGLIK_METRICS, RATIO_METRICS

ItemKey = tuple[Any, ...]

# Metrics lm-eval aggregates from [log-likelihood, weight] pairs as a ratio of sums, and how the
# metric follows from the mean per-document log-likelihood per unit of weight (``x``).
_RATIO_METRICS: dict[str, Callable[[float], float]] = {
    "word_perplexity": lambda x: math.exp(-x),
    "byte_perplexity": lambda x: math.exp(-x),
    "token_perplexity": lambda x: math.exp(-x),
    "bits_per_byte": lambda x: -x / math.log(2),
}
# Per-document log-likelihood aggregated as exp(-mean): loglikelihood tasks' ``perplexity``.
_LOGLIK_METRICS: dict[str, Callable[[float], float]] = {"perplexity": lambda x: math.exp(-x)}
assert set(_RATIO_METRICS) == RATIO_METRICS and set(_LOGLIK_METRICS) == LOGLIK_METRICS


class PairingError(CkptgateError):
    """Two checkpoints' records cannot be compared item by item."""


@dataclass(frozen=True)
class ItemValues:
    """One metric's per-item values on one checkpoint, keyed by item identity."""

    values: dict[ItemKey, float]
    weights: dict[ItemKey, float]  # only for ratio metrics: the weight (words, bytes) per item
    prompts: dict[ItemKey, str]  # lm-eval's prompt hash per item, to catch differing prompts


def item_values(samples: Sequence[dict[str, Any]], metric_key: str) -> ItemValues:
    """Per-item values of ``metric_key`` (``metric,filter``) in lm-eval's sample records."""
    metric, _, filt = metric_key.partition(",")
    values: dict[ItemKey, float] = {}
    weights: dict[ItemKey, float] = {}
    prompts: dict[ItemKey, str] = {}
    for sample in samples:
        if sample.get("filter", "none") != filt or metric not in sample:
            continue
        base: ItemKey = (sample["doc_id"], sample.get("doc_hash"))
        for key, value, weight in _expand(base, metric, sample[metric]):
            values[key] = value
            if weight is not None:
                weights[key] = weight
            prompts[key] = str(sample.get("prompt_hash"))
    if not values:
        raise PairingError(f"the per-sample records hold no values for {metric_key}")
    return ItemValues(values, weights, prompts)


def _expand(base: ItemKey, metric: str, raw: Any) -> list[tuple[ItemKey, float, float | None]]:
    if metric in _RATIO_METRICS:
        loglik, weight = _pair(metric, raw)
        return [(base, loglik, weight)]
    if isinstance(raw, bool) or isinstance(raw, (int, float)):
        return [(base, float(raw), None)]
    if isinstance(raw, (list, tuple)) and all(isinstance(v, (bool, int, float)) for v in raw):
        return [((*base, index), float(v), None) for index, v in enumerate(raw)]
    raise PairingError(
        f"metric {metric!r} logs per-sample values of a form that cannot be paired item by item "
        f"({type(raw).__name__}: {str(raw)[:80]}); it is corpus-level, so only its aggregate is reported"
    )


def _pair(metric: str, raw: Any) -> tuple[float, float]:
    if not (isinstance(raw, (list, tuple)) and len(raw) == 2):
        raise PairingError(f"metric {metric!r} should log [log-likelihood, weight] per document, got {raw!r}")
    return float(raw[0]), float(raw[1])


def compare(
    cand_samples: Sequence[dict[str, Any]],
    ref_samples: Sequence[dict[str, Any]],
    metric_key: str,
    *,
    value: float,
    reference: float,
    higher_is_better: bool,
    margin: float,
) -> stats.Comparison:
    """Paired test of ``metric_key`` between a candidate and a reference checkpoint.

    ``value`` and ``reference`` are lm-eval's aggregates (shown in the report); the test runs on
    the per-item values. ``margin`` is in the metric's units.
    """
    cand = item_values(cand_samples, metric_key)
    ref = item_values(ref_samples, metric_key)
    keys = _common_keys(cand, ref, metric_key)
    metric = metric_key.partition(",")[0]
    if metric in _RATIO_METRICS or metric in _LOGLIK_METRICS:
        return _compare_loglik(cand, ref, keys, metric, value=value, reference=reference, margin=margin)
    c = [cand.values[k] for k in keys]
    r = [ref.values[k] for k in keys]
    if _is_binary(c) and _is_binary(r):
        result = stats.paired_binary(c, r, higher_is_better=higher_is_better, margin=margin)
    else:
        result = stats.paired_continuous(c, r, higher_is_better=higher_is_better, margin=margin)
    return replace(result, value=value, reference=reference, delta=value - reference)


def _common_keys(cand: ItemValues, ref: ItemValues, metric_key: str) -> list[ItemKey]:
    if set(cand.values) != set(ref.values):
        only_c = len(set(cand.values) - set(ref.values))
        only_r = len(set(ref.values) - set(cand.values))
        raise PairingError(
            f"{metric_key}: the two checkpoints were scored on different items ({only_c} only in the "
            f"candidate, {only_r} only in the reference); were they run with different --limit or data?"
        )
    keys = sorted(cand.values, key=repr)
    differing = [k for k in keys if cand.prompts[k] != ref.prompts[k]]
    if differing:
        raise PairingError(
            f"{metric_key}: {len(differing)} of {len(keys)} items were shown different prompts to the two "
            "checkpoints (different few-shot, chat template or tokenizer settings); a paired test needs "
            "identical prompts"
        )
    return keys


def _is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def is_binary(samples: Sequence[dict[str, Any]], metric_key: str) -> bool:
    """Whether ``metric_key`` scores each item 0 or 1 (accuracy, exact match, pass@1)."""
    metric = metric_key.partition(",")[0]
    if metric in _RATIO_METRICS or metric in _LOGLIK_METRICS:
        return False
    return _is_binary(list(item_values(samples, metric_key).values.values()))


def _compare_loglik(
    cand: ItemValues,
    ref: ItemValues,
    keys: list[ItemKey],
    metric: str,
    *,
    value: float,
    reference: float,
    margin: float,
) -> stats.Comparison:
    """Perplexity-like metrics: test per-document log-likelihood per unit, report in metric units.

    With per-document weights w_i (words, bytes) the metric is f(sum ll_i / sum w_i); scaling
    each document's log-likelihood by the mean weight gives items x_i = ll_i / mean(w) whose mean
    is exactly that ratio, so a paired test on x_i tests the metric itself (higher x is better).
    """
    to_metric = _RATIO_METRICS.get(metric) or _LOGLIK_METRICS[metric]
    mean_weight = stats.mean([ref.weights.get(k, 1.0) for k in keys])
    x_cand = [cand.values[k] / mean_weight for k in keys]
    x_ref = [ref.values[k] / mean_weight for k in keys]
    x0 = stats.mean(x_ref)
    margin_x = _margin_in_x(to_metric, x0, reference, margin)
    result = stats.paired_continuous(x_cand, x_ref, higher_is_better=True, margin=margin_x)

    def delta_at(dx: float) -> float:
        return to_metric(x0 + dx) - to_metric(x0)

    ends = sorted((delta_at(result.ci_low), delta_at(result.ci_high)))
    return replace(
        result,
        value=value,
        reference=reference,
        delta=value - reference,
        ci_low=ends[0],
        ci_high=ends[1],
        se=abs(_slope(to_metric, x0)) * result.se,  # delta method: metric units
        margin=margin,
        higher_is_better=False,  # the perplexity family: lower is better
        method=f"{result.method} on per-document log-likelihood",
    )


GOLD_LOGPROB = "gold_logprob,none"


def gold_logprobs(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Per-item log-probability of the gold answer, as sample records of ``GOLD_LOGPROB``.

    A lower-variance signal than accuracy or exact match on the same items: it moves before the
    argmax or the generation does, so it explains their movements. Available where the records
    hold it: the gold choice's log-likelihood in multiple-choice records, or ``gold_logprob``
    added by the scorer for generation benchmarks that ask for it; None elsewhere.
    """
    out: dict[Any, dict[str, Any]] = {}
    for sample in samples:
        value = sample["gold_logprob"] if "gold_logprob" in sample else _gold_choice_loglik(sample)
        if value is None:
            return None
        ids = {k: sample.get(k) for k in ("doc_id", "doc_hash", "prompt_hash")}
        out.setdefault(sample["doc_id"], {**ids, "filter": "none", "gold_logprob": float(value)})
    return list(out.values()) or None


def _gold_choice_loglik(sample: dict[str, Any]) -> float | None:
    """A multiple-choice record's log-likelihood of the gold choice (None for other records)."""
    target, resps = sample.get("target"), sample.get("filtered_resps")
    if not isinstance(target, int) or not isinstance(resps, list) or not 0 <= target < len(resps):
        return None
    choice = resps[target]
    if not (isinstance(choice, (list, tuple)) and choice and isinstance(choice[0], (int, float))):
        return None
    return float(choice[0])


def item_stderr(samples: Sequence[dict[str, Any]], metric_key: str) -> float | None:
    """Standard error of ``metric_key`` from its per-item values, for metrics lm-eval gives none
    (the perplexity family): the sample standard error of the mean log-likelihood per unit,
    carried into metric units by the delta method. None with fewer than two items."""
    items = item_values(samples, metric_key)
    keys = list(items.values)
    if len(keys) < 2:
        return None
    metric = metric_key.partition(",")[0]
    to_metric = _RATIO_METRICS.get(metric) or _LOGLIK_METRICS.get(metric)
    mean_weight = stats.mean([items.weights.get(k, 1.0) for k in keys]) if to_metric else 1.0
    x = [items.values[k] / mean_weight for k in keys]
    mean_x = stats.mean(x)
    se = math.sqrt(math.fsum((v - mean_x) ** 2 for v in x) / (len(x) - 1) / len(x))
    if to_metric is None:
        return se
    return abs(_slope(to_metric, mean_x)) * se


def _slope(to_metric: Callable[[float], float], x: float) -> float:
    """Numerical derivative of the metric with respect to mean log-likelihood per unit."""
    step = 1e-6
    return (to_metric(x + step) - to_metric(x - step)) / (2 * step)


def item_counts(samples: Sequence[dict[str, Any]], metric_key: str) -> tuple[int, int]:
    """(successes, items) of a 0/1 metric from its per-item values (IFEval's instruction-level
    rates count each instruction), for exact tests against a stored rate."""
    values = list(item_values(samples, metric_key).values.values())
    if not _is_binary(values):
        raise PairingError(f"{metric_key} is not scored 0/1 per item")
    return int(sum(values)), len(values)


def _margin_in_x(to_metric: Callable[[float], float], x0: float, reference: float, margin: float) -> float:
    """The worsening of mean log-likelihood per unit that worsens the metric by ``margin``."""
    if margin == 0:
        return 0.0
    worse = reference + margin  # perplexity-like metrics: higher is worse
    if to_metric(x0) <= 0 or worse <= 0:
        raise PairingError(f"cannot express a margin of {margin} on a metric valued {reference}")
    if to_metric is _RATIO_METRICS["bits_per_byte"]:
        return margin * math.log(2)
    return math.log(worse) - math.log(reference)

