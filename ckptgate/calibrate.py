"""Margins from measured noise: how much consecutive checkpoints of one run differ when nothing
real changes, and the smallest margin at which the gate would hold them equal.

``ckptgate calibrate --checkpoint RUN --suite S --last K`` takes the last K checkpoints of a
training run (a plateau: late in training, or after the learning rate has annealed), reads their
results from the results folder (or runs the suite on them, measure-only), and for each primary
metric reports

* the *noise*: the standard deviation of the metric over those K checkpoints (the definition of
  AI2's "Signal and Noise", 2025: the spread of a benchmark over a run's final checkpoints);
* the *signal*: the metric's range over every checkpoint of the run with results, and the
  signal-to-noise ratio (a benchmark whose SNR is near 1 cannot rank checkpoints of this run);
* the *needed* margin: the smallest margin at which the gate's non-inferiority test passes every
  ordered pair of the K checkpoints (each against each, both ways), i.e. what the gate needs to
  call checkpoints of equal quality equal at this benchmark's size;

and writes ``margin = max(needed, noise)`` (never below the noise), rounded up to two significant
digits, to a margins file that ``--margins`` or a suite's ``margins:`` applies.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptgate import atomicio, pairing, results
from ckptgate.checkpoints import Checkpoint, discover_all
from ckptgate.errors import CkptgateError
from ckptgate.margins import kind_of
from ckptgate.suites import Benchmark, Suite, load_suite

_SEARCH_STEPS = 60  # bisection steps for the needed margin: far below any rounding we print


@dataclass(frozen=True)
class Calibration:
    """One primary metric's noise, signal and suggested margin over a run's last checkpoints."""

    benchmark: str
    metric: str
    values: tuple[float, ...]  # on the last K checkpoints, in step order
    noise: float
    signal: float | None  # range over every checkpoint of the run with results (None: only the K)
    needed: float
    margin: float
    relative: bool  # written as a percentage of the metric's value (the perplexity family)

    @property
    def snr(self) -> float | None:
        if self.signal is None or self.noise == 0:
            return None
        return self.signal / self.noise

    def margin_entry(self) -> Any:
        mean = statistics.fmean(self.values)
        shown: Any = f"{_round_up(100 * self.margin / abs(mean))}%" if self.relative and mean else self.margin
        return {"margin": shown, "noise": _round_up(self.noise, 3), "needed": _round_up(self.needed, 3)}


def _round_up(value: float, digits: int = 2) -> float:
    """``value`` rounded up to ``digits`` significant digits (a margin must not shrink by rounding)."""
    if value <= 0 or not math.isfinite(value):
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale - 1e-9) / scale


def last_checkpoints(run: str, last: int) -> tuple[list[Checkpoint], list[Checkpoint]]:
    """(every checkpoint of the run in step order, its last ``last``)."""
    if last < 2:
        raise CkptgateError(f"--last must be at least 2 (noise needs two checkpoints), got {last}")
    found = discover_all([run])
    stepped = sorted((c for c in found if c.step is not None), key=lambda c: c.step or 0)
    if len(stepped) < last:
        raise CkptgateError(f"{run}: found {len(stepped)} checkpoint(s) with a step number, need --last {last}")
    return stepped, stepped[-last:]


def _records(results_dir: Path, ckpt: Checkpoint, bench: Benchmark) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """A checkpoint's stored record and samples for ``bench``, when they are of these exact weights."""
    folder = results.benchmark_dir(results_dir, ckpt.label)
    path = folder / f"{bench.id}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("checkpoint", {}).get("fingerprint") != ckpt.fingerprint:
        return None
    samples_path = folder / record["samples_file"]
    samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines() if line]
    return record, samples


