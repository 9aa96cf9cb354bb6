"""Significance tests for "is the candidate checkpoint worse than the reference?".

Every comparison tests, one-sided, the null hypothesis

    H0: the candidate is NOT worse than the reference by more than ``margin``

so a small p-value is evidence of a real regression and fails the gate; a large one only
says the data cannot tell the two apart at this sample size. Because "cannot tell" is not
"equal", every :class:`Comparison` also carries the minimum detectable effect (MDE): the
true worsening the test would catch 80% of the time. A gate that passes with an MDE of
five points has not shown that the checkpoint lost less than five points.

Conventions used throughout:

* ``delta = value - reference`` in raw metric units (not oriented), so a report reads the
  same whichever direction is better.
* Internally each test works on the *oriented* per-item difference
  ``d = sign * (cand - ref)`` with ``sign = +1`` when higher is better and ``-1`` otherwise,
  so ``d < 0`` always means "the candidate is worse" and H0 is ``E[d] >= -margin``.
* Binary tests work from the 2x2 table of counts and real-valued sums use
  :func:`math.fsum` (correctly rounded), so a result does not depend on item order.

Paired tests (the same items scored by both checkpoints) are much more sensitive than
comparisons of two aggregate numbers: most item-level noise is shared by both checkpoints
and cancels in ``d``. Use :func:`versus_baseline` only when per-item scores are missing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np


@functools.cache
def _scipy_stats() -> Any:
    """scipy.stats, imported on first use: it takes over a second to import, and a run that
    compares nothing (thresholds only) never needs it."""
    from scipy import stats

    return stats


CONFIDENCE = 0.95  # two-sided level of every reported confidence interval
POWER = 0.8  # power at which every reported MDE is computed

_STD_NORMAL = NormalDist()


def _norm_cdf(x: float) -> float:
    """Standard normal cdf via erfc: accurate in the far lower tail, and ~100x cheaper
    than a scipy.stats call (it runs thousands of times in power simulations)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _norm_ppf(q: float) -> float:
    return _STD_NORMAL.inv_cdf(q)


@dataclass(frozen=True)
class Comparison:
    """The outcome of one candidate-versus-reference test on one metric.

    ``ci_low``/``ci_high`` bound ``delta`` (raw units) with two-sided 95% confidence,
    independently of the test's alpha, so reports stay comparable across gates.
    ``mde`` is a positive worsening in metric units (it includes ``margin``: a true
    worsening inside the margin is, by construction, never detected).
    """

    value: float
    reference: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    mde: float
    method: str
    margin: float

    def worse(self, alpha: float) -> bool:
        """True when the regression is significant at one-sided level ``alpha``."""
        return self.p_value < alpha


# --------------------------------------------------------------------------- helpers


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {alpha!r}")


