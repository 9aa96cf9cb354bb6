"""Verdicts: a benchmark's metrics against thresholds, bridge checkpoints and stored baselines.

Each metric yields one :class:`Check` per thing it is held against:

- ``threshold``: an absolute floor/ceiling from the suite (rates that must hold);
- ``bridge:<label>``: a paired test on the per-item records of a bridge checkpoint;
- ``baseline:<name>``: a one-sided z-test against a stored reference number.

Only the suite's **primary** metrics gate; the rest are reported with their p-values. Each
primary comparison with a reference ends in one of three outcomes (``margin`` = the smallest
regression that matters, ``D`` = the candidate's oriented difference, negative when worse):

- **PASS** when the non-inferiority test rejects "D <= -margin" at the run's ``alpha``: the data
  show the candidate is not worse by the margin or more. Error rate: a candidate truly worse by
  the margin passes with probability alpha or less (exactly for the exact tests; for the score
  tests within a few thousandths of it, by enumeration: see :mod:`ckptgate.stats`); the run is
  GO only when every comparison passes (an intersection-union test), so the bound holds for GO.
- **FAIL** when the regression test rejects "D >= 0" after Holm's correction over the run's
  primary comparisons at family-wise ``alpha`` *and* the estimated worsening reaches the margin:
  a regression is shown and it is material. Error rate: when no candidate is worse at all, the
  run FAILs with probability <= alpha, whatever the dependence between its comparisons.
- **INCONCLUSIVE** otherwise: the data can show neither (too few items, or a regression whose
  size cannot be told from the margin). Never a pass.

Why FAIL tests "D >= 0" rather than "D >= -margin": a test of the shifted null fails only
regressions shown to exceed the margin, which at benchmark sizes users have (GSM8K's 1,319 items)
lets a drop of twice the margin pass as INCONCLUSIVE most of the time; testing for any regression
keeps the family-wise false-alarm guarantee, and the margin on the estimate keeps a significant
but immaterial change (a perplexity 0.02% higher) from failing. The cost, stated in the docs: a
true drop just inside the margin FAILs about half the time once it is significant.

A test cannot see the other tests' p-values, so it fails at once only when Holm rejects whatever
the others show (``p < alpha / m``); a material comparison with ``alpha / m <= p < alpha`` is
*pending* and settled by :func:`settle` when the run ends (FAIL or INCONCLUSIVE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ckptgate import pairing, stats
from ckptgate.errors import SuiteError
from ckptgate.scores import MetricValue
from ckptgate.suites import MetricGate

if TYPE_CHECKING:
    from ckptgate.baselines import Baseline, BaselineEntry
    from ckptgate.scores import ScoreResult
    from ckptgate.suites import Benchmark

# The worsening a comparison of a 0/1 metric should be able to see when the suite declares none:
# 3 points, the drop a GSM8K-sized benchmark resolves at 80% power.
DEFAULT_DETECT_BINARY = 0.03
T = TypeVar("T")
VERDICTS = ("pass", "fail", "inconclusive", "pending", "error", "info", "improved", "not_improved")
IMPROVE = "improve:"  # ``against`` prefix of a superiority test (a stage's goal "improve"), never gating
DECIDED = ("pass", "fail", "inconclusive", "pending")  # the verdicts of a gating comparison


@dataclass(frozen=True)
class Check:
    """One line of a verdict: a metric held against a threshold, a bridge or a baseline."""

    metric: str
    against: str  # "" (report only) | "threshold" | "bridge:<label>" | "baseline:<name>"
    primary: bool
    value: float | None
    stderr: float | None
    n: int | None
    verdict: str  # one of VERDICTS
    threshold: str = ""
    reference: float | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None  # regression test (H0: not worse)
    p_holm: float | None = None
    p_noninferiority: float | None = None  # margin test (H0: worse by the margin or more)
    margin: float | None = None  # metric units
    material: bool = False  # the estimated worsening reaches the margin
    mde: float | None = None
    underpowered: bool = False
    method: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Policy:
    """The run's error control: family-wise ``alpha`` over ``family_size`` primary comparisons."""

    alpha: float = 0.05
    family_size: int = 1

    @property
    def certain_alpha(self) -> float:
        """Below this p, Holm rejects whatever the rest of the family shows (Bonferroni)."""
        return self.alpha / max(1, self.family_size)


