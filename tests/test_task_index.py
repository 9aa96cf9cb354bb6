"""The part of lm-eval's task index a run needs before loading tasks, kept between runs: used
while nothing it was built from changed, rebuilt as soon as something did."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scorers.lm_eval_task import task_manager, task_yamls
from scorers.task_index import TaskIndex, load_or_build
from test_e2e import ROOT

NAMES = ("demo_arithmetic", "demo_choice", "demo_text")


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks"
    shutil.copytree(ROOT / "evaltests" / "tasks" / "demo", folder)
    return folder


def _index(tasks: Path, builds: list[int], names: tuple[str, ...] = NAMES) -> TaskIndex | None:
    def build():  # type: ignore[no-untyped-def]
        builds.append(1)
        task_manager.cache_clear()
        return task_manager((tasks,), False)

    return load_or_build((tasks,), False, names, build, task_yamls)


def test_a_stored_index_answers_like_lm_evals_own_and_is_reused_without_building_a_manager(tasks: Path) -> None:
    builds: list[int] = []
    first = _index(tasks, builds)
    again = _index(tasks, builds)
    assert builds == [1] and first is not None and again is not None
    manager = task_manager((tasks,), False)
    for name in NAMES:
        entry, real = again.task_index[name], manager.task_index[name]
        assert (entry.kind.name, entry.yaml_path, entry.cfg.get("dataset_path")) == (
            real.kind.name, Path(real.yaml_path), real.cfg.get("dataset_path"))
        assert again.yamls[name] == task_yamls(manager, name)
    assert again.all_tasks == sorted(NAMES) and again.all_groups == []


@pytest.mark.parametrize("change", ["edit a task file", "add a file", "remove a file"])
def test_any_change_in_the_task_folders_builds_the_index_again(tasks: Path, change: str) -> None:
    builds: list[int] = []
    _index(tasks, builds)
    if change == "edit a task file":
        path = tasks / "demo_choice.yaml"
        path.write_text(path.read_text() + "# changed\n")
    elif change == "add a file":
        (tasks / "extra.yaml").write_text("task: demo_extra\n")
    else:
        (tasks / "utils.py").unlink()
    _index(tasks, builds)
    assert builds == [1, 1]


def test_a_listed_yaml_outside_the_task_folders_is_checked_too(tasks: Path, tmp_path: Path) -> None:
    """A task including a file elsewhere (lm-eval's own tree, say): its change is seen."""
    outside = tmp_path / "shared" / "base.yaml"
    outside.parent.mkdir()
    outside.write_text((tasks / "demo_choice.yaml").read_text().replace("task: demo_choice", "task: base_choice"))
    (tasks / "included.yaml").write_text(f"include: {outside}\ntask: demo_included\n")
    builds: list[int] = []
    found = _index(tasks, builds, ("demo_included",))
    assert found is not None and outside in found.yamls["demo_included"]
    _index(tasks, builds, ("demo_included",))
    assert builds == [1]
    stat = outside.stat()
    os.utime(outside, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    _index(tasks, builds, ("demo_included",))
    assert builds == [1, 1]


def test_an_unknown_name_gets_no_snapshot_so_the_full_manager_reports_it(tasks: Path) -> None:
    builds: list[int] = []
    assert _index(tasks, builds, ("demo_choice", "no_such_task")) is None
    assert _index(tasks, builds, ("demo_choice", "no_such_task")) is None
    assert builds == [1, 1]
