"""A staged evaluation's per-checkpoint tier summaries, written when the run ends.

Beside each checkpoint's benchmark records (``by_checkpoint/<label>/``, where a checkpoint in a
``step_<STEP>`` folder is labelled ``step_<STEP>``) the tiers that ran get one file each:

- ``tier2_ppl.json``: per slice, bits per byte and token perplexity, documents and tokens scored,
  the scoring settings, the slice's source, and the comparison with the bridge;
- ``tier3_cf.json``: per task, acc and acc_norm, documents scored and the subset drawn;
- ``tier4_sft_native.json``: the probes' summary rates, the same by category, per-prompt checks;
  ``tier4_sft_native_generations.jsonl``: each prompt and the response it got.

Every benchmark has a ``goal`` (keep or improve) and its verdicts against the bridge: ``keep``
(the gate's non-inferiority verdict) and, for goal improve, ``improve`` (the superiority test).
A tier whose benchmark left no record (its evaluation failed) gets no file, and the run fails
saying which output is missing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ckptgate.atomicio import write_text
from ckptgate.gate import IMPROVE
from ckptgate.results import SummaryRow, benchmark_dir, to_json
from ckptgate.suites import TIER_OUTPUTS, Benchmark, Suite
from scorers.sft_checks import prompt_report, tier4_report

TIER_FILES = {"tier2": f"{TIER_OUTPUTS[0]}.json", "tier3": f"{TIER_OUTPUTS[1]}.json", "tier4": f"{TIER_OUTPUTS[2]}.json"}
GENERATIONS_FILE = f"{TIER_OUTPUTS[3]}.jsonl"


def write(results_dir: Path, suite: Suite, rows: Sequence[SummaryRow]) -> list[str]:
    """Write the tier files of every checkpoint that ran a tier's benchmarks; returns the problems
    (outputs that could not be written because a benchmark left no record)."""
    tiered = {b.id: b for b in suite.benchmarks if b.tier is not None}
    ran: dict[str, dict[str, list[Benchmark]]] = {}  # label -> tier -> benchmarks
    for row in rows:
        bench = tiered.get(row.benchmark)
        if bench is not None and bench not in ran.setdefault(row.checkpoint, {}).setdefault(str(bench.tier), []):
            ran[row.checkpoint][str(bench.tier)].append(bench)
    problems = []
    for label, tiers in sorted(ran.items()):
        folder = benchmark_dir(results_dir, label)
        for tier, benchmarks in sorted(tiers.items()):
            found = {b.id: _read(folder, b) for b in benchmarks}
            lacking = sorted(bid for bid, record in found.items() if record is None)
            if lacking:
                problems.append(f"{label}: {TIER_FILES[tier]} not written: no result for {', '.join(lacking)} "
                                "(see its test's error)")
                continue
            records = [record for record in found.values() if record is not None]
            _WRITERS[tier](folder, label, suite, records)
    return problems


def _read(folder: Path, bench: Benchmark) -> dict[str, Any] | None:
    path = folder / f"{bench.id}.json"
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _samples(folder: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's per-sample records (only Tier 4 needs them: its responses)."""
    text = (folder / record["samples_file"]).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line]


def _head(label: str, suite: Suite, records: list[dict[str, Any]]) -> dict[str, Any]:
    checkpoint = records[0]["checkpoint"]
    return {"checkpoint": label, "step": checkpoint.get("step"), "path": checkpoint.get("path"),
            "role": checkpoint.get("role"), "suite": suite.name, "bridges": records[0]["references"]["bridges"]}


def _value(record: dict[str, Any], key: str) -> float | None:
    metric = record["metrics"].get(key)
    return None if metric is None else metric["value"]


