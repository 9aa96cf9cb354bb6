"""Baseline files: the shipped numbers, validation with line-numbered errors, and updates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ckptgate.baseline_update import Measured, update_baseline
from ckptgate.baselines import BASELINES_DIR, BaselineEntry, load_baseline
from ckptgate.errors import BaselineError

SHIPPED = sorted(path.stem for path in BASELINES_DIR.glob("*.yaml"))

REPORT_BENCHMARKS = {
    "report_mmlu",
    "report_mmlu_redux",
    "report_mmlu_pro",
    "report_supergpqa",
    "report_bbh",
    "report_gpqa",
    "report_gsm8k",
    "report_math",
    "report_evalplus",
    "report_multipl_e",
    "report_mbpp",
    "report_crux_o",
    "report_mgsm",
    "report_mmmlu",
    "report_include",
}

OTHER_SIZES = [
    "qwen3-0.6b-base",
    "qwen3-4b-base",
    "qwen3-8b-base",
    "qwen3-14b-base",
    "qwen3-32b-base",
    "qwen3-30b-a3b-base",
    "qwen3-235b-a22b-base",
]

# Every Qwen3-1.7B-Base number in the usual baseline tables, as fractions.
MEASURED = [
    ("gsm8k_4shot", "exact_match,flexible-extract", 0.6861),
    ("gsm8k_4shot", "exact_match,strict-match", 0.5944),
    ("gsm8k_8shot", "exact_match,flexible-extract", 0.7013),
    ("gsm8k_8shot", "exact_match,strict-match", 0.6960),
    ("gsm8k_cot_4shot", "exact_match,flexible-extract", 0.6983),
    ("gsm8k_cot_4shot", "exact_match,strict-match", 0.5163),
    ("gsm8k_cot_8shot", "exact_match,flexible-extract", 0.7324),
    ("gsm8k_cot_8shot", "exact_match,strict-match", 0.6717),
    ("hendrycks_math_4shot", "exact_match,none", 0.1778),
    ("minerva_math_4shot", "exact_match,none", 0.2820),
    ("minerva_math_4shot", "math_verify,none", 0.3908),
    ("minerva_math_prealgebra_4shot", "exact_match,none", 0.4730),
    ("minerva_math_prealgebra_4shot", "math_verify,none", 0.6085),
    ("minerva_math_algebra_4shot", "exact_match,none", 0.3853),
    ("minerva_math_algebra_4shot", "math_verify,none", 0.5608),
    ("minerva_math_num_theory_4shot", "exact_match,none", 0.2333),
    ("minerva_math_num_theory_4shot", "math_verify,none", 0.2796),
    ("minerva_math_geometry_4shot", "exact_match,none", 0.2171),
    ("minerva_math_geometry_4shot", "math_verify,none", 0.3194),
    ("minerva_math_counting_and_prob_4shot", "exact_match,none", 0.1730),
    ("minerva_math_counting_and_prob_4shot", "math_verify,none", 0.3249),
    ("minerva_math_precalc_4shot", "exact_match,none", 0.1282),
    ("minerva_math_precalc_4shot", "math_verify,none", 0.2070),
    ("minerva_math_intermediate_algebra_4shot", "exact_match,none", 0.1218),
    ("minerva_math_intermediate_algebra_4shot", "math_verify,none", 0.1949),
    ("math_qwen_4shot", "exact_match,none", 0.429),
    ("ifeval_0shot", "prompt_level_strict_acc,none", 0.2126),
    ("ifeval_0shot", "inst_level_strict_acc,none", 0.3285),
    ("mbpp_3shot", "pass_at_1,none", 0.558),
    ("humaneval_0shot", "pass@1,create_test", 0.4878),
]

# Qwen3 technical report, Table 8, Qwen3-1.7B-Base column.
REPORT_1_7B = {
    "report_mmlu": 0.6263,
    "report_mmlu_redux": 0.6166,
    "report_mmlu_pro": 0.3676,
    "report_supergpqa": 0.2092,
    "report_bbh": 0.5447,
    "report_gpqa": 0.2828,
    "report_gsm8k": 0.7544,
    "report_math": 0.4350,
    "report_evalplus": 0.5270,
    "report_multipl_e": 0.4271,
    "report_mbpp": 0.5540,
    "report_crux_o": 0.3640,
    "report_mgsm": 0.5071,
    "report_mmmlu": 0.6327,
    "report_include": 0.4557,
}


# --- shipped files ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_file_loads(name: str) -> None:
    baseline = load_baseline(name)
    assert baseline.name == name
    assert baseline.entries
    assert all(0.0 <= entry.value <= 1.0 for entry in baseline.entries)


def test_all_sizes_are_shipped() -> None:
    assert set(SHIPPED) == {"qwen3-1.7b-base", *OTHER_SIZES}


def test_1_7b_holds_every_measured_number() -> None:
    baseline = load_baseline("qwen3-1.7b-base")
    for benchmark, metric, value in MEASURED:
        entry = baseline.find(benchmark, metric)
        assert entry is not None, (benchmark, metric)
        assert entry.value == value, (benchmark, metric)
        assert entry.date == "2026-01-20"
        assert entry.source.startswith("Qwen3-1.7B-Base evaluation baselines, ")
        assert entry.stderr is None
    measured_keys = {(b, m) for b, m, _ in MEASURED}
    others = [e for e in baseline.entries if (e.benchmark, e.metric) not in measured_keys]
    assert {e.benchmark for e in others} == REPORT_BENCHMARKS


def test_1_7b_gate_entries_carry_the_mandated_settings() -> None:
    baseline = load_baseline("qwen3-1.7b-base")
    entry = baseline.find("gsm8k_cot_4shot", "exact_match,strict-match")
    assert entry is not None and entry.gating
    assert (entry.task, entry.num_fewshot, entry.n) == ("gsm8k_cot", 4, 1319)
    assert entry.settings == {
        "harness": "lm-eval",
        "backend": "vllm",
        "dtype": "bfloat16",
        "seed": 42,
        "temperature": 0,
        "max_model_len": 4096,
        "tensor_parallel_size": 1,
        "gpu_memory_utilization": 0.8,
        "apply_chat_template": False,
        "batch_size": "auto",
    }
    subject = baseline.find("minerva_math_counting_and_prob_4shot", "math_verify,none")
    assert subject is not None and subject.n == 474


def test_1_7b_hendrycks_math_is_misleading() -> None:
    entry = load_baseline("qwen3-1.7b-base").find("hendrycks_math_4shot", "exact_match,none")
    assert entry is not None
    assert entry.use == "misleading" and not entry.gating
    assert "math_qwen" in entry.note and "17.68%" in entry.note


def test_1_7b_report_entries_are_reference_only() -> None:
    baseline = load_baseline("qwen3-1.7b-base")
    for benchmark, value in REPORT_1_7B.items():
        entry = baseline.find(benchmark, "score,report")
        assert entry is not None, benchmark
        assert entry.value == value, benchmark
        assert entry.use == "reference" and not entry.gating
        assert entry.task is None and entry.n is None
        assert entry.settings == {}  # the file's lm-eval defaults do not describe the report
        assert entry.date == "2025-05-13"
        assert "Table 8" in entry.source and "7a2f61ffc7a20d47efcd2bf97f6f2bf52729042e" in entry.source


@pytest.mark.parametrize("name", OTHER_SIZES)
def test_other_sizes_hold_the_15_report_benchmarks(name: str) -> None:
    baseline = load_baseline(name)
    assert {e.benchmark for e in baseline.entries} == REPORT_BENCHMARKS
    assert len(baseline.entries) == 15
    assert all(e.use == "reference" and e.setting for e in baseline.entries)


@pytest.mark.parametrize(
    ("name", "benchmark", "value"),
    [
        ("qwen3-235b-a22b-base", "report_gsm8k", 0.9439),
        ("qwen3-32b-base", "report_include", 0.6787),
        ("qwen3-30b-a3b-base", "report_math", 0.5904),
        ("qwen3-14b-base", "report_gpqa", 0.3990),
        ("qwen3-8b-base", "report_evalplus", 0.6765),
        ("qwen3-4b-base", "report_crux_o", 0.55),
        ("qwen3-0.6b-base", "report_mgsm", 0.3099),
    ],
)
def test_report_numbers_are_copied_exactly(name: str, benchmark: str, value: float) -> None:
    entry = load_baseline(name).find(benchmark, "score,report")
    assert entry is not None and entry.value == value


# --- validation -------------------------------------------------------------------------------

VALID = """\
# header comment
model: test/model
defaults:
  temperature: 0
  max_model_len: 4096
