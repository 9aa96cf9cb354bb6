"""Dataset loader and per-document scorer of the ``sft_native`` lm-eval task.

The prompts are the JSONL file beside this module, checked by ``scorers.sft_checks.load_prompts``
(so a bad check name or parameter fails when the task loads, not when it is scored). The rows are
built in memory: nothing is downloaded and nothing is written to the Hugging Face datasets cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

from scorers.sft_checks import load_prompts, prompt_report

PROMPTS = Path(__file__).resolve().parent / "sft_native.jsonl"


def load_prompts_dataset(**_metadata: Any) -> datasets.DatasetDict:
    """The prompt set as the task's test split. Each prompt's checks are stored as one JSON string
    column, ``checks_json``: check specs have different parameters, which Arrow would otherwise
    widen into one struct column holding every parameter of every check.

    lm-eval calls this with the task's ``metadata`` as keyword arguments; they are ignored.
    """
    rows = [
        {"id": doc["id"], "category": doc["category"], "prompt": doc["prompt"],
         "checks_json": json.dumps(doc["checks"])}
        for doc in load_prompts(PROMPTS)
    ]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """The task's per-document metrics (1.0 pass, 0.0 fail) for the generated response
    ``results[0]``."""
    prompt = {"id": doc["id"], "category": doc["category"], "checks": json.loads(doc["checks_json"])}
    report = prompt_report(prompt, results[0])
    return {name: float(report[name]) for name in ("all_checks_pass", "instruction_match", "chat_clean")}
