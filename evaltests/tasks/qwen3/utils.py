"""math_qwen: MATH with Qwen's protocol: "Question: X\nAnswer:" prompts, chain-of-thought
few-shot answers ending in \\boxed{}, the answer taken from the last \\boxed{} or "The answer is X",
and checked by symbolic equivalence (scorers.math_answers), not by string matching."""

from __future__ import annotations

from typing import Any

from scorers.math_answers import extract_boxed, score

# Four worked examples written for this project (not taken from the MATH test set).
_FEWSHOT = [
    ("What is the value of $3 \\cdot 4 + 5$?",
     "Multiplication comes first: $3 \\cdot 4 = 12$. Then $12 + 5 = 17$. The answer is $\\boxed{17}$."),
    ("Solve for $x$: $5x - 7 = 18$.",
     "Add 7 to both sides: $5x = 25$. Divide by 5: $x = 5$. The answer is $\\boxed{5}$."),
    ("A bag holds 3 red and 5 blue marbles. What is the probability that a marble drawn at random is red?",
     "There are $3 + 5 = 8$ marbles, 3 of them red, so the probability is $\\frac{3}{8}$. The answer is $\\boxed{\\frac{3}{8}}$."),
    ("What is the area of a right triangle with legs 6 and 8?",
     "The area is half the product of the legs: $\\frac{1}{2} \\cdot 6 \\cdot 8 = 24$. The answer is $\\boxed{24}$."),
]


def fewshot_samples() -> list[dict[str, str]]:
    return [{"problem": problem, "solution": solution} for problem, solution in _FEWSHOT]


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    target = extract_boxed(doc["solution"]) or ""
    return {"exact_match": int(score(results[0], target))}
