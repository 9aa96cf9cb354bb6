"""``ckptgate merge DIR --shards N``: the shards of one run (``--shard i/N``, each with its results
in ``DIR/shards/<i>-of-<N>``) joined into one result: one summary, one JUnit file, one verdict
and its exit code, one run in ``DIR/history.sqlite``.

Every shard must have finished (its ``shard.json`` marker), all must be shards of the same run
(the same checkpoints, the same N) and together cover it exactly once; otherwise the merge fails
loudly, naming the shard. Holm's correction is settled again over the union of the shards'
p-values (each shard settled its own share against the whole run's family, which is
conservative; the merge's is the exact one), so the merged verdicts are those of one unsharded run.
"""

from __future__ import annotations

import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptgate import exitcodes, gate, history, reports, results, sharding, status
from ckptgate.atomicio import write_text
from ckptgate.errors import CkptgateError, InfrastructureError
from ckptgate.results import SummaryRow
from ckptgate.settling import record_settings

VERDICT_CODES = {"GO": exitcodes.GO, "NO-GO": exitcodes.NO_GO, "INCONCLUSIVE": exitcodes.INCONCLUSIVE,
                 "REPORT ONLY": exitcodes.GO, gate.INFRA_VERDICT: exitcodes.INFRA}
_RAN = (exitcodes.GO, exitcodes.NO_GO, exitcodes.INCONCLUSIVE, exitcodes.INFRA)  # a shard that ran to its end


@dataclass(frozen=True)
class Merged:
    verdict: str
    exit_code: int
    rows: list[SummaryRow]
    markers: list[dict[str, Any]]


def resettle(records: Sequence[dict[str, Any]]) -> list[SummaryRow]:
    """The records' rows with Holm settled over all of them (the largest recorded family, the
    smallest alpha), as one run of them would have settled it."""
    policies = [r.get("policy") or {} for r in records]
    policy = gate.Policy(alpha=min((p.get("alpha", 0.05) for p in policies), default=0.05),
                         family_size=max((p.get("family_size", 0) for p in policies), default=0))
    rows = [row for record in records for row in results.rows_from_record(record)]
    return results.sort_rows(gate.settle_improvements(gate.settle(rows, policy), policy.alpha))


def markers(results_dir: Path, shards: int) -> list[dict[str, Any]]:
    """Every shard's marker, checked: all there, all of one run, covering it exactly once."""
    if shards < 1:
        raise CkptgateError(f"--shards {shards}: must be at least 1")
    found, missing = [], []
    for index in range(1, shards + 1):
        folder = sharding.shard_dir(results_dir, index, shards)
        marker = sharding.read_marker(folder)
        if marker is None:
            missing.append(f"shard {index} of {shards}: no {folder / sharding.MARKER}")
        else:
            found.append(marker)
    if missing:
        raise InfrastructureError(
            "cannot merge: not every shard finished (its job failed, was killed or never ran; see its log):\n  "
            + "\n  ".join(missing))
    _check_cover(found, shards)
    for marker in found:
        status = marker["exit_status"]
        if status not in _RAN:
            error = CkptgateError if status == exitcodes.USAGE else InfrastructureError
            raise error(f"cannot merge: shard {marker['shard']} of {shards} stopped with exit status {status} "
                        f"before its results were complete (see its log)")
    return found


def _check_cover(found: list[dict[str, Any]], shards: int) -> None:
    labels = found[0]["checkpoints"]
    for index, marker in enumerate(found, start=1):
        if marker["shards"] != shards or marker["shard"] != index or marker["checkpoints"] != labels:
            raise CkptgateError(f"cannot merge: {sharding.shard_dir(Path('.'), index, shards)} holds shard "
                                f"{marker['shard']} of {marker['shards']} of another run (checkpoints "
                                f"{', '.join(marker['checkpoints'])}); merge the shards of one run")
    owned = [label for marker in found for label in marker["mine"]]
    if sorted(owned) != sorted(labels):
        raise CkptgateError(f"cannot merge: the shards cover {sorted(owned)}, the run has {sorted(labels)}")


