"""The pieces every test shares: the comparison's result, the MDE, input checks, order-independent
sums, the normal distribution (scipy where it is needed), McNemar's exact test and Holm's correction."""

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
EPS = 1e-12


@functools.cache
def scipy_module() -> Any:
    """scipy's special functions, imported on first use. scipy.stats is not
    imported: it takes over a second, which a run whose results all come from the record cache
    would spend on every start; its distributions are these special functions (binomial tails
    ``bdtr``/``bdtrc``, Student's t ``stdtr``/``stdtrit``, the beta quantile ``betaincinv``)."""
    import scipy.special

    return scipy


@functools.cache
def brentq() -> Any:
    """scipy's Brent root finder (scipy.optimize, imported on first use)."""
    import scipy.optimize

    return scipy.optimize.brentq


def norm_cdf(x: Any) -> Any:
    """Standard normal cdf (scalar or array); accurate in the far tails."""
    return scipy_module().special.ndtr(x)


def norm_ppf(q: float) -> float:
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
        return orientation(self.higher_is_better) * self.delta

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
    return max(margin, norm_ppf(1.0 - fail_alpha) * se) + norm_ppf(power) * se


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {alpha!r}")


def check_margin(margin: float, *, proportion: bool = False) -> None:
    if not (math.isfinite(margin) and margin >= 0.0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    if proportion and margin >= 1.0:
        raise ValueError(f"the margin of a 0/1 metric must be below 1, got {margin!r}")


def orientation(higher_is_better: bool) -> float:
    """+1 when higher is better, -1 otherwise: multiplying by it makes 'worse' negative."""
    return 1.0 if higher_is_better else -1.0


def paired_arrays(cand: Sequence[float], ref: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
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


def sample_sd(x: np.ndarray) -> float:
    """Order-independent sample standard deviation (ddof=1); 0.0 for a single value."""
    if x.size < 2:
        return 0.0
    m = mean(x)
    return math.sqrt(math.fsum(((x - m) ** 2).tolist()) / (x.size - 1))


def invert(z_of: Callable[[float], float], estimate: float, low: float, high: float) -> tuple[float, float]:
    """The two-sided 95% score interval {t : |z(t)| <= z_0.975}, z decreasing in t, within [low, high]."""
    q = norm_ppf(0.5 + CONFIDENCE / 2)
    root = brentq()

    def bound(target: float, start: float, end: float) -> float:
        f = lambda t: z_of(t) - target  # noqa: E731
        if f(end) * f(start) > 0:  # never reaches the quantile inside the range: the range's end
            return end
        return float(root(f, start, end, xtol=1e-12, rtol=1e-12))

    return bound(q, estimate, low), bound(-q, estimate, high)


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
    p = np.where(total == 0, 1.0, scipy_module().special.bdtrc(losses_a - 1, np.maximum(total, 1), 0.5))
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