entries:
  - benchmark: gsm8k_4shot
    task: gsm8k
    num_fewshot: 4
    metric: exact_match,strict-match
    value: 0.5944
    n: 1319
    stderr: null
    source: notes
    date: 2026-01-20
    note: keep me
  - benchmark: report_gsm8k
    metric: score,report
    value: 0.7544
    source: report
    date: 2025-05-13
    use: reference
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "baseline.yaml"
    path.write_text(text)
    return path


def test_valid_file_from_path(tmp_path: Path) -> None:
    baseline = load_baseline(str(write(tmp_path, VALID)))
    assert baseline.model == "test/model"
    gate = baseline.find("gsm8k_4shot", "exact_match,strict-match")
    assert gate is not None and gate.gating and gate.line == 7
    assert gate.settings == {"temperature": 0, "max_model_len": 4096}
    assert gate.date == "2026-01-20" and gate.note == "keep me"
    assert [e.benchmark for e in baseline.for_benchmark("report_gsm8k")] == ["report_gsm8k"]
    assert baseline.find("gsm8k_4shot", "exact_match,flexible-extract") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: x\nentries: [\n", ":3: malformed YAML"),
        ("- just a list\n", "must be a mapping"),
        ("model: x\nentries: []\n", ":2: entries must be a non-empty list"),
        (VALID + "extra: 1\n", ":23: unknown key 'extra' in the baseline"),
        (VALID.replace("    note: keep me", "    notes: keep me"), ":16: unknown key 'notes'"),
        (VALID.replace("  temperature: 0", "  temp: 0"), ":4: unknown key 'temp' in defaults"),
        (
            VALID.replace("    note: keep me", "    settings: {dtype: float16, top_k: 1}"),
            ":16: unknown key 'top_k' in settings",
        ),
        (VALID.replace("    n: 1319\n", ""), ":7: entry 'gsm8k_4shot' is missing n"),
        (VALID.replace("    source: report\n", ""), ":17: entry 'report_gsm8k' is missing source"),
        (VALID.replace("model: test/model\n", ""), "the baseline is missing model"),
        (VALID.replace("value: 0.5944", "value: high"), ":11: value must be a number"),
        (VALID.replace("value: 0.5944", "value: true"), ":11: value must be a number"),
        (VALID.replace("n: 1319", "n: 0"), ":12: n must be a positive integer"),
        (VALID.replace("n: 1319", "n: 13.5"), ":12: n must be a positive integer"),
        (VALID.replace("stderr: null", "stderr: -0.1"), ":13: stderr must be a number >= 0"),
        (VALID.replace("use: reference", "use: maybe"), ":22: use must be one of gate, reference, misleading"),
        (VALID.replace("exact_match,strict-match", "exact_match"), ":10: metric 'exact_match' must be"),
        (VALID.replace("date: 2026-01-20", "date: Jan 20"), ":15: date must be a date"),
        (VALID.replace("num_fewshot: 4", "num_fewshot: -1"), ":9: num_fewshot must be an integer >= 0"),
        (VALID.replace("benchmark: gsm8k_4shot", "benchmark: 'gsm8k 4shot'"), ":7: benchmark 'gsm8k 4shot'"),
        (VALID.replace("task: gsm8k", "task: 3"), ":8: task must be an lm-eval task name"),
        (
            VALID
            + "  - benchmark: gsm8k_4shot\n    task: gsm8k\n    num_fewshot: 8\n"
            + "    metric: exact_match,strict-match\n    value: 0.6\n    n: 1319\n"
            + "    source: s\n    date: 2026-01-21\n",
            ":23: benchmark 'gsm8k_4shot' metric 'exact_match,strict-match' appears twice (first at line 7)",
        ),
    ],
)
def test_bad_files_have_line_numbered_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(BaselineError) as info:
        load_baseline(str(path))
    assert message in str(info.value)
    if message.startswith(":"):
        assert f"{path}{message}" in str(info.value)


