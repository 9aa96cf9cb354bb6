"""lm-eval's task index, as much of it as a suite's tasks need, kept between runs.

Building lm-eval's ``TaskManager`` imports lm-eval's task machinery (datasets, pandas, pyarrow)
and indexes every task YAML it can see: over a second for a folder of a few tasks, several
seconds with lm-eval's built-in tasks. What a run needs from it before any model loads (which
hub datasets the suite reads, the YAML files of each task for the record cache's key, the
members of groups) is a small part of that index. This module keeps that part in a file,
``<cache>/task-index/<key>.json``, so a run whose results all come from the record cache
never builds a ``TaskManager``.

The snapshot is used only while nothing it was built from changed: its key holds lm-eval's
version, the suite's task folders with every file in them (name, size, modification time), the
task names and the local data folders asked about; and every YAML file it lists, wherever it
lies, is checked against its recorded size and modification time when the snapshot is read.
Anything else builds a fresh ``TaskManager`` and a fresh snapshot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptgate.atomicio import write_text
from ckptgate.cache import cache_root

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

FORMAT = 1
_CFG_KEYS = ("dataset_path", "task")  # what the index's readers look at in a task's config


@dataclass(frozen=True)
class Kind:
    """``Entry.kind`` as lm-eval's index has it: ``.name`` is TASK, GROUP, TAG, PY_TASK ..."""

    name: str


@dataclass(frozen=True)
class Entry:
    """One task, group or tag, with the fields of lm-eval's ``Entry`` this project reads."""

    kind: Kind
    yaml_path: Path | None
    cfg: dict[str, Any]
    tags: frozenset[str] = frozenset()


@dataclass
class TaskIndex:
    """A part of a ``TaskManager``'s index, read the same way (``task_index``, ``all_tasks``,
    ``all_groups``), plus each asked-about task's YAML files (``yamls``)."""

    task_index: dict[str, Entry]
    yamls: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def all_tasks(self) -> list[str]:
        return sorted(self.task_index)

    @property
    def all_groups(self) -> list[str]:
        return sorted(name for name, entry in self.task_index.items() if entry.kind.name == "GROUP")


Yamls = Callable[[Any, str], list[Path]]
"""(manager, task) -> the YAML files defining the task (``scorers.lm_eval_task.task_yamls``)."""


def load_or_build(task_paths: tuple[Path, ...], include_defaults: bool, names: Iterable[str],
                  build: Callable[[], TaskManager], yamls: Yamls) -> TaskIndex | None:
    """The snapshot for ``names`` (tasks and local data folder names), read from the cache when
    still valid, else taken from ``build()`` (a ``TaskManager``) and stored. None when one of
    ``names`` is unknown to lm-eval here: then callers use the full manager (its errors and
    suggestions need every name)."""
    wanted = sorted(set(names))
    path = cache_root() / "task-index" / f"{_key(task_paths, include_defaults, wanted)}.json"
    found = _read(path)
    if found is not None:
        return found
    manager = build()
    if any(name not in manager.task_index for name in wanted):
        return None
    index = snapshot(manager, wanted, yamls)
    write_text(path, json.dumps(_to_json(index), indent=1, sort_keys=True) + "\n")
    return index


def snapshot(manager: TaskManager, names: Iterable[str], yamls: Yamls) -> TaskIndex:
    """The entries ``names`` reach in ``manager`` (group and tag members, recursively), and each
    of ``names``' YAML files."""
    names = list(names)
    entries: dict[str, Entry] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        entry = manager.task_index.get(name)
        if entry is None or name in entries:
            continue
        entries[name] = _entry(entry)
        kind = entry.kind.name
        if kind == "TAG":
            pending += [other for other, e in manager.task_index.items() if name in e.tags]
        elif kind == "GROUP":
            pending += [m for m in (entry.cfg or {}).get("task", []) if isinstance(m, str)]
    return TaskIndex(entries, {name: yamls(manager, name) for name in names if name in entries})


def _entry(entry: Any) -> Entry:
    cfg = {k: v for k, v in (entry.cfg or {}).items() if k in _CFG_KEYS}
    if isinstance(cfg.get("task"), list):
        cfg["task"] = [m for m in cfg["task"] if isinstance(m, str)]
    elif "task" in cfg and not isinstance(cfg["task"], str):
        del cfg["task"]
    return Entry(Kind(entry.kind.name), None if entry.yaml_path is None else Path(entry.yaml_path), cfg,
                 frozenset(entry.tags or ()))


def _key(task_paths: tuple[Path, ...], include_defaults: bool, names: list[str]) -> str:
    shaping = {
        "format": FORMAT,
        "lm_eval": metadata.version("lm_eval"),
        "include_defaults": include_defaults,
        "task_paths": [[str(root), _listing(root)] for root in task_paths],
        "names": names,
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:32]


def _listing(root: Path) -> list[list[Any]]:
    """Every file under ``root``: relative name, size, modification time (ns)."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            stat = path.stat()
            found.append([str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns])
    return found


def _stat(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _to_json(index: TaskIndex) -> dict[str, Any]:
    files = {str(p) for paths in index.yamls.values() for p in paths}
    files |= {str(e.yaml_path) for e in index.task_index.values() if e.yaml_path is not None}
    return {
        "entries": {name: {"kind": e.kind.name, "yaml_path": None if e.yaml_path is None else str(e.yaml_path),
                           "cfg": e.cfg, "tags": sorted(e.tags)} for name, e in index.task_index.items()},
        "yamls": {name: [str(p) for p in paths] for name, paths in index.yamls.items()},
        "files": {name: _stat(Path(name)) for name in sorted(files)},
    }


def _read(path: Path) -> TaskIndex | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if any(_stat(Path(name)) != stat for name, stat in data["files"].items()):
        return None  # a YAML it lists changed (outside the task folders, e.g. lm-eval's own)
    entries = {name: Entry(Kind(e["kind"]), None if e["yaml_path"] is None else Path(e["yaml_path"]), e["cfg"],
                           frozenset(e["tags"])) for name, e in data["entries"].items()}
    return TaskIndex(entries, {name: [Path(p) for p in paths] for name, paths in data["yamls"].items()})
