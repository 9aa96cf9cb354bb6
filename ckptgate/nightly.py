"""``ckptgate nightly ROOT --suite S``: the regression run over everything a training run has
written. It discovers the checkpoints under ROOT (``step_N``, ``epoch_N`` counted from 0,
``checkpoint-N``, ``<name>_stepN``, ``<name>_final``), leaves out what is still being written or
is not a usable checkpoint (named, not fatal: tonight's run gates the rest), evaluates through
the gate only those not yet in the results folder's store for this suite and these settings
(``--new-only``: a second nightly over unchanged checkpoints evaluates nothing), gates each new
one against the suite's references, records the run in the folder's history, and writes the
trend report (``trend.html``) of every run so far.

The store is the results folder's own: records in ``DIR/records``, history in
``DIR/history.sqlite``, so one folder per training run keeps its whole history.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ckptgate import exitcodes
from ckptgate.checkpoints import validate_checkpoint
from ckptgate.checkpoints.naming import STEP_PATTERNS_HELP, is_checkpoint_name, order_key, parse_step, safe_label
from ckptgate.errors import CheckpointError, CkptgateError
from ckptgate.resources import evaltests_dir


@dataclass(frozen=True)
class Found:
    """What is under a training run's folder: usable checkpoints, and the others with why."""

    checkpoints: list[Path]
    skipped: list[str]


def find(root: Path) -> Found:
    """The checkpoint folders under ``root`` that validate (ordered by step), and the
    checkpoint-named folders that do not (incomplete, still being written), each with why."""
    if not root.is_dir():
        raise CkptgateError(f"{root}: no such folder (give the training run's output folder)")
    if (root / "config.json").is_file():
        return Found([root], [])
    good, skipped = [], []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and is_checkpoint_name(p.name)):
        try:
            validate_checkpoint(child.resolve())  # the gate fingerprints what passes: not here as well
        except CheckpointError as exc:
            skipped.append(f"{child.name}: {str(exc).splitlines()[0]}")
        else:  # the folder as named here: its label and step come from this name
            good.append((order_key(*parse_step(child.name), safe_label(child.name)), child))
    if not good:
        raise CkptgateError(f"{root}: no usable checkpoint (folders named {STEP_PATTERNS_HELP})"
                            + (":\n  " + "\n  ".join(skipped) if skipped else ""))
    return Found([child for _, child in sorted(good)], skipped)


def gate_command(found: Found, suite: str, results_dir: Path, *, workers: int | None,
                 controls: list[str], pytest_args: list[str]) -> list[str]:
    command = [sys.executable, "-m", "pytest", str(evaltests_dir()), "-p", "no:cacheprovider", "--suite", suite,
               "--results-dir", str(results_dir), "--record-cache", str(results_dir / "records"), "--new-only",
               "--junitxml", str(results_dir / "junit.xml")]
    command += [arg for path in found.checkpoints for arg in ("--checkpoint", str(path))]
    command += [arg for path in controls for arg in ("--control", path)]
    if workers is not None:
        command += ["-n", str(workers)]
    return command + pytest_args


def run(args: argparse.Namespace) -> int:
    root, results_dir = Path(args.root).expanduser().resolve(), Path(args.results_dir).expanduser().resolve()
    found = find(root)
    print(f"ckptgate nightly: {len(found.checkpoints)} checkpoint(s) under {root}", flush=True)
    for line in found.skipped:
        print(f"ckptgate nightly: skipped (not a usable checkpoint yet): {line}", flush=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    command = gate_command(found, args.suite, results_dir, workers=args.workers, controls=args.control,
                           pytest_args=list(args.pytest_args))
    code = subprocess.run(command, check=False).returncode
    from ckptgate import trend  # plotly: imported by the command that writes the report, not by the parser

    report = trend.refresh(results_dir)
    if report is not None:
        print(f"ckptgate nightly: trend report {report}", flush=True)
    if code == exitcodes.GO and found.skipped:
        print(f"ckptgate nightly: {len(found.skipped)} folder(s) skipped, see above", flush=True)
    return code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="ROOT", help="the training run's output folder (its checkpoints' parent)")
    parser.add_argument("--suite", required=True, help="suite name or YAML path")
    parser.add_argument("--results-dir", default="results", help="the run's results folder, kept across nights "
                        "(records/, history.sqlite, trend.html; default: results/)")
    parser.add_argument("-n", "--workers", type=int, default=None, help="pytest-xdist workers (one GPU each)")
    parser.add_argument("--control", action="append", default=[], metavar="PATH",
                        help="a base model evaluated beside the fine-tuned checkpoints (repeatable)")
    parser.epilog = "Arguments after -- go to the gate's pytest, e.g. -- --baseline qwen3-1.7b-base --limit 100."
    parser.set_defaults(pytest_args=[])  # what follows "--" on the command line: the gate's pytest arguments
