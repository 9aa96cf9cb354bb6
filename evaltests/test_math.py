"""Math benchmarks of the qwen3 suite: each test runs over every checkpoint given with --checkpoint."""

import pytest

from ckptgate.benchmark_run import BenchmarkRun


@pytest.mark.gate("gsm8k")
def test_gsm8k(benchmark_run: BenchmarkRun) -> None:
    """GSM8K and GSM8K-CoT at 4 and 8 shots (strict-match and flexible-extract)."""
    benchmark_run.check()


@pytest.mark.gate("minerva_math")
def test_minerva_math(benchmark_run: BenchmarkRun) -> None:
    """MATH, 4-shot Minerva prompts: exact_match and math_verify, overall and per subject."""
    benchmark_run.check()


@pytest.mark.gate("hendrycks_math")
def test_hendrycks_math(benchmark_run: BenchmarkRun) -> None:
    """lm-eval's hendrycks_math, 4-shot: misleading (see the suite); runs only when named."""
    benchmark_run.check()


@pytest.mark.gate("math_qwen")
def test_math_qwen(benchmark_run: BenchmarkRun) -> None:
    """MATH with Qwen's protocol: CoT few-shot, boxed / "The answer is" extraction, sympy equivalence."""
    benchmark_run.check()
