"""Work groups and longest-first order across xdist workers (ckptgate.scheduling), and a real
xdist run that splits one checkpoint over idle workers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from test_e2e import ROOT, gate

from ckptgate import scheduling


def items(**counts: int) -> list[tuple[str, str]]:
    return [(f"{label}-{i}", label) for label, n in counts.items() for i in range(n)]


def test_enough_checkpoints_keep_one_group_each() -> None:
    groups = scheduling.work_groups(items(a=3, b=3), {"a": 1, "b": 1}, workers=2)
    assert set(groups.values()) == {"a", "b"}
    assert scheduling.work_groups(items(a=3, b=3, c=3), {"a": 1, "b": 1, "c": 1}, workers=2)["c-0"] == "c"


def test_three_checkpoints_of_twenty_benchmarks_use_idle_workers() -> None:
    weights = {"a": 1.0, "b": 1.0, "c": 1.0}
    groups = scheduling.work_groups(items(a=20, b=20, c=20), weights, workers=9, load=1.0)
    units = {g: list(groups.values()).count(g) for g in set(groups.values())}
    assert len(units) == 9 and sorted(units.values()) == [6, 6, 6, 7, 7, 7, 7, 7, 7]
    assert scheduling.makespan(units, weights, 9, load=1.0) == 8  # instead of 21 with one group per checkpoint
    assert scheduling.makespan({"a": 20, "b": 20, "c": 20}, weights, 9, load=1.0) == 21
    # On 8 workers one checkpoint cannot get a third group without another staying at two: the
    # run ends at 1 + 10 either way, so the extra loads are not paid.
    assert scheduling.parts_per_checkpoint({"a": 20, "b": 20, "c": 20}, weights, workers=8) == {"a": 2, "b": 2, "c": 2}


def test_a_split_that_does_not_shorten_the_run_is_not_made() -> None:
    weights = {"a": 1.0, "b": 1.0, "c": 1.0}
    assert scheduling.parts_per_checkpoint({"a": 2, "b": 2, "c": 2}, weights, workers=4) == {"a": 1, "b": 1, "c": 1}
    assert scheduling.parts_per_checkpoint({"a": 2, "b": 2, "c": 2}, weights, workers=6) == {"a": 2, "b": 2, "c": 2}
    # a load dearer than the benchmarks it would spare: one group
    assert scheduling.parts_per_checkpoint({"a": 2}, {"a": 1.0}, workers=2, load=1.0) == {"a": 2}
    assert scheduling.parts_per_checkpoint({"a": 2}, {"a": 1.0}, workers=2, load=0.0) == {"a": 2}
    assert scheduling.parts_per_checkpoint({"a": 4, "b": 1}, {"a": 1.0, "b": 1.0}, workers=3) == {"a": 2, "b": 1}


def test_a_checkpoint_is_never_split_into_more_groups_than_benchmarks() -> None:
    groups = scheduling.work_groups(items(a=2), {"a": 1}, workers=8)
    assert set(groups.values()) == {"a~part1", "a~part2"}


def test_bigger_models_get_the_spare_workers_and_start_first() -> None:
    weights = {"small": 1e9, "big": 8e9}
    parts = scheduling.parts_per_checkpoint({"small": 10, "big": 10}, weights, workers=4)
    assert parts == {"small": 1, "big": 3}
    assert scheduling.lpt_order({"small": 10, "big~part1": 4, "big~part2": 3}, weights)[0] == "big~part1"
    assert scheduling.label_of("big~part2") == "big" and scheduling.label_of("step_0800") == "step_0800"


def test_eight_checkpoints_on_eight_workers_take_the_time_of_one() -> None:
    units = {f"c{i}": 12 for i in range(8)}
    assert scheduling.makespan(units, {}, 8) == 12


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 30), min_size=1), st.integers(1, 12),
       st.sampled_from([0.0, 0.5, 1.0, 3.0]))
def test_groups_cover_every_item_once_keep_to_their_checkpoint_and_never_slow_the_run(
        counts: dict[str, int], workers: int, load: float) -> None:
    its = items(**counts)
    weights = {label: 1.0 for label in counts}
    groups = scheduling.work_groups(its, weights, workers, load)
    assert set(groups) == {item for item, _ in its}
    assert all(scheduling.label_of(groups[item]) == label for item, label in its)
    units = {g: list(groups.values()).count(g) for g in set(groups.values())}
    assert len(counts) <= len(units) <= max(len(counts), workers)
    unsplit = scheduling.makespan(counts, weights, workers, load=load)
    split = scheduling.makespan(units, weights, workers, load=load)
    assert split < unsplit if len(units) > len(counts) else split == unsplit


def test_one_checkpoint_is_split_over_two_workers_and_each_part_loads_once(demo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    demo = (ROOT / "evaltests" / "suites" / "demo.yaml").read_text()
    alone = tmp_path / "alone.yaml"  # the demo suite without its bridge: one checkpoint in the run
    alone.write_text(demo.replace("bridge: demo\n", "").replace("[../tasks/demo]", f"[{ROOT / 'evaltests' / 'tasks' / 'demo'}]"))
    proc = gate("-n", "2", "--checkpoint", str(demo_root / "step_0800"), "--results-dir", str(out), "--suite", str(alone),
                "--report-only", "--record-cache", "none", "-v")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    workers = {line.split("]")[0].lstrip("[") for line in proc.stdout.splitlines() if line.startswith("[gw")}
    assert workers == {"gw0", "gw1"}  # both workers had a share of the one checkpoint
    assert "@step_0800~part1" in proc.stdout and "@step_0800~part2" in proc.stdout
    records = [json.loads(p.read_text()) for p in (out / "by_checkpoint" / "step_0800").glob("*.json")]
    assert {r["worker"] for r in records} == {"gw0", "gw1"}
    with (out / "eval_summary.csv").open() as handle:
        assert {r["benchmark"] for r in csv.DictReader(handle)} == {"arithmetic", "choice", "text"}
