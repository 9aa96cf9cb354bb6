"""Tests and intervals for "is the candidate checkpoint worse than the reference, by a margin?".

Every comparison of a candidate with a reference (a bridge checkpoint, a stored baseline) on one
metric yields two one-sided p-values about the oriented difference ``D = sign * (cand - ref)``
(``sign = +1`` when higher is better, ``-1`` otherwise, so ``D < 0`` always means "worse"):

* ``p_value`` tests H0 "the candidate is not worse" (``D >= 0``). A small value is evidence of a
  regression; the gate corrects these over the run's primary comparisons (Holm) before it FAILs.
* ``p_noninferiority`` tests H0 "the candidate is worse by the margin or more" (``D <= -margin``).
  A small value shows the candidate is not materially worse: the gate PASSes it.

Which test gives each p-value depends on the data:

* the same items scored 0/1 by both checkpoints (accuracy, exact match, pass@1): the exact
  McNemar test for the regression, and Tango's score test for the margin; it is computed from
  the discordant counts and stays valid with few or none of them (where a Wald test claims
  certainty from one lost item);
* the same items with real values (per-document log-likelihood): paired t-tests;
* a 0/1 metric against a stored number: the exact binomial test when the baseline's sample size
  is unknown (the number is taken as exact), and the Miettinen-Nurminen score test for two
  independent proportions when it is known (the baseline's own sampling error counts);
* another metric against a stored number with standard errors: a z-test.

Intervals bound the raw difference ``cand - ref`` with two-sided 95% confidence and come from
the same family as the tests (Tango, Miettinen-Nurminen, Clopper-Pearson, t), so they behave at
accuracies of 0 and 1. Binary statistics are functions of counts and real-valued sums use
:func:`math.fsum`, so no result depends on item order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

CONFIDENCE = 0.95  # two-sided level of every reported confidence interval
POWER = 0.8  # power at which every reported MDE is computed

_STD_NORMAL = NormalDist()
_EPS = 1e-12


@functools.cache
def _scipy() -> Any:
    """scipy (stats, optimize), imported on first use: it takes over a second to import, and a run
    that compares nothing (thresholds only) never needs it."""
    import scipy.optimize
    import scipy.stats

    return scipy


def _norm_cdf(x: Any) -> Any:
    """Standard normal cdf (scalar or array); accurate in the far tails."""
    return _scipy().special.ndtr(x)


def _norm_ppf(q: float) -> float:
    return _STD_NORMAL.inv_cdf(q)


@dataclass(frozen=True)
class Comparison:
    """The outcome of one candidate-versus-reference comparison on one metric.

    ``delta = value - reference`` in raw metric units; ``ci_low``/``ci_high`` bound it with
    two-sided 95% confidence. ``se`` is the standard error of ``delta`` (metric units), from
    which :meth:`mde` follows. ``margin`` is in metric units (a relative margin already applied).
    """

    value: float
    reference: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float  # H0: not worse (D >= 0); small = a regression
    p_noninferiority: float  # H0: worse by the margin or more (D <= -margin); small = shown fine
    n: int
    se: float
    margin: float
    higher_is_better: bool
    method: str

    @property
    def oriented_delta(self) -> float:
        """``delta`` with worse negative, whichever direction is better."""
        return _sign(self.higher_is_better) * self.delta

    @property
    def crosses_margin(self) -> bool:
        """The estimated worsening reaches the margin: a regression this large would matter."""
        return self.oriented_delta < 0.0 and self.oriented_delta <= -self.margin

    def mde(self, fail_alpha: float, power: float = POWER) -> float:
        """The true worsening the gate FAILs with probability ``power`` when its regression test
        runs at level ``fail_alpha`` (Holm's first step, alpha / m)."""
        return mde_of(self.se, self.margin, fail_alpha, power)


def mde_of(se: float, margin: float, fail_alpha: float, power: float = POWER) -> float:
    """Minimum detectable worsening of the gate's FAIL rule (normal approximation).

    FAIL needs the regression test to reject at ``fail_alpha`` (estimate beyond
    ``z_{1-fail_alpha} * se``) and the estimate to reach the margin, so it needs the estimated
    worsening to exceed ``t = max(margin, z_{1-fail_alpha} * se)``; a true worsening ``D`` does so
    with probability ``Phi((D - t) / se)``, which is ``power`` at ``D = t + z_power * se``.
    """
    _check_alpha(fail_alpha, "fail_alpha")
    _check_alpha(power, "power")
    if not (math.isfinite(se) and se >= 0.0):
        raise ValueError(f"se must be a finite number >= 0, got {se!r}")
    return max(margin, _norm_ppf(1.0 - fail_alpha) * se) + _norm_ppf(power) * se


# --------------------------------------------------------------------------- helpers


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {alpha!r}")


def _check_margin(margin: float, *, proportion: bool = False) -> None:
    if not (math.isfinite(margin) and margin >= 0.0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    if proportion and margin >= 1.0:
        raise ValueError(f"the margin of a 0/1 metric must be below 1, got {margin!r}")


def _sign(higher_is_better: bool) -> float:
    """+1 when higher is better, -1 otherwise: multiplying by it makes 'worse' negative."""
    return 1.0 if higher_is_better else -1.0


def _paired_arrays(cand: Sequence[float], ref: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Validate two per-item score lists for the same items and return them as float arrays."""
    c = np.asarray(cand, dtype=float).ravel()
    r = np.asarray(ref, dtype=float).ravel()
    if c.size != r.size:
        raise ValueError(
            f"paired scores must cover the same items: candidate has {c.size} values, "
            f"reference has {r.size}"
        )
    if c.size == 0:
        raise ValueError("paired scores are empty: need at least one item")
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(r))):
        raise ValueError("paired scores must be finite numbers (found nan or inf)")
    return c, r


def mean(x: Sequence[float] | np.ndarray) -> float:
    """Order-independent mean (correctly rounded sum)."""
    values = np.asarray(x, dtype=float).ravel().tolist()
    return math.fsum(values) / len(values)


def _sd(x: np.ndarray) -> float:
    """Order-independent sample standard deviation (ddof=1); 0.0 for a single value."""
    if x.size < 2:
        return 0.0
    m = mean(x)
    return math.sqrt(math.fsum(((x - m) ** 2).tolist()) / (x.size - 1))


def _invert(z_of: Callable[[float], float], estimate: float, low: float, high: float) -> tuple[float, float]:
    """The two-sided 95% score interval {t : |z(t)| <= z_0.975}, z decreasing in t, within [low, high]."""
    q = _norm_ppf(0.5 + CONFIDENCE / 2)
    brentq = _scipy().optimize.brentq

    def bound(target: float, start: float, end: float) -> float:
        f = lambda t: z_of(t) - target  # noqa: E731
        if f(end) * f(start) > 0:  # never reaches the quantile inside the range: the range's end
            return end
        return float(brentq(f, start, end, xtol=1e-12, rtol=1e-12))

    return bound(q, estimate, low), bound(-q, estimate, high)


# --------------------------------------------------------------------------- primitives


def mcnemar_one_sided(losses: Any, wins: Any) -> Any:
    """Exact one-sided McNemar p-value: P(Binom(losses + wins, 1/2) >= losses) (scalars or arrays).

    ``losses``: items the reference got right and the candidate wrong; ``wins``: the reverse.
    Concordant items carry no information about which checkpoint is better, and under H0 (no
    difference) each discordant item is a fair coin, hence the binomial. 1 with no discordance.
    """
    losses_a, wins_a = np.asarray(losses), np.asarray(wins)
    if np.any(losses_a < 0) or np.any(wins_a < 0) or np.any(losses_a != np.floor(losses_a)) or np.any(
        wins_a != np.floor(wins_a)
    ):
        raise ValueError(f"losses and wins must be counts >= 0, got {losses!r}, {wins!r}")
    total = losses_a + wins_a
    p = np.where(total == 0, 1.0, _scipy().stats.binom.sf(losses_a - 1, np.maximum(total, 1), 0.5))
    p = np.minimum(1.0, p)
    return float(p) if p.ndim == 0 else p


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in input order, monotone, capped at 1.

    A suite gates many (benchmark, metric) pairs at once; without adjustment each extra metric
    is one more chance of a false alarm. Holm controls the family-wise error rate under any
    dependence between the tests and is uniformly more powerful than Bonferroni. Reject
    hypothesis i at level alpha iff ``holm(p)[i] < alpha``.
    """
    p = np.asarray(p_values, dtype=float).ravel()
    if p.size == 0:
        return []
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()!r}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted_sorted = np.maximum.accumulate(scaled)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted.tolist()


# --------------------------------------------------------------------------- paired 0/1 scores


def _tango_minor(major: Any, minor: Any, n: Any, t: Any) -> Any:
    """Restricted ML estimate of the smaller discordant cell's probability under
    ``p_major - p_minor = t`` (t >= 0), given the two discordant counts of n paired items.

    The root in [0, (1 - t) / 2] of 2n p^2 - (major (1 + t) + minor (1 - t) - 2 t n) p
    - minor t (1 - t) = 0 (Tango 1998, Stat Med 17:891), found by setting the derivative of the
    trinomial log-likelihood with p_major = p_minor + t to zero.
    """
    a = 2.0 * n
    b = (2.0 * n - major + minor) * t - (major + minor)
    c = -minor * t * (1.0 - t)
    return (-b + np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))) / (2.0 * a)


