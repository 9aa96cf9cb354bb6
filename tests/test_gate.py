"""Verdicts: pairing of per-sample records, comparisons against bridges and baselines, Holm."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ckptgate import gate, pairing, reports
from ckptgate.baselines import load_baseline
from ckptgate.margins import Margin, default_margin
from ckptgate.suites import Benchmark, MetricGate
from ckptgate.scores import MetricValue, ScoreResult


def binary_samples(scores: list[int], metric: str = "acc", filt: str = "none", prompt: str = "p") -> list[dict[str, Any]]:
    return [
        {"doc_id": i, "doc_hash": f"d{i}", "prompt_hash": prompt, "filter": filt, "metrics": [metric], metric: float(s)}
        for i, s in enumerate(scores)
    ]


def ratio_samples(logliks: list[float], weights: list[int]) -> list[dict[str, Any]]:
    return [
        {"doc_id": i, "doc_hash": f"d{i}", "prompt_hash": "p", "filter": "none", "bits_per_byte": [ll, w]}
        for i, (ll, w) in enumerate(zip(logliks, weights))
    ]


def bpb(logliks: list[float], weights: list[int]) -> float:
    return -sum(logliks) / sum(weights) / math.log(2)


def result(samples: list[dict[str, Any]], key: str = "acc,none", higher: bool = True) -> ScoreResult:
    values = pairing.item_values(samples, key).values
    if key.startswith("bits_per_byte"):
        value = bpb([s["bits_per_byte"][0] for s in samples], [s["bits_per_byte"][1] for s in samples])
    else:
        value = sum(values.values()) / len(values)
    return ScoreResult(
        metrics={key: MetricValue(value, 0.01, len(values))},
        samples=samples,
        higher_is_better={key.partition(",")[0]: higher},
    )


def bench(key: str = "acc,none", primary: bool = True, **gate_fields: Any) -> Benchmark:
    gate_fields.setdefault("margin", default_margin(key))
    return Benchmark(id="b", test="b", task="t", metrics=(MetricGate(key, primary=primary, **gate_fields),), num_fewshot=0)


# ------------------------------------------------------------------------------- pairing


def test_generation_records_are_paired_per_filter() -> None:
    samples = binary_samples([1, 0, 1], "exact_match", "strict-match") + binary_samples([1, 1, 1], "exact_match", "flexible")
    assert list(pairing.item_values(samples, "exact_match,strict-match").values.values()) == [1.0, 0.0, 1.0]
    assert pairing.is_binary(samples, "exact_match,flexible")


def test_per_sub_item_lists_are_flattened() -> None:
    samples = [{"doc_id": 0, "doc_hash": "a", "filter": "none", "inst_acc": [True, False]},
               {"doc_id": 1, "doc_hash": "b", "filter": "none", "inst_acc": [True]}]
    values = pairing.item_values(samples, "inst_acc,none").values
    assert list(values.values()) == [1.0, 0.0, 1.0]


def test_ratio_metric_comparison_is_in_metric_units() -> None:
    weights = [100, 150, 80, 120, 90, 110, 130, 70]
    ref_ll = [-60.0, -95.0, -50.0, -70.0, -55.0, -66.0, -80.0, -41.0]
    cand_ll = [ll * 1.2 for ll in ref_ll]  # uniformly worse log-likelihood
    cand, ref = ratio_samples(cand_ll, weights), ratio_samples(ref_ll, weights)
    comparison = pairing.compare(
        cand, ref, "bits_per_byte,none", value=bpb(cand_ll, weights), reference=bpb(ref_ll, weights),
        higher_is_better=False, margin=0.0,
    )
    assert comparison.delta == pytest.approx(bpb(cand_ll, weights) - bpb(ref_ll, weights))
    assert comparison.ci_low <= comparison.delta <= comparison.ci_high
    assert comparison.p_value < 0.01
    same = pairing.compare(ref, ref, "bits_per_byte,none", value=1.0, reference=1.0, higher_is_better=False,
                           margin=0.0)
    assert same.p_value == 1.0


def test_token_perplexity_pairs_on_log_likelihood_per_token() -> None:
    """The perplexity slices' metric: exp(-sum log-likelihood / sum tokens), paired per document."""
    tokens = [40, 60, 50, 30, 45, 55]
    ref_ll = [-80.0, -130.0, -95.0, -61.0, -90.0, -100.0]
    cand_ll = [ll * 1.1 for ll in ref_ll]
    per_token = lambda lls: math.exp(-sum(lls) / sum(tokens))  # noqa: E731
    samples = lambda lls: [{"doc_id": i, "filter": "none", "token_perplexity": [ll, w]}  # noqa: E731
                           for i, (ll, w) in enumerate(zip(lls, tokens))]
    comparison = pairing.compare(samples(cand_ll), samples(ref_ll), "token_perplexity,none", value=per_token(cand_ll),
                                 reference=per_token(ref_ll), higher_is_better=False, margin=0.0)
    assert comparison.delta == pytest.approx(per_token(cand_ll) - per_token(ref_ll))
    assert comparison.p_value < 0.01


