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

from ckptgate.stats.core import CONFIDENCE, Comparison, POWER, holm, mcnemar_one_sided, mde_of, mean
from ckptgate.stats.paired import paired_binary, paired_binary_counts, paired_continuous, tango_z
from ckptgate.stats.baseline import clopper_pearson, mn_z, versus_baseline_binary, versus_baseline_continuous

__all__ = [
    "CONFIDENCE",
    "Comparison",
    "POWER",
    "clopper_pearson",
    "holm",
    "mcnemar_one_sided",
    "mde_of",
    "mean",
    "mn_z",
    "paired_binary",
    "paired_binary_counts",
    "paired_continuous",
    "tango_z",
    "versus_baseline_binary",
    "versus_baseline_continuous",
]
