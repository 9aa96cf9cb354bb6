"""Suite files: loading, validation and line-numbered errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptgate.errors import SuiteError
from ckptgate.suites import load_suite

TASKS = Path(__file__).resolve().parent.parent / "evaltests" / "tasks" / "demo"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


VALID = f"""\
name: mini
task_paths: [{TASKS}]
include_default_tasks: false
benchmarks:
  - id: arithmetic
    task: demo_arithmetic
    num_fewshot: 3
    metrics:
      - key: exact_match,strict-match
        min: 0.5
      - key: exact_match,flexible-extract
"""


def test_demo_suite_loads() -> None:
    suite = load_suite("demo")
    assert [b.id for b in suite.benchmarks] == ["arithmetic", "choice", "text"]
    assert suite.include_default_tasks is False
    assert all(p.is_dir() for p in suite.task_paths)


def test_valid_suite_from_path(tmp_path: Path) -> None:
    suite = load_suite(str(write(tmp_path, VALID)))
    bench = suite.benchmarks[0]
    assert bench.test == "arithmetic"  # defaults to the id
    assert bench.metrics[0].min == 0.5 and bench.metrics[0].gating
    assert not bench.metrics[1].gating
    assert bench.metrics[0].passes(0.5) and not bench.metrics[0].passes(0.49)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (VALID.replace("num_fewshot: 3", "num_fewshot: 3\n    shots: 4"), ":8: unknown key 'shots'"),
        (VALID.replace("        min: 0.5", "        min: high"), ":10: min must be a number"),
        (VALID.replace("exact_match,strict-match", "exact_match"), ":9: metric key 'exact_match' must be"),
        (VALID.replace("  - id: arithmetic\n", "  - task2: x\n"), ":5: unknown key 'task2'"),
        (VALID + "  - id: arithmetic\n    task: t\n    metrics: [{key: 'a,b'}]\n", ":12: benchmark id 'arithmetic' appears twice"),
        ("name: x\nbenchmarks: [\n", "malformed YAML"),
        ("name: x\nbenchmarks: []\n", "lists no benchmarks"),
        ("- just a list\n", "must be a mapping"),
        (VALID.replace(str(TASKS), "/nonexistent/tasks"), ":2: task directory"),
    ],
)
def test_bad_suites_have_line_numbered_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SuiteError, match=None) as info:
        load_suite(str(write(tmp_path, text)))
    assert message in str(info.value)


def test_unknown_suite_name_lists_known_ones() -> None:
    with pytest.raises(SuiteError, match="known suites: .*demo"):
        load_suite("no-such-suite")


def test_missing_required_key(tmp_path: Path) -> None:
    text = VALID.replace("    task: demo_arithmetic\n", "")
    with pytest.raises(SuiteError, match=r":5: benchmark 'arithmetic' is missing task"):
        load_suite(str(write(tmp_path, text)))


def test_primary_margin_detect_and_the_stage_bridge(tmp_path: Path) -> None:
    text = VALID.replace("        min: 0.5\n", "        min: 0.5\n        primary: true\n        margin: 0.01\n        detect: 0.02\n"
                                              "        reference: report_mmlu\n")
    suite = load_suite(str(write(tmp_path, "bridge: ../stage1/step_50000\n" + text)))
    metric = suite.benchmarks[0].metrics[0]
    assert (metric.primary, metric.margin.amount, metric.detect, metric.reference) == (True, 0.01, 0.02, "report_mmlu")
    assert not metric.margin.relative and metric.margin.source == "declared in the suite"
    assert suite.benchmarks[0].metrics[1].primary is False
    assert suite.bridge == str((tmp_path.parent / "stage1" / "step_50000").resolve())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("        min: 0.5\n", "        min: 0.5\n        primary: yes please\n"), "primary must be true or false"),
        (("        min: 0.5\n", "        min: 0.5\n        margin: -0.1\n"), "margin must be a number >= 0"),
        (("        min: 0.5\n", "        min: 0.5\n        margin: 'lots'\n"), r"or a percentage of the reference \(e.g. '1%'\)"),
        (("        min: 0.5\n", "        min: 0.5\n        margin: '100%'\n"), "relative margin must be below 100%"),
        (("name: mini\n", "name: mini\nbridge: 3\n"), "bridge must be a checkpoint path"),
        (("        min: 0.5\n", "        min: 0.5\n        reference: [report_mmlu]\n"), "reference names a baseline entry"),
    ],
)
def test_gate_fields_are_validated(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        load_suite(str(write(tmp_path, VALID.replace(*edit))))


def test_max_model_len_is_a_positive_token_count(tmp_path: Path) -> None:
    assert load_suite("qwen3").max_model_len == 4096
    assert load_suite("demo").max_model_len is None
    with pytest.raises(SuiteError, match="max_model_len must be a positive number of tokens"):
        load_suite(str(write(tmp_path, "max_model_len: -1\n" + VALID)))


def test_opt_in_and_gold_logprob_flags(tmp_path: Path) -> None:
    text = VALID.replace("    num_fewshot: 3\n", "    num_fewshot: 3\n    opt_in: true\n    gold_logprob: true\n")
    bench = load_suite(str(write(tmp_path, text))).benchmarks[0]
    assert bench.opt_in and bench.gold_logprob
    with pytest.raises(SuiteError, match="opt_in must be true or false"):
        load_suite(str(write(tmp_path, VALID.replace("    num_fewshot: 3\n", "    num_fewshot: 3\n    opt_in: maybe\n"))))