def test_unknown_baseline_name_lists_known_ones() -> None:
    with pytest.raises(BaselineError, match=r"known baselines: .*qwen3-1\.7b-base.*qwen3-8b-base"):
        load_baseline("no-such-model")


def test_missing_baseline_path() -> None:
    with pytest.raises(BaselineError, match="does not exist"):
        load_baseline("/nonexistent/baseline.yaml")


# --- conflicts and unverified settings --------------------------------------------------------


def gate_entry(tmp_path: Path) -> BaselineEntry:
    entry = load_baseline(str(write(tmp_path, VALID))).find("gsm8k_4shot", "exact_match,strict-match")
    assert entry is not None
    return entry


def test_matching_settings_are_no_conflict(tmp_path: Path) -> None:
    entry = gate_entry(tmp_path)
    actual = {"task": "gsm8k", "num_fewshot": 4, "temperature": 0.0, "max_model_len": "4096"}
    assert entry.conflicts(actual) == []
    assert entry.unverified(actual) == []


def test_differing_settings_are_conflicts(tmp_path: Path) -> None:
    entry = gate_entry(tmp_path)
    actual = {"task": "gsm8k_cot", "num_fewshot": 8, "temperature": 0, "max_model_len": 2048}
    assert entry.conflicts(actual) == [
        "task: baseline has 'gsm8k', this run has 'gsm8k_cot'",
        "num_fewshot: baseline has 4, this run has 8",
        "max_model_len: baseline has 4096, this run has 2048",
    ]


