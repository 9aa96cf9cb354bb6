"""Staged pretraining evaluation: stage suites compile into ordinary suites, and a stage run of
the demo series against its bridge gives the right verdicts and writes every tier's outputs."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from ckptgate.errors import CkptgateError, SuiteError
from ckptgate.suites import load_suite
from test_e2e import ROOT, gate

STAGE = ROOT / "tests" / "fixtures" / "stages" / "demo_stage.yaml"
SLICES = ROOT / "tests" / "fixtures" / "slices"
TIER_FILES = ("tier2_ppl.json", "tier3_cf.json", "tier4_sft_native.json", "tier4_sft_native_generations.jsonl")


# --------------------------------------------------------------------------- stage suites


@pytest.mark.parametrize("stage, tiers, improving", [
    ("stage1", {"tier2": 7, "tier3": 10}, set()),
    ("stage2", {"tier2": 11, "tier3": 10}, {"tier2_math_finemath4plus", "tier2_math_infiwebmath4plus",
                                             "tier2_code_stackv2_edu_filtered", "tier2_code_starcoder2data_extras_lhq"}),
    ("stage3", {"tier2": 14, "tier3": 12}, "tier3"),
    ("stage4", {"tier2": 14, "tier3": 12, "tier4": 1}, "tier4"),
])
def test_each_stage_suite_names_its_tiers_goals_and_settings(stage: str, tiers: dict[str, int], improving: object) -> None:
    suite = load_suite(stage)
    counts: dict[str, int] = {}
    for bench in suite.benchmarks:
        counts[str(bench.tier)] = counts.get(str(bench.tier), 0) + 1
    assert counts == tiers
    improve = {b.id for b in suite.benchmarks if b.goal == "improve"}
    expected = {b.id for b in suite.benchmarks if b.tier == improving} if isinstance(improving, str) else improving
    assert improve == expected
    for bench in suite.benchmarks:
        if bench.tier == "tier2":
            assert bench.kind == "perplexity" and bench.perplexity is not None
            assert (bench.perplexity.seq_len, bench.perplexity.stride, bench.perplexity.target_tokens) == (2048, 1024, 5_000_000)
        if bench.tier == "tier3":
            assert bench.subset == 12000 and bench.num_fewshot == 0
            assert [m.key for m in bench.metrics][:1] == ["acc,none"]
        if bench.tier == "tier4":
            assert bench.chat_template
    assert (suite.bridge is None) == (stage == "stage1")


def test_no_benchmark_may_share_a_file_name_with_a_tier_output(tmp_path: Path) -> None:
    path = _stage_file(tmp_path, "  tier3: {tasks: [demo_choice]}\n")
    path.write_text(path.read_text() + "benchmarks:\n  - {id: tier3_cf, task: demo_text, metrics: [{key: 'bits_per_byte,none'}]}\n")
    with pytest.raises(SuiteError, match=r"tier3_cf would share a file name with a tier's output"):
        load_suite(str(path))


def test_a_stage_bridge_expands_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCRATCH", str(tmp_path))
    assert load_suite("stage3").bridge == str(tmp_path / "ckpts" / "stage2" / "22000")


def test_an_unset_bridge_variable_is_an_error_only_without_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    from ckptgate.runplan import _suite_bridge

    monkeypatch.delenv("SCRATCH", raising=False)
    suite = load_suite("stage2")  # loads: --bridge may replace it
    with pytest.raises(CkptgateError, match=r"not set: set it, or give the bridge checkpoint with --bridge"):
        _suite_bridge(suite)


def _stage_file(tmp_path: Path, tiers: str) -> Path:
    path = tmp_path / "stage.yaml"
    path.write_text(f"name: s\ntask_paths: [{ROOT / 'evaltests/tasks/demo'}]\ninclude_default_tasks: false\n"
                    f"tiers:\n{tiers}", encoding="utf-8")
    return path


@pytest.mark.parametrize("tiers, message", [
    ("  tier5: {slices: [code], seq_len: 64}\n", r"unknown key 'tier5' in tiers; did you mean 'tier4'"),
    ("  tier2: {slices: [code], seq_len: 64, strde: 8}\n", r"unknown key 'strde'.*did you mean 'stride'"),
    ("  tier2: {slices: [code], seq_len: 64, stride: 64}\n", r"stride must be below seq_len \(64\)"),
    ("  tier2: {slices: [code], seq_len: 64, improve: [cod]}\n", r"improve names 'cod'.*did you mean 'code'"),
    ("  tier2: {slices: [code], seq_len: 64, goal: better}\n", r"goal must be 'keep'.*or 'improve'"),
    ("  tier3: {tasks: [demo_choice], subset: 0}\n", r"subset must be a positive number"),
])
def test_a_bad_stage_is_an_error_at_its_line_naming_the_closest_valid_name(tmp_path: Path, tiers: str, message: str) -> None:
    with pytest.raises(SuiteError, match=message) as error:
        load_suite(str(_stage_file(tmp_path, tiers)))
    assert str(error.value).startswith(f"{tmp_path / 'stage.yaml'}:")


@pytest.mark.parametrize("tiers, message", [
    ("  tier2: {slices: [general_wbe], seq_len: 64}\n", r"unknown perplexity slice 'general_wbe'.*Did you mean general_web"),
    ("  tier3: {tasks: [demo_chioce]}\n", r"names lm-eval task 'demo_chioce'.*Did you mean demo_choice"),
])
def test_an_unknown_slice_or_task_is_refused_before_any_model_loads(tmp_path: Path, tiers: str, message: str) -> None:
    from ckptgate.runplan import data_scorer

    suite = load_suite(str(_stage_file(tmp_path, tiers)))
    with pytest.raises(SuiteError, match=message):
        scorer, _ = data_scorer(suite, SLICES)
        scorer.check(suite)


def test_a_slice_neither_local_nor_fetched_is_reported_missing_with_how_to_fetch(tmp_path: Path) -> None:
    from ckptgate.runplan import data_scorer

    suite = load_suite(str(_stage_file(tmp_path, "  tier2: {slices: [general_web, wiki_en_20231101], seq_len: 64}\n")))
    _, missing = data_scorer(suite, SLICES)
    assert list(missing) == ["wikimedia/wikipedia [train] (slice wiki_en_20231101)"]
    assert missing["wikimedia/wikipedia [train] (slice wiki_en_20231101)"] == ["tier2_wiki_en_20231101"]


# --------------------------------------------------------------------------- a stage run of the demo


@pytest.fixture(scope="module")
def stage_run(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    results = tmp_path_factory.mktemp("stage")
    proc = gate("-n", "2", "--checkpoint", "demo:all", "--suite", str(STAGE), "--datasets", str(SLICES),
                "--results-dir", str(results))
    return proc, results


def _rows(results: Path) -> list[dict[str, str]]:
    with (results / "eval_summary.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_an_earlier_step_fails_its_stage_and_the_plateau_does_not(stage_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, results = stage_run
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = _rows(results)
    gating = {(r["checkpoint"], r["benchmark"]): r["verdict"] for r in rows
              if r["primary"] == "True" and r["against"] == "bridge:bridge"}
    assert gating[("step_0100", "tier2_general_web")] == "fail"
    assert gating[("step_0100", "tier2_code")] == "fail"
    for step in ("step_0800", "step_0850", "step_0900"):
        verdicts = {bench: v for (label, bench), v in gating.items() if label == step}
        assert set(verdicts) == {"tier2_general_web", "tier2_code", "tier3_demo_choice", "tier4_sft_native_probes"}
        assert "fail" not in verdicts.values() and "error" not in verdicts.values(), verdicts


def test_goal_improve_gets_its_own_reported_verdict_that_never_gates(stage_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, results = stage_run
    improve = [r for r in _rows(results) if r["against"].startswith("improve:")]
    # improve: tier2's code slice, tier3 and tier4 (goal improve); not the general_web slice (keep)
    assert {r["benchmark"] for r in improve} == {"tier2_code", "tier3_demo_choice", "tier4_sft_native_probes"}
    assert {r["checkpoint"] for r in improve} == {f"step_{s:04d}" for s in (100, 300, 800, 850, 900)}
    for row in improve:
        assert row["primary"] == "False" and row["verdict"] in ("improved", "not_improved")
        assert row["p_holm"] and float(row["p_holm"]) >= float(row["p_value"])
    assert "improve on bridge" in (results / "summary.md").read_text(encoding="utf-8")


def test_every_checkpoint_gets_its_tier_outputs(stage_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, results = stage_run
    from scorers.sft_checks import load_prompts

    prompts = load_prompts(ROOT / "evaltests" / "tasks" / "stages" / "sft_native.jsonl")
    for label in ("step_0100", "step_0300", "step_0800", "step_0850", "step_0900", "bridge"):
        folder = results / "by_checkpoint" / label
        assert all((folder / name).is_file() for name in TIER_FILES), label
        tier2 = json.loads((folder / "tier2_ppl.json").read_text())
        assert set(tier2["slices"]) == {"general_web", "code"}
        code = tier2["slices"]["code"]
        assert code["goal"] == "improve" and (code["seq_len"], code["stride"]) == (128, 64)
        assert code["n_docs"] == 60 and code["bits_per_byte"] > 0 and code["token_perplexity"] > 1
        tier3 = json.loads((folder / "tier3_cf.json").read_text())
        assert tier3["tasks"]["demo_choice"]["subset"] == {"size": 120, "requested": 120, "of": 200, "seed": 42}
        assert 0 <= tier3["tasks"]["demo_choice"]["acc"] <= 1
        tier4 = json.loads((folder / "tier4_sft_native.json").read_text())
        assert set(tier4["summary"]) == {"instruction_match_rate", "all_checks_pass_rate", "format_valid_rate",
                                         "chat_clean_rate", "code_parse_rate", "json_valid_rate", "n_prompts"}
        assert tier4["summary"]["n_prompts"] == len(prompts) == len(tier4["prompts"])
        assert set(tier4["by_category"]) == {p["category"] for p in prompts}
        generations = [json.loads(line) for line in (folder / TIER_FILES[3]).read_text().splitlines()]
        assert [g["id"] for g in generations] == [p["id"] for p in prompts]
        if label != "bridge":
            assert code["vs_bridge"]["bridge"]["keep"]["verdict"] in ("pass", "fail", "inconclusive")


def test_slice_bits_per_byte_match_lm_evals_rolling_loglikelihood(stage_run: tuple[subprocess.CompletedProcess[str], Path],
                                                                  tmp_path: Path) -> None:
    """The general_web fixture holds the demo text task's documents, each shorter than the slice's
    window: our per-document scoring must give lm-eval's loglikelihood_rolling numbers."""
    _, results = stage_run
    proc = gate("-n", "0", "--checkpoint", str(ROOT / "evaltests/demo/step_0800"), "--suite", "demo", "-k", "text",
                "--report-only", "--results-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:]
    lm_eval = json.loads((tmp_path / "by_checkpoint/step_0800/text.json").read_text())["metrics"]["bits_per_byte,none"]
    ours = json.loads((results / "by_checkpoint/step_0800/tier2_ppl.json").read_text())["slices"]["general_web"]
    assert ours["bits_per_byte"] == pytest.approx(lm_eval["value"], rel=1e-5)


def test_a_tier_whose_benchmark_failed_has_no_output_and_the_run_says_so(demo_root: Path, tmp_path: Path) -> None:
    suite = tmp_path / "too_long.yaml"
    suite.write_text("name: too_long\ninclude_default_tasks: false\n"
                     f"task_paths: [{ROOT / 'evaltests/tasks/demo'}]\n"
                     "tiers:\n  tier2: {slices: [general_web], seq_len: 4096, target_tokens: 100}\n", encoding="utf-8")
    proc = gate("-n", "0", "--checkpoint", str(demo_root / "step_0800"), "--suite", str(suite), "--datasets", str(SLICES),
                "--report-only", "--results-dir", str(tmp_path / "out"))
    assert proc.returncode == 1
    assert "longer than the model's context (512 tokens)" in proc.stdout
    assert "step_0800: tier2_ppl.json not written: no result for tier2_general_web" in proc.stdout
    assert not (tmp_path / "out" / "by_checkpoint" / "step_0800" / "tier2_ppl.json").exists()


# --------------------------------------------------------------------------- prefill and --limit


def test_prefill_fetches_a_stages_slices_once_and_the_gate_then_reads_them_offline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from ckptgate import cli, slices
    from ckptgate.runplan import data_scorer

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    streamed: list[tuple[str, dict[str, object]]] = []

    def stream(repo: str, **kwargs: object):  # type: ignore[no-untyped-def]
        streamed.append((repo, kwargs))
        return iter([{"text": f"document {i} " + "words " * 20} for i in range(1000)])

    monkeypatch.setattr(slices, "_hub_stream", lambda: stream)
    monkeypatch.setattr(slices, "_hub_commit", lambda repo, revision: "ab" * 20)
    suite_file = _stage_file(tmp_path, "  tier2: {slices: [general_web, wiki_en_20231101], seq_len: 64, target_tokens: 100}\n")
    assert data_scorer(load_suite(str(suite_file)), None)[1]  # nothing fetched yet: both missing
    assert cli.main(["prefill", "--suite", str(suite_file)]) == 0
    assert [repo for repo, _ in streamed] == ["allenai/c4", "wikimedia/wikipedia"]
    assert streamed[0][1]["revision"] == "ab" * 20 and streamed[0][1]["streaming"] is True
    assert data_scorer(load_suite(str(suite_file)), None)[1] == {}  # the gate finds them
    fetched = slices.load(slices.load_catalogue()["general_web"])
    assert fetched.record["revision"] == "ab" * 20
    assert sum(len(text.encode()) for _, text in fetched.documents) >= 100 * slices.BYTES_PER_TOKEN_BOUND
    assert cli.main(["prefill", "--suite", str(suite_file)]) == 0
    assert len(streamed) == 2  # already fetched: not streamed again
    assert "already fetched" in capsys.readouterr().out


def test_limit_scores_the_first_documents_of_the_packed_slice() -> None:
    import torch

    from scorers.perplexity import PackedSlice
    from scorers.slice_scorer import head

    packed = PackedSlice(torch.arange(10, dtype=torch.int32), torch.tensor([0, 3, 7, 10]), ["0", "1", "2"], [5, 6, 7],
                         {"n_docs": 3, "n_tokens": 10})
    first = head(packed, 2)
    assert first.doc_ids == ["0", "1"] and first.doc_bytes == [5, 6]
    assert first.doc_tokens(1) == [3, 4, 5, 6] and first.manifest["n_tokens"] == 7 and first.manifest["limited_to_docs"] == 2
    assert head(packed, 5) is packed
