"""Perplexity-slice scoring: windows, their boundaries against a real model, packing and caching."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scorers.perplexity import (
    Document,
    PackedSlice,
    Window,
    document_nll,
    hf_logprobs,
    load_or_pack,
    logprobs_for,
    pack,
    prefix_token_for,
    rolling_windows,
    slice_metrics,
    tokenizer_digest,
)

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "evaltests" / "demo" / "step_0800"

TEXTS = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Checkpoints are compared on held-out text; lower perplexity is better, usually.",
    "a",
    "Numbers like 3.14159 and 2.71828 appear in mathematics, physics and engineering texts "
    "alike, and a tokenizer splits them into many pieces.",
    "Short.",
]


# --------------------------------------------------------------------------- windows


@st.composite
def window_args(draw: st.DrawFn) -> tuple[int, int, int]:
    seq_len = draw(st.integers(2, 64))
    stride = draw(st.integers(1, seq_len - 1))
    return draw(st.integers(0, 400)), seq_len, stride


@settings(max_examples=300, deadline=None)
@given(window_args())
def test_windows_score_every_position_once_within_seq_len(args: tuple[int, int, int]) -> None:
    n, seq_len, stride = args
    windows = rolling_windows(n, seq_len, stride)
    scored = [p for w in windows for p in range(w.score_from, w.end)]
    assert scored == list(range(1, n))  # exactly once, in order
    for w in windows:
        assert 0 <= w.start < w.score_from < w.end <= n
        assert w.end - w.start <= seq_len
        # the documented context guarantee: at least min(p, seq_len - stride) tokens before p
        for p in range(w.score_from, w.end):
            assert p - w.start >= min(p, seq_len - stride)


@settings(max_examples=100, deadline=None)
@given(window_args())
def test_windows_use_as_much_context_as_fits(args: tuple[int, int, int]) -> None:
    n, seq_len, stride = args
    windows = rolling_windows(n, seq_len, stride)
    if windows:
        assert windows[0] == Window(0, min(n, seq_len), 1)
    for w in windows[1:]:
        assert w.start == max(0, w.end - seq_len)
        assert w.end - w.score_from <= stride


@pytest.mark.parametrize(
    ("n", "seq_len", "stride"),
    [(10, 1, 1), (10, 0, 1), (10, 8, 0), (10, 8, 8), (10, 8, 9), (10, 8, -1), (-1, 8, 4)],
)
def test_bad_window_arguments_raise(n: int, seq_len: int, stride: int) -> None:
    with pytest.raises(ValueError):
        rolling_windows(n, seq_len, stride)


def test_windows_of_tiny_documents() -> None:
    assert rolling_windows(0, 8, 4) == []
    assert rolling_windows(1, 8, 4) == []
    assert rolling_windows(2, 8, 4) == [Window(0, 2, 1)]
    assert rolling_windows(10, 4, 3) == [Window(0, 4, 1), Window(3, 7, 4), Window(6, 10, 7)]


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def demo() -> tuple[object, object]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
    model = AutoModelForCausalLM.from_pretrained(CHECKPOINT, dtype=torch.float32)
    model.eval()
    return model, tokenizer


@pytest.fixture(scope="module")
def packed(demo: tuple[object, object]) -> PackedSlice:
    _, tokenizer = demo
    docs = [Document(f"d{i}", text) for i, text in enumerate(TEXTS)]
    return pack(docs, tokenizer, target_tokens=10_000)


def _full_nll(model, prefix: int, tokens: list[int]) -> float:
    """One forward over the whole document: the definition when nothing is windowed."""
    ids = torch.tensor([[prefix] + tokens])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    return -float(logp.gather(-1, ids[0, 1:].unsqueeze(-1)).sum())


def _naive_nll(model, prefix: int, tokens: list[int], seq_len: int, stride: int) -> tuple[float, int]:
    """Each token scored by its own forward over exactly the context its window gives it.

    Straight from the definition: the first ``seq_len`` positions of ``[prefix] + tokens`` sit in
    the first window (start 0); after that, windows end at seq_len + k * stride (or the end), a
    token belongs to the first window ending after it, and that window starts at end - seq_len."""
    seq = [prefix] + tokens
    total, count = 0.0, 0
    for p in range(1, len(seq)):
        if p < seq_len:
            start = 0
        else:
            k = (p - seq_len) // stride + 1
            end = min(len(seq), seq_len + k * stride)
            start = max(0, end - seq_len)
        ids = torch.tensor([seq[start:p + 1]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -2].float()
        total -= float(torch.log_softmax(logits, dim=-1)[seq[p]])
        count += 1
    return total, count


def test_unwindowed_nll_equals_one_full_forward(demo, packed: PackedSlice) -> None:
    model, tokenizer = demo
    prefix = prefix_token_for(tokenizer)
    assert prefix == tokenizer.eos_token_id  # the demo tokenizer has no BOS
    nll = document_nll(packed, hf_logprobs(model, batch_size=4, device="cpu"), seq_len=512, stride=256, prefix_token=prefix)
    for d in range(len(packed)):
        expected = _full_nll(model, prefix, packed.doc_tokens(d))
        assert nll[d] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(("seq_len", "stride"), [(16, 15), (16, 8), (16, 1), (16, 5), (7, 3)])
def test_windowed_nll_equals_naive_per_token_reference(demo, packed: PackedSlice, seq_len: int, stride: int) -> None:
    model, tokenizer = demo
    prefix = prefix_token_for(tokenizer)
    assert max(int(packed.offsets[i + 1] - packed.offsets[i]) for i in range(len(packed))) > 2 * seq_len
    nll = document_nll(packed, hf_logprobs(model, batch_size=8, device="cpu"), seq_len=seq_len, stride=stride, prefix_token=prefix)
    for d in range(len(packed)):
        tokens = packed.doc_tokens(d)
        expected, count = _naive_nll(model, prefix, tokens, seq_len, stride)
        assert count == len(tokens)
        assert nll[d] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_scored_token_count_equals_document_length(packed: PackedSlice) -> None:
    seen: list[int] = []

    def counting(sequences: list[list[int]], score_from: list[int]) -> list[list[float]]:
        return [[-1.0] * (len(s) - f) for s, f in zip(sequences, score_from)]

    nll = document_nll(packed, counting, seq_len=16, stride=5, prefix_token=0)
    seen = [int(packed.offsets[i + 1] - packed.offsets[i]) for i in range(len(packed))]
    assert nll == [float(n) for n in seen]


def test_batching_does_not_change_nll(demo, packed: PackedSlice) -> None:
    model, tokenizer = demo
    prefix = prefix_token_for(tokenizer)
    one = document_nll(packed, hf_logprobs(model, batch_size=1, device="cpu"), seq_len=16, stride=8, prefix_token=prefix)
    eight = document_nll(packed, hf_logprobs(model, batch_size=8, device="cpu"), seq_len=16, stride=8, prefix_token=prefix)
    assert eight == pytest.approx(one, rel=1e-5)


def test_logprobs_for_picks_the_backend_from_lm_evals_class(demo) -> None:
    from lm_eval.models.huggingface import HFLM

    model, _ = demo
    lm = HFLM.__new__(HFLM)  # lm-eval's class, without its loader: only the attributes read
    lm._model, lm._device, lm.batch_size_per_gpu = model, torch.device("cpu"), 2
    score = logprobs_for(lm)
    direct = hf_logprobs(model, batch_size=1, device="cpu")
    seqs, starts = [[0, 5, 9, 12], [0, 7]], [1, 1]
    flat = [v for row in score(seqs, starts) for v in row]
    assert flat == pytest.approx([v for row in direct(seqs, starts) for v in row], rel=1e-5)
    with pytest.raises(TypeError, match="HFLM or VLLM"):
        logprobs_for(object())


# --------------------------------------------------------------------------- packing and cache


class CharTokenizer:
    """One token per character: token counts are obvious, so the budget rule is easy to check."""

    name_or_path = "chars"
    bos_token_id = None
    eos_token_id = 0

    def __init__(self, extra: str = "") -> None:
        self.extra = extra

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        assert add_special_tokens is False
        return {"input_ids": [ord(c) % 1000 + 1 for c in text]}

    def get_vocab(self) -> dict[str, int]:
        return {"a": 1, "b": 2, self.extra: 3}


def _docs(lengths: list[int]) -> list[Document]:
    return [Document(f"doc{i}", "é" * n) for i, n in enumerate(lengths)]


def test_pack_takes_whole_documents_up_to_the_budget() -> None:
    packed = pack(_docs([4, 3, 5, 2, 6]), CharTokenizer(), target_tokens=8)
    assert packed.doc_ids == ["doc0", "doc1", "doc2"]  # 4+3 < 8, doc2 crosses: kept whole, stop
    assert packed.offsets.tolist() == [0, 4, 7, 12]
    assert packed.tokens.dtype == torch.int32 and packed.offsets.dtype == torch.int64
    assert packed.doc_bytes == [8, 6, 10]  # two UTF-8 bytes per "é"
    assert packed.manifest["n_docs"] == 3 and packed.manifest["n_tokens"] == 12
    assert packed.manifest["target_tokens"] == 8 and packed.manifest["tokenizer"] == "chars"
    assert packed.manifest["tokenizer_vocab_sha256"] == tokenizer_digest(CharTokenizer())
    assert tokenizer_digest(CharTokenizer("x")) != tokenizer_digest(CharTokenizer())
    exact = pack(_docs([4, 4, 5]), CharTokenizer(), target_tokens=8)
    assert exact.doc_ids == ["doc0", "doc1"]  # budget reached exactly: stop there
    short = pack(_docs([1, 2]), CharTokenizer(), target_tokens=100)
    assert short.manifest["n_tokens"] == 3  # documents ran out


def test_pack_reads_documents_lazily() -> None:
    def endless():
        i = 0
        while True:
            yield Document(str(i), "xyz")
            i += 1

    assert pack(endless(), CharTokenizer(), target_tokens=7).manifest["n_docs"] == 3


def test_load_or_pack_round_trip_and_cache_hit(tmp_path: Path) -> None:
    calls: list[int] = []

    def factory():
        calls.append(1)
        return iter(_docs([4, 3, 5, 2]))

    key = {"slice": "wiki", "revision": "abc"}
    first = load_or_pack(tmp_path, key, factory, CharTokenizer(), target_tokens=8)
    second = load_or_pack(tmp_path, key, factory, CharTokenizer(), target_tokens=8)
    assert len(calls) == 1
    assert torch.equal(first.tokens, second.tokens) and torch.equal(first.offsets, second.offsets)
    assert second.doc_ids == first.doc_ids and second.doc_bytes == first.doc_bytes
    assert second.manifest == first.manifest
    assert torch.equal(second.tokens, pack(_docs([4, 3, 5, 2]), CharTokenizer(), target_tokens=8).tokens)
    (entry,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json", "packed_tokens.pt"]

    load_or_pack(tmp_path, key, factory, CharTokenizer(), target_tokens=9)
    load_or_pack(tmp_path, key, factory, CharTokenizer("other vocab"), target_tokens=8)
    assert len(calls) == 3
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 3


def test_corrupted_cache_entry_is_a_clear_error(tmp_path: Path) -> None:
    key = {"slice": "c4"}
    load_or_pack(tmp_path, key, lambda: _docs([4, 3, 5]), CharTokenizer(), target_tokens=8)
    (entry,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]  # beside it: the packing lock
    torch.save({"tokens": torch.zeros(12, dtype=torch.int32), "offsets": torch.tensor([0, 4, 7, 12])}, entry / "packed_tokens.pt")
    with pytest.raises(ValueError, match="delete that folder") as caught:
        load_or_pack(tmp_path, key, lambda: _docs([4]), CharTokenizer(), target_tokens=8)
    assert str(entry) in str(caught.value)
    (entry / "packed_tokens.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"damaged.*delete that folder"):
        load_or_pack(tmp_path, key, lambda: _docs([4]), CharTokenizer(), target_tokens=8)


# --------------------------------------------------------------------------- metrics


def test_slice_metrics_on_hand_made_numbers() -> None:
    packed = PackedSlice(
        tokens=torch.zeros(6, dtype=torch.int32),
        offsets=torch.tensor([0, 2, 6]),
        doc_ids=["a", "b"],
        doc_bytes=[5, 11],
    )
    metrics = slice_metrics([1.5, 4.5], packed)
    assert metrics["token_perplexity"] == pytest.approx(math.exp(6.0 / 6))
    assert metrics["bits_per_byte"] == pytest.approx(6.0 / (math.log(2) * 16))
    assert metrics["n_tokens"] == 6 and metrics["n_bytes"] == 16 and metrics["n_docs"] == 2
    assert metrics["samples"] == [
        {"doc_id": "a", "bits_per_byte": [-1.5, 5], "token_perplexity": [-1.5, 2], "nll": 1.5, "tokens": 2, "bytes": 5},
        {"doc_id": "b", "bits_per_byte": [-4.5, 11], "token_perplexity": [-4.5, 4], "nll": 4.5, "tokens": 4, "bytes": 11},
    ]
    with pytest.raises(ValueError):
        slice_metrics([1.0], packed)
