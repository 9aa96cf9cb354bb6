"""Simulated wall time of a gate run across workers: ckptgate's work groups and longest-first
order against plain xdist loadgroup (one group per checkpoint, collection order).

    .venv/bin/python benchmarks/bench_scheduling.py [--load 1]

Every benchmark of a checkpoint costs its parameter count in billions (time units); loading a
model costs ``--load`` benchmarks' worth on that model, once per work group (the scheduler is
told the same cost). Workers take the next group when they are free, as xdist's scheduler hands
them out. Prints one row per scenario: wall time, and GPU time (the sum over workers of the time
they were busy: what extra loads cost).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ckptgate import scheduling  # noqa: E402 - after the path insert

# name -> (workers, {checkpoint: (parameters in billions, benchmarks)})
SCENARIOS: dict[str, tuple[int, dict[str, tuple[float, int]]]] = {
    "8 ckpts x 12 benchmarks, 8 workers": (8, {f"c{i}": (1.7, 12) for i in range(8)}),
    "3 ckpts x 20 benchmarks, 8 workers": (8, {f"c{i}": (1.7, 20) for i in range(3)}),
    "1 ckpt x 20 benchmarks, 8 workers": (8, {"c0": (1.7, 20)}),
    "3 ckpts x 2 benchmarks, 4 workers": (4, {f"c{i}": (1.7, 2) for i in range(3)}),
    "1.7B, 4B, 8B x 20 benchmarks, 4 workers": (4, {"small": (1.7, 20), "mid": (4.0, 20), "big": (8.0, 20)}),
    "10 ckpts (1.7B..8B) x 10, 4 workers": (4, {f"c{i}": (1.7 + 0.7 * i, 10) for i in range(10)}),
}


def run(load: float) -> None:
    print(f"model load = {load:g} benchmark(s)\n")
    print("| scenario | wall: loadgroup (one group per checkpoint) | wall: ckptgate | speed-up "
          "| GPU time: loadgroup | GPU time: ckptgate | model loads |")
    print("|---|---|---|---|---|---|---|")
    for name, (workers, ckpts) in SCENARIOS.items():
        sizes = {label: size for label, (size, _) in ckpts.items()}
        plain = {label: n for label, (_, n) in ckpts.items()}
        items = [(f"{label}-{i}", label) for label, (_, n) in ckpts.items() for i in range(n)]
        weights = {label: size * 1e9 for label, size in sizes.items()}
        assigned = scheduling.work_groups(items, weights, workers, load)
        groups: dict[str, int] = {}
        for group in assigned.values():
            groups[group] = groups.get(group, 0) + 1
        before = scheduling.makespan(plain, sizes, workers, load=load, order=list(plain))
        after = scheduling.makespan(groups, sizes, workers, load=load)
        print(f"| {name} | {before:.1f} | {after:.1f} | {before / after:.2f}x | {busy(plain, sizes, load):.1f} "
              f"| {busy(groups, sizes, load):.1f} | {len(plain)} -> {len(groups)} |")


def busy(units: dict[str, int], sizes: dict[str, float], load: float) -> float:
    """Time summed over workers: every group loads its model and runs its benchmarks."""
    return sum(sizes[scheduling.label_of(group)] * (load + n) for group, n in units.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load", type=float, default=scheduling.LOAD_COST,
                        help=f"model load time in benchmarks' worth (default {scheduling.LOAD_COST:g}, the scheduler's)")
    run(parser.parse_args().load)


if __name__ == "__main__":
    main()