@dataclass(frozen=True)
class References:
    """What a candidate's benchmark is held against besides its thresholds."""

    bridges: Sequence[tuple[str, ScoreResult]] = ()  # (label, the bridge's result on the benchmark)
    baseline: Baseline | None = None
    settings: dict[str, Any] | None = None  # this run's number-changing settings, for the baseline


def judge(
    benchmark: Benchmark,
    score: ScoreResult,
    *,
    role: str = "candidate",
    references: References = References(),
    policy: Policy = Policy(),
) -> list[Check]:
    """Every check of every declared metric; a declared metric the scorer did not report is an error."""
    missing = [m.key for m in benchmark.metrics if m.key not in score.metrics]
    if missing:
        raise SuiteError(
            f"benchmark {benchmark.id!r} (task {benchmark.task!r}) declares metric(s) "
            f"{', '.join(missing)} but the task reported only: {', '.join(sorted(score.metrics))}"
        )
    checks: list[Check] = []
    for gate in benchmark.metrics:
        measured = score.metrics[gate.key]
        rows = [_threshold(gate, measured, role)] if gate.gating else []
        if role == "candidate":
            rows += [_vs_bridge(gate, measured, score, label, ref, policy) for label, ref in references.bridges]
            if gate.primary and benchmark.goal == "improve":
                rows += [c for label, ref in references.bridges if (c := _improvement(gate, measured, score, label, ref, policy))]
            if references.baseline is not None:
                rows += _vs_baseline(benchmark, gate, measured, score, references, policy)
        checks += rows or [_report_only(gate, measured)]
    if role == "candidate":
        checks += [c for label, ref in references.bridges if (c := _gold_signal(score, label, ref, policy))]
    return checks


def _gold_signal(score: ScoreResult, label: str, ref: ScoreResult, policy: Policy) -> Check | None:
    """Secondary row: the paired change in the gold answer's log-probability, to explain accuracy."""
    cand, base = pairing.gold_logprobs(score.samples), pairing.gold_logprobs(ref.samples)
    if cand is None or base is None:
        return None
    value = math.fsum(s["gold_logprob"] for s in cand) / len(cand)
    reference = math.fsum(s["gold_logprob"] for s in base) / len(base)
    key = pairing.GOLD_LOGPROB
    try:
        comparison = pairing.compare(cand, base, key, value=value, reference=reference, higher_is_better=True,
                                     margin=0.0)
    except pairing.PairingError as exc:
        return Check(key, f"bridge:{label}", False, value, None, len(cand), "info", note=str(exc))
    measured = MetricValue(value, None, len(cand))
    signal = MetricGate(key, primary=False)
    return replace(_from_comparison(signal, measured, f"bridge:{label}", comparison, False, policy),
                   note="mean log-probability of the gold answer: explains accuracy movements, never gates")


def _improvement(gate: MetricGate, measured: MetricValue, score: ScoreResult, label: str, ref: ScoreResult,
                 policy: Policy) -> Check | None:
    """A stage's goal "improve": the one-sided superiority test against the bridge (H0: not
    better), ``improved`` when it rejects at ``alpha`` (Holm over the run's improvement tests
    when the run ends, :func:`settle_improvements`). Reported, never gating: GO / NO-GO rests on
    the non-inferiority comparison beside it. None when the two cannot be paired (that row says why)."""
    ref_value = ref.metrics.get(gate.key)
    if measured.value is None or ref_value is None or ref_value.value is None:
        return None
    try:
        comparison = pairing.compare(score.samples, ref.samples, gate.key, value=measured.value,
                                     reference=ref_value.value, higher_is_better=score.better_is_higher(gate.key),
                                     margin=0.0)
    except (pairing.PairingError, KeyError, ValueError):
        return None
    p_better = comparison.p_noninferiority  # with margin 0: H0 "D <= 0", i.e. not better
    return replace(
        _from_comparison(replace(gate, primary=False), measured, f"{IMPROVE}{label}", comparison, False, policy),
        verdict="improved" if p_better < policy.alpha else "not_improved", p_value=p_better, p_noninferiority=None,
        threshold="goal: improve (one-sided superiority test)", material=False, underpowered=False,
        note="the stage asks this metric to improve on the bridge: reported, never gating",
    )


