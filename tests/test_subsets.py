"""Deterministic document subsets (``subset:`` in a suite): the draw, and a real lm-eval run on it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptgate.errors import SuiteError
from ckptgate.suites import load_suite
from scorers.lm_eval_task import Subset

sizes = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 60), min_size=1)


@given(sizes, st.integers(3, 200))
def test_a_subset_is_a_fixed_stratified_draw_without_repeats(counts: dict[str, int], size: int) -> None:
    subset = Subset.draw(counts, size)
    assert subset == Subset.draw(dict(reversed(list(counts.items()))), size)  # not the dict's order
    assert subset.of == sum(counts.values())
    drawn = subset.indices(None)
    assert sum(map(len, drawn.values())) == min(size, subset.of)
    for leaf, ids in drawn.items():
        assert ids == sorted(set(ids)) and all(0 <= i < counts[leaf] for i in ids)
        share = size * counts[leaf] / subset.of
        assert abs(len(ids) - share) < 1 + len(counts) or size >= subset.of  # in proportion to its size
    assert set(drawn) == {leaf for leaf, n in counts.items() if n}  # every member contributes


@given(sizes, st.integers(3, 200), st.integers(1, 200))
def test_a_limited_subset_is_part_of_the_full_one(counts: dict[str, int], size: int, limit: int) -> None:
    """--limit scores the first documents of each member's draw, never other documents."""
    subset = Subset.draw(counts, size)
    full, limited = subset.indices(None), subset.indices(limit)
    assert all(len(limited[leaf]) == min(limit, len(ids)) for leaf, ids in full.items())
    assert all(set(ids) <= set(full[leaf]) for leaf, ids in limited.items())


def test_shares_follow_the_members_sizes_and_a_too_small_subset_is_an_error() -> None:
    subset = Subset.draw({"a": 100, "b": 300, "c": 1}, 40)
    assert {leaf: len(ids) for leaf, ids in subset.indices(None).items()} == {"a": 10, "b": 29, "c": 1}
    with pytest.raises(SuiteError, match="cannot cover the group's 3 tasks"):
        Subset.draw({"a": 5, "b": 5, "c": 5}, 2)


