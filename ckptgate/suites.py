"""Suites: data files that declare which benchmarks run and what each must reach.

A suite is a YAML file (``evaltests/suites/<name>.yaml``, or any path) listing benchmarks. Each
benchmark names an lm-eval task, its few-shot count and the metrics it reports, with optional
``min``/``max`` thresholds. A benchmark is run by the test function in ``evaltests/`` that
carries ``@pytest.mark.gate("<test>")``; that function is parametrized over the suite's
benchmarks for it and over the checkpoints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptgate.errors import SuiteError
from ckptgate.margins import Margin, apply_file, default_margin
from ckptgate.resources import evaltests_dir
from ckptgate.yamlfile import LineDict, check_keys, load_mapping, names_in, resolve_data_file

EVALTESTS_DIR = evaltests_dir()
SUITES_DIR = EVALTESTS_DIR / "suites"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class MetricGate:
    """One metric of a benchmark, keyed exactly as lm-eval names it (``metric,filter``).

    ``min``/``max`` are absolute thresholds (rates that must hold). ``primary`` metrics gate
    against bridges and baselines (PASS, FAIL or INCONCLUSIVE); the others are compared and
    reported but never decide the run. ``margin`` is the smallest regression that matters (see
    :mod:`ckptgate.margins`; None only for a secondary metric of no known kind, compared with
    margin 0); ``detect`` is the smallest worsening the gate should see: a comparison whose
    minimum detectable effect is larger is marked underpowered.
    ``reference`` names a baseline entry published with another harness (e.g. ``report_mmlu``,
    a technical report's number): shown next to this metric for context, never gated; a metric
    with one needs no lm-eval entry of its own in the baseline.
    """

    key: str
    min: float | None = None
    max: float | None = None
    primary: bool = False
    margin: Margin | None = None
    detect: float | None = None
    reference: str | None = None

    @property
    def gating(self) -> bool:
        return self.min is not None or self.max is not None

    def threshold_text(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts) if parts else "report only"

    def passes(self, value: float) -> bool:
        if self.min is not None and not value >= self.min:
            return False
        if self.max is not None and not value <= self.max:
            return False
        return True


@dataclass(frozen=True)
class Benchmark:
    """A benchmark of a suite: an lm-eval task at a given few-shot count, and its gates."""

    id: str
    test: str
    task: str
    metrics: tuple[MetricGate, ...]
    num_fewshot: int | None = None
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    description: str = ""
    # Also score the log-probability of each item's reference answer (generation tasks): a
    # lower-variance paired signal reported next to exact match to explain its movements.
    gold_logprob: bool = False
    # Runs only when asked for by name (-k or node id): e.g. a benchmark recorded to explain why
    # it is misleading, which must never gate by accident.
    opt_in: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "opt_in": self.opt_in,
            "gold_logprob": self.gold_logprob,
            "test": self.test,
            "task": self.task,
            "num_fewshot": self.num_fewshot,
            "gen_kwargs": dict(self.gen_kwargs),
            "tags": list(self.tags),
            "metrics": [
                {"key": m.key, "min": m.min, "max": m.max, "primary": m.primary,
                 "margin": None if m.margin is None else m.margin.text(),
                 "margin_source": None if m.margin is None else m.margin.source,
                 "detect": m.detect, "reference": m.reference}
                for m in self.metrics
            ],
        }


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    task_paths: tuple[Path, ...]
    include_default_tasks: bool
    benchmarks: tuple[Benchmark, ...]
    description: str = ""
    bridge: str | None = None  # checkpoint path (or "demo") compared with every candidate
    # Longest sequence (prompt + generation) the model sees, in tokens: vLLM's max_model_len, the
    # hf backend's max_length. None: the model's own limit. A setting that changes numbers.
    max_model_len: int | None = None
    # Hub dataset repository -> revision (commit or tag) that ``ckptgate prefill`` fetches; a
    # dataset not listed is pinned at whatever the hub serves when prefill runs (the manifest
    # records the commit, and every later run reads exactly that).
    dataset_revisions: dict[str, str] = field(default_factory=dict)
    margins_file: Path | None = None  # the margins file applied (the suite's ``margins:`` or --margins)

    def for_test(self, test: str) -> list[Benchmark]:
        return [b for b in self.benchmarks if b.test == test]

    def tags(self) -> set[str]:
        return {tag for b in self.benchmarks for tag in b.tags}


def available_suites() -> list[str]:
    return names_in(SUITES_DIR)


def resolve_suite_path(name_or_path: str) -> Path:
    """A suite name (``demo``) or a path to a suite file."""
    return resolve_data_file(name_or_path, SUITES_DIR, "suite", SuiteError)


def load_suite(name_or_path: str, margins: str | Path | None = None) -> Suite:
    """The suite, with the margins of ``margins`` (a margins file) or else of the suite's own
    ``margins:`` file applied over its metrics' margins."""
    path = resolve_suite_path(name_or_path)
    data = load_mapping(
        path, what="the suite", required={"name", "benchmarks"},
        optional={"description", "task_paths", "include_default_tasks", "bridge", "max_model_len",
                  "dataset_revisions", "margins"},
        error=SuiteError,
    )
    max_model_len = data.get("max_model_len")
    if max_model_len is not None and (isinstance(max_model_len, bool) or not isinstance(max_model_len, int) or max_model_len < 1):
        raise SuiteError(f"{path}:{data.line_of('max_model_len')}: max_model_len must be a positive number of tokens")
    task_paths = tuple(
        _task_path(path, data, raw) for raw in _list(data, "task_paths", path)
    )
    include_defaults = data.get("include_default_tasks", True)
    if not isinstance(include_defaults, bool):
        raise SuiteError(f"{path}:{data.line_of('include_default_tasks')}: must be true or false")
    raw_benchmarks = _list(data, "benchmarks", path)
    if not raw_benchmarks:
        raise SuiteError(f"{path}:{data.line_of('benchmarks')}: the suite lists no benchmarks")
    benchmarks = tuple(_benchmark(path, raw) for raw in raw_benchmarks)
    _reject_duplicates(path, raw_benchmarks, benchmarks)
    margins_file = _margins_file(path, data, margins)
    if margins_file is not None:
        benchmarks = apply_file(benchmarks, margins_file)
    return Suite(
        name=str(data["name"]),
        path=path,
        task_paths=task_paths,
        include_default_tasks=include_defaults,
        benchmarks=benchmarks,
        description=str(data.get("description", "")),
        bridge=_bridge(path, data),
        max_model_len=max_model_len,
        dataset_revisions=_revisions(path, data),
        margins_file=margins_file,
    )


def _margins_file(path: Path, data: LineDict, option: str | Path | None) -> Path | None:
    """The margins file to apply: --margins, else the suite's ``margins:`` (relative to the suite)."""
    if option is not None:
        chosen, where = Path(option).expanduser().resolve(), "--margins"
    elif data.get("margins") is not None:
        raw = data["margins"]
        if not isinstance(raw, str) or not raw:
            raise SuiteError(f"{path}:{data.line_of('margins')}: margins names a margins file (ckptgate calibrate writes one)")
        chosen, where = (path.parent / raw).expanduser().resolve(), f"{path}:{data.line_of('margins')}"
    else:
        return None
    if not chosen.is_file():
        raise SuiteError(f"{where}: margins file {chosen} does not exist (write one with `ckptgate calibrate`)")
    return chosen


def _revisions(path: Path, data: LineDict) -> dict[str, str]:
    raw = data.get("dataset_revisions", {})
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items()):
        raise SuiteError(f"{path}:{data.line_of('dataset_revisions')}: dataset_revisions maps hub dataset "
                         "repositories to revisions, e.g. {openai/gsm8k: <commit>}")
    return dict(raw)


