"""syrupy snapshots of what must never change silently and is exact: the prompts the demo tasks
render (few-shot context, chat template), answer extraction on fixed model outputs, and the
summary table's format. No floating-point metrics are snapshotted.

After an intended change: ``pytest tests/test_snapshots.py --snapshot-update`` and review the diff.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ckptgate import reports, results
from ckptgate.suites import load_suite
from ckptgate.scores import SEED
from scorers.lm_eval_task import GREEDY, _configure, _prepare, suite_task_manager

FIXED_OUTPUTS = [
    " 47 + 8 = 55\n#### 55",
    " 47 + 8 = 55",  # no '####': strict extraction finds nothing, flexible takes the last number
    " #### 1,234",
    " I think it is 12 or maybe 13",
    "",
]


def demo_task(benchmark_id: str) -> Any:
    suite = load_suite("demo")
    bench = next(b for b in suite.benchmarks if b.id == benchmark_id)
    task = _prepare(suite_task_manager(suite), bench).task
    task.set_fewshot_seed(seed=SEED)
    return task


def rendered(task: Any, *, chat_template: Any = None) -> list[Any]:
    task.build_all_requests(limit=2, apply_chat_template=chat_template is not None, chat_template=chat_template)
    return [list(instance.arguments) for instance in task.instances]


@pytest.mark.parametrize("benchmark_id", ["arithmetic", "choice", "text"])
def test_demo_prompts(benchmark_id: str, snapshot: Any) -> None:
    assert rendered(demo_task(benchmark_id)) == snapshot


def test_demo_prompt_with_chat_template(demo_root: Path, snapshot: Any) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(demo_root / "step_0800"))

    def chat_template(messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    assert rendered(demo_task("arithmetic"), chat_template=chat_template) == snapshot


def test_answer_extraction_on_fixed_outputs(snapshot: Any) -> None:
    task = demo_task("arithmetic")
    task.build_all_requests(limit=len(FIXED_OUTPUTS))
    for instance, output in zip(task.instances, FIXED_OUTPUTS):
        instance.resps = [output]
    task.apply_filters()
    extracted = {
        repr(output): {name: instance.filtered_resps[name] for name in sorted(instance.filtered_resps)}
        for instance, output in zip(task.instances, FIXED_OUTPUTS)
    }
    assert extracted == snapshot


def summary_rows() -> list[results.SummaryRow]:
    base = {"step": 100, "role": "candidate", "task": "demo_choice", "limit": None, "fingerprint": "f" * 64,
            "benchmark": "choice", "setting": "0-shot", "checkpoint": "step_0100", "n": 200, "stderr": 0.0338}
    return [
        results.SummaryRow.from_dict({**base, "metric": "acc,none", "against": "threshold", "primary": True,
                                      "value": 0.65, "threshold": ">= 0.3", "verdict": "pass"}),
        results.SummaryRow.from_dict({**base, "metric": "acc,none", "against": "bridge:step_0800", "primary": True,
                                      "value": 0.65, "reference": 0.76, "delta": -0.11, "ci_low": -0.17,
                                      "ci_high": -0.05, "p_value": 0.00012, "p_holm": 0.00036, "mde": 0.052,
                                      "margin": 0.05, "p_noninferiority": 0.97, "material": True,
                                      "underpowered": True, "verdict": "fail", "method": "exact McNemar"}),
        results.SummaryRow.from_dict({**base, "metric": "acc,none", "against": "baseline:qwen3-1.7b-base", "primary": True,
                                      "value": 0.65, "reference": 0.6861, "delta": -0.0361, "ci_low": -0.1024,
                                      "ci_high": 0.0302, "p_value": 0.14, "p_holm": 0.28, "mde": 0.094,
                                      "margin": 0.015, "p_noninferiority": 0.78, "material": True,
                                      "underpowered": True, "verdict": "inconclusive", "method": "z vs baseline"}),
        results.SummaryRow.from_dict({**base, "benchmark": "text", "metric": "bits_per_byte,none",
                                      "against": "baseline:qwen3-1.7b-base", "value": 0.8966, "reference": 0.5541,
                                      "delta": 0.3425, "verdict": "info", "stderr": None, "n": 40}),
        results.SummaryRow.from_dict({**base, "metric": "acc_norm,none", "against": "baseline:qwen3-1.7b-base",
                                      "value": 0.72, "reference": 0.5, "delta": 0.22, "verdict": "info",
                                      "threshold": "reference: never gated",
                                      "note": "report_choice (0-shot); reported by another harness: never gated"}),
        results.SummaryRow.from_dict({**base, "checkpoint": "step_0800", "role": "bridge", "metric": "acc,none",
                                      "value": 0.76, "threshold": "report only", "verdict": "info"}),
    ]


def test_summary_table_format(snapshot: Any) -> None:
    rows = summary_rows()
    meta = {"suite": "demo", "backend": "hf", "verdict": "NO-GO",
            "family-wise alpha": "0.05 (Holm over 3 primary comparison(s))"}
    assert {"text": "\n".join(reports.text_table(rows)), "markdown": reports.markdown(rows, meta),
            "verdicts": reports.verdict_counts(rows)} == snapshot


QWEN3 = ["gsm8k_4shot", "gsm8k_cot_8shot", "minerva_math_algebra_4shot", "math_qwen_4shot", "ifeval_0shot", "mbpp_3shot",
         "humaneval_0shot"]
REPORT = ["mmlu_5shot", "mmlu_pro_5shot_cot", "bbh_3shot_cot", "gpqa_main_5shot_cot", "gpqa_diamond_5shot_cot",
          "mgsm_8shot_cot"]


@pytest.mark.parametrize(("suite_name", "benchmark_id"), [("qwen3", b) for b in QWEN3] + [("qwen3-report", b) for b in REPORT])
def test_qwen3_prompts_on_fixtures(suite_name: str, benchmark_id: str, snapshot: Any) -> None:
    """First rendered prompt (few-shot included) of the qwen3 suites' tasks, on the local fixtures;
    for a group, of its first and its last member task."""
    from scorers.lm_eval_task import LmEvalTaskScorer, load_task

    suite = load_suite(suite_name)
    bench = next(b for b in suite.benchmarks if b.id == benchmark_id)
    scorer = LmEvalTaskScorer(Path(__file__).parent / "fixtures" / "datasets")
    members = list(load_task(scorer.task_manager(suite), bench.task)["tasks"].values())
    prompts = {}
    for task in dict.fromkeys([members[0], members[-1]]):
        _configure(bench, task, GREEDY | bench.gen_kwargs)
        task.set_fewshot_seed(seed=SEED)
        task.build_all_requests(limit=1)
        prompts[task.task_name] = [list(instance.arguments) for instance in task.instances]
    assert (prompts if len(members) > 1 else next(iter(prompts.values()))) == snapshot
