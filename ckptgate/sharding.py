"""``--shard i/N``: one of N disjoint parts of a run, for running it on N machines (a SLURM job
array) and merging the parts afterwards (``ckptgate merge``).

A checkpoint's whole work group goes to one shard, so each model loads once per shard. The
assignment depends only on the run's checkpoint labels: they are ordered by a stable hash
(sha256 of the label, the same on every machine and Python) and dealt round-robin, so every
shard of one run computes the same assignment, the shards are disjoint, their union is the
whole run, and they differ in size by at most one checkpoint. A candidate's shard scores the
bridges it is compared with on demand (a shared record cache scores each bridge once).

Each shard ends by writing ``shard.json`` in its results folder: which shard it was, every
checkpoint of the run and its own, its exit status. The merge reads them to check that every
shard finished and that together they cover the run exactly once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ckptgate.atomicio import write_text
from ckptgate.errors import CkptgateError

MARKER = "shard.json"
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse(text: str) -> tuple[int, int]:
    """``"2/8"`` -> (2, 8): shard 2 of 8, counted from 1."""
    match = _SPEC.match(text)
    if match is None:
        raise CkptgateError(f"--shard {text!r}: give it as I/N, shard I of N counted from 1 (e.g. --shard 2/8)")
    index, shards = int(match.group(1)), int(match.group(2))
    if shards < 1 or not 1 <= index <= shards:
        raise CkptgateError(f"--shard {text}: I must be between 1 and N (N >= 1), e.g. --shard 1/{max(shards, 2)}")
    return index, shards


def _rank(label: str) -> str:
    return hashlib.sha256(label.encode("utf-8")).hexdigest()


def assign(labels: Iterable[str], shards: int) -> dict[str, int]:
    """Each checkpoint label's shard (1..``shards``)."""
    ordered = sorted(dict.fromkeys(labels), key=lambda label: (_rank(label), label))
    return {label: i % shards + 1 for i, label in enumerate(ordered)}


def labels_in(labels: Sequence[str], shard: tuple[int, int]) -> list[str]:
    """The labels of ``labels`` that shard ``shard`` = (i, N) runs, in their given order."""
    index, shards = shard
    owner = assign(labels, shards)
    return [label for label in labels if owner[label] == index]


def shard_dir(results_dir: Path, index: int, shards: int) -> Path:
    """Where shard ``index`` of ``shards`` writes its results when a run is split (``ckptgate
    slurm``), and where ``ckptgate merge`` looks for them."""
    return results_dir / "shards" / f"{index}-of-{shards}"


def write_marker(results_dir: Path, shard: tuple[int, int], labels: Sequence[str], *, run_id: str,
                 exit_status: int, verdict: str | None) -> Path:
    index, shards = shard
    path = results_dir / MARKER
    data = {"shard": index, "shards": shards, "checkpoints": list(labels), "mine": labels_in(labels, shard),
            "run_id": run_id, "exit_status": int(exit_status), "verdict": verdict}
    write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def read_marker(results_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((results_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