def test_records_of_different_items_or_prompts_are_not_paired() -> None:
    with pytest.raises(pairing.PairingError, match="different items"):
        pairing.compare(binary_samples([1, 0, 1]), binary_samples([1, 0]), "acc,none", value=0, reference=0,
                        higher_is_better=True, margin=0)
    with pytest.raises(pairing.PairingError, match="different prompts"):
        pairing.compare(binary_samples([1, 0], prompt="a"), binary_samples([1, 0], prompt="b"), "acc,none",
                        value=0, reference=0, higher_is_better=True, margin=0)


def test_corpus_level_metrics_say_they_cannot_be_paired() -> None:
    samples = [{"doc_id": 0, "filter": "none", "bleu": [["ref"], "pred"]}]
    with pytest.raises(pairing.PairingError, match="corpus-level"):
        pairing.item_values(samples, "bleu,none")


# ------------------------------------------------------------------------------- bridge verdicts


def judge_vs_bridge(cand: list[int], ref: list[int], family: int = 1, **gate_fields: Any) -> gate.Check:
    refs = gate.References(bridges=[("bridge", result(binary_samples(ref)))])
    (check,) = [c for c in gate.judge(bench(**gate_fields), result(binary_samples(cand)), references=refs,
                                      policy=gate.Policy(0.05, family)) if c.against == "bridge:bridge"]
    return check


def test_identical_copy_passes_against_itself() -> None:
    check = judge_vs_bridge([1, 0, 1, 1] * 250, [1, 0, 1, 1] * 250)
    assert check.verdict == "pass" and check.p_value == 1.0 and check.delta == 0
    assert check.margin == 0.015 and check.p_noninferiority < 0.05 and not check.material


def test_an_identical_copy_on_few_items_is_inconclusive_never_a_pass() -> None:
    check = judge_vs_bridge([1, 0, 1, 1, 1], [1, 0, 1, 1, 1])  # 5 items cannot show "within 1.5 points"
    assert check.verdict == "inconclusive" and check.p_noninferiority > 0.05 and check.underpowered
    assert "not shown within the margin" in reports.why(check)


def test_clear_regression_fails_at_once() -> None:
    check = judge_vs_bridge([0] * 30 + [1] * 70, [1] * 100)
    assert check.verdict == "fail" and check.p_value < 1e-6 and check.material
    assert check.ci_high < 0 and check.mde > 0 and check.n == 100


def test_a_significant_but_immaterial_regression_passes() -> None:
    # 60 losses, 30 wins on 20,000 items: a 0.15-point drop, significant (McNemar p ~ 0.001), far
    # inside the 1.5-point margin.
    ref = [1] * 60 + [0] * 30 + [1, 0] * 9955
    cand = [0] * 60 + [1] * 30 + [1, 0] * 9955
    check = judge_vs_bridge(cand, ref)
    assert check.p_value < 0.01 and not check.material
    assert check.verdict == "pass"


