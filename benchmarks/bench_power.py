"""Operating characteristics of the gate's verdicts on paired 0/1 scores: P(PASS), P(FAIL) and
P(INCONCLUSIVE) against the true accuracy drop, for GSM8K (1,319), MATH (5,000) and HumanEval (164)
sizes, under the qwen3 suite's gating (7 primary comparisons against one bridge, Holm at family-wise
alpha 0.05; margins 1.5 points for accuracies, 2 points for pass@k).

    .venv/bin/python benchmarks/bench_power.py [--sims N] [--seed S]

Realistic item-level agreement: each item has its own success probability r ~ Beta (mean 0.6),
the two checkpoints answer independently given the item, and the Beta's spread sets how often two
checkpoints of equal quality disagree (agreement 92.5%: 7.5% of items discordant). The candidate's
probability on an item is r * (1 - drop / 0.6), so its expected accuracy is lower by exactly
``drop``. Items are redrawn every run, which makes the (losses, wins, ties) counts exactly
multinomial; the verdict is the gate's own (ckptgate.stats.paired_binary_counts, gate.decide with
Holm over the family, whose other six comparisons are of equal quality). No model is loaded.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ckptgate import gate, stats  # noqa: E402

MEAN = 0.6
ALPHA = 0.05
FAMILY = 7  # the qwen3 suite's primary metrics, each against one bridge
BENCHMARKS = (("GSM8K", 1319, 0.015), ("MATH", 5000, 0.015), ("HumanEval", 164, 0.02))
DROPS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05)
AGREEMENTS = (0.90, 0.925, 0.95)


def cells(agreement: float, drop: float) -> np.ndarray:
    """P(loss), P(win), P(tie) for Beta item probabilities with the given equal-quality agreement."""
    e_r_1mr = (1.0 - agreement) / 2.0  # E[r (1 - r)]: half the discordance of equal checkpoints
    # For r ~ Beta(a, b) with a + b = t: E[r(1-r)] = mu (1 - mu) t / (t + 1), solved for t.
    t = e_r_1mr / (MEAN * (1 - MEAN) - e_r_1mr)
    a, b = MEAN * t, (1 - MEAN) * t
    e_r2 = a * (a + 1) / (t * (t + 1))
    k = 1.0 - drop / MEAN
    loss, win = MEAN - k * e_r2, k * (MEAN - e_r2)
    return np.array([loss, win, 1.0 - loss - win])


def verdicts(n: int, margin: float, agreement: float, drop: float, sims: int, rng: np.random.Generator) -> np.ndarray:
    """The gate's settled verdicts of ``sims`` runs on the comparison with the true ``drop``."""
    policy = gate.Policy(ALPHA, FAMILY)
    counts = rng.multinomial(n, cells(agreement, drop), size=(sims, FAMILY))
    counts[:, 1:] = rng.multinomial(n, cells(agreement, 0.0), size=(sims, FAMILY - 1))
    losses, wins = counts[..., 0], counts[..., 1]
    p_reg, p_ni = stats.paired_binary_counts(losses, wins, n, margin)
    holm = np.array([stats.holm(row) for row in p_reg])
    material = (losses[:, 0] - wins[:, 0]) / n >= margin
    return np.array([gate.decide(bool(m), float(p), float(q), policy, float(h))
                     for m, p, q, h in zip(material, p_reg[:, 0], p_ni[:, 0], holm[:, 0])])


def smallest_failing_drop(n: int, margin: float, agreement: float, sims: int, seed: int) -> float:
    """The smallest true drop (0.1-point steps) that FAILs at least 80% of the time."""
    rng = np.random.default_rng(seed)
    for tenth in range(1, 101):
        drop = tenth / 1000
        if np.mean(verdicts(n, margin, agreement, drop, sims, rng) == "fail") >= 0.8:
            return drop
    return math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulated runs per cell (default 2000)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    print(f"Verdicts of one primary comparison in a family of {FAMILY} (Holm, family-wise alpha {ALPHA}); "
          f"{args.sims} runs per cell, Monte-Carlo se <= {50 / math.sqrt(args.sims):.1f} points")
    for agreement in AGREEMENTS:
        print(f"\nitem-level agreement of equal checkpoints {agreement:.1%}")
        print(f"{'benchmark':<10} {'n':>5} {'margin':>6} | {'true drop':>9} | {'P(pass)':>7} {'P(fail)':>7} {'P(inconcl.)':>11}")
        for name, n, margin in BENCHMARKS:
            for drop in DROPS:
                v = verdicts(n, margin, agreement, drop, args.sims, rng)
                print(f"{name:<10} {n:>5} {margin * 100:>5g}pt | {drop * 100:>7.1f}pt | {np.mean(v == 'pass'):>7.1%} "
                      f"{np.mean(v == 'fail'):>7.1%} {np.mean(v == 'inconclusive'):>11.1%}")
    print("\nSmallest true drop that FAILs 80% of the time on GSM8K (n=1319, margin 1.5 points):")
    for agreement in (0.90, 0.92, 0.925, 0.93, 0.95):
        drop = smallest_failing_drop(1319, 0.015, agreement, args.sims, args.seed + 1)
        print(f"  agreement {agreement:.1%}: {drop * 100:.1f} points")
    print(f"\n({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
