"""The gate as a CI job: run it, publish what a pipeline shows, exit with the verdict's code.

    python ci/gate_job.py --checkpoint PATH --suite S --results-dir DIR [-- PYTEST_ARGS]
    python ci/gate_job.py --new-under ROOT --suite S --results-dir DIR [-- PYTEST_ARGS]

``--checkpoint`` gates one checkpoint (a workflow's dispatch input); ``--new-under`` gates every
checkpoint under a training run's folder not yet in DIR's store (``ckptgate nightly``: DIR keeps
the store between jobs, so keep it on the runner, not in the workspace). Either way the gate
writes ``DIR/junit.xml``; this job then appends the verdict and the verdict table to the CI
system's job summary (GitHub Actions' ``$GITHUB_STEP_SUMMARY``, or ``--summary FILE``), prints
an error annotation on NO-GO, and exits with the gate's exit code (0 GO, 1 NO-GO, 4 usage
error, 6 INCONCLUSIVE, 7 infrastructure failure), so the job fails on anything but GO.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

MEANINGS = {
    0: "GO: every primary comparison passed",
    1: "NO-GO: a primary comparison failed",
    2: "interrupted",
    3: "internal error",
    4: "usage or input error: see the job log",
    5: "no test collected",
    6: "INCONCLUSIVE: nothing failed, but not every primary comparison could be shown to pass",
    7: "INFRASTRUCTURE FAILURE: the machine failed, not the model (rerun on another node)",
}


def gate_command(args: argparse.Namespace, extra: list[str]) -> list[str]:
    results = str(Path(args.results_dir).resolve())
    if args.new_under:
        return [sys.executable, "-m", "ckptgate.cli", "nightly", args.new_under, "--suite", args.suite,
                "--results-dir", results, "--", *extra]
    return [sys.executable, "-m", "pytest", "--checkpoint", args.checkpoint, "--suite", args.suite,
            "--results-dir", results, "--junitxml", str(Path(results) / "junit.xml"), "-p", "no:cacheprovider", *extra]


def latest_run_summary(results_dir: Path, before: set[str]) -> Path | None:
    """This job's run summary: the run folder that appeared while it ran (run ids sort by time)."""
    runs = sorted(p.name for p in (results_dir / "runs").glob("*") if p.is_dir()) if (results_dir / "runs").is_dir() else []
    new = [name for name in runs if name not in before]
    return results_dir / "runs" / new[-1] / "summary.md" if new else None


def job_summary(code: int, summary: Path | None) -> str:
    head = f"## ckptgate: {MEANINGS.get(code, f'exit code {code}')} (exit code {code})\n\n"
    if summary is None or not summary.is_file():
        return head + "No gate run was recorded (nothing new to gate, or the run stopped before its end).\n"
    return head + summary.read_text(encoding="utf-8").replace("# ckptgate summary\n", "", 1) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", help="the checkpoint folder to gate")
    what.add_argument("--new-under", metavar="ROOT", help="gate every checkpoint under ROOT not yet in the store")
    parser.add_argument("--suite", default="demo")
    parser.add_argument("--results-dir", required=True, help="results folder (keep it between jobs: the store)")
    parser.add_argument("--summary", help="markdown file to append the verdict to (default: $GITHUB_STEP_SUMMARY)")
    args = parser.parse_args(argv)
    results_dir = Path(args.results_dir).resolve()
    before = {p.name for p in (results_dir / "runs").glob("*")} if (results_dir / "runs").is_dir() else set()
    code = subprocess.run(gate_command(args, extra), check=False).returncode
    text = job_summary(code, latest_run_summary(results_dir, before))
    target = args.summary or os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text)
    if code != 0:
        print(f"::error title=ckptgate::{MEANINGS.get(code, f'exit code {code}')}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
