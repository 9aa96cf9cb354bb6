"""What one process learns while the run goes on: summary rows, which work groups it ran, model
loads, self-check problems, and (on the controller, once settled) the run's verdict."""

from __future__ import annotations

import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ckptgate import history, results
from ckptgate.provenance import provenance
from ckptgate.runplan import NOT_REPRODUCIBLE, RunPlan


@dataclass
class RunState:
    """The plan, and what happened; the controller's copy also merges the workers'."""

    plan: RunPlan
    rows: list[results.SummaryRow] = field(default_factory=list)
    groups_by_worker: dict[str, set[str]] = field(default_factory=dict)  # work groups each worker ran
    loads: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    worker: str = "main"  # this process: "main", or the xdist worker id (gw0, gw1, ...)
    family_size: int | None = None  # Holm's m, counted on first use (see collection.family_size)
    late_failures: list[results.SummaryRow] = field(default_factory=list)
    baseline_diff: str | None = None  # set when --update-baselines wrote (or kept) the file
    verdict: str | None = None  # the run's, once settled (gate.RUN_VERDICTS)
    infrastructure: list[str] = field(default_factory=list)  # "<checkpoint> <benchmark>: why" per machine failure
    notes: list[str] = field(default_factory=list)  # for the header (e.g. why no workers were started)

    def history_run(self) -> history.Run:
        """This run, as the history records it (at its end)."""
        plan = self.plan
        return history.Run(run_id=plan.run_id, started=_iso(self.started), finished=_iso(time.time()),
                           suite=plan.suite.name, backend=plan.backend, verdict=self.verdict,
                           command=shlex.join(sys.argv), git_sha=provenance()["git_sha"])

    def run_metadata(self) -> dict[str, Any]:
        """The head of ``summary.md``."""
        plan = self.plan
        return {
            "run": plan.run_id,
            "suite": plan.suite.name,
            "backend": plan.backend,
            "tensor parallelism": NOT_REPRODUCIBLE.format(tp=plan.tensor_parallel) if plan.tensor_parallel > 1 else None,
            "limit": plan.limit,
            "bridges": ", ".join(c.label for c in plan.bridges),
            "baseline": plan.baseline_name,
            "verdict": self.verdict,
            "family-wise alpha": f"{plan.alpha:g} (Holm over {self.family_size or 0} primary comparison(s))",
            "margins file": None if plan.suite.margins_file is None else str(plan.suite.margins_file),
            "checkpoints": ", ".join(c.label for c in plan.candidates),
            "git_sha": provenance()["git_sha"],
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.started)),
        }


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))