def test_a_material_drop_that_is_not_significant_is_inconclusive() -> None:
    # 3 losses, 0 wins of 40 items: an estimated 7.5-point drop, McNemar p = 0.125.
    check = judge_vs_bridge([0] * 3 + [1] * 37, [1] * 40)
    assert check.material and check.p_value > 0.05 and check.verdict == "inconclusive"
    assert "not significant" in reports.why(check)


def test_borderline_regression_waits_for_holm() -> None:
    # 9 losses, 1 win: one-sided McNemar p ~ 0.011, between 0.05/10 and 0.05; an 8-point drop.
    cand = [0] * 9 + [1] + [1] * 90
    ref = [1] * 9 + [0] + [1] * 90
    check = judge_vs_bridge(cand, ref, family=10)
    assert check.verdict == "pending" and 0.005 < check.p_value < 0.05
    alone = gate.settle([check], gate.Policy(0.05, 1))
    assert alone[0].verdict == "fail" and alone[0].p_holm == pytest.approx(check.p_value)
    crowded = gate.settle([check], gate.Policy(0.05, 10))
    assert crowded[0].verdict == "inconclusive" and crowded[0].p_holm == pytest.approx(min(1.0, 10 * check.p_value))


def test_relative_margins_scale_with_the_reference() -> None:
    weights = [100] * 30
    ref_ll = [-40.0 - (i % 7) for i in range(30)]
    cand_ll = [ll * 1.004 for ll in ref_ll]  # 0.4% worse bits per byte: inside a 1% margin
    key = "bits_per_byte,none"
    refs = gate.References(bridges=[("bridge", result(ratio_samples(ref_ll, weights), key, higher=False))])
    (check,) = [c for c in gate.judge(bench(key), result(ratio_samples(cand_ll, weights), key, higher=False),
                                      references=refs) if c.against == "bridge:bridge"]
    assert check.margin == pytest.approx(0.01 * check.reference)
    assert check.verdict == "pass" and check.p_value < 1e-6  # significant, immaterial
    strict = bench(key, margin=Margin(0.001, relative=True))
    (check,) = [c for c in gate.judge(strict, result(ratio_samples(cand_ll, weights), key, higher=False),
                                      references=refs) if c.against == "bridge:bridge"]
    assert check.verdict == "fail" and check.material


def test_secondary_metrics_are_reported_never_gated() -> None:
    check = judge_vs_bridge([0] * 30 + [1] * 70, [1] * 100, primary=False)
    assert check.verdict == "info" and check.p_value < 1e-6
    assert gate.settle([check], gate.Policy(0.05, 1))[0].verdict == "info"


def test_small_benchmarks_are_marked_underpowered() -> None:
    assert judge_vs_bridge([1, 0] * 20, [1, 0] * 20).underpowered  # n=40 cannot see 3 points
    assert not judge_vs_bridge([1, 0] * 20, [1, 0] * 20, detect=0.9).underpowered


def test_a_bridge_checkpoint_is_reported_not_judged() -> None:
    checks = gate.judge(bench(min=0.99), result(binary_samples([0, 1])), role="bridge")
    assert [c.verdict for c in checks] == ["info"]


# ------------------------------------------------------------------------------- baseline verdicts


BASELINE = """\
model: demo/reference
defaults: {temperature: 0, limit: null}
entries:
  - {benchmark: b, task: t, num_fewshot: 0, metric: 'acc,none', value: 0.80, n: 1000, stderr: null,
     source: test, date: 2026-01-01}
  - {benchmark: b, task: t, num_fewshot: 0, metric: 'acc_norm,none', value: 0.5, n: 1000, source: report,
     date: 2026-01-01, use: reference}
  - {benchmark: report_b, num_fewshot: 5, metric: 'score,report', value: 0.7, source: a technical report,
     date: 2025-05-13, use: reference, setting: 5-shot}
"""


