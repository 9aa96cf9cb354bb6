"""The qwen3-report suite's local fixtures are what tests/fixtures/report_fixtures.py writes, and
each has the rows its task's few-shot count needs."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from types import ModuleType

from helpers_modules import load_module

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@functools.cache
def generator() -> ModuleType:
    return load_module("report_fixtures", FIXTURES / "report_fixtures.py")


def test_committed_fixtures_are_what_the_generator_writes() -> None:
    gen = generator()
    expected = gen.fixtures()
    assert len(expected) == 57 + 14 + 27 + 2 + 11  # every leaf task of the suite
    for task, splits in expected.items():
        for split, rows in splits.items():
            path = FIXTURES / "datasets" / task / f"{split}.jsonl"
            assert path.read_text(encoding="utf-8") == gen.jsonl(rows), f"{path}: run python {FIXTURES}/report_fixtures.py"


def test_fixtures_hold_enough_rows_for_the_shots_and_right_answers() -> None:
    rows = generator().fixtures()

    def total(question: str) -> str:
        return str(sum(map(int, re.findall(r"\d+", question))))

    for task, splits in rows.items():
        if task.startswith("mmlu_") and not task.startswith("mmlu_pro_"):
            assert len(splits["dev"]) == 5  # 5 shots, first_n from dev
            assert all(row["choices"][row["answer"]] == total(row["question"]) for row in splits["dev"] + splits["test"])
        if task.startswith("mmlu_pro_"):
            assert len(splits["validation"]) == 5  # 5 shots, first_n from validation (filtered by category)
            assert all(row["options"][row["answer_index"]] == total(row["question"])
                       and row["answer"] == "ABCDEFGHIJ"[row["answer_index"]] for row in splits["validation"])
        if task.startswith("gpqa_"):
            assert len(splits["train"]) >= 6  # 5 shots drawn from the split the question comes from
        if task.startswith("mgsm_"):
            assert len(splits["train"]) == 8 and all(row["answer"] is None for row in splits["test"])
    # lm-eval's doc_to_target cuts exactly this prefix (by its length) off a worked answer
    assert rows["mgsm_native_cot_de"]["train"][0]["answer"].startswith("Schritt-für-Schritt-Antwort: ")
