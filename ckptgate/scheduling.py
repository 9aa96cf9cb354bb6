"""Scheduling across xdist workers: each checkpoint's tests stay together, longest work first.

A *work group* is what one worker runs on one model load: normally all of a checkpoint's
benchmarks. When a run has fewer checkpoints than workers, idle workers would wait, so a
checkpoint's benchmarks are split into several groups (each loads the model once more, and the
wall time falls from load + all benchmarks to load + a share of them), when the simulated run
(``LOAD_COST`` per load) finishes sooner that way. Groups are then handed to
workers longest first (LPT): a group's cost is its benchmark count times the model's parameter
count, so big models start first and the last group to finish is a short one.

xdist 3.8 runs our :class:`CheckpointScheduling` (a ``loadgroup`` scheduler that orders its work
units by cost); the plugin checks at the end that every group ran on exactly one worker, because
pytest 9.2 with xdist silently stopped honouring groups (pytest-xdist issue 1386).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from xdist.scheduler import LoadGroupScheduling

PART = "~part"  # group name of a split checkpoint: "<label>~part<k>"


def group_name(label: str, part: int, parts: int) -> str:
    return label if parts == 1 else f"{label}{PART}{part + 1}"


def label_of(group: str) -> str:
    return group.split(PART, 1)[0]


# A model load in benchmarks' worth (on the same model): the cost a split pays for each extra
# group. An estimate: vLLM's start-up (weights, torch.compile, CUDA graphs) takes about as long
# as one benchmark of a few thousand requests; see benchmarks/bench_scheduling.py for its effect.
LOAD_COST = 1.0


def parts_per_checkpoint(counts: Mapping[str, int], weights: Mapping[str, float], workers: int,
                         load: float = LOAD_COST) -> dict[str, int]:
    """How many groups each checkpoint's ``counts[label]`` benchmarks are split into. Every
    checkpoint gets one; spare workers go, one at a time, to the checkpoint whose groups are
    then the longest (cost per group = weight x (load + benchmarks / parts)), never more groups
    than benchmarks. Each extra group loads the model once more, so of these allocations the
    one that finishes the run first (:func:`makespan`) is kept, the fewest groups on a tie: a
    split that does not shorten the run is not made."""
    parts = {label: 1 for label in counts}
    best, best_time = dict(parts), makespan(_units(counts, parts), weights, workers, load=load)
    for _ in range(workers - len(parts)):
        splittable = [label for label in parts if parts[label] < counts[label]]
        if not splittable:
            break
        longest = max(splittable, key=lambda label: (weights[label] * (load + counts[label] / parts[label]), label))
        parts[longest] += 1
        finish = makespan(_units(counts, parts), weights, workers, load=load)
        if finish < best_time * (1 - 1e-9):
            best, best_time = dict(parts), finish
    return best


def _units(counts: Mapping[str, int], parts: Mapping[str, int]) -> dict[str, int]:
    """Group -> benchmark count when each checkpoint's benchmarks are dealt round robin to its parts."""
    return {group_name(label, k, parts[label]): counts[label] // parts[label] + (k < counts[label] % parts[label])
            for label in counts for k in range(parts[label])}


def work_groups(items: Sequence[tuple[str, str]], weights: Mapping[str, float], workers: int,
                load: float = LOAD_COST) -> dict[str, str]:
    """Group name of every item: ``items`` are (item id, checkpoint label) in run order;
    ``weights`` the cost of one benchmark on each checkpoint. A split checkpoint's benchmarks are
    dealt to its groups in run order, round robin, so each group gets a fair share of them."""
    counts: dict[str, int] = {}
    for _, label in items:
        counts[label] = counts.get(label, 0) + 1
    parts = parts_per_checkpoint(counts, weights, workers, load)
    seen: dict[str, int] = {}
    groups = {}
    for item_id, label in items:
        k = seen.get(label, 0)
        seen[label] = k + 1
        groups[item_id] = group_name(label, k % parts[label], parts[label])
    return groups


def lpt_order(units: Mapping[str, int], weights: Mapping[str, float]) -> list[str]:
    """Work units (group -> test count) longest first; ties keep their given order."""
    position = {group: i for i, group in enumerate(units)}
    return sorted(units, key=lambda group: (-weights.get(label_of(group), 1.0) * units[group], position[group]))


def makespan(units: Mapping[str, int], weights: Mapping[str, float], workers: int, *, load: float = 0.0,
             order: Sequence[str] | None = None) -> float:
    """When the last worker finishes, handing units out in ``order`` (default :func:`lpt_order`,
    what the scheduler does) to whichever worker is free first; a unit's time is its weight times
    (``load`` for loading the model + its test count)."""
    finish = [0.0] * max(1, workers)
    for group in lpt_order(units, weights) if order is None else order:
        heapq.heapreplace(finish, finish[0] + weights.get(label_of(group), 1.0) * (load + units[group]))
    return max(finish)


class CheckpointScheduling(LoadGroupScheduling):
    """``loadgroup`` whose work units (one per group) are handed out longest first."""

    def __init__(self, config: Any, log: Any = None, weights: Mapping[str, float] | None = None) -> None:
        super().__init__(config, log)
        self.weights = dict(weights or {})
        self._ordered = False

    def _assign_work_unit(self, node: Any) -> None:
        if not self._ordered:  # the queue is complete when the first unit is handed out
            counts = {group: len(tests) for group, tests in self.workqueue.items()}
            self.workqueue = OrderedDict((group, self.workqueue[group]) for group in lpt_order(counts, self.weights))
            self._ordered = True
        super()._assign_work_unit(node)