def _check_margin(margin: float) -> None:
    if not (math.isfinite(margin) and margin >= 0.0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")


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


def _mean(x: np.ndarray) -> float:
    """Order-independent mean (correctly rounded sum)."""
    return math.fsum(x.tolist()) / x.size


def _sd(x: np.ndarray) -> float:
    """Order-independent sample standard deviation (ddof=1); 0.0 for a single value."""
    if x.size < 2:
        return 0.0
    m = _mean(x)
    return math.sqrt(math.fsum(((x - m) ** 2).tolist()) / (x.size - 1))


def _z_sum(alpha: float, power: float) -> float:
    """z_{1-alpha} + z_{power}: the distance, in standard errors, of a detectable effect."""
    return _norm_ppf(1.0 - alpha) + _norm_ppf(power)


def _wald_ci(delta: float, se: float, quantile: float) -> tuple[float, float]:
    return delta - quantile * se, delta + quantile * se


def _z_ci(delta: float, se: float) -> tuple[float, float]:
    return _wald_ci(delta, se, _norm_ppf(0.5 + CONFIDENCE / 2))


def _lower_tail_p(shift: float, se: float) -> float:
    """One-sided p of H0 E[d] >= -margin given ``shift = mean(d) + margin`` and its se.

    With se == 0 the data are deterministic: no shortfall means no evidence (p = 1), a
    shortfall is certain (p = 0). Callers avoid reaching se == 0 where that would overclaim.
    """
    if se > 0.0:
        return _norm_cdf(shift / se)
    return 1.0 if shift >= 0.0 else 0.0


# --------------------------------------------------------------------------- primitives


def mcnemar_one_sided(losses: int, wins: int) -> float:
    """Exact one-sided McNemar p-value: P(Binom(losses + wins, 1/2) >= losses).

    ``losses``: items the reference got right and the candidate wrong; ``wins``: the
    reverse. Concordant items carry no information about which checkpoint is better, and
    under H0 (no difference) each discordant item is a fair coin, hence the binomial.
    """
    if losses < 0 or wins < 0 or int(losses) != losses or int(wins) != wins:
        raise ValueError(f"losses and wins must be counts >= 0, got {losses!r}, {wins!r}")
    n = int(losses) + int(wins)
    if n == 0:
        return 1.0
    return float(min(1.0, _scipy_stats().binom.sf(int(losses) - 1, n, 0.5)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in input order, monotone, capped at 1.

    A suite gates many (benchmark, metric) pairs at once; without adjustment each extra
    metric is one more chance of a false alarm. Holm controls the family-wise error rate
    under any dependence between the tests and is uniformly more powerful than Bonferroni.
    Reject hypothesis i at level alpha iff ``holm(p)[i] < alpha`` (or <=; same convention
    as the raw p-values).
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


def mde(sd: float, n: int, *, alpha: float, power: float = POWER) -> float:
    """Minimum detectable effect of a one-sided z-test: (z_{1-alpha} + z_power) * sd / sqrt(n).

    ``sd`` is the standard deviation of one observation of the tested quantity (for a
    paired test: of one per-item difference). This is the true worsening that a test at
    level ``alpha`` flags with probability ``power``; anything smaller may well pass.
    """
    _check_alpha(alpha)
    _check_alpha(power, "power")
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n!r}")
    if not (math.isfinite(sd) and sd >= 0.0):
        raise ValueError(f"sd must be a finite number >= 0, got {sd!r}")
    return _z_sum(alpha, power) * sd / math.sqrt(n)


# --------------------------------------------------------------------------- paired tests


@dataclass(frozen=True)
class _PairTable:
    """The 2x2 table of two checkpoints' 0/1 scores on the same items.

    Every paired binary statistic is a function of these counts, so computing from them
    is exact and independent of item order (and fast enough for power simulations).
    """

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

    def sd_diff(self) -> float:
        """Sample sd (ddof=1) of the per-item differences; orientation does not matter."""
        if self.n < 2:
            return 0.0
        var = (self.discordant - self.n * self.mean_diff() ** 2) / (self.n - 1)
        return math.sqrt(max(var, 0.0))

    def pooled_accuracy(self) -> float:
        return (2 * self.both_right + self.discordant) / (2 * self.n)


def _binary_mde_sd(table: _PairTable) -> tuple[float, bool]:
    """sd for the MDE of a paired binary test, and whether it fell back to the unpaired bound.

    With no discordant items the observed sd of differences is 0, which would claim any
    drop is detectable. The unpaired binomial sd sqrt(2 p (1 - p)) (pooled accuracy p; 0.5
    if p is 0 or 1) is an upper bound on the paired sd and keeps the MDE honest.
    """
    sd = table.sd_diff()
    if sd > 0.0:
        return sd, False
    p = table.pooled_accuracy()
    if p <= 0.0 or p >= 1.0:
        p = 0.5
    return math.sqrt(2.0 * p * (1.0 - p)), True


def _binary_margin_se(table: _PairTable, margin: float) -> float:
    """se of mean(d) for the margin z-test.

    Normally the sample sd of the differences (Wald). When every item has the same
    difference the sample sd is 0 and a Wald test would report certainty from, say, one
    lost item; then use the variance the observed discordance rate allows at the null
    boundary E[d] = -margin: P(discordant) - margin^2.
    """
    sd = table.sd_diff()
    if sd > 0.0:
        return sd / math.sqrt(table.n)
    var0 = max(table.discordant / table.n - margin**2, 0.0)
    return math.sqrt(var0 / table.n)


def paired_binary(
    cand: Sequence[float],
    ref: Sequence[float],
    *,
    higher_is_better: bool = True,
    margin: float = 0.0,
    alpha: float = 0.05,
) -> Comparison:
    """Compare 0/1 per-item scores of the same items (accuracy, exact match, pass@1).

    ``margin == 0``: the exact one-sided McNemar test, which only looks at discordant
    items (one checkpoint right, the other wrong) and is valid at any sample size.
    The p-value is the exact binomial tail P(Binom(losses + wins, 1/2) >= losses): 1 when
    no item is discordant, and >= 0.5 whenever the candidate wins at least as often as it
    loses (it is not clamped to 1, so that it equals :func:`mcnemar_one_sided`).

    ``margin > 0``: McNemar cannot test a shifted null, so this uses a one-sided paired
    z-test (Wald) of mean(d) against -margin, d the oriented per-item differences in
    {-1, 0, 1}. It is a large-sample approximation: trust it from a few dozen discordant
    items on.
    """
    _check_alpha(alpha)
    _check_margin(margin)
    table = _PairTable.from_scores(cand, ref)
    n, delta = table.n, table.mean_diff()
    if margin == 0.0:
        losses, wins = table.ref_only, table.cand_only
        if not higher_is_better:
            losses, wins = wins, losses
        p_value, method = mcnemar_one_sided(losses, wins), "exact McNemar"
    else:
        oriented = _sign(higher_is_better) * delta
        p_value = _lower_tail_p(oriented + margin, _binary_margin_se(table, margin))
        method = "paired z (margin)"
    sd, fallback = _binary_mde_sd(table)
    if fallback:
        method += "; MDE from unpaired bound"
    ci_low, ci_high = _z_ci(delta, table.sd_diff() / math.sqrt(n))
    return Comparison(
        value=(table.both_right + table.cand_only) / n,
        reference=(table.both_right + table.ref_only) / n,
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        n=n,
        mde=margin + mde(sd, n, alpha=alpha),
        method=method,
        margin=margin,
    )


def _t_ci(delta: float, sd: float, n: int) -> tuple[float, float]:
    """Two-sided t interval of the mean difference; unbounded when n = 1 (no variance
    estimate), a point when every difference is the same."""
    if n < 2:
        return -math.inf, math.inf
    if sd == 0.0:
        return delta, delta
    quantile = float(_scipy_stats().t.ppf(0.5 + CONFIDENCE / 2, df=n - 1))
    return _wald_ci(delta, sd / math.sqrt(n), quantile)


def _t_p_value(d: np.ndarray, margin: float) -> tuple[float, str]:
    """One-sided paired t p-value of H0 E[d] >= -margin, and the method label."""
    n = d.size
    shift = _mean(d) + margin
    if n < 2:
        # One item gives no variance estimate: report no evidence rather than guess.
        return 1.0, "paired t (n=1: no variance estimate)"
    se = _sd(d) / math.sqrt(n)
    if se == 0.0:
        # Identical differences on every item: no shortfall is no evidence, a constant
        # shortfall is the t-test's limit (t = -inf).
        return (1.0 if shift >= 0.0 else 0.0), "paired t"
    return float(_scipy_stats().t.cdf(shift / se, df=n - 1)), "paired t"


def paired_continuous(
    cand: Sequence[float],
    ref: Sequence[float],
    *,
    higher_is_better: bool,
    margin: float = 0.0,
    alpha: float = 0.05,
) -> Comparison:
    """Compare real-valued per-item scores of the same items (e.g. per-document bits/byte).

    One-sided paired t-test of mean(d) against -margin (df = n - 1); the 95% CI of delta
    uses the same t quantile so that CI and test agree. Identical inputs give p = 1: zero
    variance with no shortfall is no evidence of worsening. The MDE uses the sd of the
    differences; when that is 0 it falls back to sqrt(2) * sd(reference) (the unpaired
    bound), and to 0 only when the reference values are constant too.
    """
    _check_alpha(alpha)
    _check_margin(margin)
    c, r = _paired_arrays(cand, ref)
    d = _sign(higher_is_better) * (c - r)
    n = d.size
    p_value, method = _t_p_value(d, margin)
    sd = _sd(d)
    if sd == 0.0:
        sd = math.sqrt(2.0) * _sd(r)
        method += "; MDE from unpaired bound"
    raw = c - r
    delta = _mean(raw)
    ci_low, ci_high = _t_ci(delta, _sd(raw), n)
    return Comparison(
        value=_mean(c),
        reference=_mean(r),
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        n=n,
        mde=margin + mde(sd, n, alpha=alpha),
        method=method,
        margin=margin,
    )


# --------------------------------------------------------------------------- aggregates


def _binomial_se(p: float, n: int) -> float:
    """sqrt(p (1 - p) / n), with p kept half an item away from 0 and 1.

    A perfect (or zero) score still has sampling noise; the plain Wald formula would
    return se = 0 and let the z-test claim certainty.
    """
    clipped = min(max(p, 0.5 / n), 1.0 - 0.5 / n)
    return math.sqrt(clipped * (1.0 - clipped) / n)


def _check_binary_value(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} of a binary metric must lie in [0, 1], got {value!r}")


def _run_se(value: float, stderr: float | None, n: int, binary: bool) -> float:
    if binary and stderr == 0.0:
        stderr = None  # all 0s or all 1s: a sample stderr of 0 is no evidence of zero noise
    if stderr is not None:
        if not (math.isfinite(stderr) and stderr >= 0.0):
            raise ValueError(f"stderr must be a finite number >= 0, got {stderr!r}")
        return stderr
    if not binary:
        raise ValueError(
            "cannot test a non-binary metric without its stderr: re-run with per-item "
            "scores (paired test) or with bootstrap stderr enabled"
        )
    _check_binary_value(value, "value")
    return _binomial_se(value, n)


def _ref_se(
    ref_value: float, ref_stderr: float | None, ref_n: int | None, binary: bool
) -> tuple[float, str]:
    """The baseline's se and a note for ``method`` when it had to be assumed."""
    if ref_stderr is not None:
        if not (math.isfinite(ref_stderr) and ref_stderr >= 0.0):
            raise ValueError(f"ref_stderr must be a finite number >= 0, got {ref_stderr!r}")
        return ref_stderr, ""
    if binary and ref_n is not None:
        if ref_n <= 0:
            raise ValueError(f"ref_n must be > 0, got {ref_n!r}")
        _check_binary_value(ref_value, "ref_value")
        return _binomial_se(ref_value, ref_n), ""
    return 0.0, " (baseline stderr unknown, treated as exact)"


def versus_baseline(
    value: float,
    stderr: float | None,
    n: int,
    ref_value: float,
    ref_stderr: float | None,
    *,
    binary: bool,
    higher_is_better: bool,
    margin: float = 0.0,
    alpha: float = 0.05,
    ref_n: int | None = None,
) -> Comparison:
    """Compare two aggregate numbers when per-item scores are not available.

    One-sided z-test of the oriented difference against -margin with
    se = sqrt(se_run^2 + se_ref^2), treating the two runs as independent. That ignores
    the (large, positive) correlation between two checkpoints scored on the same items,
    so it is conservative: its MDE is typically several times a paired test's.
    A missing stderr of a binary metric is derived from the binomial formula; a missing
    baseline stderr that cannot be derived is taken as 0 (exact baseline), which makes
    the test less conservative, and ``method`` says so.
    """
    _check_alpha(alpha)
    _check_margin(margin)
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n!r}")
    if not (math.isfinite(value) and math.isfinite(ref_value)):
        raise ValueError(f"value and ref_value must be finite, got {value!r}, {ref_value!r}")
    se_run = _run_se(value, stderr, n, binary)
    se_ref, note = _ref_se(ref_value, ref_stderr, ref_n, binary)
    se = math.hypot(se_run, se_ref)
    delta = value - ref_value
    p_value = _lower_tail_p(_sign(higher_is_better) * delta + margin, se)
    ci_low, ci_high = _z_ci(delta, se)
    return Comparison(
        value=value,
        reference=ref_value,
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        n=n,
        mde=margin + _z_sum(alpha, POWER) * se,
        method="z vs baseline" + note,
        margin=margin,
    )


# --------------------------------------------------------------------------- power


def _cell_probabilities(p_ref: float, discordance: float, effect: float) -> np.ndarray:
    """P(loss), P(win), P(both right), P(both wrong) for a true accuracy drop ``effect``.

    ``discordance`` is the fraction of items on which the two checkpoints disagree;
    a drop of ``effect`` splits it into (discordance + effect)/2 losses and
    (discordance - effect)/2 wins.
    """
    loss, win = (discordance + effect) / 2.0, (discordance - effect) / 2.0
    both_right, both_wrong = p_ref - loss, 1.0 - p_ref - win
    cells = np.array([loss, win, both_right, both_wrong])
    if not (0.0 <= effect <= discordance) or np.any(cells < -1e-12):
        raise ValueError(
            f"infeasible scenario: effect={effect!r} must lie in [0, discordance="
            f"{discordance!r}] and leave every cell probability >= 0 at p_ref={p_ref!r}"
        )
    cells = np.clip(cells, 0.0, None)
    return cells / cells.sum()


def binary_power(
    n: int,
    effect: float,
    *,
    p_ref: float,
    discordance: float,
    alpha: float,
    sims: int,
    seed: int,
) -> float:
    """Monte-Carlo power of :func:`paired_binary`'s exact McNemar test (margin 0).

    Simulates ``sims`` paired runs of ``n`` items in which the reference scores ``p_ref``,
    the candidate ``p_ref - effect`` and a fraction ``discordance`` of items disagree, and
    returns the fraction flagged at level ``alpha``. ``effect = 0`` gives the false-alarm
    rate. Vectorised: the test depends on the run only through (losses, wins).
    """
    _check_alpha(alpha)
    if n <= 0 or sims <= 0:
        raise ValueError(f"n and sims must be > 0, got n={n!r}, sims={sims!r}")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, _cell_probabilities(p_ref, discordance, effect), size=sims)
    losses, wins = counts[:, 0], counts[:, 1]
    p_values = np.where(losses + wins == 0, 1.0, _scipy_stats().binom.sf(losses - 1, losses + wins, 0.5))
    return float(np.mean(p_values < alpha))