def settle_improvements(rows: Sequence[T], alpha: float) -> list[T]:
    """Holm's procedure over the run's improvement tests: ``improved`` only where the adjusted
    p-value is below ``alpha`` (so the chance that any "improved" is false is at most alpha)."""
    family = [i for i, row in enumerate(rows) if row.against.startswith(IMPROVE) and row.p_value is not None]  # type: ignore[attr-defined]
    out = list(rows)
    for index, p_holm in zip(family, stats.holm([float(rows[i].p_value) for i in family])):  # type: ignore[attr-defined]
        out[index] = replace(out[index], p_holm=p_holm,  # type: ignore[type-var]
                             verdict="improved" if p_holm < alpha else "not_improved")
    return out


def _base(gate: MetricGate, measured: MetricValue, against: str, verdict: str, **fields: Any) -> Check:
    return Check(
        metric=gate.key,
        against=against,
        primary=gate.primary,
        value=measured.value,
        stderr=measured.stderr,
        n=measured.n,
        verdict=verdict,
        **fields,
    )


def _report_only(gate: MetricGate, measured: MetricValue) -> Check:
    return _base(gate, measured, "", "info", threshold="report only")


def _threshold(gate: MetricGate, measured: MetricValue, role: str) -> Check:
    if measured.value is None:
        verdict = "error"
    elif role != "candidate":
        verdict = "info"  # a bridge is a reference, not under test
    else:
        verdict = "pass" if gate.passes(measured.value) else "fail"
    return _base(gate, measured, "threshold", verdict, threshold=gate.threshold_text())


def _margin_text(gate: MetricGate, margin: float) -> str:
    if gate.margin is None:
        return "0 (no margin: secondary metric of no known kind)"
    shown = gate.margin.text() + (f" = {margin:.4g}" if gate.margin.relative else "")
    return f"{shown} ({gate.margin.source})"


def _margin(gate: MetricGate, reference: float) -> float:
    return 0.0 if gate.margin is None else gate.margin.absolute(reference)


def _vs_bridge(
    gate: MetricGate, measured: MetricValue, score: ScoreResult, label: str, ref: ScoreResult, policy: Policy
) -> Check:
    against = f"bridge:{label}"
    ref_value = ref.metrics.get(gate.key)
    try:
        if measured.value is None or ref_value is None or ref_value.value is None:
            raise pairing.PairingError(f"{gate.key} has no value on {'the bridge' if measured.value is not None else 'this checkpoint'}")
        higher = score.better_is_higher(gate.key)
        comparison = pairing.compare(
            score.samples, ref.samples, gate.key, value=measured.value, reference=ref_value.value,
            higher_is_better=higher, margin=_margin(gate, ref_value.value),
        )
    except (pairing.PairingError, KeyError, ValueError) as exc:
        return _base(gate, measured, against, "error" if gate.primary else "info", note=str(exc))
    return _from_comparison(gate, measured, against, comparison, pairing.is_binary(score.samples, gate.key), policy)


def _vs_baseline(
    bench: Benchmark,
    gate: MetricGate,
    measured: MetricValue,
    score: ScoreResult,
    refs: References,
    policy: Policy,
) -> list[Check]:
    baseline = refs.baseline
    assert baseline is not None
    against = f"baseline:{baseline.name}"
    published = [] if gate.reference is None else [
        _shown(gate, measured, against, other, f"{other.benchmark} ({other.setting or other.metric})")
        for other in baseline.for_benchmark(gate.reference)
    ]
    entry = baseline.find(bench.id, gate.key)
    if entry is None:
        if not gate.primary or gate.reference is not None:
            return published  # a metric shown against published numbers needs no lm-eval entry
        return [_base(gate, measured, against, "error", note=(
            f"{baseline.path} has no entry for benchmark {bench.id!r} metric {gate.key!r}; measure the "
            f"reference model with `pytest --checkpoint REFERENCE --baseline {baseline.name} --update-baselines` "
            "(or add the entry by hand), or leave --baseline out"
        ))]
    if not entry.gating:
        return [_shown(gate, measured, against, entry), *published]
    return [_gated_vs_baseline(gate, measured, score, against, entry, refs, policy), *published]


