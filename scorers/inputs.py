"""What a benchmark's numbers depend on besides the checkpoint, as digests: part of the record
cache's key, so a change invalidates exactly the entries it affects.

- task files: the task's YAML, every YAML it includes (and its group's members'), the Python
  modules its ``!function`` entries name, and the data files it names;
- scoring code: the project's modules that turn this kind of benchmark's model outputs into
  numbers (the backends that run the model, the scorer of its kind, and the ``scorers`` modules
  its task's code imports, with the code sandbox for code tasks).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

from ckptgate.cache import files_digest

ROOT = Path(__file__).resolve().parent.parent  # the folder holding the ckptgate and scorers packages
SHARED_CODE = ("scorers/__init__.py", "scorers/suite_scorer.py", "scorers/inputs.py", "ckptgate/backends")
KIND_CODE = {
    "lm_eval": ("scorers/lm_eval_task.py", "scorers/lm_eval_speedups.py", "scorers/packaged_data.py",
                "scorers/nltk_data.py"),
    "perplexity": ("scorers/perplexity.py", "scorers/slice_scorer.py", "ckptgate/slices.py"),
}
MODULE_CODE = {"code_programs": ("ckptgate/sandbox.py", "ckptgate/sandbox_inside.py")}  # code runs in the sandbox

_FUNCTION = re.compile(r"!function\s+([A-Za-z_][\w.]*)\.\w+")
_DATA_FILE = re.compile(r"[\w./-]+\.(?:jsonl|json|csv|tsv|txt|parquet)\b")
_SCORERS_IMPORT = re.compile(r"(?:from\s+scorers\.(\w+)\s+import|import\s+scorers\.(\w+)|from\s+scorers\s+import\s+(\w+))")


def task_files(yamls: Iterable[Path]) -> list[Path]:
    """The YAML files and the files they name: ``!function`` modules and data files beside them."""
    found: dict[Path, None] = {}
    for path in yamls:
        found[path] = None
        text = path.read_text(encoding="utf-8")
        for module in _FUNCTION.findall(text):
            _add(found, path.parent / (module.replace(".", "/") + ".py"))
        for name in _DATA_FILE.findall(text):
            _add(found, path.parent / name)
    return list(found)


def _add(found: dict[Path, None], path: Path) -> None:
    if path.is_file():
        found[path] = None


def files_key(files: Iterable[Path]) -> str:
    """Digest of the files' contents, named by folder and file name (the same on every machine)."""
    return files_digest((f"{path.parent.name}/{path.name}", path) for path in files)


def scorer_modules(files: Iterable[Path]) -> tuple[str, ...]:
    """The ``scorers`` modules the task's Python files import (``from scorers.math_answers import ...``)."""
    names: set[str] = set()
    for path in files:
        if path.suffix == ".py":
            for groups in _SCORERS_IMPORT.findall(path.read_text(encoding="utf-8")):
                names |= {name for name in groups if name}
    return tuple(sorted(names))


def code_files(kind: str, modules: tuple[str, ...] = ()) -> list[str]:
    """The project's files (relative to :data:`ROOT`) a benchmark of ``kind`` runs."""
    wanted = [*SHARED_CODE, *KIND_CODE[kind]]
    for module in modules:
        wanted += [f"scorers/{module}.py", *MODULE_CODE.get(module, ())]
    files: list[str] = []
    for name in dict.fromkeys(wanted):
        path = ROOT / name
        files += sorted(str(p.relative_to(ROOT)) for p in path.rglob("*.py")) if path.is_dir() else [name]
    return files


@functools.cache
def code_digest(kind: str, modules: tuple[str, ...] = ()) -> str:
    return files_digest((name, ROOT / name) for name in code_files(kind, modules) if (ROOT / name).is_file())
