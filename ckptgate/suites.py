"""Suites: data files that declare which benchmarks run and what each must reach.

A suite is a YAML file (``evaltests/suites/<name>.yaml``, or any path) listing benchmarks. Each
benchmark names an lm-eval task, its few-shot count and the metrics it reports, with optional
``min``/``max`` thresholds. A benchmark is run by the test function in ``evaltests/`` that
carries ``@pytest.mark.gate("<test>")``; that function is parametrized over the suite's
benchmarks for it and over the checkpoints.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import ValidationInfo, field_validator, model_validator

from ckptgate.errors import SuiteError
from ckptgate.margins import Margin, apply_file, default_margin
from ckptgate.resources import evaltests_dir
from ckptgate.yamlfile import ID, Flag, Invalid, LineDict, Message, Model, Number, Text, load_model, resolve_data_file, rule

EVALTESTS_DIR = evaltests_dir()
SUITES_DIR = EVALTESTS_DIR / "suites"
KINDS = ("lm_eval", "perplexity")  # what scores a benchmark: an lm-eval task, a perplexity slice
GOALS = ("keep", "improve")  # what a staged evaluation asks of a benchmark against its bridge
TIERS = ("tier2", "tier3", "tier4")  # a staged evaluation's tiers: perplexity, choice tasks, SFT probes
# the per-checkpoint files a staged evaluation writes beside the benchmark records (no benchmark may be named so)
TIER_OUTPUTS = ("tier2_ppl", "tier3_cf", "tier4_sft_native", "tier4_sft_native_generations")


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
class PerplexitySettings:
    """How a perplexity slice is scored: ``target_tokens`` of whole documents (of the model's own
    tokenizer), windows of ``seq_len`` tokens advancing by ``stride`` (each scored token has at
    least ``seq_len - stride`` tokens of context at a window boundary)."""

    seq_len: int
    stride: int
    target_tokens: int


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
    # Score a deterministic random subset of this many documents (drawn with the run's seed; for
    # a group, each member in proportion to its size) instead of all of them: large choice tasks
    # keep their statistical power at a fraction of the cost. None: every document.
    subset: int | None = None
    # Prompts rendered with the checkpoint's chat template (lm-eval's --apply_chat_template,
    # few-shot examples as turns): for instruction-tuned checkpoints, which are used that way.
    chat_template: bool = False
    # What scores it: an lm-eval task ("lm_eval"), or a perplexity slice ("perplexity": ``task``
    # names the slice, ``perplexity`` how it is scored).
    kind: str = "lm_eval"
    perplexity: PerplexitySettings | None = None
    # A staged evaluation's tier (tier2, tier3, tier4) and what the stage asks of it: "keep" (not
    # worse than the bridge: the gate's non-inferiority test) or "improve" (also a one-sided
    # superiority test against the bridge, reported per stage, never deciding GO / NO-GO).
    tier: str | None = None
    goal: str = "keep"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "perplexity": None if self.perplexity is None else asdict(self.perplexity),
            "tier": self.tier,
            "goal": self.goal,
            "opt_in": self.opt_in,
            "subset": self.subset,
            "chat_template": self.chat_template,
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


def resolve_suite_path(name_or_path: str) -> Path:
    """A suite name (``demo``) or a path to a suite file."""
    return resolve_data_file(name_or_path, SUITES_DIR, "suite", SuiteError)


def load_suite(name_or_path: str, margins: str | Path | None = None) -> Suite:
    """The suite, with the margins of ``margins`` (a margins file) or else of the suite's own
    ``margins:`` file applied over its metrics' margins."""
    path = resolve_suite_path(name_or_path)
    spec, data = load_model(path, _SuiteFile, SuiteError, context={"folder": path.parent})
    benchmarks = spec.all_benchmarks()
    margins_file = _margins_file(path, data, margins)
    if margins_file is not None:
        benchmarks = apply_file(benchmarks, margins_file)
    return Suite(
        name=spec.name,
        path=path,
        task_paths=tuple(Path(p) for p in spec.task_paths),
        include_default_tasks=spec.include_default_tasks,
        benchmarks=benchmarks,
        description=spec.description,
        bridge=spec.bridge,
        max_model_len=spec.max_model_len,
        dataset_revisions=dict(spec.dataset_revisions),
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


# --- the file's schema ------------------------------------------------------------------------


def _parse_margin(raw: Any) -> Margin:
    try:
        return Margin.parse(raw, "")
    except SuiteError as exc:  # Margin.parse names the place first; the key's line replaces it
        raise Invalid(str(exc).removeprefix(": ")) from None


class _MetricSpec(Model):
    what: ClassVar[str | None] = "a metric"
    not_a_mapping: ClassVar[str] = "each metric must be a mapping with 'key', got {value!r}"

    key: Annotated[Text, rule(lambda key: "," in key), Message(
        "metric key {value!r} must be lm-eval's 'metric,filter' form, e.g. 'exact_match,strict-match' or 'acc,none'")]
    min: Number | None = None
    max: Number | None = None
    primary: Flag = False
    margin: Margin | None = None  # default (absent): the metric kind's, see gate()
    detect: Annotated[Number | None, rule(lambda d: not (d or 0.0) < 0, "detect must be >= 0, got {value}")] = None
    reference: Annotated[str | None, rule(lambda ref: ref is None or ID.match(ref)), Message(
        "reference names a baseline entry's benchmark (e.g. report_mmlu), got {value!r}")] = None

    @field_validator("margin", mode="plain")
    @classmethod
    def _margin(cls, raw: Any) -> Margin:
        return _parse_margin(raw)

    @model_validator(mode="after")
    def _margin_known(self) -> Self:
        if self.primary and "margin" not in self.model_fields_set and default_margin(self.key) is None:
            raise Invalid(
                f"primary metric {self.key!r} is of no kind with a default margin (0/1 accuracies, pass@k, rates, "
                "perplexity and bits per byte): declare the smallest regression that matters, e.g. `margin: 0.01` "
                "(metric units) or `margin: '1%'` (of the reference)", "key")
        return self

    def gate(self) -> MetricGate:
        margin = self.margin if "margin" in self.model_fields_set else default_margin(self.key)
        return MetricGate(**{**dict(self), "margin": margin})


def _fewshot(count: Any) -> bool:
    return count is None or isinstance(count, int) and count >= 0  # (a bool passes: True is an int)


Fewshot = Annotated[Any, rule(_fewshot), Message("num_fewshot must be an integer >= 0")]
SubsetSize = Annotated[int | None, rule(lambda n: n is None or (type(n) is int and n >= 1)),
                       Message("subset must be a positive number of documents, got {value!r}")]


class _BenchmarkSpec(Model):
    what: ClassVar[str | None] = "benchmark {id!r}"
    not_a_mapping: ClassVar[str] = "each benchmark must be a mapping, got {value!r}"

    id: Annotated[Text, rule(ID.match), Message("benchmark id {value!r} must be letters, digits, '_', '.', '-'")]
    task: Text
    metrics: Annotated[list[_MetricSpec], rule(bool), Message("metrics must be a non-empty list")]
    test: Text = ""  # default (absent): the id
    num_fewshot: Fewshot = None
    gen_kwargs: Annotated[dict[Any, Any], Message("gen_kwargs must be a mapping")] = {}
    tags: Annotated[list[str], rule(lambda tags: all(t.isidentifier() for t in tags)),
                    Message("tags must be a list of identifiers")] = []
    description: Text = ""
    gold_logprob: Flag = False
    opt_in: Flag = False
    subset: SubsetSize = None
    chat_template: Flag = False
    kind: Annotated[str, rule(lambda kind: kind in KINDS), Message(
        "kind must be one of " + ", ".join(KINDS) + ", got {value!r}")] = "lm_eval"
    perplexity: _PerplexitySpec | None = None
    tier: Annotated[str | None, rule(lambda tier: tier is None or tier in TIERS), Message(
        "tier must be one of " + ", ".join(TIERS) + ", got {value!r}")] = None
    goal: Annotated[str, rule(lambda goal: goal in GOALS), Message(
        "goal must be 'keep' (not worse than the bridge) or 'improve' (shown better), got {value!r}")] = "keep"

    @model_validator(mode="after")
    def _kind_settings(self) -> Self:
        if (self.kind == "perplexity") != (self.perplexity is not None):
            raise Invalid("a benchmark of kind 'perplexity' (and only one) gives its `perplexity:` settings "
                          "(seq_len, stride, target_tokens); its task names the slice", "kind")
        return self

    def benchmark(self) -> Benchmark:
        return Benchmark(**{
            **dict(self),
            "test": self.test if "test" in self.model_fields_set else self.id,
            "metrics": tuple(metric.gate() for metric in self.metrics),
            "tags": tuple(self.tags),
            "perplexity": None if self.perplexity is None else self.perplexity.settings(),
        })


Positive = Annotated[int, rule(lambda n: type(n) is int and n >= 1), Message("{name} must be a positive integer, got {value!r}")]


class _PerplexitySpec(Model):
    what: ClassVar[str | None] = "perplexity settings"

    seq_len: Annotated[int, rule(lambda n: type(n) is int and n >= 2),
                       Message("seq_len must be an integer >= 2 (tokens per window), got {value!r}")]
    stride: Positive | None = None  # default: half of seq_len
    target_tokens: Positive = 5_000_000

    @model_validator(mode="after")
    def _stride_fits(self) -> Self:
        if self.stride is not None and not self.stride < self.seq_len:
            raise Invalid(f"stride must be below seq_len ({self.seq_len}), got {self.stride}: each window keeps "
                          "seq_len - stride tokens of context", "stride")
        return self

    def settings(self) -> PerplexitySettings:
        return PerplexitySettings(self.seq_len, self.stride or self.seq_len // 2, self.target_tokens)


# --- stage tiers: a staged pretraining evaluation's benchmarks, written compactly -------------


class _Tier(Model):
    """What every tier has: its goal, and the items that must improve when the rest keep."""

    goal: Annotated[str, rule(lambda goal: goal in GOALS), Message(
        "goal must be 'keep' (not worse than the bridge) or 'improve' (shown better), got {value!r}")] = "keep"
    improve: Annotated[list[str], Message("improve lists this tier's items that must improve")] = []
    margin: Margin | None = None  # the primary metric's (default: its kind's)

    @field_validator("margin", mode="plain")
    @classmethod
    def _margin(cls, raw: Any) -> Margin:
        return _parse_margin(raw)

    def items(self) -> list[str]:
        raise NotImplementedError

    @model_validator(mode="after")
    def _improve_known(self) -> Self:
        items = self.items()
        for index, name in enumerate(self.improve):
            if name not in items:
                raise Invalid(f"improve names {name!r}, which this tier does not list{did_you_mean(name, items)}",
                              "improve", index)
        return self

    def goal_of(self, item: str) -> str:
        return "improve" if item in self.improve else self.goal

    def primary(self, key: str) -> dict[str, Any]:
        return {"key": key, "primary": True} | ({} if self.margin is None else {"margin": self.margin.text()})


class _Tier2(_Tier, _PerplexitySpec):
    what: ClassVar[str | None] = "tier2 (perplexity slices)"

    slices: Annotated[list[str], rule(bool), Message("slices must be a non-empty list of slice ids")]

    def items(self) -> list[str]:
        return self.slices

    def benchmarks(self) -> list[dict[str, Any]]:
        settings = {"seq_len": self.seq_len, "stride": self.stride, "target_tokens": self.target_tokens}
        return [{"id": f"tier2_{name}", "test": "tier2_ppl", "task": name, "kind": "perplexity",
                 "perplexity": {k: v for k, v in settings.items() if v is not None}, "tier": "tier2",
                 "goal": self.goal_of(name), "tags": ["tier2", "perplexity"],
                 "metrics": [self.primary("bits_per_byte,none"), {"key": "token_perplexity,none"}]}
                for name in self.slices]


class _Tier3(_Tier):
    what: ClassVar[str | None] = "tier3 (choice tasks)"

    tasks: Annotated[list[str], rule(bool), Message("tasks must be a non-empty list of lm-eval task names")]
    subset: SubsetSize = None  # documents per task (a deterministic subset by the run's seed)
    num_fewshot: Fewshot = 0
    # tasks whose lm-eval definition reports acc only (no length-normalised acc_norm)
    acc_only: Annotated[list[str], Message("acc_only lists tasks that report acc only")] = []

    def items(self) -> list[str]:
        return self.tasks

    def benchmarks(self) -> list[dict[str, Any]]:
        return [{"id": f"tier3_{name}", "test": "tier3_cf", "task": name, "subset": self.subset,
                 "num_fewshot": self.num_fewshot, "tier": "tier3", "goal": self.goal_of(name),
                 "tags": ["tier3", "loglikelihood"],
                 "metrics": [self.primary("acc,none")] + ([] if name in self.acc_only else [{"key": "acc_norm,none"}])}
                for name in self.tasks]


class _Tier4(_Tier):
    what: ClassVar[str | None] = "tier4 (SFT-native probes)"

    probes: Annotated[list[str], rule(bool), Message("probes must be a non-empty list of probe sets")]

    def items(self) -> list[str]:
        return self.probes

    def benchmarks(self) -> list[dict[str, Any]]:
        return [{"id": f"tier4_{name}_probes", "test": "tier4_sft_native", "task": name, "chat_template": True,
                 "num_fewshot": 0, "tier": "tier4", "goal": self.goal_of(name), "tags": ["tier4", "generation"],
                 "metrics": [{"margin": 0.1} | self.primary("all_checks_pass,none"),
                             {"key": "instruction_match,none"}, {"key": "chat_clean,none"}]}
                for name in self.probes]


class _Tiers(Model):
    what: ClassVar[str | None] = "tiers"

    tier2: _Tier2 | None = None
    tier3: _Tier3 | None = None
    tier4: _Tier4 | None = None

    def benchmarks(self) -> list[dict[str, Any]]:
        return [bench for tier in (self.tier2, self.tier3, self.tier4) if tier is not None for bench in tier.benchmarks()]


def did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


class _SuiteFile(Model):
    what: ClassVar[str | None] = "the suite"

    name: Text
    benchmarks: Annotated[list[_BenchmarkSpec], Message("'benchmarks' must be a list")] = []
    # a staged evaluation's tiers, each compiled into benchmarks like those listed above
    tiers: _Tiers | None = None
    description: Text = ""
    task_paths: Annotated[list[Any], Message("'task_paths' must be a list")] = []  # resolved, see below
    include_default_tasks: Flag = True
    bridge: Annotated[str | None, rule(lambda bridge: bridge is None or bridge),
                      Message("bridge must be a checkpoint path")] = None
    max_model_len: Annotated[int | None, rule(lambda n: n is None or n >= 1),
                             Message("max_model_len must be a positive number of tokens")] = None
    dataset_revisions: Annotated[dict[str, str], rule(lambda revisions: all(revisions.values())), Message(
        "dataset_revisions maps hub dataset repositories to revisions, e.g. {{openai/gsm8k: <commit>}}")] = {}
    margins: Any = None  # checked by _margins_file: --margins replaces it unread

    @field_validator("task_paths")
    @classmethod
    def _task_dirs(cls, raws: list[Any], info: ValidationInfo) -> list[str]:
        """Task directories, relative to the suite file."""
        resolved = [(info.context["folder"] / str(raw)).resolve() for raw in raws]
        for raw, folder in zip(raws, resolved):
            if not folder.is_dir():
                raise Invalid(f"task directory {raw!r} (resolved to {folder}) does not exist")
        return [str(folder) for folder in resolved]

    @field_validator("bridge")
    @classmethod
    def _bridge_path(cls, raw: str | None, info: ValidationInfo) -> str | None:
        """The stage's bridge checkpoint (e.g. the previous stage's last step), relative to the suite
        file, with ``~`` and environment variables ($SCRATCH) expanded; ``demo`` names the demo
        bridge. Checked like any --bridge when the run starts."""
        if raw is None or raw == "demo":
            return raw
        expanded = os.path.expandvars(raw)
        if "$" in expanded:  # an unset variable: an error only when the run uses it (no --bridge)
            return expanded
        return str((info.context["folder"] / expanded).expanduser().resolve())

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        if not self.benchmarks and self.tiers is None:
            raise Invalid("the suite lists no benchmarks (and no tiers)")
        seen: set[str] = set()
        for index, bench in enumerate(self.benchmarks):
            if bench.id in seen:
                raise Invalid(f"benchmark id {bench.id!r} appears twice", "benchmarks", index, "id")
            seen.add(bench.id)
        clashes = seen & {spec["id"] for spec in (self.tiers.benchmarks() if self.tiers else [])}
        if clashes:
            raise Invalid(f"benchmark id(s) {', '.join(sorted(clashes))} are also made by the tiers", "tiers")
        taken = seen & set(TIER_OUTPUTS) if self.tiers else set()
        if taken:
            raise Invalid(f"benchmark id(s) {', '.join(sorted(taken))} would share a file name with a tier's output "
                          f"({', '.join(TIER_OUTPUTS)}): rename them", "benchmarks")
        return self

    def all_benchmarks(self) -> tuple[Benchmark, ...]:
        """The listed benchmarks, then the tiers' (valid by construction: their fields were
        checked as the tiers' own)."""
        compiled = [_BenchmarkSpec.model_validate(spec) for spec in (self.tiers.benchmarks() if self.tiers else [])]
        return tuple(bench.benchmark() for bench in [*self.benchmarks, *compiled])