def _shown(gate: MetricGate, measured: MetricValue, against: str, entry: BaselineEntry, name: str = "") -> Check:
    """A baseline number shown for context, never gated (another harness's, or a misleading one)."""
    why = "reported by another harness: never gated" if entry.use == "reference" else f"{entry.use}: never gated"
    delta = None if measured.value is None else measured.value - entry.value
    note = "; ".join(part for part in (name, why, entry.note) if part)
    return _base(gate, measured, against, "info", threshold=f"{entry.use}: never gated", reference=entry.value,
                 delta=delta, note=note)


def _gated_vs_baseline(
    gate: MetricGate,
    measured: MetricValue,
    score: ScoreResult,
    against: str,
    entry: BaselineEntry,
    refs: References,
    policy: Policy,
) -> Check:
    conflicts = entry.conflicts(refs.settings or {})
    if conflicts:
        return _base(gate, measured, against, "error" if gate.primary else "info", reference=entry.value,
                     note="refusing to compare: settings that change the number differ from the baseline's: "
                     + "; ".join(conflicts))
    try:
        if measured.value is None:
            raise ValueError(f"{gate.key} has no value")
        higher = score.better_is_higher(gate.key)
        binary = pairing.is_binary(score.samples, gate.key)
        comparison = _against_number(gate, measured, score, entry, higher, binary)
    except (ValueError, KeyError, pairing.PairingError) as exc:
        return _base(gate, measured, against, "error" if gate.primary else "info", reference=entry.value, note=str(exc))
    check = _from_comparison(gate, measured, against, comparison, binary, policy)
    return replace(check, note=_settings_note(entry, refs.settings or {}))


def _against_number(
    gate: MetricGate, measured: MetricValue, score: ScoreResult, entry: BaselineEntry, higher: bool, binary: bool
) -> stats.Comparison:
    """The candidate's metric against a stored number: exact or score tests for 0/1 metrics
    (counted from the per-item values), a z-test with standard errors otherwise."""
    assert measured.value is not None
    margin = _margin(gate, entry.value)
    if binary:
        successes, trials = pairing.item_counts(score.samples, gate.key)
        return stats.versus_baseline_binary(
            successes / trials, trials, entry.value, higher_is_better=higher, margin=margin, ref_n=entry.n,
            successes=successes,
        )
    stderr = measured.stderr if measured.stderr is not None else pairing.item_stderr(score.samples, gate.key)
    if stderr is None:
        raise ValueError(f"{gate.key} has no standard error to compare with a stored number: re-run with per-item "
                         "records or lm-eval's bootstrap stderr")
    return stats.versus_baseline_continuous(
        measured.value, stderr, measured.n or 1, entry.value, entry.stderr, higher_is_better=higher, margin=margin,
    )


def _settings_note(entry: BaselineEntry, actual: dict[str, Any]) -> str:
    """Say so when the baseline was measured on another backend (e.g. vLLM numbers held against
    an hf run on CPU: kernels differ in the last bits, so small deltas are not all the model's),
    or when this run split the model with tensor parallelism (not reproducible)."""
    notes = []
    recorded, used = entry.settings.get("backend"), actual.get("backend")
    if recorded and used and recorded != used:
        notes.append(f"baseline measured with {recorded}, this run used {used}")
    tensor_parallel = actual.get("tensor_parallel_size") or 1
    if tensor_parallel > 1:
        notes.append(f"this run used tensor_parallel_size {tensor_parallel} (baseline "
                     f"{entry.settings.get('tensor_parallel_size', 1)}): not reproducible")
    return "; ".join(notes)


def _from_comparison(
    gate: MetricGate,
    measured: MetricValue,
    against: str,
    comparison: stats.Comparison,
    binary: bool,
    policy: Policy,
) -> Check:
    detect = gate.detect if gate.detect is not None else (DEFAULT_DETECT_BINARY if binary else None)
    mde = comparison.mde(policy.certain_alpha)  # FAIL's level at Holm's first step
    return _base(
        gate,
        measured,
        against,
        decide(comparison.crosses_margin, comparison.p_value, comparison.p_noninferiority, policy)
        if gate.primary else "info",
        threshold=f"margin {_margin_text(gate, comparison.margin)}",
        reference=comparison.reference,
        delta=comparison.delta,
        ci_low=comparison.ci_low,
        ci_high=comparison.ci_high,
        p_value=comparison.p_value,
        p_noninferiority=comparison.p_noninferiority,
        margin=comparison.margin,
        material=comparison.crosses_margin,
        mde=mde,
        underpowered=detect is not None and mde > detect,
        method=comparison.method,
    )


