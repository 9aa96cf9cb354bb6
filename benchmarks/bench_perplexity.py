"""Throughput of the perplexity-slice scorer: scored tokens per second for the demo checkpoint
(Hugging Face backend, float32, CPU) over about 50k tokens of synthetic text, for window lengths
128/256/512 and batch sizes 1/8/32.

    .venv/bin/python benchmarks/bench_perplexity.py [--tokens N] [--docs-tokens M] [--threads T]

Documents of about ``--docs-tokens`` tokens each are made from a fixed word list with a fixed
random generator, packed with the scorer's own ``pack`` and scored with ``document_nll`` at
stride seq_len // 2 (every token after the first window sees at least half a window of context).
Throughput counts the documents' tokens, each scored once, not the tokens fed to the model
(which are about twice as many at this stride). The demo model is tiny (4 layers, width 128), so
the numbers measure the scorer's overheads (windowing, padding, log_softmax) more than a model.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scorers.perplexity import Document, document_nll, hf_logprobs, pack, prefix_token_for  # noqa: E402

CHECKPOINT = ROOT / "evaltests" / "demo" / "step_0800"
SEQ_LENS = (128, 256, 512)
BATCH_SIZES = (1, 8, 32)
WORDS = (
    "the of and to in is was for on that with as by at from checkpoint model training loss data "
    "evaluation token window context river mountain city history science number system language "
    "people during between after before under over small large early late first second third"
).split()


def synthetic_docs(total_tokens: int, doc_tokens: int, tokenizer: object) -> list[Document]:
    """Documents of roughly ``doc_tokens`` tokens, enough of them to pass ``total_tokens``."""
    rng = random.Random(0)
    sample = " ".join(rng.choice(WORDS) for _ in range(200))
    per_word = len(tokenizer(sample, add_special_tokens=False)["input_ids"]) / 200
    words_per_doc = max(1, int(doc_tokens / per_word))
    n_docs = int(total_tokens / doc_tokens) + 2
    return [
        Document(f"synthetic-{i}", " ".join(rng.choice(WORDS) for _ in range(words_per_doc)) + ".")
        for i in range(n_docs)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--docs-tokens", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
    model = AutoModelForCausalLM.from_pretrained(CHECKPOINT, dtype=torch.float32).eval()
    packed = pack(synthetic_docs(args.tokens, args.docs_tokens, tokenizer), tokenizer, target_tokens=args.tokens)
    prefix = prefix_token_for(tokenizer)
    n = packed.manifest["n_tokens"]
    print(f"demo checkpoint step_0800, CPU float32, {torch.get_num_threads()} threads; "
          f"{packed.manifest['n_docs']} documents, {n} tokens; stride = seq_len // 2\n")
    print(f"{'seq_len':>7} {'batch':>5} {'seconds':>8} {'tokens/s':>9} {'nll/token':>9}")
    for seq_len in SEQ_LENS:
        for batch_size in BATCH_SIZES:
            score = hf_logprobs(model, batch_size=batch_size, device="cpu")
            started = time.perf_counter()
            nll = document_nll(packed, score, seq_len=seq_len, stride=seq_len // 2, prefix_token=prefix)
            seconds = time.perf_counter() - started
            print(f"{seq_len:>7} {batch_size:>5} {seconds:>8.2f} {n / seconds:>9.0f} {sum(nll) / n:>9.4f}")


if __name__ == "__main__":
    main()