def _tango_parts(losses: Any, wins: Any, n: Any, drop: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observed drop - ``drop``, its variance at the restricted ML estimate, n) as arrays."""
    losses, wins, n, drop = (np.asarray(v, dtype=float) for v in (losses, wins, n, drop))
    forward = drop >= 0
    minor = np.where(
        forward, _tango_minor(losses, wins, n, np.abs(drop)), _tango_minor(wins, losses, n, np.abs(drop))
    )
    var = (2.0 * minor + np.abs(drop) - drop * drop) / n
    return (losses - wins) / n - drop, var, n


def _ratio(num: np.ndarray, var: np.ndarray) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > _EPS**2, num / np.sqrt(np.maximum(var, _EPS**2)), 0.0)
    return float(z) if z.ndim == 0 else z


def tango_z(losses: Any, wins: Any, n: Any, drop: Any) -> Any:
    """Tango's score statistic for H0: P(loss) - P(win) = ``drop`` (scalars or arrays).

    ``(losses - wins) / n - drop`` over its standard error at the restricted ML estimate, so
    it is defined (and honest) when no item is discordant. Small values are evidence that the
    true drop is below ``drop``. A zero standard error (no discordance, drop 0) gives 0.
    """
    diff, var, _ = _tango_parts(losses, wins, n, drop)
    return _ratio(diff, var)


def paired_binary_counts(losses: Any, wins: Any, n: Any, margin: float) -> tuple[Any, Any]:
    """(p_value, p_noninferiority) of paired 0/1 scores from their discordant counts (arrays ok).

    ``losses``: items only the reference got right, ``wins``: only the candidate, already
    oriented (for a lower-is-better metric swap them). The regression test is exact McNemar.
    The margin test is Tango's score test of H0 "P(loss) - P(win) >= margin", one-sided, with
    the observed drop moved half an item towards H0 (continuity correction): without it the
    test's exact size reaches 0.06-0.08 at alpha 0.05 below 20 items. With it, enumerated over
    n = 5..400 and margins 0.01..0.2, it stays below 0.044 wherever the two checkpoints disagree
    on at most half the items (checkpoints of one run agree far more); only near total
    disagreement (98% of items discordant) does it reach 0.058.
    """
    p_regression = mcnemar_one_sided(losses, wins)
    diff, var, n_arr = _tango_parts(losses, wins, n, margin)
    z = _ratio(diff + 0.5 / n_arr, var)
    p_noninferiority = np.where(np.asarray(var) > _EPS**2, _norm_cdf(z), 1.0)
    if np.ndim(p_noninferiority) == 0:
        p_noninferiority = float(p_noninferiority)
    return p_regression, p_noninferiority


@dataclass(frozen=True)
class _PairTable:
    """The 2x2 table of two checkpoints' 0/1 scores on the same items."""

    n: int
    both_right: int
    cand_only: int  # candidate right, reference wrong
    ref_only: int  # reference right, candidate wrong

    @classmethod
    def from_scores(cls, cand: Sequence[float], ref: Sequence[float]) -> _PairTable:
        c, r = _paired_arrays(cand, ref)
        if not (np.all((c == 0.0) | (c == 1.0)) and np.all((r == 0.0) | (r == 1.0))):
            raise ValueError(
                "paired_binary needs per-item scores in {0, 1}; use paired_continuous for "
                "real-valued per-item scores"
            )
        cb, rb = c.astype(bool), r.astype(bool)
        return cls(
            n=c.size,
            both_right=int(np.count_nonzero(cb & rb)),
            cand_only=int(np.count_nonzero(cb & ~rb)),
            ref_only=int(np.count_nonzero(~cb & rb)),
        )

    @property
    def discordant(self) -> int:
        return self.cand_only + self.ref_only

    def mean_diff(self) -> float:
        """mean(cand - ref) over items, raw orientation."""
        return (self.cand_only - self.ref_only) / self.n

    def se_diff(self) -> tuple[float, bool]:
        """Standard error of mean(cand - ref), and whether it is the unpaired bound.

        With no discordant item the observed se is 0, which would claim any drop is detectable;
        the unpaired binomial se sqrt(2 p (1 - p) / n) (pooled accuracy p; 0.5 at 0 or 1) is an
        upper bound on the paired one and keeps the MDE honest.
        """
        var = self.discordant / self.n - self.mean_diff() ** 2
        if self.discordant > 0 and var > 0.0:
            return math.sqrt(var / self.n), False
        p = (2 * self.both_right + self.discordant) / (2 * self.n)
        if p <= 0.0 or p >= 1.0:
            p = 0.5
        return math.sqrt(2.0 * p * (1.0 - p) / self.n), True