def _versus(record: dict[str, Any]) -> dict[str, Any]:
    """The goal and the primary metric's verdicts against each bridge: keep (non-inferiority,
    gating) and, when the goal is to improve, improve (superiority, reported)."""
    out: dict[str, Any] = {"goal": record["benchmark"]["goal"], "vs_bridge": {}}
    for check in record["checks"]:
        against = check["against"]
        if against.startswith(IMPROVE):
            kind, bridge = "improve", against.removeprefix(IMPROVE)
        elif against.startswith("bridge:") and check["primary"]:
            kind, bridge = "keep", against.removeprefix("bridge:")
        else:
            continue
        out["vs_bridge"].setdefault(bridge, {"metric": check["metric"], "reference": check["reference"],
                                             "delta": check["delta"], "ci": [check["ci_low"], check["ci_high"]]})
        out["vs_bridge"][bridge][kind] = {"verdict": check["verdict"], "p_value": check["p_value"],
                                          "p_holm": check["p_holm"], "margin": check["margin"]}
    return out


def _tier2(folder: Path, label: str, suite: Suite, records: list[dict[str, Any]]) -> None:
    slices = {}
    for record in records:
        config = record["config"]
        slices[record["benchmark"]["task"]] = {
            "bits_per_byte": _value(record, "bits_per_byte,none"),
            "token_perplexity": _value(record, "token_perplexity,none"),
            "n_docs": record["samples_count"], "n_tokens": config["n_tokens"], "n_bytes": config["n_bytes"],
            **config["perplexity"], "source": config["slice"], "packed": config["packed"],
            **_versus(record),
        }
    write_text(folder / TIER_FILES["tier2"], to_json({**_head(label, suite, records), "slices": slices}, indent=2) + "\n")


def _tier3(folder: Path, label: str, suite: Suite, records: list[dict[str, Any]]) -> None:
    tasks = {}
    for record in records:
        subset = record["config"].get("subset")
        tasks[record["benchmark"]["task"]] = {
            "acc": _value(record, "acc,none"), "acc_norm": _value(record, "acc_norm,none"),
            "n": record["metrics"]["acc,none"]["n"], "num_fewshot": record["benchmark"]["num_fewshot"],
            "subset": None if subset is None else {k: subset[k] for k in ("size", "requested", "of", "seed")},
            **_versus(record),
        }
    write_text(folder / TIER_FILES["tier3"], to_json({**_head(label, suite, records), "tasks": tasks}, indent=2) + "\n")


def _tier4(folder: Path, label: str, suite: Suite, records: list[dict[str, Any]]) -> None:
    reports, generations = [], []
    for record in records:
        for sample in sorted(_samples(folder, record), key=lambda s: s["doc_id"]):
            doc, response = sample["doc"], _response(sample)
            report = prompt_report(_prompt(doc), response)
            reports.append(report)
            generations.append({"id": doc["id"], "category": doc["category"], "probe_set": record["benchmark"]["task"],
                                "prompt": doc["prompt"], "response": response, "checks": report["checks"],
                                "all_checks_pass": report["all_checks_pass"]})
    summary = tier4_report(reports)
    versus = {record["benchmark"]["task"]: _versus(record) for record in records}
    write_text(folder / TIER_FILES["tier4"],
               to_json({**_head(label, suite, records), **summary, "probe_sets": versus}, indent=2) + "\n")
    write_text(folder / GENERATIONS_FILE, "".join(to_json(g) + "\n" for g in generations))


def _prompt(doc: dict[str, Any]) -> dict[str, Any]:
    """The prompt as the prompt set lists it (the task stores its checks as JSON text)."""
    if "checks" in doc or "checks_json" not in doc:
        return doc
    return {**doc, "checks": json.loads(doc["checks_json"])}


def _response(sample: dict[str, Any]) -> str:
    filtered = sample.get("filtered_resps") or sample.get("resps") or [""]
    first = filtered[0]
    return str(first[0] if isinstance(first, list) else first)


_WRITERS = {"tier2": _tier2, "tier3": _tier3, "tier4": _tier4}
