"""The demo suite's benchmarks: each test runs over every checkpoint given with --checkpoint.

Each function is parametrized by the plugin from the selected suite (``--suite``, default
``demo``): ``@pytest.mark.gate("arithmetic")`` runs the suite's benchmarks whose ``test`` is
``arithmetic``. The ``benchmark_run`` fixture loads the checkpoint (once per worker), runs the
benchmark's lm-eval task and writes the results; ``check()`` asserts the suite's thresholds.
"""

import pytest

from ckptgate.benchmark_run import BenchmarkRun


@pytest.mark.gate("arithmetic")
def test_arithmetic(benchmark_run: BenchmarkRun) -> None:
    """GSM8K-format arithmetic (generate_until; strict and flexible answer extraction)."""
    benchmark_run.check()


@pytest.mark.gate("choice")
def test_choice(benchmark_run: BenchmarkRun) -> None:
    """Multiple choice scored by log-likelihood (acc, acc_norm)."""
    benchmark_run.check()


@pytest.mark.gate("text")
def test_text(benchmark_run: BenchmarkRun) -> None:
    """Rolling log-likelihood of held-out text (word/byte perplexity, bits per byte)."""
    benchmark_run.check()
