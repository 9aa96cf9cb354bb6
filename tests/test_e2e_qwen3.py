"""The qwen3 suite's full pipeline offline: real lm-eval task definitions on local fixtures
(tests/fixtures/datasets, the datasets' own schema), the demo checkpoint, the baselines' metric keys
and the qwen3-1.7b-base baseline lookup."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from test_e2e import ROOT, gate

FIXTURES = ROOT / "tests" / "fixtures" / "datasets"
# benchmark -> (task, shots, baseline flexible-extract, strict-match)
GSM8K = {
    "gsm8k_4shot": ("gsm8k", 4, 0.6861, 0.5944),
    "gsm8k_8shot": ("gsm8k", 8, 0.7013, 0.6960),
    "gsm8k_cot_4shot": ("gsm8k_cot", 4, 0.6983, 0.5163),
    "gsm8k_cot_8shot": ("gsm8k_cot", 8, 0.7324, 0.6717),
}


# benchmark -> baseline (exact_match, math_verify); the group is the size-weighted mean of its subjects
MINERVA = {
    "minerva_math_4shot": (0.2820, 0.3908),
    "minerva_math_prealgebra_4shot": (0.4730, 0.6085),
    "minerva_math_algebra_4shot": (0.3853, 0.5608),
    "minerva_math_num_theory_4shot": (0.2333, 0.2796),
    "minerva_math_geometry_4shot": (0.2171, 0.3194),
    "minerva_math_counting_and_prob_4shot": (0.1730, 0.3249),
    "minerva_math_precalc_4shot": (0.1282, 0.2070),
    "minerva_math_intermediate_algebra_4shot": (0.1218, 0.1949),
}


def test_qwen3_math_runs_offline_with_the_mandated_keys_and_baselines(demo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = gate("--suite", "qwen3", "--checkpoint", str(demo_root / "step_0800"), "--datasets", str(FIXTURES),
                "--baseline", "qwen3-1.7b-base", "--record-cache", "none", "--results-dir", str(out))
    # A ~1M-parameter demo model is far below Qwen3-1.7B-Base: the primary comparisons must fail.
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-3000:]
    with (out / "eval_summary.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["against"] == "baseline:qwen3-1.7b-base"]
    seen = {(r["benchmark"], r["metric"]): float(r["reference"]) for r in rows}
    expected = {}
    for bench, (_task, _shots, flexible, strict) in GSM8K.items():
        expected[(bench, "exact_match,flexible-extract")] = flexible
        expected[(bench, "exact_match,strict-match")] = strict
    for bench, (exact, verify) in MINERVA.items():
        expected[(bench, "exact_match,none")] = exact
        expected[(bench, "math_verify,none")] = verify
    expected[("math_qwen_4shot", "exact_match,none")] = 0.429
    expected[("ifeval_0shot", "prompt_level_strict_acc,none")] = 0.2126
    expected[("ifeval_0shot", "inst_level_strict_acc,none")] = 0.3285
    expected[("mbpp_3shot", "pass_at_1,none")] = 0.558
    expected[("humaneval_0shot", "pass@1,create_test")] = 0.4878
    assert seen == expected
    # The demo scores nothing against a strong reference, but on 3 to 6 fixture items a stored
    # number cannot always show it (0 of 3 against HumanEval's 0.4878 is p 0.13 exactly): never a
    # pass; a fail wherever the items suffice (the rest depend on single answers of the tiny model).
    hopeless = [r for r in rows if r["primary"] == "True" and float(r["value"]) == 0 and float(r["reference"]) >= 0.4]
    assert hopeless and {r["verdict"] for r in hopeless} <= {"fail", "inconclusive"} and "fail" in {r["verdict"] for r in hopeless}
    for bench, (task, shots, _f, _s) in GSM8K.items():
        record = json.loads((out / "by_checkpoint" / "step_0800" / f"{bench}.json").read_text())
        assert record["benchmark"]["task"] == task and record["config"]["num_fewshot"] == shots
        assert record["config"]["gen_kwargs"]["max_gen_toks"] == 256  # set explicitly, recorded
        assert record["backend"]["max_model_len"] == 4096
        assert len(record["config"]["local_dataset"]["sha256"]) == 64
        assert record["metrics"]["exact_match,strict-match"]["n"] == 6
    ifeval = json.loads((out / "by_checkpoint" / "step_0800" / "ifeval_0shot.json").read_text())
    assert ifeval["config"]["gen_kwargs"]["max_gen_toks"] == 1280 and ifeval["config"]["num_fewshot"] == 0
    assert ifeval["metrics"]["prompt_level_strict_acc,none"]["n"] == 6
    for bench, n in (("mbpp_3shot", 4), ("humaneval_0shot", 3)):
        record = json.loads((out / "by_checkpoint" / "step_0800" / f"{bench}.json").read_text())
        assert record["config"]["task_config"]["metadata"]["ckptgate"] == "sandboxed"  # never lm-eval's code_eval
        assert next(iter(record["metrics"].values()))["n"] == n
        assert sum(record["config"]["sandbox"]["verdicts"].values()) == n  # verdict counts in the results
        assert "net-namespace" in record["config"]["sandbox"]["isolation"]
    group = json.loads((out / "by_checkpoint" / "step_0800" / "minerva_math_4shot.json").read_text())
    assert group["metrics"]["math_verify,none"]["n"] == 21 and group["config"]["num_fewshot"] == 4
    assert len(group["config"]["local_dataset"]["local_files"]) == 7  # one folder per subject


def test_misleading_hendrycks_math_is_reported_never_gated(demo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = gate("--suite", "qwen3", "--checkpoint", str(demo_root / "step_0800"), "--datasets", str(FIXTURES),
                "--baseline", "qwen3-1.7b-base", "--record-cache", "none", "--results-dir", str(out),
                "-k", "hendrycks_math")
    assert proc.returncode == 0, proc.stdout[-4000:]
    with (out / "eval_summary.csv").open() as handle:
        (row,) = [r for r in csv.DictReader(handle) if r["against"] == "baseline:qwen3-1.7b-base"]
    assert row["verdict"] == "info" and float(row["reference"]) == 0.1778 and "misleading" in row["note"]


# benchmark -> (the Qwen3 technical report's entry shown next to it, its number, its primary metric,
# fixture rows per leaf task, leaf tasks)
REPORT = {
    "mmlu_5shot": ("report_mmlu", 0.6263, "acc,none", 57),
    "mmlu_pro_5shot_cot": ("report_mmlu_pro", 0.3676, "exact_match,custom-extract", 14),
    "bbh_3shot_cot": ("report_bbh", 0.5447, "exact_match,get-answer", 27),
    "gpqa_main_5shot_cot": ("report_gpqa", 0.2828, "exact_match,flexible-extract", 1),
    "gpqa_diamond_5shot_cot": ("report_gpqa", 0.2828, "exact_match,flexible-extract", 1),
    "mgsm_8shot_cot": ("report_mgsm", 0.5071, "exact_match,flexible-extract", 11),
}


def test_report_suite_shows_the_report_numbers_and_gates_against_the_bridge(demo_root: Path, tmp_path: Path) -> None:
    """qwen3-report on the fixtures (one question per leaf task): every benchmark is compared with
    the bridge (paired, Holm) and shown next to the technical report's number, which never gates."""
    out = tmp_path / "results"
    proc = gate("--suite", "qwen3-report", "--checkpoint", str(demo_root / "step_0800"), "--bridge",
                str(demo_root / "step_0300"), "--datasets", str(FIXTURES), "--baseline", "qwen3-1.7b-base",
                "--limit", "1", "--record-cache", "none", "--results-dir", str(out))
    assert proc.returncode in (0, 1, 6), proc.stdout[-4000:] + proc.stderr[-3000:]
    with (out / "eval_summary.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["checkpoint"] == "step_0800" and r["primary"] == "True"]
    assert {r["verdict"] for r in rows} <= {"pass", "inconclusive", "fail", "info"}  # no errors: nothing missing
    shown = {r["benchmark"]: r for r in rows if r["against"] == "baseline:qwen3-1.7b-base"}
    bridged = {r["benchmark"]: r for r in rows if r["against"] == "bridge:step_0300"}
    assert set(shown) == set(bridged) == set(REPORT)
    for bench, (entry, number, metric, leaves) in REPORT.items():
        row = shown[bench]
        assert (row["metric"], float(row["reference"]), row["verdict"]) == (metric, number, "info")
        assert f"{entry} (" in row["note"] and "never gated" in row["note"] and row["p_value"] == ""
        assert bridged[bench]["p_value"] != "" and bridged[bench]["metric"] == metric  # a real paired comparison
        record = json.loads((out / "by_checkpoint" / "step_0800" / f"{bench}.json").read_text())
        assert record["metrics"][metric]["n"] == leaves  # --limit 1: one question per leaf task
        assert len(record["config"]["local_dataset"]["local_files"]) == leaves
    assert "6 primary comparison(s)" in proc.stdout  # Holm over the bridge comparisons only
    assert "| mmlu_5shot | 5-shot | acc,none |" in (out / "summary.md").read_text()
