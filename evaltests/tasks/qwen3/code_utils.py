"""MBPP and HumanEval scored through ckptgate's code sandbox instead of lm-eval's code_eval.

lm-eval's own mbpp/humaneval utils load HF evaluate's ``code_eval`` at import (fetched from the
hub, then ``exec`` in a helper process behind HF_ALLOW_CODE_EVAL): not usable offline, and not a
sandbox. These functions keep lm-eval's prompts, stop sequences and metric names, and run every
program (completion + the benchmark's tests, as code_eval assembles them) in
:mod:`ckptgate.sandbox`.
"""

from __future__ import annotations

from typing import Any

from scorers.code_programs import extract_code, humaneval_program, pass_at_k, passes, with_tests


def mbpp_program(completion: str, tests: str) -> str:
    """The completion's code, then the problem's three asserts: one program, as code_eval runs it."""
    return with_tests(extract_code(completion), tests)


def mbpp_tests(doc: dict[str, Any]) -> str:
    """The asserts as the task's doc_to_target renders them for a test document."""
    return "\n".join(doc["test_list"][:3])


def run_mbpp_programs(resps: list[list[str]], docs: list[dict[str, Any]]) -> list[list[str]]:
    """Filter: run every completion of the benchmark in the sandbox at once (in parallel); the
    responses pass through unchanged and ``pass_at_1`` finds each verdict done."""
    passes([mbpp_program(r, mbpp_tests(doc)) for resp, doc in zip(resps, docs) for r in resp], task="mbpp")
    return resps


def pass_at_1(references: list[str], predictions: list[str]) -> float:
    """MBPP pass@1 of one document (greedy: one completion)."""
    (tests,), (completion,) = references, predictions
    (ok,) = passes([mbpp_program(completion, tests)])
    return float(ok)


def pass_at_k_sandboxed(references: list[str], predictions: list[list[str]], k: list[int] | int = 1) -> dict[str, float]:
    """HumanEval: each sample (prompt + completion, from ``build_predictions``), then the
    problem's ``check`` call; unbiased pass@k over the doc's n samples (``repeats``)."""
    (tests,), (samples,) = references, predictions
    results = passes([with_tests(sample, tests) for sample in samples])
    ks = [k] if isinstance(k, int) else list(k)
    return {f"pass@{one}": pass_at_k(len(results), sum(results), one) for one in ks}


def build_predictions(resps: list[list[str]], docs: list[dict[str, Any]]) -> list[list[str]]:
    """HumanEval's programs: the prompt (signature and docstring) followed by each completion;
    all of them run in the sandbox here, in parallel, so the metric finds each verdict done."""
    passes([humaneval_program(doc, r) for resp, doc in zip(resps, docs) for r in resp], task="humaneval")
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs)]


def mbpp_fewshot_samples() -> list[dict[str, Any]]:
    """The three MBPP training problems (task ids 2, 3, 4) lm-eval's mbpp task shows as examples
    (lm_eval/tasks/mbpp/utils.py, list_fewshot_samples), unchanged."""
    return [
        {
            "task_id": 2,
            "text": "Write a function to find the similar elements from the given two tuple lists.",
            "code": "def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n  return (res) ",
            "test_list": [
                "assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
                "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)",
                "assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)",
            ],
            "is_fewshot": True,
        },
        {
            "task_id": 3,
            "text": "Write a python function to identify non-prime numbers.",
            "code": "import math\r\ndef is_not_prime(n):\r\n    result = False\r\n    for i in range(2,int(math.sqrt(n)) + 1):\r\n        if n % i == 0:\r\n            result = True\r\n    return result",
            "test_list": [
                "assert is_not_prime(2) == False",
                "assert is_not_prime(10) == True",
                "assert is_not_prime(35) == True",
            ],
            "is_fewshot": True,
        },
        {
            "task_id": 4,
            "text": "Write a function to find the largest integers from a given list of numbers using heap queue algorithm.",
            "code": "import heapq as hq\r\ndef heap_queue_largest(nums,n):\r\n  largest_nums = hq.nlargest(n, nums)\r\n  return largest_nums",
            "test_list": [
                "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],3)==[85, 75, 65] ",
                "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],2)==[85, 75] ",
                "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],5)==[85, 75, 65, 58, 35]",
            ],
            "is_fewshot": True,
        },
    ]
