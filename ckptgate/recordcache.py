"""Scored records of reference (bridge) checkpoints, cached by content fingerprint.

A bridge is compared with every candidate of a run and of later runs; its per-sample records
are the same each time if the checkpoint's content and every setting that shapes the numbers
are the same. The cache key hashes exactly those: the checkpoint fingerprint, the benchmark's
task, shots and generation settings, ``--limit``, the backend and its numeric settings, the
versions of the libraries that compute the numbers, the content of the suite's own task files,
and the project's own scoring code (the scorers and the code sandbox), so a scorer fix never
reuses records scored by the code it fixed. Entries are written atomically (record after samples), so a reader never sees half.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ckptgate.cache import exclusive, files_digest
from ckptgate.checkpoints import Checkpoint
from ckptgate.provenance import versions
from ckptgate.atomicio import write_text
from ckptgate.results import to_json
from ckptgate.suites import Benchmark, Suite
from ckptgate.scores import ScoreResult

_NUMERIC_LIBRARIES = ("lm_eval", "torch", "transformers", "vllm", "datasets")


@functools.cache
def task_files_digest(task_paths: tuple[Path, ...]) -> str:
    """Hash of every file under the suite's task directories (prompts, data, filters)."""
    return files_digest(
        (str(path.relative_to(root)), path)
        for root in task_paths
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    )


@functools.cache
def scoring_code_digest() -> str:
    """Hash of the project's code that turns model outputs into numbers: every module of the
    ``scorers`` package and the code sandbox (task utils are part of the task files)."""
    import scorers
    from ckptgate import sandbox, sandbox_inside

    package = Path(scorers.__file__).parent
    files = [(f"scorers/{p.relative_to(package)}", p) for p in sorted(package.rglob("*.py"))
             if "__pycache__" not in p.parts]
    files += [(f"ckptgate/{Path(m.__file__).name}", Path(m.__file__)) for m in (sandbox, sandbox_inside)]
    return files_digest(files)


class RecordCache:
    """``<folder>/<fingerprint>/<key>.json`` plus ``<key>.samples.jsonl``."""

    def __init__(
        self,
        folder: Path,
        suite: Suite,
        limit: int | None,
        backend_settings: dict[str, Any],
        local_data: Callable[[Benchmark], str | None] = lambda benchmark: None,
    ) -> None:
        self.folder = folder
        self.suite = suite
        self.limit = limit
        self.backend_settings = backend_settings
        self.local_data = local_data  # benchmark -> digest of the local data it reads instead (--datasets)

    def key(self, checkpoint: Checkpoint, benchmark: Benchmark) -> str:
        found = versions()
        shaping = {
            "fingerprint": checkpoint.fingerprint,
            "task": benchmark.task,
            "num_fewshot": benchmark.num_fewshot,
            "gen_kwargs": benchmark.gen_kwargs,
            "gold_logprob": benchmark.gold_logprob,
            "limit": self.limit,
            "backend": self.backend_settings,
            "libraries": {name: found.get(name) for name in _NUMERIC_LIBRARIES},
            "task_files": task_files_digest(self.suite.task_paths),
            "scoring_code": scoring_code_digest(),
            "default_tasks": self.suite.include_default_tasks,
            "local_data": self.local_data(benchmark),
            # what else shapes the numbers: the scorer, a subset, the chat template, slice settings
            "shape": {k: v for k, v in benchmark.to_dict().items()
                      if k in ("kind", "perplexity", "subset", "chat_template")},
        }
        return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def _paths(self, checkpoint: Checkpoint, benchmark: Benchmark) -> tuple[Path, Path]:
        base = self.folder / checkpoint.fingerprint[:32] / self.key(checkpoint, benchmark)
        return base.with_suffix(".json"), base.with_suffix(".samples.jsonl")

    def get(self, checkpoint: Checkpoint, benchmark: Benchmark) -> ScoreResult | None:
        record_path, samples_path = self._paths(checkpoint, benchmark)
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            lines = samples_path.read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError):
            return None
        if len(lines) != record.get("samples_count"):
            return None  # samples replaced after the record was written: treat as missing
        return ScoreResult.from_dict(record, [json.loads(line) for line in lines])

    def put(self, checkpoint: Checkpoint, benchmark: Benchmark, result: ScoreResult) -> None:
        record_path, samples_path = self._paths(checkpoint, benchmark)
        write_text(samples_path, "".join(to_json(s) + "\n" for s in result.samples))
        record = {**result.to_dict(), "samples_count": len(result.samples), "checkpoint": checkpoint.label}
        write_text(record_path, to_json(record, indent=1) + "\n")

    @contextmanager
    def lock(self, checkpoint: Checkpoint) -> Iterator[None]:
        """Serialise scoring of one checkpoint across processes (xdist workers)."""
        with exclusive(self.folder / f"{checkpoint.fingerprint[:32]}.lock"):
            yield
