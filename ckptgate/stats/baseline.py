"""Comparisons with a stored number: exact binomial, Miettinen-Nurminen (when the baseline's n is
known), Clopper-Pearson intervals, and a z-test for metrics with standard errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ckptgate.stats.core import (
    CONFIDENCE,
    Comparison,
    EPS,
    check_margin,
    invert,
    norm_cdf,
    norm_ppf,
    orientation,
    scipy_module,
)


def _clip(p: float) -> float:
    return min(max(p, 0.0), 1.0)


def _binomial_se(p: float, n: int) -> float:
    """sqrt(p (1 - p) / n) with p kept half an item away from 0 and 1 (a perfect score still
    has sampling noise)."""
    clipped = min(max(p, 0.5 / n), 1.0 - 0.5 / n)
    return math.sqrt(clipped * (1.0 - clipped) / n)


def _successes(value: float, n: int, successes: int | None) -> int:
    if successes is not None:
        if not 0 <= successes <= n:
            raise ValueError(f"successes must lie in [0, n={n}], got {successes!r}")
        return int(successes)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"the value of a 0/1 metric must lie in [0, 1], got {value!r}")
    k = round(value * n)
    if abs(k - value * n) > 1e-6 * max(1, n):
        raise ValueError(f"a 0/1 metric of {value!r} over n={n} items is not a whole count of successes")
    return k


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """Exact two-sided 95% interval of a binomial proportion (0 and 1 included at the ends)."""
    betaincinv = scipy_module().special.betaincinv  # the beta distribution's quantile: (a, b, q)
    tail = (1.0 - CONFIDENCE) / 2
    low = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, tail))
    high = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1.0 - tail))
    return low, high


def _exact_vs_number(k: int, n: int, p_ref: float, margin: float) -> tuple[float, float]:
    """Exact binomial p-values of k successes in n against a fixed p_ref (higher is better)."""
    special = scipy_module().special  # binomial cdf bdtr(k, n, p) = P(X <= k), bdtrc = P(X > k)
    p_regression = float(special.bdtr(k, n, _clip(p_ref)))  # H0: p >= p_ref
    if p_ref - margin < 0.0:  # H0 "p <= p_ref - margin" holds for no rate: nothing to reject
        return min(1.0, p_regression), 0.0
    p_noninferiority = float(special.bdtrc(k - 1, n, p_ref - margin))  # H0: p <= p_ref - margin
    return min(1.0, p_regression), min(1.0, p_noninferiority)


def mn_z(x1: Any, n1: Any, x0: Any, n0: Any, delta: Any) -> Any:
    """Miettinen-Nurminen score statistic for H0: p1 - p0 = ``delta`` (two independent binomials).

    ``(p1_hat - p0_hat - delta)`` over its standard error at the restricted ML estimates, the
    closed-form root of Miettinen and Nurminen's (1985) cubic (checked against a numerical
    maximisation of the likelihood); the variance carries their N / (N - 1) small-sample factor.
    Small values are evidence that p1 - p0 < delta.
    """
    x1, n1, x0, n0, delta = (np.asarray(v, dtype=float) for v in (x1, n1, x0, n0, delta))
    total, count = n1 + n0, x1 + x0
    l3 = total
    l2 = (n1 + 2.0 * n0) * delta - total - count
    l1 = (n0 * delta - total - 2.0 * x0) * delta + count  # n0 here: statsmodels 0.15 has x0 (its issue 10269)
    l0 = x0 * delta * (1.0 - delta)
    q = (l2 / (3.0 * l3)) ** 3 - l1 * l2 / (6.0 * l3**2) + l0 / (2.0 * l3)
    p_abs = np.sqrt(np.maximum((l2 / (3.0 * l3)) ** 2 - l1 / (3.0 * l3), 0.0))
    p = np.where(q < 0, -p_abs, p_abs)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p_abs > EPS, q / np.where(p_abs > EPS, p**3, 1.0), 0.0)
    angle = (math.pi + np.arccos(np.clip(ratio, -1.0, 1.0))) / 3.0
    r0 = np.where(delta == 0.0, count / total, 2.0 * p * np.cos(angle) - l2 / (3.0 * l3))
    r0 = np.clip(r0, np.maximum(0.0, -delta), np.minimum(1.0, 1.0 - delta))  # both rates in [0, 1]
    r1 = r0 + delta
    var = (r1 * (1.0 - r1) / n1 + r0 * (1.0 - r0) / n0) * total / (total - 1.0)
    diff = x1 / n1 - x0 / n0 - delta
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > EPS**2, diff / np.sqrt(np.maximum(var, EPS**2)), np.sign(diff) * np.inf)
    z = np.where((var <= EPS**2) & (np.abs(diff) <= EPS), 0.0, z)
    return float(z) if z.ndim == 0 else z


def _oriented_counts(k: int, n: int, higher_is_better: bool) -> int:
    """Successes of a higher-is-better 0/1 metric: a lower-is-better one counts its failures."""
    return k if higher_is_better else n - k


def versus_baseline_binary(
    value: float,
    n: int,
    ref_value: float,
    *,
    higher_is_better: bool,
    margin: float = 0.0,
    ref_n: int | None = None,
    successes: int | None = None,
) -> Comparison:
    """A 0/1 metric measured on ``n`` items against a stored rate.

    Baseline sample size unknown: the stored number is taken as exact and the tests are exact
    binomial tests (Clopper-Pearson interval). Known (``ref_n``): the baseline's own sampling
    error counts, through Miettinen-Nurminen score tests and interval for two proportions.
    """
    check_margin(margin, proportion=True)
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n!r}")
    if not 0.0 <= ref_value <= 1.0:
        raise ValueError(f"the baseline of a 0/1 metric must lie in [0, 1], got {ref_value!r}")
    k = _successes(value, n, successes)
    value = k / n
    delta = value - ref_value
    good = _oriented_counts(k, n, higher_is_better)
    ref_good = ref_value if higher_is_better else 1.0 - ref_value
    if ref_n is None:
        p_regression, p_noninferiority = _exact_vs_number(good, n, ref_good, margin)
        low, high = clopper_pearson(k, n)
        ci_low, ci_high = low - ref_value, high - ref_value
        se, method = _binomial_se(ref_value, n), "exact binomial vs baseline (baseline n unknown: taken as exact)"
    else:
        if ref_n <= 0:
            raise ValueError(f"ref_n must be > 0, got {ref_n!r}")
        x0 = ref_good * ref_n
        p_regression = float(norm_cdf(mn_z(good, n, x0, ref_n, 0.0)))
        p_noninferiority = float(1.0 - norm_cdf(mn_z(good, n, x0, ref_n, -margin)))
        x0_raw = ref_value * ref_n
        z_of = lambda t: float(mn_z(k, n, x0_raw, ref_n, t))  # noqa: E731
        ci_low, ci_high = invert(z_of, delta, -1.0 + 1e-9, 1.0 - 1e-9)
        se = math.hypot(_binomial_se(value, n), _binomial_se(ref_value, ref_n))
        method = f"Miettinen-Nurminen score vs baseline (baseline n={ref_n})"
    return Comparison(
        value=value,
        reference=ref_value,
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_regression,
        p_noninferiority=p_noninferiority,
        n=n,
        se=se,
        margin=margin,
        higher_is_better=higher_is_better,
        method=method,
    )


def versus_baseline_continuous(
    value: float,
    stderr: float,
    n: int,
    ref_value: float,
    ref_stderr: float | None,
    *,
    higher_is_better: bool,
    margin: float = 0.0,
) -> Comparison:
    """A real-valued metric with its standard error against a stored number: z-tests with
    se = sqrt(se_run^2 + se_ref^2) (an unknown baseline se is taken as 0 and ``method`` says so).

    It ignores the positive correlation of two checkpoints scored on the same items, so it is
    conservative; paired per-item tests against a bridge are several times more sensitive."""
    check_margin(margin)
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n!r}")
    if not (math.isfinite(value) and math.isfinite(ref_value)):
        raise ValueError(f"value and ref_value must be finite, got {value!r}, {ref_value!r}")
    for name, se_value in (("stderr", stderr), ("ref_stderr", ref_stderr)):
        if se_value is not None and not (math.isfinite(se_value) and se_value >= 0.0):
            raise ValueError(f"{name} must be a finite number >= 0, got {se_value!r}")
    note = "" if ref_stderr is not None else " (baseline stderr unknown, taken as exact)"
    se = math.hypot(stderr, ref_stderr or 0.0)
    delta = value - ref_value
    oriented = orientation(higher_is_better) * delta
    if se > 0.0:
        p_regression = float(norm_cdf(oriented / se))
        p_noninferiority = float(1.0 - norm_cdf((oriented + margin) / se))
    else:
        p_regression = 0.0 if oriented < 0.0 else 1.0
        p_noninferiority = 0.0 if oriented > -margin else 1.0
    half = norm_ppf(0.5 + CONFIDENCE / 2) * se
    return Comparison(
        value=value,
        reference=ref_value,
        delta=delta,
        ci_low=delta - half,
        ci_high=delta + half,
        p_value=p_regression,
        p_noninferiority=p_noninferiority,
        n=n,
        se=se,
        margin=margin,
        higher_is_better=higher_is_better,
        method="z vs baseline" + note,
    )
