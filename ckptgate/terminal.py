"""What the run prints: its header lines, the summary table, the late failures, the baseline
update, the self-check problems and the run's verdict line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ckptgate import exitcodes, gate, reports, results
from ckptgate.runplan import NOT_REPRODUCIBLE, RunPlan
from ckptgate.runstate import RunState


def header(plan: RunPlan, notes: Sequence[str] = ()) -> list[str] | None:
    if plan.devices is None:
        return None
    lines = [f"ckptgate: device {plan.devices.describe()}, backend {plan.backend}"]
    if plan.tensor_parallel > 1:
        lines.append(f"ckptgate: {NOT_REPRODUCIBLE.format(tp=plan.tensor_parallel)}")
    return lines + [f"ckptgate: {n}" for n in [*plan.devices.notes, *notes]]


def summary(tr: Any, state: RunState) -> None:
    """The end of the terminal output, on the controller."""
    plan = state.plan
    if state.rows:
        rows = results.sort_rows(state.rows)
        tr.write_sep("=", f"ckptgate summary: suite {plan.suite.name}, backend {plan.backend}")
        for line in reports.text_table(rows):
            tr.write_line(line)
        tr.write_line(f"verdicts: {reports.verdict_counts(rows)}")
        tr.write_line(
            f"family-wise alpha {plan.alpha:g}, Holm over {state.family_size or 0} primary comparison(s); "
            "MDE = the worsening that FAILs 80% of the time"
        )
        undecided = [r for r in rows if r.primary and r.role == "candidate" and r.verdict == "inconclusive"]
        for row in undecided:
            tr.write_line(f"  INCONCLUSIVE {row.checkpoint} {row.benchmark} {row.metric} vs {row.against}: "
                          f"{reports.why(row)}", yellow=True)
        tr.write_line(f"results: {plan.results_dir} (eval_summary.csv, summary.md, by_checkpoint/)")
        if plan.tensor_parallel > 1:
            tr.write_line(NOT_REPRODUCIBLE.format(tp=plan.tensor_parallel), yellow=True)
    if state.late_failures:
        tr.write_line(
            f"ckptgate gate FAILED: {len(state.late_failures)} comparison(s) whose tests passed are significant "
            "regressions once the whole run's p-values are known (Holm):",
            red=True,
        )
        for row in state.late_failures:
            tr.write_line(f"  {row.checkpoint} {row.benchmark} {row.metric} vs {row.against}: p={row.p_value:.3g}, "
                          f"Holm p={row.p_holm:.3g}", red=True)
    if state.baseline_diff is not None:
        _baseline_update(tr, state)
    for problem in state.problems:
        tr.write_line(f"ckptgate self-check FAILED: {problem}", red=True)
    if state.verdict is not None:
        _verdict(tr, state)


def _verdict(tr: Any, state: RunState) -> None:
    colour = {"GO": {"green": True}, "NO-GO": {"red": True}, gate.INFRA_VERDICT: {"red": True}}.get(
        state.verdict or "", {"yellow": True})
    for failure in state.infrastructure:
        tr.write_line(f"ckptgate infrastructure failure: {failure}", red=True)
    meaning = {
        "GO": "every primary comparison passed",
        "NO-GO": "a primary comparison failed",
        "INCONCLUSIVE": "no primary comparison failed, but not every one could be shown to pass"
        + (" (--accept-inconclusive: exit 0)" if state.plan.accept_inconclusive
           else f" (exit code {exitcodes.INCONCLUSIVE})"),
        "REPORT ONLY": "measured, nothing gated",
        gate.INFRA_VERDICT: f"the machine failed, not the model (exit code {exitcodes.INFRA}); no comparison "
                            "failed on the numbers that were measured",
    }[state.verdict or "REPORT ONLY"]
    tr.write_sep("=", f"ckptgate verdict: {state.verdict}: {meaning}", bold=True, **colour)


def _baseline_update(tr: Any, state: RunState) -> None:
    diff, name = state.baseline_diff, state.plan.baseline_name
    if not diff:
        tr.write_line(f"ckptgate: --update-baselines: {name} already holds these numbers", yellow=True)
        return
    tr.write_sep("-", f"ckptgate: --update-baselines wrote {name}")
    for line in diff.splitlines():
        tr.write_line(line)
    tr.write_line("review the diff and commit it; this run fails so an update never passes unnoticed", yellow=True)