def judge_vs_baseline(tmp_path: Path, scores: list[int], key: str = "acc,none", settings: dict[str, Any] | None = None,
                      primary: bool = True, reference: str | None = None, **gate_fields: Any) -> list[gate.Check]:
    path = tmp_path / "ref.yaml"
    path.write_text(BASELINE)
    samples = binary_samples(scores, key.partition(",")[0])
    refs = gate.References(baseline=load_baseline(str(path)),
                           settings=settings or {"task": "t", "num_fewshot": 0, "limit": None, "temperature": 0})
    return [c for c in gate.judge(bench(key, primary=primary, reference=reference, **gate_fields), result(samples, key),
                                  references=refs) if c.against.startswith("baseline")]


def test_below_baseline_fails_and_at_baseline_passes(tmp_path: Path) -> None:
    (low,) = judge_vs_baseline(tmp_path, [1] * 60 + [0] * 40)
    assert low.verdict == "fail" and low.reference == 0.80 and low.delta == pytest.approx(-0.2)
    assert low.method.startswith("Miettinen-Nurminen")  # the baseline's n (1000) is known
    (ok,) = judge_vs_baseline(tmp_path, [1] * 800 + [0] * 200, margin=Margin(0.05))
    assert ok.verdict == "pass"
    # Two samples of 100 and 1000 items cannot show "within 1.5 points": never a pass.
    (unsure,) = judge_vs_baseline(tmp_path, [1] * 80 + [0] * 20)
    assert unsure.verdict == "inconclusive"


def test_ifeval_sized_smoke_run_against_a_baseline_is_inconclusive(tmp_path: Path) -> None:
    path = tmp_path / "ref.yaml"
    path.write_text(BASELINE.replace("value: 0.80, n: 1000, stderr: null", "value: 0.2126, n: 541, stderr: null"))
    refs = gate.References(baseline=load_baseline(str(path)),
                           settings={"task": "t", "num_fewshot": 0, "limit": None, "temperature": 0})
    (check,) = [c for c in gate.judge(bench(), result(binary_samples([1] + [0] * 5)), references=refs)
                if c.against.startswith("baseline")]
    assert check.verdict == "inconclusive" and check.method.startswith("Miettinen-Nurminen")


def test_a_baseline_from_another_backend_is_compared_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "vllm.yaml"
    path.write_text(BASELINE.replace("defaults: {temperature: 0, limit: null}",
                                     "defaults: {temperature: 0, limit: null, backend: vllm}"))
    refs = gate.References(baseline=load_baseline(str(path)), settings={"task": "t", "num_fewshot": 0, "limit": None,
                                                                        "temperature": 0, "backend": "hf"})
    wide = bench(margin=Margin(0.05))
    scores = binary_samples([1] * 800 + [0] * 200)
    (check,) = [c for c in gate.judge(wide, result(scores), references=refs) if c.against.startswith("baseline")]
    assert check.verdict == "pass" and check.note == "baseline measured with vllm, this run used hf"
    same = gate.References(baseline=refs.baseline, settings={**refs.settings, "backend": "vllm"})
    (check,) = [c for c in gate.judge(wide, result(scores), references=same) if c.against.startswith("baseline")]
    assert check.note == ""
    split = replace(same, settings={**refs.settings, "backend": "vllm", "tensor_parallel_size": 2})
    (check,) = [c for c in gate.judge(wide, result(scores), references=split) if c.against.startswith("baseline")]
    assert check.verdict == "pass" and check.note == "this run used tensor_parallel_size 2 (baseline 1): not reproducible"


def test_differing_settings_refuse_to_compare(tmp_path: Path) -> None:
    (check,) = judge_vs_baseline(tmp_path, [1] * 80 + [0] * 20,
                                 settings={"task": "t", "num_fewshot": 0, "limit": 20, "temperature": 0})
    assert check.verdict == "error" and "refusing to compare" in check.note and "limit" in check.note


def test_missing_entry_of_a_primary_metric_says_how_to_create_it(tmp_path: Path) -> None:
    (check,) = judge_vs_baseline(tmp_path, [1, 0], key="exact_match,none")
    assert check.verdict == "error" and "--update-baselines" in check.note
    assert judge_vs_baseline(tmp_path, [1, 0], key="exact_match,none", primary=False) == []


