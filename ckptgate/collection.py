"""Collection: which test items the run has, in which order, and in which work group.

Each ``@pytest.mark.gate(name)`` test is parametrized over the suite's benchmarks for ``name`` x
the checkpoints (a :class:`Case` per item). Bridges run first (every candidate is compared with
their records); items are grouped by checkpoint (xdist ``loadgroup``, see
:mod:`ckptgate.scheduling`) so each worker loads a checkpoint once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ckptgate import scheduling
from ckptgate.checkpoints import Checkpoint
from ckptgate.runplan import RunPlan, names_text
from ckptgate.suites import Benchmark

GROUP = pytest.StashKey[str]()  # an item's work group (see ckptgate.scheduling)
WHOLE_RUN = pytest.StashKey[list[pytest.Item]]()  # under --shard: the items of every shard


@dataclass(frozen=True)
class Case:
    """One test item's work: a benchmark on a checkpoint."""

    benchmark: Benchmark
    checkpoint: Checkpoint

    def id(self, several_variants: bool) -> str:
        label = self.checkpoint.label
        return f"{self.benchmark.id}-{label}" if several_variants else label


def parametrize(metafunc: pytest.Metafunc, plan: RunPlan | None) -> None:
    """Give a test that asks for ``benchmark_case`` one item per (checkpoint, benchmark)."""
    if "benchmark_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("gate")
    if marker is None or not marker.args:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} uses the benchmark_case fixture but has no "
            "@pytest.mark.gate('name') marker naming its suite benchmarks"
        )
    benchmarks = plan.suite.for_test(marker.args[0]) if plan else []
    checkpoints = plan.checkpoints if plan else []
    cases = [Case(b, c) for c in checkpoints for b in benchmarks]
    several = len(benchmarks) > 1
    metafunc.parametrize("benchmark_case", cases, ids=[case.id(several) for case in cases])


def arrange(session: pytest.Session, items: list[pytest.Item], plan: RunPlan | None, *,
            workers: int, on_worker: bool) -> None:
    """Deselect what the run does not want, order and group the gate items (in place)."""
    config = session.config
    gate_items = [item for item in items if item.get_closest_marker("gate")]
    if not gate_items:
        if plan is not None and not on_worker:  # xdist: the controller checks (see the plugin's xdist hooks)
            raise pytest.UsageError(no_gate_tests(config))
        return
    if plan is None:
        raise pytest.UsageError(
            "the benchmark tests need checkpoints: pass --checkpoint PATH (repeatable) or "
            "--checkpoint demo for the embedded demo series"
        )
    cases = {item.nodeid: case_of(item) for item in gate_items}
    runnable = [item for item in gate_items if _wanted(config, cases[item.nodeid])]
    idle = [item for item in gate_items if item not in runnable]
    if idle:  # gate tests whose benchmarks are not in this suite, or opt-in ones not asked for
        config.hook.pytest_deselected(items=idle)
    _check_suite_covered(session, plan, gate_items)
    label = {item.nodeid: cases[item.nodeid].checkpoint.label for item in runnable}  # type: ignore[union-attr]
    # Bridges first: their records are what every candidate is compared with.
    order = {c.label: (c.role != "bridge", i) for i, c in enumerate(plan.checkpoints)}
    runnable.sort(key=lambda item: order[label[item.nodeid]])
    groups = scheduling.work_groups([(item.nodeid, label[item.nodeid]) for item in runnable], plan.weights, workers)
    for item in runnable:
        item.stash[GROUP] = groups[item.nodeid]  # xdist appends "@group" to node ids after this hook
        item.add_marker(pytest.mark.xdist_group(name=item.stash[GROUP]))
        for tag in cases[item.nodeid].benchmark.tags:  # type: ignore[union-attr]
            item.add_marker(tag)
    others = [item for item in items if not item.get_closest_marker("gate")]
    items[:] = others + runnable


def cut_shard(session: pytest.Session, items: list[pytest.Item], plan: RunPlan | None) -> None:
    """``--shard i/N``: deselect the items of other shards' checkpoints (in place), after every
    other selection (-k, -m): Holm's family is the whole selected run's, kept for
    :func:`family_size`, so each shard settles against the family the unsharded run has."""
    if plan is None or plan.shard is None:
        return
    session.stash[WHOLE_RUN] = list(items)
    elsewhere = [item for item in items if (case := case_of(item)) is not None and not plan.in_shard(case.checkpoint)]
    if elsewhere:
        session.config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if item not in elsewhere]


def no_gate_tests(config: pytest.Config) -> str:
    return (f"--checkpoint was given, but the test paths ({names_text([str(a) for a in config.args])}) hold no "
            "benchmark of the gate. Run the gate with `pytest --checkpoint PATH` (no test path: the installed "
            "benchmarks run), and the project's own tests with `pytest tests` (no --checkpoint)")


def _wanted(config: pytest.Config, case: Case | None) -> bool:
    """Whether the item runs: it has a case, and an opt-in benchmark runs only when named (its
    id, test or task) in -k or in a node id."""
    if case is None or not case.benchmark.opt_in:
        return case is not None
    bench = case.benchmark
    named = [config.option.keyword or "", *map(str, config.args)]
    return any(name in text for text in named for name in {bench.id, bench.test, bench.task})


def case_of(item: pytest.Item) -> Case | None:
    """The item's case; None for a gate test the suite gives no benchmark (an empty parameter set)."""
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("benchmark_case") if callspec is not None else None
    return case if isinstance(case, Case) else None


def _check_suite_covered(session: pytest.Session, plan: RunPlan, gate_items: list[pytest.Item]) -> None:
    """A suite benchmark that no collected test runs must not vanish silently."""
    if any("::" in arg for arg in session.config.args):
        return  # the user picked tests by node id
    tests = {item.get_closest_marker("gate").args[0] for item in gate_items}  # type: ignore[union-attr]
    orphans = [b.id for b in plan.suite.benchmarks if b.test not in tests]
    if orphans:
        raise pytest.UsageError(
            f"suite {plan.suite.name!r} declares benchmark(s) {', '.join(orphans)} but no collected "
            "test carries the matching @pytest.mark.gate(name); check their 'test' field"
        )


def planned(session: pytest.Session, group: str) -> list[Benchmark]:
    """The benchmarks this process runs in work ``group`` (one checkpoint's, or a share of them
    when it is split over workers): the group's selected items, all on one worker, in run order."""
    cases = (case_of(item) for item in session.items if item.stash.get(GROUP, None) == group)
    return [c.benchmark for c in cases if c is not None]


def family_size(plan: RunPlan, session: pytest.Session) -> int:
    """Holm's family: every primary metric of every selected candidate test, once per reference
    it is compared with (each bridge, and the baseline where it holds a gating entry for the
    metric). The same on every worker: all collect the same items. Under ``--shard``, the whole
    run's: each shard's Holm is then conservative, and the merge settles the exact one."""
    bridges, baseline = len(plan.bridges), plan.baseline()

    def comparisons(bench: Benchmark, key: str) -> int:
        entry = None if baseline is None else baseline.find(bench.id, key)
        return bridges + (entry is not None and entry.gating)

    items = session.stash.get(WHOLE_RUN, session.items)  # under --shard: every shard's items
    cases = [c for c in map(case_of, items) if c is not None and c.checkpoint.role == "candidate"]
    return sum(comparisons(c.benchmark, m.key) for c in cases for m in c.benchmark.metrics if m.primary)