def decide(material: bool, p_regression: float, p_noninferiority: float, policy: Policy,
           p_holm: float | None = None) -> str:
    """PASS, FAIL, INCONCLUSIVE (or, before the run's p-values are all known, *pending*).

    ``p_holm`` None: at test time, FAIL only where Holm rejects whatever the other comparisons
    show (p < alpha / m), pending where it may (p < alpha). Given: the settled verdict.
    """
    if material:
        if p_holm is not None:
            return "fail" if p_holm < policy.alpha else "inconclusive"
        if p_regression < policy.certain_alpha:
            return "fail"
        return "pending" if p_regression < policy.alpha else "inconclusive"
    return "pass" if p_noninferiority < policy.alpha else "inconclusive"


def in_family(row: Any) -> bool:
    """A primary comparison (with a p-value): one of the run's Holm family. ``row`` is a
    :class:`Check` or a summary row (both carry these fields)."""
    return bool(row.primary) and row.against.startswith(("bridge:", "baseline:")) and row.p_value is not None


def settle(rows: Sequence[T], policy: Policy) -> list[T]:
    """Holm's procedure over the run's primary comparisons: returns ``rows`` with ``p_holm`` set
    and pass/pending/fail decided by the adjusted p-value. Planned comparisons that produced no
    p-value (errors, tests that did not run) count as p = 1, so ``m`` is the planned family."""
    family = [i for i, row in enumerate(rows) if in_family(row)]
    m = max(policy.family_size, len(family))
    padded = [float(rows[i].p_value) for i in family] + [1.0] * (m - len(family))  # type: ignore[attr-defined]
    out = list(rows)
    for index, p_holm in zip(family, stats.holm(padded)):
        row: Any = out[index]
        verdict = row.verdict
        if verdict in DECIDED:
            p_ni = 1.0 if row.p_noninferiority is None else row.p_noninferiority
            verdict = decide(row.material, row.p_value, p_ni, policy, p_holm)
        out[index] = replace(row, p_holm=p_holm, verdict=verdict)
    return out


INFRA_VERDICT = "INFRASTRUCTURE FAILURE"  # the machine failed a benchmark; no comparison failed on the model
RUN_VERDICTS = ("GO", "NO-GO", "INCONCLUSIVE", "REPORT ONLY", INFRA_VERDICT)


def run_verdict(rows: Sequence[Any]) -> str:
    """GO when every primary check of the candidates passes, NO-GO when any fails (or could not
    be computed), INCONCLUSIVE otherwise; REPORT ONLY when nothing gated."""
    verdicts = [r.verdict for r in rows if r.primary and r.role == "candidate" and r.verdict != "info"]
    if not verdicts:
        return "REPORT ONLY"
    if any(v in ("fail", "error") for v in verdicts):
        return "NO-GO"
    return "GO" if all(v == "pass" for v in verdicts) else "INCONCLUSIVE"


def model_failed(rows: Sequence[Any]) -> bool:
    """Whether a primary comparison of a candidate failed on the model's numbers (not an error):
    such a run is NO-GO whatever else broke, the machine included."""
    return any(r.primary and r.role == "candidate" and r.verdict == "fail" for r in rows)


def error_checks(benchmark: Benchmark, note: str = "") -> list[Check]:
    """Placeholder checks for a benchmark whose evaluation raised."""
    return [
        Check(m.key, "", m.primary, None, None, None, "error", threshold=m.threshold_text(), note=note)
        for m in benchmark.metrics
    ]


def report_only(checks: Sequence[Check]) -> list[Check]:
    """--report-only: every check kept with its numbers, none gating."""
    return [replace(c, verdict="info", note="; ".join(p for p in ("--report-only: not gated", c.note) if p))
            if c.verdict != "info" else c for c in checks]
