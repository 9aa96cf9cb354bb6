"""The qwen3 suite's own task code (evaltests/tasks/qwen3): math_qwen's scoring of one generation."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from helpers_modules import load_module

TASKS = Path(__file__).resolve().parent.parent / "evaltests" / "tasks" / "qwen3"


def load_utils() -> ModuleType:
    return load_module("qwen3_task_utils", TASKS / "utils.py")


DOC = {"problem": "Simplify $\\frac{6}{8}$.", "solution": "Divide by 2: $\\boxed{\\frac{3}{4}}$."}


@pytest.mark.parametrize(
    ("generation", "expected"),
    [
        (" Divide top and bottom by 2. The answer is $\\boxed{\\frac{3}{4}}$.", 1),
        (" 6/8 = 0.75, so the answer is 0.75.", 1),  # no box: "The answer is", equal as a number
        (" The answer is $\\boxed{\\dfrac{3}{4}}$", 1),
        (" The answer is $\\boxed{\\frac{6}{9}}$.", 0),
        ("", 0),
    ],
)
def test_math_qwen_scores_by_equivalence(generation: str, expected: int) -> None:
    assert load_utils().process_results(DOC, [generation]) == {"exact_match": expected}


def test_math_qwen_fewshot_examples_end_in_a_boxed_answer() -> None:
    samples = load_utils().fewshot_samples()
    assert len(samples) == 4
    assert all("\\boxed{" in s["solution"] and "The answer is" in s["solution"] for s in samples)
