"""Verdicts: a benchmark's metrics against thresholds, bridge checkpoints and stored baselines.

Each metric yields one :class:`Check` per thing it is held against:

- ``threshold``: an absolute floor/ceiling from the suite (rates that must hold);
- ``bridge:<label>``: a paired test on the per-item records of a bridge checkpoint;
- ``baseline:<name>``: a one-sided z-test against a stored reference number.

Comparisons test "the candidate is not worse than the reference by more than the margin".
Only the suite's **primary** metrics gate; the rest are reported with their p-values. The
primary comparisons of a run form one family, corrected with Holm's step-down procedure at the
family-wise ``alpha`` (``m`` = the run's planned primary comparisons). A test cannot see the
other tests' p-values, so it fails at once only when Holm rejects whatever the others show
(``p < alpha / m``); a comparison with ``alpha / m <= p < alpha`` is *pending* and settled by
:func:`settle` when the run ends, which can fail the run after its tests passed (the summary
names those comparisons). ``p >= alpha`` passes: Holm never rejects it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ckptgate import pairing, stats
from ckptgate.errors import SuiteError
from ckptgate.reports import format_value

from ckptgate.suites import MetricGate
from scorers.base import MetricValue

if TYPE_CHECKING:
    from ckptgate.baselines import Baseline, BaselineEntry
    from ckptgate.checkpoints import Checkpoint
    from ckptgate.suites import Benchmark
    from scorers.base import ScoreResult

# The worsening a comparison of a 0/1 metric should be able to see when the suite declares none:
# 3 points, the drop a GSM8K-sized benchmark resolves at 80% power.
DEFAULT_DETECT_BINARY = 0.03
T = TypeVar("T")
VERDICTS = ("pass", "fail", "pending", "error", "info")


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
    p_value: float | None = None
    p_holm: float | None = None
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
                                     margin=0.0, alpha=policy.alpha)
    except pairing.PairingError as exc:
        return Check(key, f"bridge:{label}", False, value, None, len(cand), "info", note=str(exc))
    measured = MetricValue(value, None, len(cand))
    signal = MetricGate(key, primary=False)
    return replace(_from_comparison(signal, measured, f"bridge:{label}", comparison, True, False, policy),
                   note="mean log-probability of the gold answer: explains accuracy movements, never gates")


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


def _null_text(gate: MetricGate, higher_is_better: bool) -> str:
    sign = "-" if higher_is_better else "+"
    return f"not {'below' if higher_is_better else 'above'} ref {sign} {gate.margin:g}"


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
            higher_is_better=higher, margin=gate.margin, alpha=policy.alpha,
        )
    except (pairing.PairingError, KeyError) as exc:
        return _base(gate, measured, against, "error" if gate.primary else "info", note=str(exc))
    return _from_comparison(gate, measured, against, comparison, higher, pairing.is_binary(score.samples, gate.key), policy)


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
        stderr = measured.stderr if measured.stderr is not None else pairing.item_stderr(score.samples, gate.key)
        comparison = stats.versus_baseline(
            measured.value, stderr, measured.n, entry.value, entry.stderr,
            binary=binary, higher_is_better=higher, margin=gate.margin, alpha=policy.alpha, ref_n=entry.n,
        )
    except (ValueError, KeyError, pairing.PairingError) as exc:
        return _base(gate, measured, against, "error" if gate.primary else "info", reference=entry.value, note=str(exc))
    check = _from_comparison(gate, measured, against, comparison, higher, binary, policy)
    return replace(check, note=_settings_note(entry, refs.settings or {}))


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
    higher: bool,
    binary: bool,
    policy: Policy,
) -> Check:
    detect = gate.detect if gate.detect is not None else (DEFAULT_DETECT_BINARY if binary else None)
    return _base(
        gate,
        measured,
        against,
        _verdict(gate.primary, comparison.p_value, policy),
        threshold=_null_text(gate, higher),
        reference=comparison.reference,
        delta=comparison.delta,
        ci_low=comparison.ci_low,
        ci_high=comparison.ci_high,
        p_value=comparison.p_value,
        mde=comparison.mde,
        underpowered=detect is not None and comparison.mde > detect,
        method=comparison.method,
    )


def _verdict(primary: bool, p_value: float, policy: Policy) -> str:
    if not primary:
        return "info"
    if p_value < policy.certain_alpha:
        return "fail"
    return "pending" if p_value < policy.alpha else "pass"


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
        row = out[index]
        verdict = row.verdict  # type: ignore[attr-defined]
        if verdict in ("pass", "pending", "fail"):
            verdict = "fail" if p_holm < policy.alpha else "pass"
        out[index] = replace(row, p_holm=p_holm, verdict=verdict)  # type: ignore[type-var]
    return out


def error_checks(benchmark: Benchmark, note: str = "") -> list[Check]:
    """Placeholder checks for a benchmark whose evaluation raised."""
    return [
        Check(m.key, "", m.primary, None, None, None, "error", threshold=m.threshold_text(), note=note)
        for m in benchmark.metrics
    ]


def describe(check: Check) -> str:
    """One report line: value, reference, delta with CI, p-value, n and MDE."""
    against = check.against or "report only"
    head = f"{check.verdict.upper():7} {check.metric}  {against}: {format_value(check.value, check.stderr)}"
    if check.against == "threshold":
        return f"{head}  threshold {check.threshold}  n={check.n}"
    if check.p_value is None:
        ref = "" if check.reference is None else f" vs {format_value(check.reference)}"
        return f"{head}{ref}" + (f"  ({check.note})" if check.note else "")
    p_text = f"p={check.p_value:.3g}" + ("" if check.p_holm is None else f" (Holm {check.p_holm:.3g})")
    power = f"MDE {check.mde:.4g}" + (" UNDERPOWERED" if check.underpowered else "")
    return (
        f"{head} vs {format_value(check.reference)}  delta {check.delta:+.4f} "
        f"[95% CI {check.ci_low:+.4f}, {check.ci_high:+.4f}]  {p_text}  n={check.n}  {power}  ({check.method})"
    )


def failure_report(checkpoint: Checkpoint, benchmark: Benchmark, checks: Sequence[Check], policy: Policy) -> str:
    """The assertion message: one report line per check, failures first."""
    bad = [c for c in checks if c.verdict in ("fail", "error")]
    lines = [
        f"{benchmark.id} (task {benchmark.task}) on {checkpoint.label}: {len(bad)} of {len(checks)} check(s) "
        f"failed (family-wise alpha {policy.alpha:g} over {policy.family_size} primary comparison(s))"
    ]
    ordered = sorted(checks, key=lambda c: VERDICTS.index(c.verdict) if c.verdict != "fail" else -1)
    lines += ["  " + describe(c) for c in ordered]
    return "\n".join(lines)
