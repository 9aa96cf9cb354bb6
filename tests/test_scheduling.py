"""Work groups and longest-first order across xdist workers (ckptgate.scheduling), and a real
xdist run that splits one checkpoint over idle workers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from test_e2e import gate

from ckptgate import scheduling


def items(**counts: int) -> list[tuple[str, str]]:
    return [(f"{label}-{i}", label) for label, n in counts.items() for i in range(n)]


def test_enough_checkpoints_keep_one_group_each() -> None:
    groups = scheduling.work_groups(items(a=3, b=3), {"a": 1, "b": 1}, workers=2)
    assert set(groups.values()) == {"a", "b"}
    assert scheduling.work_groups(items(a=3, b=3, c=3), {"a": 1, "b": 1, "c": 1}, workers=2)["c-0"] == "c"


def test_three_checkpoints_of_twenty_benchmarks_use_all_eight_workers() -> None:
    weights = {"a": 1.0, "b": 1.0, "c": 1.0}
    groups = scheduling.work_groups(items(a=20, b=20, c=20), weights, workers=8)
    units = {g: list(groups.values()).count(g) for g in set(groups.values())}
    assert len(units) == 8 and sorted(units.values()) == [6, 6, 7, 7, 7, 7, 10, 10]
    assert scheduling.makespan(units, weights, 8) == 10  # instead of 20 with one group per checkpoint
    assert scheduling.makespan({"a": 20, "b": 20, "c": 20}, weights, 8) == 20


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


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 30), min_size=1), st.integers(1, 12))
def test_groups_cover_every_item_once_and_keep_to_their_checkpoint(counts: dict[str, int], workers: int) -> None:
    its = items(**counts)
    groups = scheduling.work_groups(its, {label: 1.0 for label in counts}, workers)
    assert set(groups) == {item for item, _ in its}
    assert all(scheduling.label_of(groups[item]) == label for item, label in its)
    n_groups = len(set(groups.values()))
    assert n_groups == max(len(counts), min(workers, sum(counts.values())))


def test_one_checkpoint_is_split_over_two_workers_and_each_part_loads_once(demo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = gate("-n", "2", "--checkpoint", str(demo_root / "step_0800"), "--results-dir", str(out),
                "--record-cache", "none", "-v")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    workers = {line.split("]")[0].lstrip("[") for line in proc.stdout.splitlines() if line.startswith("[gw")}
    assert workers == {"gw0", "gw1"}  # both workers had a share of the one checkpoint
    assert "@step_0800~part1" in proc.stdout and "@step_0800~part2" in proc.stdout
    records = [json.loads(p.read_text()) for p in (out / "by_checkpoint" / "step_0800").glob("*.json")]
    assert {r["worker"] for r in records} == {"gw0", "gw1"}
    with (out / "eval_summary.csv").open() as handle:
        assert {r["benchmark"] for r in csv.DictReader(handle)} == {"arithmetic", "choice", "text"}
