"""A staged pretraining evaluation's tiers (``--suite stage1`` ... ``stage4``): each test runs
over every checkpoint given with --checkpoint and every benchmark its tier compiles to.

Tier 2 scores perplexity slices, Tier 3 choice tasks, Tier 4 SFT-native probes; each benchmark
is held against the stage's bridge (the previous stage's last checkpoint). After the run, each
checkpoint's folder also holds the tier summaries (``tier2_ppl.json``, ``tier3_cf.json``,
``tier4_sft_native.json`` and its generations).
"""

import pytest

from ckptgate.benchmark_run import BenchmarkRun


@pytest.mark.gate("tier2_ppl")
def test_tier2_ppl(benchmark_run: BenchmarkRun) -> None:
    """Bits per byte and token perplexity of a slice, paired with the bridge document by document."""
    benchmark_run.check()


@pytest.mark.gate("tier3_cf")
def test_tier3_cf(benchmark_run: BenchmarkRun) -> None:
    """Zero-shot choice tasks scored by log-likelihood (acc, acc_norm) on a seeded subset."""
    benchmark_run.check()


@pytest.mark.gate("tier4_sft_native")
def test_tier4_sft_native(benchmark_run: BenchmarkRun) -> None:
    """SFT-native probes generated with the chat template: each prompt's checks must all pass."""
    benchmark_run.check()