def merge(results_dir: Path, shards: int) -> Merged:
    """Join the shards' results into ``results_dir``; returns the verdict and its exit code."""
    found = markers(results_dir, shards)
    folders = [sharding.shard_dir(results_dir, index, shards) for index in range(1, shards + 1)]
    records = [record for folder in folders for record in results.read_records(folder)]
    _copy_records(folders, results_dir)
    rows = resettle(records)
    results.settle_records(results_dir, rows)
    verdict = gate.run_verdict(rows) if rows else "REPORT ONLY"
    machine = any(m["exit_status"] == exitcodes.INFRA for m in found)
    if machine and not gate.model_failed(rows):
        verdict = gate.INFRA_VERDICT
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-merge"
    meta = {"verdict": verdict, "run": run_id, "merged": f"{shards} shard(s) in {results_dir / 'shards'} "
            f"(runs {', '.join(m['run_id'] for m in found)})", "checkpoints": ", ".join(found[0]["checkpoints"])}
    results.write_summary(results_dir, rows, reports.markdown(rows, meta))
    write_junit(results_dir / "junit.xml", rows, verdict)
    suite = str(records[0]["benchmark"].get("suite", "")) if records else ""
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    settings = {(r["checkpoint"]["label"], r["benchmark"]["id"]): record_settings(r) for r in records}
    history.record(results_dir, history.Run(run_id=run_id, started=now, finished=now, suite=suite,
                                            backend=str(records[0].get("backend", {}).get("backend", "")) if records else "",
                                            verdict=verdict, command=f"ckptgate merge {results_dir} --shards {shards}",
                                            git_sha=None), rows, settings)
    return Merged(verdict, VERDICT_CODES[verdict], rows, found)


def _copy_records(folders: Sequence[Path], results_dir: Path) -> None:
    """Each shard's benchmark records (and samples) into the merged folder's ``by_checkpoint``."""
    for folder in folders:
        for path in sorted((folder / "by_checkpoint").glob("*/*")):
            target = results_dir / "by_checkpoint" / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.merging")
            shutil.copyfile(path, temporary)
            temporary.replace(target)  # atomic: a reader never sees half a file


def write_junit(path: Path, rows: Sequence[SummaryRow], verdict: str) -> Path:
    """One test case per checkpoint x benchmark with its merged verdict (failure, skipped for
    INCONCLUSIVE, as the gate's own JUnit has it), and a ``verdict`` property on the suite."""
    cases: dict[tuple[str, str], list[SummaryRow]] = {}
    for row in rows:
        cases.setdefault((row.checkpoint, row.benchmark), []).append(row)
    suite = ET.Element("testsuite", name="ckptgate", tests=str(len(cases)))
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="verdict", value=verdict)
    failures = skipped = 0
    for (label, benchmark), case_rows in cases.items():
        case = ET.SubElement(suite, "testcase", classname=f"ckptgate.{benchmark}", name=f"{benchmark}[{label}]")
        gating = [r for r in case_rows if r.primary and r.role == "candidate" and r.verdict != "info"]
        word = status.outcome([r.verdict for r in gating], [True] * len(gating))
        word = "pass" if word == "report" else word  # as the gate's own JUnit marks a test that gates nothing
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="verdict", value=word)
        text = "\n".join(f"{r.verdict.upper()} {r.metric} vs {r.against}: {r.value} (delta {r.delta}, "
                         f"Holm p {r.p_holm})" for r in gating)
        if word == "fail":
            failures += 1
            ET.SubElement(case, "failure", message=f"{benchmark} on {label}: FAIL").text = text
        elif word == "inconclusive":
            skipped += 1
            ET.SubElement(case, "skipped", message=f"INCONCLUSIVE: {benchmark} on {label}").text = text
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    write_text(path, ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")
    return path

