"""Per-process evaluation: one model and one checkpoint's scores in memory at a time.

Tests arrive one benchmark at a time, but lm-eval pays seconds of fixed cost per
``simple_evaluate`` call. So the first test of a checkpoint scores all of that checkpoint's
benchmarks this process will run (the checkpoint's tests are kept on one worker), and each test
then takes its own result. If that shared pass fails, every benchmark is scored on its own, so
each error lands on the test of the benchmark that caused it.

Every result goes through a :class:`~ckptgate.recordcache.RecordCache` (unless it is off): a
benchmark already scored with the same checkpoint and settings is read, not scored, and a
checkpoint whose every planned result is there is never loaded. The first process that needs a
bridge's records scores them (all planned benchmarks at once) under a lock while the others
wait, and every later request, in this run or the next, reads them.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ckptgate.backends import ModelPool, ModelSession
from ckptgate.checkpoints import Checkpoint
from ckptgate.recordcache import RecordCache
from ckptgate.suites import Benchmark, Suite
from ckptgate.scores import Scorer, ScoreResult
from scorers.resume import resumable

Planned = Callable[[], Sequence[Benchmark]]


@dataclass(frozen=True)
class Scored:
    """A benchmark's result and how it was produced (recorded with it)."""

    result: ScoreResult
    settings: dict[str, Any]  # the backend's settings
    load_seconds: float
    eval_seconds: float  # wall time of the pass that produced it (0 when read from the cache)
    evaluated_with: tuple[str, ...]  # benchmark ids scored in that pass
    cached: bool = False
    chunks: dict[str, int] = field(default_factory=dict)  # that pass's model-output chunks: scored, from_store


@dataclass
class Evaluator:
    pool: ModelPool
    scorer: Scorer
    suite: Suite
    limit: int | None
    cache: RecordCache | None = None
    _label: str | None = None
    _pending: dict[str, Scored] = field(default_factory=dict)
    _references: dict[tuple[str, str], Scored] = field(default_factory=dict)

    def score(self, checkpoint: Checkpoint, benchmark: Benchmark, planned: Planned) -> Scored:
        """``benchmark``'s result on ``checkpoint``; ``planned()`` lists all the benchmarks this
        process will run on it: those the record cache lacks are scored together on the
        checkpoint's first request (a checkpoint whose every result is cached is never loaded)."""
        if self._label != checkpoint.label:
            self._label = checkpoint.label
            self._pending = self._through_cache(checkpoint, _with(planned(), benchmark), lock=False)
        scored = self._pending.pop(benchmark.id, None)
        return scored if scored is not None else self._alone(checkpoint, benchmark)

    def reference(self, checkpoint: Checkpoint, benchmark: Benchmark, planned: Planned) -> Scored:
        """A reference checkpoint's result: kept in memory for the run, read from the record
        cache, or scored now (all planned benchmarks at once) and cached."""
        key = (checkpoint.label, benchmark.id)
        if key not in self._references:
            found = self._through_cache(checkpoint, _with(planned(), benchmark), lock=True)
            self._references.update({(checkpoint.label, bid): scored for bid, scored in found.items()})
        if key not in self._references:  # the shared pass failed: score it alone, errors and all
            self._references[key] = self._alone(checkpoint, benchmark)
        return self._references[key]

    def _through_cache(self, checkpoint: Checkpoint, benchmarks: list[Benchmark], *, lock: bool) -> dict[str, Scored]:
        """Each benchmark's result from the record cache, the missing ones scored together and
        cached. ``lock``: another process may need the same results (a bridge, needed by every
        worker): take the checkpoint's lock, so one scores while the others wait and then read."""
        if self.cache is None:
            return self._score_together(checkpoint, benchmarks)
        found = {b.id: self._cached(checkpoint, b) for b in benchmarks}
        if all(hit is not None for hit in found.values()):
            return {bid: s for bid, s in found.items() if s is not None}
        with self.cache.lock(checkpoint) if lock else nullcontext():
            if lock:  # another worker may have scored them while this one waited: read again
                found = {b.id: self._cached(checkpoint, b) for b in benchmarks}
            missing = [b for b in benchmarks if found[b.id] is None]
            for bid, scored in self._score_together(checkpoint, missing).items():
                self.cache.put(checkpoint, next(b for b in missing if b.id == bid), scored.result)
                found[bid] = scored
        return {bid: s for bid, s in found.items() if s is not None}

    def _cached(self, checkpoint: Checkpoint, benchmark: Benchmark) -> Scored | None:
        assert self.cache is not None
        result = self.cache.get(checkpoint, benchmark)
        if result is None:
            return None
        return Scored(result, self.cache.backend_settings, 0.0, 0.0, (benchmark.id,), cached=True)

    def _alone(self, checkpoint: Checkpoint, benchmark: Benchmark) -> Scored:
        scored = self._score_alone(checkpoint, benchmark)
        if self.cache is not None:
            self.cache.put(checkpoint, benchmark, scored.result)
        return scored

    def _score_together(self, checkpoint: Checkpoint, benchmarks: list[Benchmark]) -> dict[str, Scored]:
        if not benchmarks:
            return {}
        session = self.pool.get(checkpoint)
        ids = tuple(b.id for b in benchmarks)
        started = time.perf_counter()
        try:
            with self._resumable(checkpoint, session) as chunks:
                results = self.scorer.score(session, self.suite, benchmarks, limit=self.limit)
        except Exception as exc:  # noqa: BLE001 - retried one by one, where the error is reported
            warnings.warn(
                f"ckptgate: scoring {', '.join(ids)} together on {checkpoint.label} failed "
                f"({type(exc).__name__}: {exc}); scoring each benchmark on its own",
                stacklevel=2,
            )
            return {}
        seconds = time.perf_counter() - started
        return {bid: _scored(result, session, seconds, ids, chunks) for bid, result in results.items()}

    def _score_alone(self, checkpoint: Checkpoint, benchmark: Benchmark) -> Scored:
        session = self.pool.get(checkpoint)
        started = time.perf_counter()
        with self._resumable(checkpoint, session) as chunks:
            results = self.scorer.score(session, self.suite, [benchmark], limit=self.limit)
        return _scored(results[benchmark.id], session, time.perf_counter() - started, (benchmark.id,), chunks)

    def _resumable(self, checkpoint: Checkpoint, session: ModelSession) -> AbstractContextManager[Counter[str]]:
        """Model outputs stored chunk by chunk beside the record cache (none without it)."""
        if self.cache is None:
            return nullcontext(Counter())
        return resumable(session.lm, *self.cache.chunks(checkpoint, session.settings))


def _scored(result: ScoreResult, session: ModelSession, seconds: float, ids: tuple[str, ...],
            chunks: Counter[str]) -> Scored:
    return Scored(result, session.settings, session.load_seconds, seconds, ids, chunks=dict(chunks))


def _with(planned: Sequence[Benchmark], benchmark: Benchmark) -> list[Benchmark]:
    """``planned`` in order, without duplicates, and always including ``benchmark``."""
    unique = {b.id: b for b in planned}
    unique.setdefault(benchmark.id, benchmark)
    return list(unique.values())
