"""Human-readable summaries of a run: the assertion message of a benchmark's test, the terminal
table and ``summary.md``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ckptgate.gate import IMPROVE, VERDICTS, Check, Policy
from ckptgate.results import SummaryRow
from ckptgate.scores import PERPLEXITY_FAMILY

if TYPE_CHECKING:
    from ckptgate.checkpoints import Checkpoint
    from ckptgate.suites import Benchmark


def format_value(value: float | None, stderr: float | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    if stderr is not None:
        text += f" ± {stderr:.4f}" if abs(stderr) < 100 else f" ± {stderr:.1f}"
    return text


def describe(check: Check) -> str:
    """One report line: value, reference, delta with CI, p-value, n and MDE."""
    against = check.against or "report only"
    head = f"{check.verdict.upper():7} {check.metric}  {against}: {format_value(check.value, check.stderr)}"
    if check.against == "threshold":
        return f"{head}  threshold {check.threshold}  n={check.n}"
    if check.p_value is None:
        ref = "" if check.reference is None else f" vs {format_value(check.reference)}"
        return f"{head}{ref}" + (f"  ({check.note})" if check.note else "")
    p_text = f"p(regression)={check.p_value:.3g}" + ("" if check.p_holm is None else f" (Holm {check.p_holm:.3g})")
    if check.p_noninferiority is not None:
        p_text += f", p(worse by margin)={check.p_noninferiority:.3g}"
    power = f"MDE {check.mde:.4g}" + (" UNDERPOWERED" if check.underpowered else "")
    return (
        f"{head} vs {format_value(check.reference)}  delta {check.delta:+.4f} "
        f"[95% CI {check.ci_low:+.4f}, {check.ci_high:+.4f}]  {check.threshold}  {p_text}  n={check.n}  "
        f"{power}  ({check.method}){'  ' + why(check) if check.verdict in ('inconclusive', 'pending') else ''}"
    )


def why(check: Any) -> str:
    """Why a comparison is not (yet) decided, in words."""
    if check.verdict == "pending":
        return "a material regression, significant before Holm's correction: settled when the run ends"
    if check.material:
        return ("the estimated worsening reaches the margin, but the regression is not significant after "
                f"Holm's correction (it would be caught at 80% from a drop of {check.mde:.4g})")
    return (f"not shown within the margin {check.margin:.4g} (p(worse by margin)={check.p_noninferiority:.3g}): "
            "more items or a wider margin would decide it")


def failure_report(checkpoint: Checkpoint, benchmark: Benchmark, checks: Sequence[Check], policy: Policy) -> str:
    """The assertion message: one report line per check, failures first."""
    bad = [c for c in checks if c.verdict in ("fail", "error")]
    undecided = [c for c in checks if c.verdict in ("inconclusive", "pending")]
    what = f"{len(bad)} of {len(checks)} check(s) failed" if bad else f"{len(undecided)} of {len(checks)} check(s) inconclusive"
    lines = [
        f"{benchmark.id} (task {benchmark.task}) on {checkpoint.label}: {what} "
        f"(family-wise alpha {policy.alpha:g} over {policy.family_size} primary comparison(s))"
    ]
    ordered = sorted(checks, key=lambda c: VERDICTS.index(c.verdict) if c.verdict != "fail" else -1)
    lines += ["  " + describe(c) for c in ordered]
    return "\n".join(lines)


_HEADER = ("checkpoint", "benchmark", "metric", "against", "value ± stderr", "reference", "delta [95% CI]",
           "margin", "p regression (Holm)", "p worse by margin", "n", "MDE", "verdict")


def _delta(row: SummaryRow) -> str:
    if row.delta is None:
        return ""
    if row.ci_low is None or row.ci_high is None:
        return f"{row.delta:+.4f}"
    return f"{row.delta:+.4f} [{row.ci_low:+.4f}, {row.ci_high:+.4f}]"


def _p(row: SummaryRow) -> str:
    if row.p_value is None:
        return ""
    return f"{row.p_value:.3g}" + ("" if row.p_holm is None else f" ({row.p_holm:.3g})")


def _against(row: SummaryRow) -> str:
    if row.against == "threshold":
        return row.threshold
    if not row.against:
        return "report only"
    if row.against.startswith(IMPROVE):
        return f"improve on {row.against.removeprefix(IMPROVE)}"  # a stage's goal: reported, never gating
    return row.against.replace(":", " ", 1) + ("" if row.primary else " (secondary)")


def _verdict(row: SummaryRow) -> str:
    return row.verdict.upper().replace("_", " ") + (" (underpowered)" if row.underpowered and row.verdict == "inconclusive" else "")


def _cells(row: SummaryRow) -> tuple[str, ...]:
    return (
        row.checkpoint + (f" ({row.role})" if row.role in ("bridge", "control") else "") + (" (cached)" if row.cached else ""),
        row.benchmark,
        row.metric,
        _against(row),
        format_value(row.value, row.stderr),
        "" if row.reference is None else format_value(row.reference),
        _delta(row),
        "" if row.margin is None else f"{row.margin:.4g}",
        _p(row),
        "" if row.p_noninferiority is None else f"{row.p_noninferiority:.3g}",
        "" if row.n is None else str(row.n),
        "" if row.mde is None else f"{row.mde:.4g}",
        _verdict(row),
    )


def text_table(rows: Sequence[SummaryRow]) -> list[str]:
    table = [_HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER))]
    out = []
    for index, line in enumerate(table):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def verdict_counts(rows: Sequence[SummaryRow]) -> str:
    counts = Counter(r.verdict for r in rows)
    text = ", ".join(f"{counts[v]} {v.replace('_', ' ')}" for v in VERDICTS if counts[v])
    weak = sum(r.underpowered and r.verdict == "inconclusive" for r in rows)
    return text + (f"; {weak} comparison(s) underpowered (MDE above the effect to detect)" if weak else "")


def markdown(rows: Sequence[SummaryRow], meta: dict[str, Any]) -> str:
    lines = ["# ckptgate summary", ""]
    if meta.get("verdict"):
        lines += [f"**Verdict: {meta['verdict']}**", ""]
    lines += [f"- **{key}**: {value}" for key, value in meta.items() if value not in (None, "") and key != "verdict"]
    lines += [f"- **verdicts**: {verdict_counts(rows)}", ""]
    lines += _markdown_table(_HEADER, [_cells(row) for row in rows])
    lines += baseline_tables(rows)
    lines += control_tables(rows)
    return "\n".join(lines) + "\n"


def control_tables(rows: Sequence[SummaryRow]) -> list[str]:
    """Per control (a base model, ``--control``): each primary metric of the control beside every
    candidate's, with the candidate's difference from it. Shown, never gated."""
    values: dict[tuple[str, str, str], SummaryRow] = {}
    for row in rows:
        if row.primary and row.value is not None:
            values.setdefault((row.checkpoint, row.benchmark, row.metric), row)
    controls = list(dict.fromkeys(r.checkpoint for r in rows if r.role == "control"))
    candidates = list(dict.fromkeys(r.checkpoint for r in rows if r.role == "candidate"))
    lines: list[str] = []
    for control in controls:
        metrics = [(b, m) for (c, b, m) in values if c == control]
        header = ("Benchmark", "Metric", f"{control} (control)", *candidates)
        body = []
        for bench, metric in metrics:
            base = values[(control, bench, metric)].value
            cells = []
            for cand in candidates:
                row = values.get((cand, bench, metric))
                cells.append("n/a" if row is None or row.value is None or base is None
                             else f"{format_value(row.value)} ({row.value - base:+.4g})")
            body.append((bench, metric, format_value(base), *cells))
        lines += ["", f"## Candidates beside the control {control} (difference from it; not gated)", ""]
        lines += _markdown_table(header, body)
    return lines


_BASELINE_HEADER = ("Benchmark", "Setting", "Metric", "{checkpoint}", "{baseline}", "Delta", "Verdict")


def baseline_tables(rows: Sequence[SummaryRow]) -> list[str]:
    """One table per candidate checkpoint and baseline, in the shape of the usual baseline
    table: benchmark, setting, metric, this checkpoint, baseline, delta, verdict."""
    lines: list[str] = []
    groups: dict[tuple[str, str], list[SummaryRow]] = {}
    for row in rows:
        if row.role == "candidate" and row.against.startswith("baseline:"):
            groups.setdefault((row.checkpoint, row.against.split(":", 1)[1]), []).append(row)
    for (checkpoint, baseline), group in groups.items():
        header = tuple(h.format(checkpoint=checkpoint, baseline=baseline) for h in _BASELINE_HEADER)
        lines += ["", f"## {checkpoint} against baseline {baseline}", ""]
        lines += _markdown_table(header, [_baseline_cells(row) for row in group])
    return lines


def _baseline_cells(row: SummaryRow) -> tuple[str, ...]:
    # proportions in percent, like the usual baseline table (68.61%); the perplexity family as it is
    percent = row.metric.split(",", 1)[0] not in PERPLEXITY_FAMILY
    return (row.benchmark, row.setting, row.metric, _number(row.value, percent), _number(row.reference, percent),
            _number(row.delta, percent, signed=True), _verdict(row) + _qualifier(row))


def _qualifier(row: SummaryRow) -> str:
    """Why a baseline row does not gate, when it does not: a published number or a secondary metric."""
    if row.verdict == "info" and row.threshold.endswith("never gated"):
        return f" ({row.threshold})"
    return "" if row.primary else " (secondary)"


def _number(value: float | None, percent: bool, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    if not percent:
        return f"{value:+.4f}" if signed else f"{value:.4f}"
    return f"{value * 100:+.2f} pp" if signed else f"{value * 100:.2f}%"  # a difference of percentages: points


def _markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in body]
