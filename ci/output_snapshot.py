"""Snapshot the gate's outputs, to show a change of structure changed no number.

    .venv/bin/python ci/output_snapshot.py take DIR     run the demo series and the qwen3 fixtures into DIR
    .venv/bin/python ci/output_snapshot.py diff A B     compare two snapshots; exit 1 on any difference

``take`` runs two gate runs on the CPU (hf backend, no record cache): the whole demo series
(``--checkpoint demo:all``) and the qwen3 suite on the demo's step_0800 over the fixture datasets
against the qwen3-1.7b-base baseline, then writes a normalised copy of every ``eval_summary.csv``,
record and per-sample file beside the raw results. Records are normalised: without what differs
between two runs of the same code (timing, date, provenance, worker id, the memory addresses in
function reprs of lm-eval's task config) and with the results folder's and the project's paths
replaced by placeholders (a snapshot taken in a second checkout compares with the first); the summary and per-sample files are copied as they are.
``diff`` reports each file that differs.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTEST = ROOT / ".venv" / "bin" / "pytest"
FIXTURES = ROOT / "tests" / "fixtures" / "datasets"
RUNS = {
    "demo_all": ["--checkpoint", "demo:all"],
    "qwen3_fixtures": ["--suite", "qwen3", "--checkpoint", "{demo_series}/step_0800", "--datasets", str(FIXTURES),
                       "--baseline", "qwen3-1.7b-base"],
}
VOLATILE_RECORD_KEYS = ("timing", "provenance", "date", "worker")
ADDRESS = re.compile(r" at 0x[0-9a-f]+")  # lm-eval's task config names functions by repr
LOCAL_TASKS = re.compile(r"local-tasks/[0-9a-f]+")  # keyed by the data files' paths


def take(out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from ckptgate.demo import demo_series

    for name, template in RUNS.items():
        args = [arg.format(demo_series=demo_series()) for arg in template]
        raw = out / name / "raw"
        command = [str(PYTEST), "-n", "2", "-p", "no:cacheprovider", *args, "--backend", "hf",
                   "--record-cache", "none", "--results-dir", str(raw)]
        print("$", " ".join(command), flush=True)
        proc = subprocess.run(command, cwd=ROOT, text=True, capture_output=True)
        (out / name).mkdir(parents=True, exist_ok=True)
        (out / name / "pytest.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        print(f"  exit {proc.returncode}", flush=True)
        normalise(raw, out / name / "normalised")


def normalise(raw: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    summary = raw / "eval_summary.csv"
    if summary.exists():
        (dest / "eval_summary.csv").write_bytes(summary.read_bytes())  # it holds no timing
    for path in sorted((raw / "by_checkpoint").glob("*/*")):
        target = dest / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(".samples.jsonl"):
            target.write_bytes(path.read_bytes())
        elif path.suffix == ".json":
            record = json.loads(path.read_text(encoding="utf-8"))
            target.write_text(json.dumps(_record(record, raw), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _record(record: dict[str, Any], raw: Path) -> dict[str, Any]:
    kept = {k: v for k, v in record.items() if k not in VOLATILE_RECORD_KEYS}
    text = json.dumps(kept).replace(str(raw), "<results>").replace(str(ROOT), "<project>")
    text = LOCAL_TASKS.sub("local-tasks/<digest>", ADDRESS.sub(" at 0x…", text))
    return json.loads(text)


def diff(a: Path, b: Path) -> int:
    files_a = {p.relative_to(a) for p in a.rglob("normalised/**/*") if p.is_file()}
    files_b = {p.relative_to(b) for p in b.rglob("normalised/**/*") if p.is_file()}
    differing = 0
    for rel in sorted(files_a ^ files_b):
        print(f"only in {'A' if rel in files_a else 'B'}: {rel}")
        differing += 1
    for rel in sorted(files_a & files_b):
        left, right = (a / rel).read_text(encoding="utf-8"), (b / rel).read_text(encoding="utf-8")
        if left != right:
            differing += 1
            print(f"differs: {rel}")
            sys.stdout.writelines(list(difflib.unified_diff(left.splitlines(True), right.splitlines(True), "A", "B", n=1))[:40])
    print(f"{len(files_a & files_b)} file(s) compared, {differing} difference(s)")
    return 1 if differing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("take").add_argument("dir", type=Path)
    compare = sub.add_parser("diff")
    compare.add_argument("a", type=Path)
    compare.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "take":
        take(args.dir.resolve())
        return 0
    return diff(args.a, args.b)


if __name__ == "__main__":
    raise SystemExit(main())