def test_settings_the_entry_does_not_record_are_unverified(tmp_path: Path) -> None:
    entry = gate_entry(tmp_path)
    actual = {"task": "gsm8k", "limit": 100, "apply_chat_template": True, "seed": 1}
    assert entry.conflicts(actual) == []
    assert entry.unverified(actual) == ["apply_chat_template", "limit"]


def test_true_is_not_one(tmp_path: Path) -> None:
    text = VALID.replace("  max_model_len: 4096", "  max_model_len: 4096\n  apply_chat_template: true")
    entry = load_baseline(str(write(tmp_path, text))).find("gsm8k_4shot", "exact_match,strict-match")
    assert entry is not None
    assert entry.conflicts({"apply_chat_template": True}) == []
    assert entry.conflicts({"apply_chat_template": "true"}) == []
    assert entry.conflicts({"apply_chat_template": 1}) != []


# --- update_baseline --------------------------------------------------------------------------


def measured(
    metric: str = "exact_match,strict-match", value: float = 0.61, **settings: object
) -> Measured:
    return Measured(
        benchmark="gsm8k_4shot",
        task="gsm8k",
        num_fewshot=4,
        metric=metric,
        value=value,
        n=1319,
        stderr=0.0134,
        settings={"temperature": 0, "max_model_len": 2048, **settings},
        date="2026-02-01",
    )


def test_update_creates_a_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "new.yaml"
    diff = update_baseline(path, [measured()], model="test/model")
    assert diff.startswith("--- /dev/null")
    assert "+    value: 0.61" in diff
    baseline = load_baseline(str(path))
    assert baseline.model == "test/model"
    entry = baseline.find("gsm8k_4shot", "exact_match,strict-match")
    assert entry is not None
    assert (entry.value, entry.n, entry.stderr, entry.date) == (0.61, 1319, 0.0134, "2026-02-01")
    assert entry.source == "measured by ckptgate"
    assert entry.settings == {"temperature": 0, "max_model_len": 2048}
    assert path.read_text().startswith("#")


def test_creating_needs_the_model(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="give the model name"):
        update_baseline(tmp_path / "new.yaml", [measured()])