def paired_binary(
    cand: Sequence[float],
    ref: Sequence[float],
    *,
    higher_is_better: bool = True,
    margin: float = 0.0,
) -> Comparison:
    """Compare 0/1 per-item scores of the same items (accuracy, exact match, pass@1).

    Regression: exact one-sided McNemar (only discordant items inform it; valid at any n).
    Margin: Tango's score test of "the candidate's accuracy is lower by ``margin`` or more".
    Interval: Tango's score interval of the difference in accuracy.
    """
    _check_margin(margin, proportion=True)
    table = _PairTable.from_scores(cand, ref)
    losses, wins = table.ref_only, table.cand_only
    if not higher_is_better:
        losses, wins = wins, losses
    p_regression, p_noninferiority = paired_binary_counts(losses, wins, table.n, margin)
    delta = table.mean_diff()
    # The interval of the raw difference cand - ref = P(cand only) - P(ref only): Tango's with the
    # "drop" taken in raw orientation (ref_only as losses).
    z_of = lambda t: -float(tango_z(table.ref_only, table.cand_only, table.n, -t))  # noqa: E731
    ci_low, ci_high = _invert(z_of, delta, -1.0 + 1e-9, 1.0 - 1e-9)
    se, unpaired = table.se_diff()
    return Comparison(
        value=(table.both_right + table.cand_only) / table.n,
        reference=(table.both_right + table.ref_only) / table.n,
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=float(p_regression),
        p_noninferiority=float(p_noninferiority),
        n=table.n,
        se=se,
        margin=margin,
        higher_is_better=higher_is_better,
        method="exact McNemar; Tango score (margin)" + ("; MDE from unpaired bound" if unpaired else ""),
    )