def _bridge(path: Path, data: LineDict) -> str | None:
    """The stage's bridge checkpoint (e.g. the previous stage's last step), relative to the suite
    file; ``demo`` names the demo bridge. Checked like any --bridge when the run starts."""
    raw = data.get("bridge")
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        raise SuiteError(f"{path}:{data.line_of('bridge')}: bridge must be a checkpoint path")
    return raw if raw == "demo" else str((path.parent / raw).expanduser().resolve())


def _list(data: LineDict, key: str, path: Path) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise SuiteError(f"{path}:{data.line_of(key)}: {key!r} must be a list")
    return value


def _task_path(suite_path: Path, data: LineDict, raw: Any) -> Path:
    resolved = (suite_path.parent / str(raw)).resolve()
    if not resolved.is_dir():
        raise SuiteError(
            f"{suite_path}:{data.line_of('task_paths')}: task directory {raw!r} "
            f"(resolved to {resolved}) does not exist"
        )
    return resolved


def _benchmark(path: Path, raw: Any) -> Benchmark:
    if not isinstance(raw, LineDict):
        raise SuiteError(f"{path}: each benchmark must be a mapping, got {raw!r}")
    check_keys(
        raw,
        path=path,
        what=f"benchmark {raw.get('id', '?')!r}",
        required={"id", "task", "metrics"},
        optional={"test", "num_fewshot", "gen_kwargs", "tags", "description", "gold_logprob", "opt_in"},
        error=SuiteError,
    )
    bench_id = str(raw["id"])
    if not _ID.match(bench_id):
        raise SuiteError(
            f"{path}:{raw.line_of('id')}: benchmark id {bench_id!r} must be letters, digits, '_', '.', '-'"
        )
    num_fewshot = raw.get("num_fewshot")
    if num_fewshot is not None and (not isinstance(num_fewshot, int) or num_fewshot < 0):
        raise SuiteError(f"{path}:{raw.line_of('num_fewshot')}: num_fewshot must be an integer >= 0")
    gen_kwargs = raw.get("gen_kwargs", {})
    if not isinstance(gen_kwargs, dict):
        raise SuiteError(f"{path}:{raw.line_of('gen_kwargs')}: gen_kwargs must be a mapping")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.isidentifier() for t in tags):
        raise SuiteError(f"{path}:{raw.line_of('tags')}: tags must be a list of identifiers")
    gold_logprob, opt_in = _flag(path, raw, "gold_logprob"), _flag(path, raw, "opt_in")
    metrics = raw["metrics"]
    if not isinstance(metrics, list) or not metrics:
        raise SuiteError(f"{path}:{raw.line_of('metrics')}: metrics must be a non-empty list")
    return Benchmark(
        id=bench_id,
        test=str(raw.get("test", bench_id)),
        task=str(raw["task"]),
        metrics=tuple(_metric(path, m) for m in metrics),
        num_fewshot=num_fewshot,
        gen_kwargs=dict(gen_kwargs),
        tags=tuple(tags),
        description=str(raw.get("description", "")),
        gold_logprob=gold_logprob,
        opt_in=opt_in,
    )


