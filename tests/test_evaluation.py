"""Per-process evaluation: a checkpoint's benchmarks are scored together, each result handed out once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ckptgate.checkpoints import Checkpoint
from ckptgate.errors import SuiteError
from ckptgate.evaluation import Evaluator
from ckptgate.suites import Benchmark, MetricGate, Suite
from scorers import lm_eval_task
from ckptgate.scores import MetricValue, ScoreResult


def bench(bid: str, task: str | None = None, shots: int | None = 0) -> Benchmark:
    return Benchmark(id=bid, test=bid, task=task or f"task_{bid}", metrics=(MetricGate("acc,none"),), num_fewshot=shots)


def ckpt(label: str) -> Checkpoint:
    return Checkpoint(label=label, path=Path(f"/x/{label}"), step=None, load_path=Path(f"/x/{label}"), fingerprint="f")


class FakeSession:
    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.settings = {"backend": "fake"}
        self.load_seconds = 0.0
        self.lm = object()  # lm-eval's LM; the fake scorer never calls it


class FakePool:
    def __init__(self) -> None:
        self.gets: list[str] = []

    def get(self, checkpoint: Checkpoint) -> FakeSession:
        self.gets.append(checkpoint.label)
        return FakeSession(checkpoint)


class FakeScorer:
    """Records each call; fails any call that includes a benchmark id listed in ``broken``."""

    def __init__(self, broken: Sequence[str] = ()) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.broken = set(broken)

    def check(self, suite: Suite) -> None:
        pass

    def score(self, session: Any, suite: Suite, benchmarks: Sequence[Benchmark], *, limit: int | None) -> dict[str, ScoreResult]:
        ids = tuple(b.id for b in benchmarks)
        self.calls.append((session.checkpoint.label, ids))
        if self.broken & set(ids):
            raise RuntimeError(f"task of {sorted(self.broken & set(ids))} is broken")
        value = float(len(self.calls))
        return {b.id: ScoreResult(metrics={"acc,none": MetricValue(value, None, 1)}, samples=[]) for b in benchmarks}


SUITE = Suite(name="s", path=Path("/s.yaml"), benchmarks=(), task_paths=(), include_default_tasks=False)
A, B, C = bench("a"), bench("b"), bench("c")


def evaluator(scorer: FakeScorer) -> Evaluator:
    return Evaluator(FakePool(), scorer, SUITE, limit=None)  # type: ignore[arg-type]


def test_first_request_scores_all_planned_benchmarks_in_one_call() -> None:
    scorer = FakeScorer()
    ev = evaluator(scorer)
    plan = lambda: [A, B, C]  # noqa: E731
    first = ev.score(ckpt("s1"), A, plan)
    assert scorer.calls == [("s1", ("a", "b", "c"))]
    assert first.evaluated_with == ("a", "b", "c")
    ev.score(ckpt("s1"), B, plan)
    ev.score(ckpt("s1"), C, plan)
    assert len(scorer.calls) == 1
    ev.score(ckpt("s2"), A, plan)
    assert scorer.calls[-1] == ("s2", ("a", "b", "c"))


def test_a_result_is_handed_out_once_then_rescored() -> None:
    """A re-run test (e.g. pytest-rerunfailures) must not get a stale result object twice."""
    scorer = FakeScorer()
    ev = evaluator(scorer)
    ev.score(ckpt("s1"), A, lambda: [A, B])
    again = ev.score(ckpt("s1"), A, lambda: [A, B])
    assert scorer.calls == [("s1", ("a", "b")), ("s1", ("a",))]
    assert again.evaluated_with == ("a",)


def test_requested_benchmark_missing_from_plan_is_included() -> None:
    scorer = FakeScorer()
    evaluator(scorer).score(ckpt("s1"), C, lambda: [A, B, A])
    assert scorer.calls == [("s1", ("a", "b", "c"))]


def test_failed_shared_pass_falls_back_to_one_call_per_benchmark() -> None:
    scorer = FakeScorer(broken=["b"])
    ev = evaluator(scorer)
    plan = lambda: [A, B, C]  # noqa: E731
    with pytest.warns(UserWarning, match=r"scoring a, b, c together on s1 failed .*scoring each benchmark on its own"):
        ok = ev.score(ckpt("s1"), A, plan)
    assert ok.evaluated_with == ("a",)
    with pytest.raises(RuntimeError, match="broken"):
        ev.score(ckpt("s1"), B, plan)
    assert ev.score(ckpt("s1"), C, plan).evaluated_with == ("c",)
    assert scorer.calls == [("s1", ("a", "b", "c")), ("s1", ("a",)), ("s1", ("b",)), ("s1", ("c",))]


def test_single_planned_benchmark_is_scored_directly() -> None:
    scorer = FakeScorer()
    evaluator(scorer).score(ckpt("s1"), A, lambda: [A])
    assert scorer.calls == [("s1", ("a",))]


# ---------------------------------------------------------------- lm-eval scorer batching


class FakeTask:
    def __init__(self, name: str, output_type: str = "generate_until", num_fewshot: int | None = None) -> None:
        self.task_name = name
        self.config: dict[str, Any] = {
            "output_type": output_type,
            "num_fewshot": num_fewshot,
            "generation_kwargs": {"until": ["\n"]},
        }

    def get_config(self, key: str) -> Any:
        return self.config.get(key)

    def set_config(self, key: str, value: Any, update: bool = False) -> None:
        if update:
            self.config[key].update(value)
        else:
            self.config[key] = value


def prepared(b: Benchmark, leaves: Sequence[str] | None = None) -> lm_eval_task._Prepared:
    return lm_eval_task._Prepared(b, FakeTask(b.task), {name: FakeTask(name) for name in leaves or [b.task]}, {})


def test_one_task_at_two_shot_counts_goes_to_two_calls() -> None:
    zero, five, other = bench("z", "gsm8k", 0), bench("f", "gsm8k", 5), bench("o", "arc")
    batches = lm_eval_task._batches([prepared(zero), prepared(five), prepared(other)])
    assert [[p.benchmark.id for p in batch] for batch in batches] == [["z", "o"], ["f"]]


def test_groups_sharing_a_leaf_task_go_to_separate_calls() -> None:
    g1, g2, g3 = bench("g1", "group1"), bench("g2", "group2"), bench("g3", "group3")
    batches = lm_eval_task._batches(
        [prepared(g1, ["t1", "t2"]), prepared(g2, ["t2", "t3"]), prepared(g3, ["t4"])]
    )
    assert [[p.benchmark.id for p in batch] for batch in batches] == [["g1", "g3"], ["g2"]]


def test_configure_sets_shots_and_merges_gen_kwargs() -> None:
    task = FakeTask("gsm8k", num_fewshot=5)
    lm_eval_task._configure(bench("g", "gsm8k", 8), task, {"temperature": 0, "do_sample": False})
    assert task.config["num_fewshot"] == 8
    assert task.config["generation_kwargs"] == {"until": ["\n"], "temperature": 0, "do_sample": False}
    loglik = FakeTask("arc", output_type="multiple_choice", num_fewshot=None)
    lm_eval_task._configure(bench("a", "arc", None), loglik, {"temperature": 0})
    assert loglik.config["num_fewshot"] is None and loglik.config["generation_kwargs"] == {"until": ["\n"]}


def test_configure_refuses_shots_a_task_fixes_at_zero() -> None:
    """lm-eval would silently run such a task zero-shot; the gate says so instead."""
    task = FakeTask("ifeval", num_fewshot=0)
    with pytest.raises(SuiteError, match=r"asks for num_fewshot 3, but lm-eval task 'ifeval' fixes num_fewshot 0"):
        lm_eval_task._configure(bench("i", "ifeval", 3), task, {})
    lm_eval_task._configure(bench("i", "ifeval", 0), task, {})  # agreeing is fine


# ---------------------------------------------------------------- reference (bridge) checkpoints


def test_reference_is_scored_once_for_all_planned_benchmarks() -> None:
    scorer = FakeScorer()
    ev = evaluator(scorer)
    bridge = ckpt("bridge")
    for b in (A, B, C, A):
        ev.reference(bridge, b, lambda: [A, B, C])
    assert scorer.calls == [("bridge", ("a", "b", "c"))]


def test_reference_records_are_cached_on_disk_across_runs(tmp_path: Path) -> None:
    from ckptgate.recordcache import RecordCache

    bridge = Checkpoint(label="bridge", path=Path("/x/b"), step=None, load_path=Path("/x/b"), fingerprint="ab" * 32)
    first, second = FakeScorer(), FakeScorer()
    for scorer in (first, second):
        cache = RecordCache(tmp_path, SUITE, limit=None, backend_settings={"backend": "fake"})
        ev = Evaluator(FakePool(), scorer, SUITE, limit=None, cache=cache)  # type: ignore[arg-type]
        scored = ev.reference(bridge, B, lambda: [A, B])
    assert first.calls == [("bridge", ("a", "b"))] and second.calls == []
    assert scored.cached and scored.result.metrics["acc,none"].value == 1.0
    other_limit = RecordCache(tmp_path, SUITE, limit=5, backend_settings={"backend": "fake"})
    assert other_limit.get(bridge, B) is None  # a setting that changes the numbers misses the cache


def test_a_change_to_what_a_benchmark_reads_misses_the_record_cache() -> None:
    from ckptgate import recordcache

    bridge = Checkpoint(label="bridge", path=Path("/x/b"), step=None, load_path=Path("/x/b"), fingerprint="ab" * 32)
    inputs = {"code": "0" * 64, "task_files": "1" * 64}

    def cache() -> recordcache.RecordCache:  # one per run: a run digests each benchmark's inputs once
        return recordcache.RecordCache(Path("/unused"), SUITE, limit=None, backend_settings={"backend": "fake"},
                                       inputs=lambda bench: dict(inputs))

    before = cache().key(bridge, B)
    inputs["code"] = "2" * 64  # e.g. math_answers.py fixed
    assert cache().key(bridge, B) != before


def test_the_scoring_code_of_each_kind_covers_what_it_runs() -> None:
    from scorers import inputs

    tasks = set(inputs.code_files("lm_eval", ("math_answers",)))
    assert {"scorers/lm_eval_task.py", "scorers/math_answers.py", "ckptgate/backends/__init__.py"} <= tasks
    assert "scorers/perplexity.py" not in tasks and "ckptgate/sandbox.py" not in tasks
    code = set(inputs.code_files("lm_eval", ("code_programs",)))
    assert {"scorers/code_programs.py", "ckptgate/sandbox.py", "ckptgate/sandbox_inside.py"} <= code
    slices = set(inputs.code_files("perplexity"))
    assert {"scorers/perplexity.py", "scorers/slice_scorer.py", "ckptgate/slices.py"} <= slices
    assert "scorers/lm_eval_task.py" not in slices
    assert all((inputs.ROOT / name).is_file() for name in tasks | code | slices)


def test_gold_logprobs_score_each_reference_answer_once() -> None:
    class FakeLM:
        def __init__(self) -> None:
            self.requests: list[tuple[str, str]] = []

        def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
            self.requests += [r.arguments for r in requests]
            return [(-float(len(cont)), False) for _, cont in (r.arguments for r in requests)]

    samples = [
        {"doc_id": d, "filter": f, "target": f"{d} + 1 = {d + 1}", "arguments": [[f"Q{d}\nAnswer:", {}]]}
        for d in (0, 1) for f in ("strict-match", "flexible-extract")
    ]
    score = ScoreResult(metrics={}, samples=samples)
    lm = FakeLM()
    lm_eval_task.add_gold_logprobs(lm, score, " ")
    assert lm.requests == [("Q0\nAnswer:", " 0 + 1 = 1"), ("Q1\nAnswer:", " 1 + 1 = 2")]
    assert [s["gold_logprob"] for s in samples] == [-10.0, -10.0, -10.0, -10.0]


def test_the_task_decides_generation_length_not_the_checkpoint() -> None:
    from types import SimpleNamespace

    from ckptgate.backends.hf import honour_max_gen_toks

    lm = SimpleNamespace(model=SimpleNamespace(generation_config=SimpleNamespace(max_new_tokens=64)))
    assert honour_max_gen_toks(lm) == 64  # type: ignore[arg-type]
    assert lm.model.generation_config.max_new_tokens is None
    assert honour_max_gen_toks(lm) is None  # type: ignore[arg-type]


class _WordTokens:
    """A stand-in for a loaded model: one token per whitespace-separated word."""

    max_gen_toks = 256

    def tok_encode(self, text: str) -> list[str]:
        return text.split()


def test_generations_that_reach_max_gen_toks_are_counted() -> None:
    from scorers.lm_eval_task import TRUNCATION_TOLERANCE, truncated_generations

    limit = 10
    samples = [
        {"resps": [["one two three"]]},  # stopped early
        {"resps": [[" ".join(["w"] * limit)]]},  # ran to the limit
        {"resps": [[" ".join(["w"] * (limit - TRUNCATION_TOLERANCE))]]},  # within re-encoding tolerance
        {"resps": [[""]]},
    ]
    assert truncated_generations(_WordTokens(), samples, {"task": limit}) == {"count": 2, "of": 4, "max_gen_toks": [limit]}


def test_group_generations_are_held_against_their_own_task_limit() -> None:
    from scorers.lm_eval_task import truncated_generations

    samples = [{"task": "short", "resps": [["a b c d"]]}, {"task": "long", "resps": [["a b c d"]]},
               {"task": "choice", "resps": [["x"]]}]  # a member that does not generate
    result = truncated_generations(_WordTokens(), samples, {"short": 4, "long": 100})
    assert result == {"count": 1, "of": 2, "max_gen_toks": [4, 100]}


def test_a_document_scored_under_two_filters_counts_once() -> None:
    from scorers.lm_eval_task import truncated_generations

    samples = [{"doc_id": 0, "filter": "strict-match", "resps": [["a b c d"]]},
               {"doc_id": 0, "filter": "flexible-extract", "resps": [["a b c d"]]},
               {"doc_id": 1, "filter": "strict-match", "resps": [["a"]]},
               {"doc_id": 1, "filter": "flexible-extract", "resps": [["a"]]}]
    assert truncated_generations(_WordTokens(), samples, {"task": 4}) == {"count": 1, "of": 2, "max_gen_toks": [4]}