# --------------------------------------------------------------------------- paired real values


def _t_tests(d: np.ndarray, margin: float) -> tuple[float, float, str]:
    """One-sided paired t p-values (regression, margin) of oriented differences ``d``."""
    n = d.size
    m = mean(d)
    if n < 2:
        return 1.0, 1.0, "paired t (n=1: no variance estimate)"
    se = _sd(d) / math.sqrt(n)
    if se == 0.0:
        # The same difference on every item: the t-tests' limits (t = +-inf).
        return (0.0 if m < 0.0 else 1.0), (0.0 if m > -margin else 1.0), "paired t"
    t = _scipy().stats.t
    return float(t.cdf(m / se, df=n - 1)), float(t.sf((m + margin) / se, df=n - 1)), "paired t"


def _t_ci(delta: float, sd: float, n: int) -> tuple[float, float]:
    """Two-sided t interval of the mean difference; unbounded when n = 1 (no variance
    estimate), a point when every difference is the same."""
    if n < 2:
        return -math.inf, math.inf
    if sd == 0.0:
        return delta, delta
    quantile = float(_scipy().stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1))
    half = quantile * sd / math.sqrt(n)
    return delta - half, delta + half


def paired_continuous(
    cand: Sequence[float],
    ref: Sequence[float],
    *,
    higher_is_better: bool,
    margin: float = 0.0,
) -> Comparison:
    """Compare real-valued per-item scores of the same items (e.g. per-document log-likelihood).

    One-sided paired t-tests (df = n - 1) of the mean oriented difference against 0 (regression)
    and against -margin (margin); the 95% CI uses the same t quantile. When every difference is
    0 the se for the MDE falls back to sqrt(2) * sd(reference) / sqrt(n) (the unpaired bound).
    """
    _check_margin(margin)
    c, r = _paired_arrays(cand, ref)
    raw = c - r
    d = _sign(higher_is_better) * raw
    n = d.size
    p_regression, p_noninferiority, method = _t_tests(d, margin)
    sd = _sd(raw)
    delta = mean(raw)
    ci_low, ci_high = _t_ci(delta, sd, n)
    if sd == 0.0:
        sd = math.sqrt(2.0) * _sd(r)
        method += "; MDE from unpaired bound"
    return Comparison(
        value=mean(c),
        reference=mean(r),
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_regression,
        p_noninferiority=p_noninferiority,
        n=n,
        se=sd / math.sqrt(n),
        margin=margin,
        higher_is_better=higher_is_better,
        method=method,
    )


