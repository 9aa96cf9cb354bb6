"""The perplexity slices as a scorer: a benchmark of kind ``perplexity`` names a slice (see
:mod:`ckptgate.slices`), scored document by document (see :mod:`scorers.perplexity`).

Per slice: bits per byte and token perplexity (ratios of sums over the slice), and per document
its negative log-likelihood as a ``[log-likelihood, weight]`` record, the form lm-eval gives its
own ratio metrics, so the comparison with a bridge is paired item by item like any other task.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptgate import slices
from ckptgate.cache import cache_root
from ckptgate.errors import CkptgateError
from ckptgate.scores import LoadedModel, MetricValue, ScoreResult
from ckptgate.suites import Benchmark, PerplexitySettings, Suite
from scorers.resume import chunked_logprobs

if TYPE_CHECKING:
    from scorers.perplexity import PackedSlice

KIND = "perplexity"
METRICS = ("bits_per_byte", "token_perplexity")


def of_kind(benchmarks: Sequence[Benchmark]) -> list[Benchmark]:
    return [b for b in benchmarks if b.kind == KIND]


class PerplexityScorer:
    """Scores perplexity slices from local copies (``datasets``: ``<datasets>/<slice>/<split>.jsonl``)
    or what ``ckptgate prefill`` fetched."""

    def __init__(self, datasets: Path | None = None, catalogue: dict[str, slices.Slice] | None = None) -> None:
        self.datasets = datasets
        self.catalogue = catalogue if catalogue is not None else slices.load_catalogue()

    def slice_for(self, suite: Suite, bench: Benchmark) -> slices.Slice:
        assert bench.perplexity is not None
        spec = slices.pick(self.catalogue, bench.task, f"{suite.path}: benchmark {bench.id!r}")
        return replace(spec, target_tokens=bench.perplexity.target_tokens)

    def check(self, suite: Suite) -> None:
        for bench in of_kind(suite.benchmarks):
            self.slice_for(suite, bench)

    def missing(self, suite: Suite) -> dict[str, list[str]]:
        """Slices neither given locally nor fetched: ``dataset [split]`` -> benchmark ids."""
        lacking: dict[str, list[str]] = {}
        for bench in of_kind(suite.benchmarks):
            spec = self.slice_for(suite, bench)
            try:
                slices.load(spec, self.datasets)
            except CkptgateError:
                lacking.setdefault(f"{spec.dataset} [{spec.split}] (slice {spec.id})", []).append(bench.id)
        return lacking

    def fetch(self, suite: Suite) -> list[Path]:
        """``ckptgate prefill``: fetch every slice the suite scores that has no local copy."""
        wanted = {}
        for bench in of_kind(suite.benchmarks):
            spec = self.slice_for(suite, bench)
            if slices.local_copy(spec, self.datasets) is None:
                previous = wanted.get(spec.id)
                wanted[spec.id] = spec if previous is None or previous.target_tokens < spec.target_tokens else previous
        return [slices.fetch(spec) for spec in wanted.values()]

    def data_digest(self, suite: Suite, bench: Benchmark) -> str:
        """What the slice's documents are (part of the record cache's key)."""
        return str(slices.load(self.slice_for(suite, bench), self.datasets).record["sha256"])

    def score(self, session: LoadedModel, suite: Suite, benchmarks: Sequence[Benchmark], *,
              limit: int | None) -> dict[str, ScoreResult]:
        return {bench.id: self._score(session, suite, bench, limit) for bench in benchmarks}

    def _score(self, session: LoadedModel, suite: Suite, bench: Benchmark, limit: int | None) -> ScoreResult:
        # torch, only when a slice is scored (a run whose results are all cached never needs it)
        from scorers.perplexity import Document, document_nll, load_or_pack, logprobs_for, prefix_token_for, slice_metrics

        assert bench.perplexity is not None
        settings = bench.perplexity
        lm = session.lm
        _check_context(lm, settings, bench)
        fetched = slices.load(self.slice_for(suite, bench), self.datasets)
        tokenizer = lm.tokenizer
        packed = load_or_pack(
            cache_root() / "packed-slices",
            {"slice": fetched.slice.id, "documents_sha256": fetched.record["sha256"],
             "revision": fetched.record.get("revision")},  # recorded in the entry's manifest
            lambda: (Document(doc_id, text) for doc_id, text in fetched.documents), tokenizer,
            target_tokens=settings.target_tokens,
        )
        if limit is not None:
            packed = head(packed, limit)
        prefix = prefix_token_for(tokenizer)
        nll = document_nll(packed, chunked_logprobs(lm, logprobs_for(lm)), seq_len=settings.seq_len,
                           stride=settings.stride, prefix_token=prefix)
        found = slice_metrics(nll, packed)
        n = found["n_docs"]
        return ScoreResult(
            metrics={f"{name},none": MetricValue(found[name], None, n) for name in METRICS},
            samples=[sample | {"filter": "none"} for sample in found["samples"]],
            config={"slice": fetched.record, "perplexity": asdict(settings), "packed": packed.manifest,
                    "prefix_token": prefix, "n_tokens": found["n_tokens"], "n_bytes": found["n_bytes"]},
            higher_is_better=dict.fromkeys(METRICS, False),
        )


def head(packed: PackedSlice, n: int) -> PackedSlice:
    """The first ``n`` documents (``--limit``)."""
    from scorers.perplexity import PackedSlice

    if n >= len(packed):
        return packed
    end = int(packed.offsets[n])
    tokens = packed.tokens[:end]
    manifest = packed.manifest | {"n_docs": n, "n_tokens": end, "limited_to_docs": n,
                                  "tokens_sha256": hashlib.sha256(tokens.numpy().tobytes()).hexdigest()}
    return PackedSlice(tokens, packed.offsets[: n + 1], packed.doc_ids[:n], packed.doc_bytes[:n], manifest)


def _check_context(lm: Any, settings: PerplexitySettings, bench: Benchmark) -> None:
    """A window longer than the model's context would be scored past what it was trained on."""
    limit = getattr(lm, "max_length", None)
    if isinstance(limit, int) and settings.seq_len > limit:
        raise CkptgateError(f"benchmark {bench.id!r}: seq_len {settings.seq_len} is longer than the model's "
                            f"context ({limit} tokens); lower the tier's seq_len")
