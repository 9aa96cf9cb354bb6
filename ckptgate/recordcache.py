"""Scored records of every checkpoint, cached by what determines the numbers: a benchmark scored
once is never scored again, in this run or the next, unless something that changes its numbers
changed (or ``--refresh`` asks for it).

The key hashes exactly those: the checkpoint's content fingerprint (weights, config, tokenizer),
the benchmark's specification (task, shots, generation settings, subset, chat template, slice
settings), ``--limit``, the backend and its numeric settings, the versions of the libraries that
compute the numbers, and per benchmark the inputs only it reads (see :class:`Inputs`): its task
files (the YAML and every file it includes, the utils it calls, the data files it names), the
data it reads instead of the hub, and the project's scoring code it runs. So a changed task
file, tokenizer or scorer invalidates exactly the entries it affects. lm-eval's own request cache
is keyed by the request alone (another checkpoint's answers come back); this one cannot be.
Entries are written atomically (record after samples), so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ckptgate.cache import exclusive
from ckptgate.checkpoints import Checkpoint
from ckptgate.provenance import versions
from ckptgate.atomicio import write_text
from ckptgate.results import to_json
from ckptgate.suites import Benchmark, Suite
from ckptgate.scores import ScoreResult
from scorers.resume import ChunkStore

Inputs = Callable[[Benchmark], dict[str, str | None]]
"""benchmark -> digests of what it reads besides the checkpoint: task files, local data, scoring code."""

_NUMERIC_LIBRARIES = ("lm_eval", "torch", "transformers", "vllm", "datasets")


def _libraries() -> dict[str, str | None]:
    """The versions of the libraries that compute the numbers (part of every key)."""
    found = versions()
    return {name: found.get(name) for name in _NUMERIC_LIBRARIES}


class RecordCache:
    """``<folder>/<fingerprint>/<key>.json`` plus ``<key>.samples.jsonl``."""

    def __init__(
        self,
        folder: Path,
        suite: Suite,
        limit: int | None,
        backend_settings: dict[str, Any],
        inputs: Inputs = lambda benchmark: {},
        *,
        run_id: str = "",
        refresh: Callable[[Benchmark], bool] = lambda benchmark: False,
    ) -> None:
        self.folder = folder
        self.suite = suite
        self.limit = limit
        self.backend_settings = backend_settings
        self.inputs = inputs
        self.run_id = run_id  # entries this run wrote are kept even under --refresh
        self.refresh = refresh  # --refresh: benchmark -> ignore entries of earlier runs
        self._inputs: dict[str, dict[str, str | None]] = {}  # benchmark id -> its inputs, digested once a run

    def key(self, checkpoint: Checkpoint, benchmark: Benchmark) -> str:
        if benchmark.id not in self._inputs:  # hashing task files and data: once, not at every get and put
            self._inputs[benchmark.id] = self.inputs(benchmark)
        spec = benchmark.to_dict()
        shaping = {
            "fingerprint": checkpoint.fingerprint,
            "benchmark": {k: spec[k] for k in ("task", "kind", "num_fewshot", "gen_kwargs", "gold_logprob", "subset",
                                               "chat_template", "perplexity")},
            "limit": self.limit,
            "backend": self.backend_settings,
            "libraries": _libraries(),
            "default_tasks": self.suite.include_default_tasks,
            "inputs": self._inputs[benchmark.id],
        }
        return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def _paths(self, checkpoint: Checkpoint, benchmark: Benchmark) -> tuple[Path, Path]:
        base = self.folder / checkpoint.fingerprint[:32] / self.key(checkpoint, benchmark)
        return base.with_suffix(".json"), base.with_suffix(".samples.jsonl")

    def get(self, checkpoint: Checkpoint, benchmark: Benchmark) -> ScoreResult | None:
        found = self._read(checkpoint, benchmark)
        if found is None:
            return None
        record, lines = found
        return ScoreResult.from_dict(record, [json.loads(line) for line in lines])

    def has(self, checkpoint: Checkpoint, benchmark: Benchmark) -> bool:
        """Whether :meth:`get` would return a result (without parsing its samples)."""
        return self._read(checkpoint, benchmark) is not None

    def _read(self, checkpoint: Checkpoint, benchmark: Benchmark) -> tuple[dict[str, Any], list[str]] | None:
        record_path, samples_path = self._paths(checkpoint, benchmark)
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            lines = samples_path.read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError):
            return None
        if len(lines) != record.get("samples_count"):
            return None  # samples replaced after the record was written: treat as missing
        if self.refresh(benchmark) and record.get("run_id") != self.run_id:
            return None  # --refresh: scored again (once: what this run writes is kept)
        return record, lines

    def put(self, checkpoint: Checkpoint, benchmark: Benchmark, result: ScoreResult) -> None:
        record_path, samples_path = self._paths(checkpoint, benchmark)
        write_text(samples_path, "".join(to_json(s) + "\n" for s in result.samples))
        record = {**result.to_dict(), "samples_count": len(result.samples), "checkpoint": checkpoint.label,
                  "run_id": self.run_id}
        write_text(record_path, to_json(record, indent=1) + "\n")

    def chunks(self, checkpoint: Checkpoint, settings: dict[str, Any]) -> tuple[ChunkStore, str]:
        """The store of ``checkpoint``'s model outputs, chunk by chunk (``scorers.resume``), and
        the namespace of this model as loaded (``settings``: the backend's, with these libraries)."""
        model = {"fingerprint": checkpoint.fingerprint, "backend": settings, "libraries": _libraries()}
        namespace = hashlib.sha256(json.dumps(model, sort_keys=True, default=str).encode()).hexdigest()[:32]
        return ChunkStore(self.folder / "chunks" / f"{checkpoint.fingerprint[:32]}.sqlite"), namespace

    @contextmanager
    def lock(self, checkpoint: Checkpoint) -> Iterator[None]:
        """Serialise scoring of one checkpoint across processes (xdist workers)."""
        with exclusive(self.folder / f"{checkpoint.fingerprint[:32]}.lock"):
            yield
