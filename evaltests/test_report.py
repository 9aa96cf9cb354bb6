"""The qwen3-report suite (MMLU, MMLU-Pro, BBH, GPQA, MGSM under the Qwen3 technical report's shot
counts): each test runs over every checkpoint given with --checkpoint."""

import pytest

from ckptgate.benchmark_run import BenchmarkRun


@pytest.mark.gate("report")
def test_report(benchmark_run: BenchmarkRun) -> None:
    """Gated against bridges; shown next to the technical report's numbers, never gated by them."""
    benchmark_run.check()