def test_reference_only_entries_are_shown_not_gated(tmp_path: Path) -> None:
    (check,) = judge_vs_baseline(tmp_path, [0] * 10, key="acc_norm,none")
    assert check.verdict == "info" and "never gated" in check.note and check.reference == 0.5


def test_published_reference_is_shown_next_to_the_gate_and_needs_no_entry_of_its_own(tmp_path: Path) -> None:
    gated, shown = judge_vs_baseline(tmp_path, [1] * 60 + [0] * 40, reference="report_b")
    assert gated.verdict == "fail" and gated.reference == 0.80  # the lm-eval entry still gates
    assert shown.verdict == "info" and shown.reference == 0.7 and shown.delta == pytest.approx(-0.1)
    assert shown.p_value is None and "report_b (5-shot)" in shown.note and "never gated" in shown.note
    # No lm-eval entry for this metric: only the published number, and no missing-entry error.
    (only,) = judge_vs_baseline(tmp_path, [1, 0], key="exact_match,none", reference="report_b")
    assert only.verdict == "info" and only.reference == 0.7
    # A baseline without the published entry: nothing to show, still no error.
    assert judge_vs_baseline(tmp_path, [1, 0], key="exact_match,none", reference="report_c") == []


def test_failure_report_reads_like_a_report() -> None:
    from ckptgate.checkpoints import Checkpoint

    check = judge_vs_bridge([0] * 30 + [1] * 70, [1] * 100)
    ckpt = Checkpoint(label="step_0100", path=Path("/x"), step=100, load_path=Path("/x"), fingerprint="f")
    text = reports.failure_report(ckpt, bench(), [check], gate.Policy(0.05, 3))
    assert text.startswith("b (task t) on step_0100: 1 of 1 check(s) failed (family-wise alpha 0.05 over 3")
    assert "FAIL    acc,none  bridge:bridge: 0.7000" in text
    assert "delta -0.3000 [95% CI" in text and "n=100" in text and "MDE" in text


def test_item_stderr_matches_the_standard_error_of_the_mean() -> None:
    import statistics

    scores = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    expected = statistics.stdev(scores) / math.sqrt(len(scores))
    assert pairing.item_stderr(binary_samples(scores), "acc,none") == pytest.approx(expected)
    weights = [100, 150, 80, 120]
    lls = [-60.0, -95.0, -50.0, -70.0]
    x = [ll / (sum(weights) / 4) for ll in lls]
    se_bpb = statistics.stdev(x) / math.sqrt(4) / math.log(2)
    assert pairing.item_stderr(ratio_samples(lls, weights), "bits_per_byte,none") == pytest.approx(se_bpb, rel=1e-4)


def mc_samples(gold_logliks: list[float]) -> list[dict[str, Any]]:
    return [{"doc_id": i, "doc_hash": f"d{i}", "prompt_hash": "p", "filter": "none", "target": 1, "acc": 1.0,
             "filtered_resps": [[-9.0, False], [ll, True]]} for i, ll in enumerate(gold_logliks)]


def test_gold_answer_log_probability_is_reported_next_to_accuracy() -> None:
    cand = result(mc_samples([-1.5, -2.0, -1.8, -2.5] * 250))
    ref = result(mc_samples([-1.0, -1.2, -1.1, -1.6] * 250))
    checks = gate.judge(bench(), cand, references=gate.References(bridges=[("bridge", ref)]))
    (signal,) = [c for c in checks if c.metric == pairing.GOLD_LOGPROB]
    assert signal.verdict == "info" and not signal.primary and "never gates" in signal.note
    assert signal.delta == pytest.approx(-0.725) and signal.p_value < 1e-6
    accuracy = next(c for c in checks if c.metric == "acc,none")
    assert accuracy.verdict == "pass"  # equal accuracy on 1,000 items: the signal explains, it does not gate
    assert pairing.gold_logprobs(binary_samples([1, 0])) is None  # not a multiple-choice record
