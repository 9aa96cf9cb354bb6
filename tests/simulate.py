"""Simulated benchmark runs for the calibration tests of ckptgate.stats.

Items differ in difficulty: item i has a success probability r_i ~ Beta(a, b) with mean
``MEAN_ACCURACY``; the reference scores Bernoulli(r_i) on it and the candidate, independently
given the item, Bernoulli(c_i) with c_i = r_i * (1 - drop / MEAN_ACCURACY), so the candidate's
expected accuracy is exactly ``drop`` lower. a + b sets how often two checkpoints of equal quality
disagree on an item: 2 E[r (1 - r)] = ``disagreement``. Items are drawn afresh for every run.

Because items are drawn independently for every run, the (losses, wins, concordant) counts of a
run are exactly multinomial with cell probabilities E[r (1 - c)], E[(1 - r) c] and the rest:
:func:`multinomial_counts` draws them directly (fast, any size) and :func:`item_scores` draws the
per-item scores themselves; a test checks that the two agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MEAN_ACCURACY = 0.6
EQUAL_DISAGREEMENT = 0.10  # two checkpoints of equal quality disagree on ~10% of items


@dataclass(frozen=True)
class Population:
    """Item difficulties and the candidate's true drop in accuracy."""

    drop: float = 0.0
    disagreement: float = EQUAL_DISAGREEMENT  # between two checkpoints of equal quality
    mean: float = MEAN_ACCURACY

    @property
    def beta(self) -> tuple[float, float]:
        """(a, b) of the Beta distribution of r_i: mean ``mean``, 2 E[r(1-r)] = ``disagreement``.

        E[r(1-r)] = mean (1 - mean) s / (s + 1) with s = a + b."""
        q = self.disagreement / (2.0 * self.mean * (1.0 - self.mean))
        if not 0.0 < q < 1.0:
            raise ValueError(f"disagreement {self.disagreement} is not reachable at mean {self.mean}")
        s = q / (1.0 - q)
        return self.mean * s, (1.0 - self.mean) * s

    @property
    def shrink(self) -> float:
        """c_i / r_i."""
        return 1.0 - self.drop / self.mean

    @property
    def cells(self) -> tuple[float, float, float]:
        """(P(loss), P(win), P(concordant)) of one item: loss = reference right, candidate wrong."""
        a, b = self.beta
        second_moment = self.mean * (1.0 - self.mean) / (a + b + 1.0) + self.mean**2  # E[r^2]
        k = self.shrink
        loss = self.mean - k * second_moment  # E[r (1 - k r)]
        win = k * (self.mean - second_moment)  # E[(1 - r) k r]
        return loss, win, 1.0 - loss - win


def multinomial_counts(rng: np.random.Generator, pop: Population, n: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(losses, wins) of runs of ``n`` items, each of ``shape``."""
    counts = rng.multinomial(n, pop.cells, size=shape)
    return counts[..., 0], counts[..., 1]


def item_scores(rng: np.random.Generator, pop: Population, runs: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(candidate, reference) per-item 0/1 scores, each of shape (runs, n), items redrawn per run."""
    a, b = pop.beta
    r = rng.beta(a, b, size=(runs, n))
    ref = rng.random((runs, n)) < r
    cand = rng.random((runs, n)) < r * pop.shrink
    return cand.astype(np.int8), ref.astype(np.int8)


def item_counts(rng: np.random.Generator, pop: Population, runs: int, n: int, chunk: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(losses, wins) of ``runs`` runs counted from per-item scores (drawn in chunks of runs)."""
    losses, wins = [], []
    for start in range(0, runs, chunk):
        cand, ref = item_scores(rng, pop, min(chunk, runs - start), n)
        losses.append(np.count_nonzero((ref == 1) & (cand == 0), axis=1))
        wins.append(np.count_nonzero((cand == 1) & (ref == 0), axis=1))
    return np.concatenate(losses), np.concatenate(wins)


def mc_bound(rate: float, runs: int, k: float = 3.0) -> float:
    """``rate`` plus ``k`` Monte-Carlo standard errors of a proportion estimated from ``runs``."""
    return rate + k * math.sqrt(rate * (1.0 - rate) / runs)


def holm_rows(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of every row of ``p`` (the same step-down as ckptgate.stats.holm,
    vectorised over runs; a test checks the two agree)."""
    p = np.asarray(p, dtype=float)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked), axis=-1)
    out = np.empty_like(p)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def paired_t(cand: np.ndarray, ref: np.ndarray, *, higher_is_better: bool, margin: float):
    """(p_value, p_noninferiority, crosses_margin) of the paired t-tests of every row (run) of
    per-item scores, vectorised (ckptgate.stats.paired_continuous, one run at a time; a test
    checks the two agree)."""
    from scipy import stats as sps

    d = (1.0 if higher_is_better else -1.0) * (np.asarray(cand, float) - np.asarray(ref, float))
    n = d.shape[-1]
    m = d.mean(axis=-1)
    se = d.std(axis=-1, ddof=1) / math.sqrt(n)
    return sps.t.cdf(m / se, df=n - 1), sps.t.sf((m + margin) / se, df=n - 1), m <= -margin
