"""Loader for the demo tasks' local JSONL files, resolved against this folder.

lm-eval passes a task's ``dataset_kwargs`` to ``datasets.load_dataset``, which resolves relative
``data_files`` against the *current working directory*, so a task shipped as YAML + JSONL would
only work when run from its own folder. The demo tasks therefore name this module's loader as
``custom_dataset`` (lm-eval then calls it with the same ``dataset_kwargs``), and it reads the files
relative to the YAML's folder. The rows are built in memory, so nothing is written to the Hugging
Face datasets cache and nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

HERE = Path(__file__).resolve().parent


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (blank lines ignored)."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_local_jsonl(data_files: dict[str, str], **_metadata: Any) -> datasets.DatasetDict:
    """One split per entry of ``data_files``; relative paths are taken from this folder.

    lm-eval also passes the task's ``metadata`` as keyword arguments; they are ignored.
    """
    splits = {}
    for split, name in data_files.items():
        path = Path(name)
        if not path.is_absolute():
            path = HERE / path
        splits[split] = datasets.Dataset.from_list(_read_jsonl(path))
    return datasets.DatasetDict(splits)
