"""The end of a run: the workers' findings gathered on the controller, Holm's correction over the
whole run, the run's verdict and exit code, the baseline update, the self-checks, and the
summary files (``eval_summary.csv``, ``summary.md``; records rewritten with settled verdicts)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ckptgate import exitcodes, gate, history, reports, results, scheduling, sharding, stage_outputs
from ckptgate.baseline_update import measured_from_record, update_baseline
from ckptgate.baselines import run_settings
from ckptgate.cache import exclusive
from ckptgate.runstate import RunState


def worker_payload(state: RunState) -> str:
    """What a worker sends back to the controller when it finishes (JSON)."""
    return json.dumps({
        "worker": state.worker,
        "rows": [r.to_dict() for r in state.rows],
        "groups": sorted(state.groups_by_worker.get(state.worker, set())),
        "loads": dict(state.loads),
        "family_size": state.family_size,
        "infrastructure": state.infrastructure,
    })


def merge_worker(state: RunState, payload: str) -> None:
    """The controller takes in one worker's :func:`worker_payload`."""
    data = json.loads(payload)
    state.rows.extend(results.SummaryRow.from_dict(r) for r in data["rows"])
    state.groups_by_worker[data["worker"]] = set(data["groups"])
    state.loads.update(data["loads"])
    state.infrastructure.extend(data["infrastructure"])
    if data["family_size"] is not None:
        state.family_size = max(state.family_size or 0, data["family_size"])


def finish(state: RunState, exitstatus: int | pytest.ExitCode) -> int | pytest.ExitCode:
    """Settle the run on the controller; returns the session's exit status."""
    plan = state.plan
    policy = gate.Policy(alpha=plan.alpha, family_size=state.family_size or 0)
    settled = gate.settle_improvements(gate.settle(state.rows, policy), plan.alpha)
    state.late_failures = [new for old, new in zip(state.rows, settled) if old.verdict == "pending" and new.verdict == "fail"]
    state.rows = settled
    state.verdict = gate.run_verdict(settled) if settled else None
    state.problems.extend(grouping_problems(state.groups_by_worker, state.loads, {c.label for c in plan.bridges}))
    if plan.update_baseline and plan.baseline_name is not None:
        state.baseline_diff = _update_baseline(state)
    failed = state.problems or state.late_failures or state.baseline_diff is not None
    if failed and exitstatus == pytest.ExitCode.OK:
        exitstatus = pytest.ExitCode.TESTS_FAILED
    if state.verdict == "INCONCLUSIVE" and exitstatus == pytest.ExitCode.OK and not plan.accept_inconclusive:
        exitstatus = exitcodes.INCONCLUSIVE
    if _machine_failed(state, exitstatus):
        state.verdict = gate.INFRA_VERDICT
        exitstatus = exitcodes.INFRA
    if plan.shard is not None:
        exitstatus = _finish_shard(state, exitstatus)
    if state.rows:
        rows = results.sort_rows(state.rows)
        results.settle_records(plan.results_dir, rows)
        missing = stage_outputs.write(plan.results_dir, plan.suite, rows)
        state.problems.extend(missing)
        if missing and exitstatus == pytest.ExitCode.OK:
            exitstatus = pytest.ExitCode.TESTS_FAILED
        publish(state, rows)
    return exitstatus


def _finish_shard(state: RunState, exitstatus: int | pytest.ExitCode) -> int | pytest.ExitCode:
    """A shard with no checkpoint of its own (more shards than checkpoints) ran nothing, as asked:
    that is success, not pytest's "no tests". Every shard leaves its marker for the merge."""
    plan = state.plan
    assert plan.shard is not None
    labels = [c.label for c in plan.checkpoints]
    if not sharding.labels_in(labels, plan.shard) and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        exitstatus = pytest.ExitCode.OK
    sharding.write_marker(plan.results_dir, plan.shard, labels, run_id=plan.run_id, exit_status=int(exitstatus),
                          verdict=state.verdict)
    return exitstatus


