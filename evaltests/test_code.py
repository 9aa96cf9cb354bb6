"""Code benchmarks of the qwen3 suite (MBPP, HumanEval): every program runs in ckptgate's
sandbox; each test runs over every checkpoint given with --checkpoint."""

import pytest

from ckptgate.benchmark_run import BenchmarkRun


@pytest.mark.gate("code")
def test_code(benchmark_run: BenchmarkRun) -> None:
    """MBPP 3-shot and HumanEval 0-shot, pass@1."""
    benchmark_run.check()