# --------------------------------------------------------------------------- against a stored number


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
    beta = _scipy().stats.beta
    tail = (1.0 - CONFIDENCE) / 2
    low = 0.0 if k == 0 else float(beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1.0 - tail, k + 1, n - k))
    return low, high


def _exact_vs_number(k: int, n: int, p_ref: float, margin: float) -> tuple[float, float]:
    """Exact binomial p-values of k successes in n against a fixed p_ref (higher is better)."""
    binom = _scipy().stats.binom
    p_regression = float(binom.cdf(k, n, _clip(p_ref)))  # H0: p >= p_ref
    if p_ref - margin < 0.0:  # H0 "p <= p_ref - margin" holds for no rate: nothing to reject
        return min(1.0, p_regression), 0.0
    p_noninferiority = float(binom.sf(k - 1, n, p_ref - margin))  # H0: p <= p_ref - margin
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
        ratio = np.where(p_abs > _EPS, q / np.where(p_abs > _EPS, p**3, 1.0), 0.0)
    angle = (math.pi + np.arccos(np.clip(ratio, -1.0, 1.0))) / 3.0
    r0 = np.where(delta == 0.0, count / total, 2.0 * p * np.cos(angle) - l2 / (3.0 * l3))
    r0 = np.clip(r0, np.maximum(0.0, -delta), np.minimum(1.0, 1.0 - delta))  # both rates in [0, 1]
    r1 = r0 + delta
    var = (r1 * (1.0 - r1) / n1 + r0 * (1.0 - r0) / n0) * total / (total - 1.0)
    diff = x1 / n1 - x0 / n0 - delta
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > _EPS**2, diff / np.sqrt(np.maximum(var, _EPS**2)), np.sign(diff) * np.inf)
    z = np.where((var <= _EPS**2) & (np.abs(diff) <= _EPS), 0.0, z)
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
    _check_margin(margin, proportion=True)
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
        p_regression = float(_norm_cdf(mn_z(good, n, x0, ref_n, 0.0)))
        p_noninferiority = float(1.0 - _norm_cdf(mn_z(good, n, x0, ref_n, -margin)))
        x0_raw = ref_value * ref_n
        z_of = lambda t: float(mn_z(k, n, x0_raw, ref_n, t))  # noqa: E731
        ci_low, ci_high = _invert(z_of, delta, -1.0 + 1e-9, 1.0 - 1e-9)
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
    _check_margin(margin)
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
    oriented = _sign(higher_is_better) * delta
    if se > 0.0:
        p_regression = float(_norm_cdf(oriented / se))
        p_noninferiority = float(1.0 - _norm_cdf((oriented + margin) / se))
    else:
        p_regression = 0.0 if oriented < 0.0 else 1.0
        p_noninferiority = 0.0 if oriented > -margin else 1.0
    half = _norm_ppf(0.5 + CONFIDENCE / 2) * se
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