def test_the_suite_rejects_a_subset_that_is_not_a_positive_count(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    for bad in ("0", "-3", "ten", "true"):
        suite.write_text(f"name: s\nbenchmarks:\n  - id: x\n    task: arc_easy\n    subset: {bad}\n"
                         "    metrics: [{key: 'acc,none'}]\n")
        with pytest.raises(SuiteError, match=r"s.yaml:5: .*subset must be a positive number"):
            load_suite(str(suite))


@pytest.mark.parametrize("limit", [None, 4])
def test_a_subset_run_scores_exactly_the_drawn_documents_and_records_them(demo_root: Path, limit: int | None) -> None:
    from ckptgate.backends import LoadSpec, ModelPool
    from ckptgate.checkpoints import discover
    from scorers.lm_eval_task import LmEvalTaskScorer

    suite = load_suite("demo")
    bench = dataclasses.replace(next(b for b in suite.benchmarks if b.id == "choice"), subset=12)
    checkpoint = discover(str(demo_root / "step_0800"))[0]
    pool = ModelPool(LoadSpec("hf"))
    try:
        result = LmEvalTaskScorer().score(pool.get(checkpoint), suite, [bench], limit=limit)["choice"]
    finally:
        pool.close()
    record = result.config["subset"]
    expected = Subset.draw({"demo_choice": record["of"]}, 12).indices(limit)["demo_choice"]
    assert record["doc_ids"] == {"demo_choice": expected} and record["size"] == len(expected) == (limit or 12)
    assert sorted({s["doc_id"] for s in result.samples}) == expected
    lines = (Path(suite.task_paths[0]) / "choice_test.jsonl").read_text().splitlines()
    assert record["of"] == len(lines)
    for sample in result.samples:  # each record holds the document at its index
        assert sample["doc"] == json.loads(lines[sample["doc_id"]])
    assert result.metrics["acc,none"].n == len(expected)


CHOICE_TASKS = ["hellaswag", "piqa", "winogrande", "arc_easy", "openbookqa", "commonsense_qa", "social_iqa", "sciq",
                "qasc", "copa", "mmlu", "arc_challenge"]
CHOICE_DATA = Path(__file__).parent / "fixtures" / "choice_datasets"


def test_the_choice_tasks_run_on_local_copies_in_their_own_schema(demo_root: Path, tmp_path: Path) -> None:
    """lm-eval's own definitions of the pretraining choice tasks (and ours for QASC, which lm-eval
    lacks) read the fixtures, each scored on a drawn subset with acc and acc_norm."""
    from ckptgate.backends import LoadSpec, ModelPool
    from ckptgate.checkpoints import discover
    from ckptgate.resources import evaltests_dir
    from scorers.lm_eval_task import LmEvalTaskScorer

    metrics = {task: "[{key: 'acc,none'}, {key: 'acc_norm,none'}]" for task in CHOICE_TASKS}
    metrics["copa"] = "[{key: 'acc,none'}]"  # lm-eval's COPA reports accuracy only
    benchmarks = "".join(
        f"  - {{id: {task}, task: {task}, num_fewshot: 0, subset: {57 if task == 'mmlu' else 5}, metrics: {metrics[task]}}}\n"
        for task in CHOICE_TASKS)
    (tmp_path / "choice.yaml").write_text(
        f"name: choice\ntask_paths: [{evaltests_dir() / 'tasks' / 'stages'}]\nbenchmarks:\n{benchmarks}")
    suite = load_suite(str(tmp_path / "choice.yaml"))
    scorer = LmEvalTaskScorer(CHOICE_DATA)
    scorer.check(suite)
    assert scorer.hub_repos(suite) == {}  # every task reads its local copy
    pool = ModelPool(LoadSpec("hf"))
    try:
        results = scorer.score(pool.get(discover(str(demo_root / "step_0800"))[0]), suite, list(suite.benchmarks), limit=None)
    finally:
        pool.close()
    for task in CHOICE_TASKS:
        result = results[task]
        expected = 57 if task == "mmlu" else 5  # a group: at least one document of each of its 57 subjects
        assert result.config["subset"]["size"] == expected == result.metrics["acc,none"].n, task
        assert all(0.0 <= metric.value <= 1.0 for metric in result.metrics.values())
    assert results["mmlu"].config["subset"]["of"] == 2 * len(results["mmlu"].config["task_config"])  # pooled over subjects


def test_a_chat_template_benchmark_renders_its_prompts_as_turns(demo_root: Path) -> None:
    """chat_template: true renders prompts with the checkpoint's own template (few-shot examples
    as turns) and records the template's hash; other benchmarks of the run keep plain prompts."""
    from ckptgate.backends import LoadSpec, ModelPool
    from ckptgate.checkpoints import discover
    from scorers.lm_eval_task import LmEvalTaskScorer

    suite = load_suite("demo")
    plain = next(b for b in suite.benchmarks if b.id == "arithmetic")
    chat = dataclasses.replace(plain, id="arithmetic_chat", chat_template=True)
    pool = ModelPool(LoadSpec("hf"))
    try:
        results = LmEvalTaskScorer().score(pool.get(discover(str(demo_root / "step_0800"))[0]), suite, [plain, chat], limit=2)
    finally:
        pool.close()
    chat_prompt = results["arithmetic_chat"].samples[0]["arguments"][0][0]
    assert chat_prompt.startswith("<|im_start|>user\n") and chat_prompt.endswith("<|im_start|>assistant\n")
    assert chat_prompt.count("<|im_start|>assistant") == 1 + 3  # the three shots are turns of their own
    assert "<|im_start|>" not in results["arithmetic"].samples[0]["arguments"][0][0]
    record = results["arithmetic_chat"].config["chat_template"]
    assert record["applied"] and len(record["sha256"]) == 64
    assert "chat_template" not in results["arithmetic"].config
