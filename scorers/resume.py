"""Resumable scoring: a benchmark's model outputs are stored chunk by chunk as they complete, so
a run killed in the middle of a benchmark (SIGKILL, a node that dies) resumes from its last
completed chunk instead of from zero.

Requests of one kind (lm-eval's ``loglikelihood``, ``loglikelihood_rolling``,
``generate_until``, or the perplexity slices' token log-probabilities) are cut into
:data:`CHUNKS` chunks in the order lm-eval builds them, each sent to the model as one call and
committed to a SQLite table (WAL) keyed by the model (checkpoint fingerprint, backend settings,
library versions) and the chunk's exact requests. A rerun makes the same requests, cuts the same
chunks and reads the stored ones back; since every run, interrupted or not, scores the same
chunks as the same calls, the outputs are the same to the last bit (a model batches requests
within a call, so a call over other requests could round differently). Results go through JSON
both when stored and when computed, so a stored chunk and a fresh one are the same values.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

CHUNKS = 20  # chunks per request list: a kill redoes at most 1/20 of a benchmark's model calls
METHODS = ("loglikelihood", "loglikelihood_rolling", "generate_until")
BUSY_TIMEOUT_S = 60


class ChunkStore:
    """One SQLite file of model outputs, ``chunks(key, value)``; each put is committed at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS chunks (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _connect(self) -> closing[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)  # autocommit
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")  # a committed chunk survives a kill or a power cut
        return closing(db)

    def get(self, key: str) -> Any | None:
        with self._connect() as db:
            row = db.execute("SELECT value FROM chunks WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO chunks VALUES (?, ?)", (key, json.dumps(value)))

    def __len__(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])


def stored_chunks(folder: Path) -> int:
    """How many chunks the stores in ``folder`` hold, read while a run may be writing them (a
    store whose table is still being created counts 0)."""
    total = 0
    for path in folder.glob("*.sqlite"):
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)) as db:
            try:
                total += db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    return total


def run_chunked(store: ChunkStore, namespace: str, call: Callable[[list[Any]], Sequence[Any]], items: list[Any],
                describe: Callable[[Any], Any], counts: Counter[str]) -> list[Any]:
    """``call`` over ``items`` in :data:`CHUNKS` chunks, each read from ``store`` when it holds it
    and stored as soon as it is computed; ``describe(item)`` is what identifies an item (JSON)."""
    size = max(1, math.ceil(len(items) / CHUNKS))
    out: list[Any] = []
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        key = hashlib.sha256(json.dumps([namespace, [describe(item) for item in chunk]], sort_keys=True,
                                        default=repr).encode()).hexdigest()
        found = store.get(key)
        if found is None or len(found) != len(chunk):
            found = json.loads(json.dumps(list(call(chunk))))
            store.put(key, found)
            counts["scored"] += 1
        else:
            counts["from_store"] += 1
        out += found
    return out


_ACTIVE: dict[int, tuple[ChunkStore, str, Counter[str]]] = {}  # id(lm) -> its store while scoring


@contextmanager
def resumable(lm: Any, store: ChunkStore | None, namespace: str) -> Iterator[Counter[str]]:
    """While inside, ``lm``'s request methods go through ``store`` chunk by chunk (``store`` None:
    unchanged). Yields the counts of chunks scored and read back."""
    counts: Counter[str] = Counter()
    if store is None:
        yield counts
        return
    patched = [method for method in METHODS if hasattr(type(lm), method)]
    for method in patched:
        setattr(lm, method, _chunked_method(lm, method, store, namespace, counts))
    _ACTIVE[id(lm)] = (store, namespace, counts)
    try:
        yield counts
    finally:
        _ACTIVE.pop(id(lm), None)
        for method in patched:
            delattr(lm, method)  # the class's own method again


def _chunked_method(lm: Any, method: str, store: ChunkStore, namespace: str, counts: Counter[str]) -> Callable[..., list[Any]]:
    """Each task's requests are chunked on their own (in their order), so a task's chunks, and
    its outputs, do not depend on which other tasks share the call (a rerun may have fewer)."""
    original = getattr(type(lm), method).__get__(lm)

    def run(requests: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
        requests = list(requests)
        by_task: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            by_task.setdefault(str(getattr(request, "task_name", "")), []).append(index)
        out: list[Any] = [None] * len(requests)
        for task, indices in by_task.items():
            found = run_chunked(store, f"{namespace}:{method}:{task}", lambda chunk: original(chunk, *args, **kwargs),
                                [requests[i] for i in indices], lambda request: request.args, counts)
            for index, value in zip(indices, found):
                out[index] = value
        return out

    return run


TokenLogprobs = Callable[[list[list[int]], list[int]], list[list[float]]]


def chunked_logprobs(lm: Any, logprobs: TokenLogprobs) -> TokenLogprobs:
    """The perplexity scorer's token log-probabilities through ``lm``'s active store, if any."""
    active = _ACTIVE.get(id(lm))
    if active is None:
        return logprobs
    store, namespace, counts = active

    def run(sequences: list[list[int]], score_from: list[int]) -> list[list[float]]:
        def call(chunk: list[tuple[list[int], int]]) -> list[list[float]]:
            return logprobs([seq for seq, _ in chunk], [start for _, start in chunk])

        return run_chunked(store, f"{namespace}:token_logprobs", call, list(zip(sequences, score_from)),
                           lambda item: item, counts)

    return run