def _flag(path: Path, raw: LineDict, key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SuiteError(f"{path}:{raw.line_of(key)}: {key} must be true or false")
    return value


def _metric(path: Path, raw: Any) -> MetricGate:
    if not isinstance(raw, LineDict):
        raise SuiteError(f"{path}: each metric must be a mapping with 'key', got {raw!r}")
    check_keys(
        raw,
        path=path,
        what="a metric",
        required={"key"},
        optional={"min", "max", "primary", "margin", "detect", "reference"},
        error=SuiteError,
    )
    bounds = {name: _number(path, raw, name) for name in ("min", "max", "detect")}
    if (bounds["detect"] or 0.0) < 0:
        raise SuiteError(f"{path}:{raw.line_of('detect')}: detect must be >= 0, got {bounds['detect']}")
    primary = raw.get("primary", False)
    if not isinstance(primary, bool):
        raise SuiteError(f"{path}:{raw.line_of('primary')}: primary must be true or false")
    key = str(raw["key"])
    if "," not in key:
        raise SuiteError(
            f"{path}:{raw.line_of('key')}: metric key {key!r} must be lm-eval's 'metric,filter' "
            f"form, e.g. 'exact_match,strict-match' or 'acc,none'"
        )
    reference = raw.get("reference")
    if reference is not None and not (isinstance(reference, str) and _ID.match(reference)):
        raise SuiteError(f"{path}:{raw.line_of('reference')}: reference names a baseline entry's benchmark "
                         f"(e.g. report_mmlu), got {reference!r}")
    if "margin" in raw:
        margin: Margin | None = Margin.parse(raw["margin"], f"{path}:{raw.line_of('margin')}")
    else:
        margin = default_margin(key)
        if margin is None and primary:
            raise SuiteError(
                f"{path}:{raw.line_of('key')}: primary metric {key!r} is of no kind with a default margin "
                "(0/1 accuracies, pass@k, rates, perplexity and bits per byte): declare the smallest regression "
                "that matters, e.g. `margin: 0.01` (metric units) or `margin: '1%'` (of the reference)"
            )
    return MetricGate(
        key=key,
        min=bounds["min"],
        max=bounds["max"],
        primary=primary,
        margin=margin,
        detect=bounds["detect"],
        reference=reference,
    )


def _number(path: Path, raw: LineDict, name: str) -> float | None:
    value = raw.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise SuiteError(f"{path}:{raw.line_of(name)}: {name} must be a number, got {value!r}")
    return None if value is None else float(value)


def _reject_duplicates(path: Path, raws: list[Any], benchmarks: tuple[Benchmark, ...]) -> None:
    seen: set[str] = set()
    for raw, bench in zip(raws, benchmarks):
        if bench.id in seen:
            raise SuiteError(f"{path}:{raw.line_of('id')}: benchmark id {bench.id!r} appears twice")
        seen.add(bench.id)
