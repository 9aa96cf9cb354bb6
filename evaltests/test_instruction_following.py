"""Instruction-following benchmarks of the qwen3 suite: each test runs over every checkpoint given
with --checkpoint."""

import pytest

from ckptgate.benchmark_run import BenchmarkRun


@pytest.mark.gate("ifeval")
def test_ifeval(benchmark_run: BenchmarkRun) -> None:
    """IFEval, zero-shot: prompt- and instruction-level accuracy, strict and loose."""
    benchmark_run.check()
