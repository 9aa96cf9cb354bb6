"""The plugin's option handling and usage errors, through pytester (real pytest runs)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ckptgate import settling

ROOT = Path(__file__).resolve().parent.parent
EVALTESTS = str(ROOT / "evaltests")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")


def assert_usage_error(result: pytest.RunResult, *fragments: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    err = result.stderr.str()
    for fragment in fragments:
        assert fragment in err, err
    assert "Traceback" not in err + result.stdout.str()


def test_options_are_in_one_group(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    out = result.stdout.str()
    section = out[out.index("ckptgate: gate language-model checkpoints") :]
    for option in ("--checkpoint", "--bridge", "--suite", "--baseline", "--backend", "--results-dir",
                   "--limit", "--update-baselines", "--alpha", "--record-cache", "--gpus", "--require-gpu",
                   "--allow-tensor-parallel", "--margins", "--report-only", "--accept-inconclusive"):
        assert option in section


def test_missing_checkpoint_is_a_usage_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = run(pytester, EVALTESTS, "--checkpoint", str(tmp_path / "nope"))
    assert_usage_error(result, str(tmp_path / "nope"))


def test_benchmark_tests_without_checkpoint(pytester: pytest.Pytester) -> None:
    result = run(pytester, EVALTESTS)
    assert_usage_error(result, "pass --checkpoint PATH")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--suite", "no-such-suite"], "unknown suite 'no-such-suite'"),
        (["--limit", "0"], "--limit must be a positive number"),
        (["--backend", "vllm"], "--backend vllm needs vLLM in this environment"),
        (["--baseline", "no-such-model"], "unknown baseline 'no-such-model'"),
        (["--alpha", "1.5"], "--alpha must be between 0 and 1"),
        (["--update-baselines"], "--update-baselines writes one reference model's numbers"),
        (["--datasets", "/no/such/folder"], "--datasets /no/such/folder: no such folder"),
        (["--margins", "/no/such/margins.yaml"], "margins file /no/such/margins.yaml does not exist"),
    ],
)
def test_bad_options_are_usage_errors(
    pytester: pytest.Pytester, demo_root: Path, args: list[str], fragment: str
) -> None:
    result = run(pytester, EVALTESTS, "--checkpoint", str(demo_root / "step_0100"), *args)
    assert_usage_error(result, fragment)


def test_bridge_needs_a_checkpoint(pytester: pytest.Pytester, demo_root: Path) -> None:
    assert_usage_error(run(pytester, EVALTESTS, "--bridge", str(demo_root / "bridge")), "--bridge needs")


def write_suite(folder: Path, benchmark: str) -> str:
    """A one-benchmark suite over the demo tasks; ``benchmark`` is its YAML flow mapping."""
    suite = folder / "suite.yaml"
    tasks = ROOT / "evaltests" / "tasks" / "demo"
    suite.write_text(
        f"name: custom\ntask_paths: [{tasks}]\ninclude_default_tasks: false\nbenchmarks:\n  - {benchmark}\n"
    )
    return str(suite)


@pytest.mark.parametrize(
    ("benchmark", "fragments"),
    [
        # an unknown task fails before any model loads, with lm-eval's names as suggestions
        ("{id: arithmetic, task: demo_arithmetc, metrics: [{key: 'exact_match,strict-match'}]}",
         ("'demo_arithmetc'", "Did you mean demo_arithmetic")),
        # a benchmark that no collected test runs must not vanish silently
        ("{id: sums, test: sums, task: demo_arithmetic, metrics: [{key: 'exact_match,strict-match'}]}",
         ("declares benchmark(s) sums",)),
    ],
)
def test_bad_suite_benchmarks_are_usage_errors(
    pytester: pytest.Pytester, demo_root: Path, benchmark: str, fragments: tuple[str, ...]
) -> None:
    suite = write_suite(pytester.path, benchmark)
    result = run(pytester, EVALTESTS, "--checkpoint", str(demo_root / "step_0100"), "--suite", suite)
    assert_usage_error(result, *fragments)


def test_other_dist_modes_are_refused(pytester: pytest.Pytester, demo_root: Path) -> None:
    result = run(pytester, EVALTESTS, "--checkpoint", str(demo_root / "step_0100"), "-n", "2", "--dist", "loadscope")
    assert_usage_error(result, "--dist loadscope")


def test_collection_groups_and_orders_by_checkpoint(pytester: pytest.Pytester, demo_root: Path) -> None:
    result = run(pytester, EVALTESTS, "--checkpoint", str(demo_root), "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    ids = [line for line in result.stdout.lines if "::test_" in line]
    labels = [line.split("[")[1].rstrip("]") for line in ids]
    from ckptgate.demo import DEMO_STEPS

    # The suite's bridge (the step-500 snapshot) is a checkpoint of the run like the candidates.
    assert labels == ["bridge"] * 3 + [label for step in DEMO_STEPS for label in [f"step_{step:04d}"] * 3]
    assert ids[3].endswith("test_arithmetic[step_0100]")


def test_markers_select_benchmarks(pytester: pytest.Pytester, demo_root: Path) -> None:
    result = run(pytester, EVALTESTS, "--checkpoint", str(demo_root / "step_0100"), "--collect-only", "-q",
                 "-m", "perplexity")
    assert result.ret == pytest.ExitCode.OK
    collected = [line for line in result.stdout.lines if "::test_" in line]
    assert [c.split("::")[-1] for c in collected] == ["test_text[bridge]", "test_text[step_0100]"]


def test_self_check_flags_a_work_group_split_across_workers() -> None:
    def problems(groups_by_worker: dict[str, set[str]], loads: dict[str, int]) -> list[str]:
        return settling.grouping_problems(groups_by_worker, Counter(loads), bridges=set())

    assert problems({"gw0": {"a"}, "gw1": {"b"}}, {"a": 1, "b": 1}) == []
    split = problems({"gw0": {"a", "b"}, "gw1": {"b"}}, {"a": 1, "b": 2})
    assert any("work group b ran on 2 workers (gw0, gw1)" in p for p in split)
    assert any("checkpoint b was loaded 2 times for 1 work group(s)" in p for p in split)
    # A checkpoint split on purpose over idle workers: one load per group is expected.
    assert problems({"gw0": {"b~part1"}, "gw1": {"b~part2"}, "gw2": {"a"}}, {"a": 1, "b": 2}) == []


def test_a_suite_names_its_stage_bridge(pytester: pytest.Pytester, demo_root: Path, tmp_path: Path) -> None:
    """The suite's bridge is discovered and validated like --bridge, before any model loads."""
    suite = (ROOT / "evaltests" / "suites" / "demo.yaml").read_text().replace(
        "task_paths: [../tasks/demo]", f"task_paths: [{ROOT / 'evaltests' / 'tasks' / 'demo'}]\nbridge: missing_stage1"
    )
    path = tmp_path / "stage2.yaml"
    path.write_text(suite)
    result = run(pytester, EVALTESTS, "--checkpoint", str(demo_root / "step_0100"), "--suite", str(path))
    assert_usage_error(result, str(tmp_path / "missing_stage1"))
    path.write_text(suite.replace("missing_stage1", str(demo_root / "step_0800")))
    result = run(pytester, EVALTESTS, "--checkpoint", str(demo_root / "step_0100"), "--suite", str(path), "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    assert "test_choice[step_0800]" in result.stdout.str() and "test_choice[step_0100]" in result.stdout.str()


def test_opt_in_benchmarks_run_only_when_named(pytester: pytest.Pytester, demo_root: Path) -> None:
    """qwen3's hendrycks_math is misleading (it misjudges base models): collected only when asked for by name."""
    args = [EVALTESTS, "--suite", "qwen3", "--checkpoint", str(demo_root / "step_0800"), "--collect-only", "-q",
            "--report-only", "--datasets", str(Path(EVALTESTS).parent / "tests" / "fixtures" / "datasets")]
    default = run(pytester, *args).stdout.str()
    assert "test_gsm8k[gsm8k_4shot-step_0800]" in default and "hendrycks" not in default
    named = run(pytester, *args, "-k", "hendrycks_math").stdout.str()
    assert "test_hendrycks_math[step_0800]" in named


def test_primary_metrics_with_nothing_to_be_held_against_are_a_usage_error(
    pytester: pytest.Pytester, demo_root: Path, tmp_path: Path
) -> None:
    """No threshold, no bridge, no baseline: the run would measure and exit 0, which reads as a pass."""
    suite = write_suite(tmp_path, "{id: choice, task: demo_choice, metrics: [{key: 'acc,none', primary: true}]}")
    result = run(pytester, EVALTESTS, "--checkpoint", str(demo_root / "step_0100"), "--suite", suite)
    assert_usage_error(result, "choice acc,none have nothing to be held against", "--bridge PATH", "--baseline NAME",
                       "--report-only")
    qwen3 = run(pytester, EVALTESTS, "--checkpoint", str(demo_root / "step_0100"), "--suite", "qwen3",
                "--collect-only")
    assert_usage_error(qwen3, "gsm8k_4shot exact_match,flexible-extract", "--bridge PATH")
    listed = run(pytester, EVALTESTS, "--checkpoint", str(demo_root / "step_0100"), "--suite", suite, "--report-only",
                 "--collect-only")
    assert listed.ret == 0, listed.stdout.str() + listed.stderr.str()


def test_a_margins_file_naming_what_the_suite_lacks_is_a_usage_error(
    pytester: pytest.Pytester, demo_root: Path, tmp_path: Path
) -> None:
    margins = tmp_path / "margins.yaml"
    margins.write_text("margins:\n  choice:\n    acc,none: 0.05\n  chioce:\n    acc,none: 0.05\n")
    result = run(pytester, EVALTESTS, "--checkpoint", str(demo_root / "step_0100"), "--margins", str(margins))
    assert_usage_error(result, "margins for benchmark/metric(s) the suite does not have: chioce acc,none")