def test_update_replaces_an_entry_and_keeps_header_and_note(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    diff = update_baseline(path, [measured()])
    assert "-    value: 0.5944" in diff and "+    value: 0.61" in diff
    text = path.read_text()
    assert text.startswith("# header comment\n")
    baseline = load_baseline(str(path))
    assert len(baseline.entries) == 2
    entry = baseline.find("gsm8k_4shot", "exact_match,strict-match")
    assert entry is not None
    assert (entry.value, entry.stderr, entry.note) == (0.61, 0.0134, "keep me")
    assert entry.settings == {"temperature": 0, "max_model_len": 2048}  # overrides the defaults
    reference = baseline.find("report_gsm8k", "score,report")
    assert reference is not None and reference.use == "reference" and reference.value == 0.7544


def test_update_appends_a_new_entry(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    update_baseline(path, [measured("exact_match,flexible-extract", 0.7)])
    baseline = load_baseline(str(path))
    assert [e.metric for e in baseline.entries][-1] == "exact_match,flexible-extract"
    assert len(baseline.entries) == 3
    old = baseline.find("gsm8k_4shot", "exact_match,strict-match")
    assert old is not None and old.value == 0.5944


def test_update_writes_floats_with_full_precision(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    update_baseline(path, [measured(value=0.1 + 0.2)])
    entry = load_baseline(str(path)).find("gsm8k_4shot", "exact_match,strict-match")
    assert entry is not None and entry.value == 0.1 + 0.2


def test_unchanged_update_returns_empty_diff(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    assert update_baseline(path, [measured()]) != ""
    text = path.read_text()
    assert update_baseline(path, [measured()]) == ""
    assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.yaml"]  # no temp file left


def test_update_refuses_another_model(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    with pytest.raises(BaselineError, match="baseline of 'test/model'"):
        update_baseline(path, [measured()], model="other/model")


def test_update_refuses_unknown_settings_and_leaves_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    with pytest.raises(BaselineError, match="unknown setting"):
        update_baseline(path, [measured(pretrained="/ckpt")])
    assert path.read_text() == VALID


def test_update_of_a_malformed_file_fails_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("n: 1319", "n: 0"))
    with pytest.raises(BaselineError, match=r"baseline\.yaml:12: n must be"):
        update_baseline(path, [measured()])


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_are_in_the_written_layout(name: str, tmp_path: Path) -> None:
    """An update touches only the lines that change, because the files are in the emitted layout."""
    source = load_baseline(name).path
    copy = tmp_path / source.name
    copy.write_text(source.read_text())
    assert update_baseline(copy, []) == ""


COMMENTED = """\
# header comment
model: test/model  # the model measured
defaults:
  temperature: 0  # greedy
entries:
  # the gate entry
  - benchmark: gsm8k_4shot  # 4-shot
    task: gsm8k
    num_fewshot: 4
    metric: exact_match,strict-match
    value: 0.5944  # from the table
    n: 1319
    stderr: null
    source: notes
    date: 2026-01-20
    settings:
      max_model_len: 4096  # the mandated context

  # a number from the report
  - benchmark: report_gsm8k
    metric: score,report
    value: 0.7544
    source: report
    date: 2025-05-13
    use: reference  # never gated
# end of the entries

# last line
"""


def test_update_keeps_every_comment_and_the_order(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)
    update_baseline(path, [measured(), measured("exact_match,flexible-extract", 0.7)])
    text = path.read_text()
    comments = [line[line.index("#"):] for line in COMMENTED.splitlines() if "#" in line]
    assert [line[line.index("#"):] for line in text.splitlines() if "#" in line] == comments
    assert re.search(r"\n    value: 0\.61 +# from the table\n", text)  # changed in place, its comment kept
    assert re.search(r"\n      temperature: 0\n      max_model_len: 2048 +# the mandated context\n", text)
    assert text.endswith("    date: 2026-02-01\n    settings:\n      temperature: 0\n      max_model_len: 2048\n"
                         "# end of the entries\n\n# last line\n")  # the new entry goes before the comments that end the file
    assert text.startswith(COMMENTED[: COMMENTED.index("    value:")])  # lines before the first change untouched
    baseline = load_baseline(str(path))
    assert [(e.benchmark, e.metric) for e in baseline.entries] == [
        ("gsm8k_4shot", "exact_match,strict-match"), ("report_gsm8k", "score,report"),
        ("gsm8k_4shot", "exact_match,flexible-extract"),
    ]
    assert baseline.entries[0].value == 0.61 and baseline.entries[2].value == 0.7
    assert update_baseline(path, [measured(), measured("exact_match,flexible-extract", 0.7)]) == ""


def test_update_refuses_a_file_with_a_key_twice(tmp_path: Path) -> None:
    """PyYAML (the gate) reads the last of two equal keys; an editor keeping the first would
    silently change the number, so the file is left as it is."""
    text = VALID.replace("    n: 1319\n", "    n: 1319\n    n: 1320\n")
    path = write(tmp_path, text)
    with pytest.raises(BaselineError, match=r"baseline\.yaml:13: cannot edit the file: found duplicate key"):
        update_baseline(path, [measured()])
    assert path.read_text() == text