def _machine_failed(state: RunState, exitstatus: int | pytest.ExitCode) -> bool:
    """A benchmark failed for the machine's reasons and no primary comparison failed on the
    model's numbers: a failed comparison is a verdict on the model whatever else broke."""
    if not state.infrastructure or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                                                      exitcodes.INCONCLUSIVE):
        return False
    return not gate.model_failed(state.rows)


def publish(state: RunState, rows: list[results.SummaryRow]) -> None:
    """This run's summary (``runs/<id>/``), its rows in the history, and the folder's summary
    rebuilt from every record in the store, under a lock: two runs into one folder (two CI jobs,
    a nightly and a manual run) each keep their own summary, and the folder's shows both."""
    plan = state.plan
    results.write_summary(results.run_dir(plan.results_dir, plan.run_id), rows,
                          reports.markdown(rows, state.run_metadata()))
    with exclusive(plan.results_dir / ".summary.lock"):  # read under the lock: another run may be writing
        records = results.read_records(plan.results_dir)
        mine = {(r["checkpoint"]["label"], r["benchmark"]["id"]): record_settings(r) for r in records
                if r.get("run", {}).get("id") == plan.run_id}
        history.record(plan.results_dir, state.history_run(), rows, mine)
        everything = results.sort_rows(row for record in records for row in results.rows_from_record(record))
        runs = {row.run_id for row in everything}
        meta = {"contents": "the latest result of every checkpoint x benchmark in this folder, whichever run wrote "
                            "it (each run's own summary: runs/<run id>/summary.md; every run: history.sqlite)",
                "runs with results here": len(runs), "latest run": f"{plan.run_id} ({state.verdict})"}
        results.write_summary(plan.results_dir, everything, reports.markdown(everything, meta))


def record_settings(record: dict[str, Any]) -> dict[str, Any]:
    """The settings that shaped a record's numbers, as the history keeps them."""
    config = {**record.get("config", {}), "num_fewshot": record["benchmark"].get("num_fewshot")}
    bench = record["benchmark"]
    return {"task": bench["task"], **run_settings(config, record.get("backend", {})),
            **{key: bench.get(key) for key in ("subset", "chat_template", "perplexity", "gen_kwargs") if bench.get(key)}}


def _update_baseline(state: RunState) -> str:
    """Write the candidate's measured numbers into the baseline file; returns the diff."""
    plan = state.plan
    assert plan.baseline_name is not None
    (candidate,) = plan.candidates
    records = [r for r in results.read_records(plan.results_dir) if r["checkpoint"]["label"] == candidate.label]
    measured = [m for record in records for m in measured_from_record(record)]
    return update_baseline(Path(plan.baseline_name), measured, model=str(candidate.path))


def grouping_problems(groups_by_worker: dict[str, set[str]], loads: Counter[str], bridges: set[str]) -> list[str]:
    """Self-check: every work group ran on one worker, and each checkpoint was loaded at most
    once per group (once, unless it was split over idle workers); ``bridges``: their labels."""
    problems = []
    workers_of: dict[str, list[str]] = {}
    for worker, groups in groups_by_worker.items():
        for group in groups:
            workers_of.setdefault(group, []).append(worker)
    for group, workers in sorted(workers_of.items()):
        if len(workers) > 1:
            problems.append(
                f"work group {group} ran on {len(workers)} workers ({', '.join(sorted(workers))}): "
                "xdist did not group its tests (is pytest>=9.2 installed? see pytest-xdist issue 1386)"
            )
    groups_of = Counter(scheduling.label_of(group) for group in workers_of)
    for label, count in sorted(loads.items()):
        # A bridge is also a reference of every candidate: each worker may load it once for that
        # (without the record cache, workers do not share its scored records).
        allowed = max(1, groups_of[label]) + (len(groups_by_worker) if label in bridges else 0)
        if count > allowed:
            problems.append(f"checkpoint {label} was loaded {count} times for {groups_of[label]} work group(s); "
                            "tests were not kept together")
    return problems