def _measure(ckpts: Sequence[Checkpoint], suite: Suite, results_dir: Path, extra: Sequence[str]) -> None:
    """Run the suite measure-only on ``ckpts`` (a child pytest: the gate's own code path)."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--suite", str(suite.path),
               "--report-only", "--results-dir", str(results_dir), *extra]
    for ckpt in ckpts:
        command += ["--checkpoint", str(ckpt.path)]
    print(f"ckptgate calibrate: measuring {', '.join(c.label for c in ckpts)} on suite {suite.name}", file=sys.stderr)
    proc = subprocess.run(command, check=False)
    if proc.returncode != 0:
        raise CkptgateError(f"measuring the checkpoints failed (pytest exit code {proc.returncode}); see its output above")


def needed_margin(cand: list[dict[str, Any]], ref: list[dict[str, Any]], key: str, value: float, reference: float,
                  higher: bool, alpha: float) -> float:
    """The smallest margin (metric units) at which the gate's non-inferiority test passes ``cand``
    against ``ref``; its p-value falls as the margin grows, so bisection finds it."""

    def passes(margin: float) -> bool:
        comparison = pairing.compare(cand, ref, key, value=value, reference=reference, higher_is_better=higher,
                                     margin=margin)
        return comparison.p_noninferiority < alpha and not comparison.crosses_margin

    binary = pairing.is_binary(cand, key)
    high = 0.999 if binary else max(abs(reference), abs(value), 1e-12)
    while not binary and not passes(high):
        high *= 2
        if high > 1e12:
            raise CkptgateError(f"{key}: no margin makes the comparison pass")
    if binary and not passes(high):
        return 1.0
    low = 0.0
    for _ in range(_SEARCH_STEPS):
        mid = (low + high) / 2
        low, high = (low, mid) if passes(mid) else (mid, high)
    return high


def calibrate(run: str, suite_name: str, *, last: int, results_dir: Path, alpha: float,
              pytest_args: Sequence[str] = ()) -> tuple[Suite, list[Checkpoint], list[Calibration]]:
    suite = load_suite(suite_name)
    every, window = last_checkpoints(run, last)
    benchmarks = [b for b in suite.benchmarks if not b.opt_in and any(m.primary for m in b.metrics)]
    missing = [c for c in window if any(_records(results_dir, c, b) is None for b in benchmarks)]
    if missing:
        _measure(missing, suite, results_dir, pytest_args)
    out = []
    for bench in benchmarks:
        stored = {c.label: _records(results_dir, c, bench) for c in every}
        for gate in (m for m in bench.metrics if m.primary):
            out.append(_calibrate_metric(bench, gate.key, window, every, stored, alpha))
    return suite, window, out


def _calibrate_metric(bench: Benchmark, key: str, window: Sequence[Checkpoint], every: Sequence[Checkpoint],
                      stored: dict[str, Any], alpha: float) -> Calibration:
    def value_of(label: str) -> float:
        record, _ = stored[label]
        return float(record["metrics"][key]["value"])

    for ckpt in window:
        if stored[ckpt.label] is None:
            raise CkptgateError(f"no results of {bench.id} on {ckpt.label} after measuring it")
    values = tuple(value_of(c.label) for c in window)
    higher = bool(stored[window[0].label][0]["higher_is_better"].get(key.partition(",")[0], True))
    needed = 0.0
    for cand in window:
        for ref in window:
            if cand is ref:
                continue
            needed = max(needed, needed_margin(stored[cand.label][1], stored[ref.label][1], key,
                                               value_of(cand.label), value_of(ref.label), higher, alpha))
    noise = statistics.stdev(values)
    everywhere = [value_of(c.label) for c in every if stored.get(c.label) is not None]
    signal = max(everywhere) - min(everywhere) if len(everywhere) > len(values) else None
    return Calibration(bench.id, key, values, noise, signal, needed, _round_up(max(needed, noise)),
                       relative=kind_of(key) == "perplexity")


def write_margins(path: Path, suite: Suite, window: Sequence[Checkpoint], rows: Sequence[Calibration],
                  alpha: float) -> None:
    import yaml

    margins: dict[str, dict[str, Any]] = {}
    for row in rows:
        margins.setdefault(row.benchmark, {})[row.metric] = row.margin_entry()
    body = {
        "suite": suite.name,
        "written_by": f"ckptgate calibrate, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "checkpoints": [str(c.path) for c in window],
        "alpha": alpha,
        "margins": margins,
    }
    header = (
        "# Margins calibrated from checkpoint-to-checkpoint noise: for each primary metric, the smallest\n"
        "# margin at which every pair of the checkpoints below passes the gate's non-inferiority test\n"
        "# ('needed'), never below the metric's standard deviation over them ('noise').\n"
        "# Apply with `pytest --margins THIS_FILE` or a suite's `margins: THIS_FILE`.\n"
    )
    atomicio.write_text(path, header + yaml.safe_dump(body, sort_keys=False))


def table(rows: Sequence[Calibration]) -> list[str]:
    header = ("benchmark", "metric", "values (last K)", "noise (sd)", "signal (range)", "SNR", "needed", "margin")
    body = [
        (r.benchmark, r.metric, ", ".join(f"{v:.4f}" for v in r.values), f"{r.noise:.4g}",
         "n/a" if r.signal is None else f"{r.signal:.4g}", "n/a" if r.snr is None else f"{r.snr:.1f}",
         f"{r.needed:.4g}", str(r.margin_entry()["margin"]))
        for r in rows
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in (header, *body)]
    return [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]
