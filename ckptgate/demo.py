"""Embedded demo checkpoints: a tiny, genuine Qwen3 series shipped with the project.

The gate needs checkpoints whose benchmark scores really differ, without downloading anything.
The project ships one small ``Qwen3ForCausalLM`` training run (about 0.9M parameters, byte-level
BPE tokenizer, bf16 safetensors) in ``evaltests/demo``, and this module both finds those files
(checking every byte against the sha256 recorded in ``manifest.json``) and holds the code that
trained them, so ``ckptgate demo --retrain DIR`` can regenerate them:

* ``step_0100``, ``step_0300``, ``step_0800``: the early series, whose scores rise with training,
  so a gate comparing them has real regressions and improvements to find;
* ``step_0850``, ``step_0900``: a late plateau. The learning rate falls linearly to zero after
  step 800, as real runs anneal it, so these checkpoints and step_0800 are of equal quality:
  consecutive checkpoints that a gate must not call regressions;
* ``bridge``: the snapshot at :data:`BRIDGE_STEP`, between step_0300 and step_0800.

The weights are shipped, not trained on each machine, because training is not bit-identical
across CPU instruction sets and thread counts: a locally trained series scores differently on
every machine, and so would every number in the documentation and the tests.

Each snapshot is an ordinary Hugging Face folder (``config.json``, ``model.safetensors``,
``generation_config.json``, tokenizer files with a ChatML chat template) that ``transformers``
and vLLM load offline. The three skills match the demo lm-eval tasks shipped in
``evaltests/tasks/demo`` (GSM8K-format arithmetic, a four-way multiple choice, plain text for
perplexity); the items of those tasks are generated here too (:func:`write_eval_data`) and are held
out from training.

Nothing here contacts a hub: the tokenizer, config, model and data are all built in code.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import random
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptgate.resources import evaltests_dir

__all__ = [
    "BRIDGE_STEP",
    "DEMO_RECIPE_VERSION",
    "DEMO_STEPS",
    "PLATEAU_STEPS",
    "copy_demo",
    "demo_bridge",
    "demo_series",
    "retrain",
    "verify",
    "write_eval_data",
]

#: Training steps at which the demo series is snapshotted (folders ``step_0100`` ...).
DEMO_STEPS: tuple[int, ...] = (100, 300, 800, 850, 900)
#: The late plateau: the learning rate anneals to zero after the first of these steps, so these
#: checkpoints are of equal quality.
PLATEAU_STEPS: tuple[int, ...] = (800, 850, 900)
#: The step of the extra ``bridge`` snapshot, between step_0300 and step_0800.
BRIDGE_STEP = 500
#: Bump whenever anything below changes what gets trained (data, tokenizer, model, training);
#: it is recorded in the shipped manifest.
DEMO_RECIPE_VERSION = "3"
#: The shipped series (package data of ``evaltests``) and its sha256 manifest.
SHIPPED_DIR = evaltests_dir() / "demo"
MANIFEST = "manifest.json"

BRIDGE_DIR = "bridge"
EOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
#: ChatML, as Qwen uses it; stored in tokenizer_config.json so chat-template runs work.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Seeds are fixed so that builds are reproducible; the eval seed is separate from the training
# seed so that retuning training never changes the shipped eval data.
_EVAL_SEED = 20_250_611
_TRAIN_SEED = 1_234
_TOKENIZER_SEED = 4_321

# Sizes of the shipped eval sets.
_N_ARITH_TEST = 200
_N_ARITH_FEWSHOT = 32
_N_CHOICE_TEST = 200
_N_TEXT_TEST = 40

# Operand ranges of the arithmetic skill: a two-digit plus a one-digit number ("What is 23 plus 4?"),
# small enough for a ~1M-parameter model to learn in 800 steps on 2 CPU cores.
_ARITH_LO, _ARITH_HI = 10, 99
_ARITH_B_LO, _ARITH_B_HI = 1, 9
# Number range of the multiple-choice skill: one to three digits, so choices differ in length
# and acc_norm (per-byte normalised) differs from acc.
_CHOICE_LO, _CHOICE_HI = 1, 199
_N_CHOICES = 4


@dataclass(frozen=True)
class _Recipe:
    """Everything that determines the trained weights (kept together so it can be hashed)."""

    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 32
    max_positions: int = 512
    total_steps: int = max(DEMO_STEPS)
    # Cosine decay ends here; the learning rate then falls linearly to zero at total_steps
    # (the plateau: checkpoints of equal quality, as at the end of a real run).
    anneal_start: int = PLATEAU_STEPS[0]
    batch_size: int = 12
    seq_len: int = 112
    peak_lr: float = 2.5e-3
    final_lr_frac: float = 0.02
    warmup_steps: int = 30
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    beta2: float = 0.95
    max_pairs_per_doc: int = 5
    # Mixture of document kinds in the training stream: arithmetic QA, choice QA, text.
    mix: tuple[float, float, float] = (0.65, 0.2, 0.15)
    eos_prefix_prob: float = 0.5


_RECIPE = _Recipe()


# --------------------------------------------------------------------------------------------
# Synthetic data: the three skills
# --------------------------------------------------------------------------------------------


def _arith_item(a: int, b: int) -> dict[str, str]:
    """One GSM8K-format item: working, then ``#### N``, so gsm8k's filters apply unchanged."""
    return {
        "question": f"What is {a} plus {b}?",
        "answer": f"{a} + {b} = {a + b}\n#### {a + b}",
    }


def _choice_item(numbers: Sequence[int]) -> dict[str, Any]:
    """One multiple-choice item: pick the largest of four numbers (answer is the number itself)."""
    listed = ", ".join(str(n) for n in numbers[:-1]) + f" or {numbers[-1]}"
    return {
        "question": f"Which is the largest: {listed}?",
        "choices": [str(n) for n in numbers],
        "label": max(range(len(numbers)), key=lambda i: numbers[i]),
    }


def _qa_text(question: str, answer: str) -> str:
    """The prompt format of both QA tasks (``doc_to_text`` + target delimiter + target)."""
    return f"Question: {question}\nAnswer: {answer}"


_NAMES = ("Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Henry", "Iris", "Jack")
_ANIMALS = ("cat", "dog", "bird", "fox", "horse", "rabbit", "mouse", "cow", "duck", "goat")
_ADJECTIVES = ("small", "big", "red", "old", "happy", "quiet", "brown", "young", "tired", "clever")
_THINGS = ("ball", "book", "apple", "box", "cup", "hat", "letter", "stone", "key", "basket")
_PLACES = ("garden", "house", "park", "forest", "river", "kitchen", "school", "field", "barn")
_VERBS_T = ("sees", "likes", "finds", "follows", "watches", "carries", "helps", "wants", "takes")
_VERBS_I = ("sleeps", "runs", "sings", "waits", "jumps", "smiles", "rests", "plays", "walks")
_ADVERBS = ("quickly", "slowly", "happily", "quietly", "today", "again", "outside", "at night")


def _plural(verb: str) -> str:
    """Third-person singular to plural (``carries`` -> ``carry``), for "X and Y <verb>"."""
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("ches", "shes", "sses", "xes")):
        return verb[:-2]
    return verb[:-1]


def _subject(rng: random.Random) -> str:
    """A singular noun phrase that can start a sentence."""
    kind = rng.randrange(3)
    if kind == 0:
        return rng.choice(_NAMES)
    if kind == 1:
        return f"the {rng.choice(_ADJECTIVES)} {rng.choice(_ANIMALS)}"
    return f"the {rng.choice(_ANIMALS)}"


def _object(rng: random.Random) -> str:
    """A noun phrase in object position."""
    kind = rng.randrange(4)
    if kind == 0:
        return f"the {rng.choice(_ADJECTIVES)} {rng.choice(_THINGS)}"
    if kind == 1:
        return f"a {rng.choice(_THINGS)}"
    if kind == 2:
        return rng.choice(_NAMES)
    return f"the {rng.choice(_ANIMALS)}"


def _sentence(rng: random.Random) -> str:
    """One sentence of a small English grammar (with agreement, so there is structure to learn)."""
    kind = rng.randrange(7)
    if kind == 0:
        s = f"{_subject(rng)} {rng.choice(_VERBS_T)} {_object(rng)}."
    elif kind == 1:
        s = f"{_subject(rng)} {rng.choice(_VERBS_I)} {rng.choice(_ADVERBS)}."
    elif kind == 2:
        s = f"{_subject(rng)} {rng.choice(_VERBS_I)} in the {rng.choice(_PLACES)}."
    elif kind == 3:
        s = f"{_subject(rng)} {rng.choice(_VERBS_T)} {_object(rng)} in the {rng.choice(_PLACES)}."
    elif kind == 4:
        verb = _plural(rng.choice(_VERBS_I))
        s = f"{_subject(rng)} and {_subject(rng)} {verb} {rng.choice(_ADVERBS)}."
    elif kind == 5:
        s = f"Where is {_object(rng)}? It is in the {rng.choice(_PLACES)}."
    else:
        s = f"{_subject(rng)} {rng.choice(_VERBS_T)} {_object(rng)} because it is {rng.choice(_ADJECTIVES)}."
    return s[0].upper() + s[1:]


def _text_doc(rng: random.Random, n_min: int = 2, n_max: int = 6) -> str:
    """A short paragraph of grammar sentences."""
    return " ".join(_sentence(rng) for _ in range(rng.randint(n_min, n_max)))


def _distinct_numbers(rng: random.Random, lo: int, hi: int, k: int) -> list[int]:
    """``k`` distinct integers in ``[lo, hi]``, in random order."""
    return rng.sample(range(lo, hi + 1), k)


@dataclass(frozen=True)
class _EvalData:
    """The shipped eval items, plus the keys that training must avoid."""

    arith_fewshot: list[dict[str, str]]
    arith_test: list[dict[str, str]]
    choice_test: list[dict[str, Any]]
    text_test: list[dict[str, str]]

    def held_out_pairs(self) -> frozenset[tuple[int, int]]:
        """Operand pairs of the arithmetic test items, in both orders."""
        pairs: set[tuple[int, int]] = set()
        for item in self.arith_test:
            a, b = (int(x) for x in item["question"][len("What is ") : -1].split(" plus "))
            pairs.update({(a, b), (b, a)})
        return frozenset(pairs)

    def held_out_choice_sets(self) -> frozenset[frozenset[int]]:
        """Number sets of the choice test items (in any order)."""
        return frozenset(frozenset(int(c) for c in item["choices"]) for item in self.choice_test)

    def held_out_texts(self) -> frozenset[str]:
        """The text test documents."""
        return frozenset(item["text"] for item in self.text_test)


def _draw_pairs(rng: random.Random, count: int, seen: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """``count`` new arithmetic operand pairs, none equal to (or the swap of) one in ``seen``."""
    pairs: list[tuple[int, int]] = []
    while len(pairs) < count:
        a, b = rng.randint(_ARITH_LO, _ARITH_HI), rng.randint(_ARITH_B_LO, _ARITH_B_HI)
        if (a, b) in seen or (b, a) in seen:
            continue
        seen.add((a, b))
        pairs.append((a, b))
    return pairs


def _make_eval_data() -> _EvalData:
    """Generate the eval items deterministically (the shipped JSONL files are exactly these)."""
    rng = random.Random(_EVAL_SEED)
    seen: set[tuple[int, int]] = set()
    test_pairs = _draw_pairs(rng, _N_ARITH_TEST, seen)
    fewshot_pairs = _draw_pairs(rng, _N_ARITH_FEWSHOT, seen)

    choice_sets: list[list[int]] = []
    seen_sets: set[frozenset[int]] = set()
    while len(choice_sets) < _N_CHOICE_TEST:
        numbers = _distinct_numbers(rng, _CHOICE_LO, _CHOICE_HI, _N_CHOICES)
        if frozenset(numbers) in seen_sets:
            continue
        seen_sets.add(frozenset(numbers))
        choice_sets.append(numbers)

    texts: list[str] = []
    while len(texts) < _N_TEXT_TEST:
        doc = _text_doc(rng, 3, 5)
        if doc not in texts:
            texts.append(doc)

    return _EvalData(
        arith_fewshot=[_arith_item(a, b) for a, b in fewshot_pairs],
        arith_test=[_arith_item(a, b) for a, b in test_pairs],
        choice_test=[_choice_item(ns) for ns in choice_sets],
        text_test=[{"text": t} for t in texts],
    )


#: File name -> attribute of :class:`_EvalData`, for the shipped JSONL files.
EVAL_FILES: dict[str, str] = {
    "arithmetic_fewshot.jsonl": "arith_fewshot",
    "arithmetic_test.jsonl": "arith_test",
    "choice_test.jsonl": "choice_test",
    "text_test.jsonl": "text_test",
}


def _jsonl(rows: Sequence[dict[str, Any]]) -> str:
    """Serialise rows one JSON object a line, byte-stable (sorted keys, ASCII)."""
    return "".join(json.dumps(row, sort_keys=True, ensure_ascii=True) + "\n" for row in rows)


def eval_data_files() -> dict[str, str]:
    """The contents of the shipped eval JSONL files, by file name (what :func:`write_eval_data` writes)."""
    data = _make_eval_data()
    return {name: _jsonl(getattr(data, attr)) for name, attr in EVAL_FILES.items()}


def write_eval_data(data_dir: Path) -> None:
    """(Re)generate the demo tasks' JSONL files in ``data_dir``; the output is deterministic."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, text in eval_data_files().items():
        (data_dir / name).write_text(text, encoding="utf-8")


class _TrainingStream:
    """Endless, seeded stream of training documents, avoiding every held-out eval item.

    Documents look like what the eval tasks feed the model: several QA pairs joined by blank
    lines (like a few-shot prompt), or a short paragraph of text.
    """

    def __init__(self, rng: random.Random, eval_data: _EvalData, recipe: _Recipe) -> None:
        self._rng = rng
        self._recipe = recipe
        self._held_pairs = eval_data.held_out_pairs()
        self._held_sets = eval_data.held_out_choice_sets()
        self._held_texts = eval_data.held_out_texts()

    def _operands(self) -> tuple[int, int]:
        """Training operands, drawn like the eval items' (held-out pairs excluded)."""
        while True:
            self._rng.random()  # a draw of an earlier recipe, kept: the shipped weights depend on it
            a = self._rng.randint(_ARITH_LO, _ARITH_HI)
            b = self._rng.randint(_ARITH_B_LO, _ARITH_B_HI)
            if (a, b) not in self._held_pairs:
                return a, b

    def _arith_pair(self) -> str:
        while True:
            a, b = self._operands()
            if (a, b) not in self._held_pairs:
                item = _arith_item(a, b)
                return _qa_text(item["question"], item["answer"])

    def _choice_pair(self) -> str:
        while True:
            numbers = _distinct_numbers(self._rng, _CHOICE_LO, _CHOICE_HI, _N_CHOICES)
            if frozenset(numbers) not in self._held_sets:
                item = _choice_item(numbers)
                return _qa_text(item["question"], item["choices"][item["label"]])

    def _text(self) -> str:
        while True:
            doc = _text_doc(self._rng)
            if doc not in self._held_texts:
                return doc

    def doc(self) -> str:
        """The next training document (without special tokens)."""
        w_qa, w_choice, _ = self._recipe.mix
        r = self._rng.random()
        if r < w_qa + w_choice:
            make = self._arith_pair if r < w_qa else self._choice_pair
            return "\n\n".join(make() for _ in range(self._rng.randint(1, self._recipe.max_pairs_per_doc)))
        return self._text()


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


def _train_tokenizer(recipe: _Recipe, eval_data: _EvalData) -> Any:
    """Train a small byte-level BPE on the training distribution, wrapped for ``transformers``.

    Digits are split one per token before the byte-level step (as Qwen does), so numbers are
    spelled digit by digit and arithmetic is learnable by a tiny model.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    stream = _TrainingStream(random.Random(_TOKENIZER_SEED), eval_data, recipe)
    corpus = [stream.doc() for _ in range(3000)]
    corpus += ["<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"] * 20
    tok.train_from_iterator(corpus, trainer=trainer)

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        extra_special_tokens=[IM_START, IM_END],
        model_max_length=recipe.max_positions,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )


# --------------------------------------------------------------------------------------------
# Model and training
# --------------------------------------------------------------------------------------------


def _make_model(recipe: _Recipe, tokenizer: Any) -> Any:
    """A freshly initialised Qwen3ForCausalLM (initialisation uses the seeded global torch RNG)."""
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    im_end_id = tokenizer.convert_tokens_to_ids(IM_END)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_kv_heads,
        head_dim=recipe.head_dim,
        max_position_embeddings=recipe.max_positions,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        architectures=["Qwen3ForCausalLM"],
    )
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=None,
        eos_token_id=[eos_id, im_end_id],
        pad_token_id=eos_id,
        do_sample=False,
        max_new_tokens=64,
    )
    return model


def _lr_at(step: int, recipe: _Recipe) -> float:
    """Linear warmup, cosine decay to ``final_lr_frac`` of the peak at ``anneal_start``, then a
    linear fall to zero at ``total_steps`` (the late plateau)."""
    if step < recipe.warmup_steps:
        return recipe.peak_lr * (step + 1) / recipe.warmup_steps
    floor = recipe.peak_lr * recipe.final_lr_frac
    if step >= recipe.anneal_start:
        left = recipe.total_steps - step
        return floor * max(0.0, left / max(1, recipe.total_steps - recipe.anneal_start))
    span = max(1, recipe.anneal_start - recipe.warmup_steps)
    progress = min(1.0, (step - recipe.warmup_steps) / span)
    shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return floor + (recipe.peak_lr - floor) * shape


def _row(stream: _TrainingStream, tokenizer: Any, rng: random.Random, recipe: _Recipe) -> list[int]:
    """One packed training row of exactly ``seq_len`` tokens: EOS-separated documents.

    Half of the rows start with EOS and half start straight into a document: lm-eval's
    rolling-window perplexity starts each window with EOS (the model has no BOS), while the
    generation and choice prompts start without it. Packing wastes no compute on padding; the
    last document is cut off wherever the row ends.
    """
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    row: list[int] = [eos_id] if rng.random() < recipe.eos_prefix_prob else []
    while len(row) < recipe.seq_len:
        row += tokenizer.backend_tokenizer.encode(stream.doc(), add_special_tokens=False).ids
        row.append(eos_id)
    return row[: recipe.seq_len]


def _batch(stream: _TrainingStream, tokenizer: Any, rng: random.Random, recipe: _Recipe) -> Any:
    """A ``(batch_size, seq_len)`` tensor of packed rows (inputs and labels alike)."""
    import torch

    rows = [_row(stream, tokenizer, rng, recipe) for _ in range(recipe.batch_size)]
    return torch.tensor(rows, dtype=torch.long)


@contextlib.contextmanager
def _deterministic_torch(seed: int) -> Iterator[None]:
    """Seed torch, force deterministic kernels and one thread (a reduction's result depends on
    how it is split over threads), restoring the caller's global state after. Bit-identical
    retraining then holds on one kind of CPU; another instruction set may still round
    differently, which is why the trained weights are shipped."""
    import torch

    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
            torch.set_num_threads(threads)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' own progress bars ("Writing model shards") under our training bar."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _save_checkpoint(model: Any, tokenizer: Any, path: Path) -> None:
    """Save one snapshot as a standard Hugging Face folder, in bf16 like real checkpoints (half
    the bytes to ship; the CPU backends compute in float32, to which bf16 converts exactly)."""
    import copy

    import torch

    path.mkdir(parents=True, exist_ok=True)
    with _quiet_transformers():
        copy.deepcopy(model).to(torch.bfloat16).save_pretrained(path, safe_serialization=True)
        # save_jinja_files=False keeps the chat template inside tokenizer_config.json.
        tokenizer.save_pretrained(path, save_jinja_files=False)


def _step_dir(step: int) -> str:
    """Folder name of a demo snapshot (``step_0100``)."""
    return f"step_{step:04d}"


def _train_and_snapshot(
    out_dir: Path, recipe: _Recipe, progress: bool, *, stop_after: int | None = None
) -> None:
    """One training run, saving the demo snapshots and the bridge on the way.

    ``stop_after`` ends the run early (same schedule, so the snapshots taken are identical to a
    full run's): the tests use it to check determinism without training all the way.
    """
    import torch
    from tqdm.auto import tqdm

    snapshots = {s: out_dir / _step_dir(s) for s in DEMO_STEPS}
    snapshots[BRIDGE_STEP] = out_dir / BRIDGE_DIR
    eval_data = _make_eval_data()
    tokenizer = _train_tokenizer(recipe, eval_data)
    with _deterministic_torch(_TRAIN_SEED):
        model = _make_model(recipe, tokenizer)
        model.train()
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=recipe.peak_lr,
            betas=(0.9, recipe.beta2),
            weight_decay=recipe.weight_decay,
        )
        rng = random.Random(_TRAIN_SEED)
        stream = _TrainingStream(rng, eval_data, recipe)
        bar = tqdm(
            total=recipe.total_steps,
            desc="ckptgate: training demo checkpoints",
            file=sys.stderr,
            disable=not progress,
            unit="step",
        )
        with bar:
            last = recipe.total_steps if stop_after is None else min(stop_after, recipe.total_steps)
            for step in range(1, last + 1):
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step - 1, recipe)
                input_ids = _batch(stream, tokenizer, rng, recipe)
                loss = model(input_ids=input_ids, labels=input_ids).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                optimizer.step()
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
                if step in snapshots:
                    model.eval()
                    _save_checkpoint(model, tokenizer, snapshots[step])
                    model.train()


# --------------------------------------------------------------------------------------------
# Public API: the shipped series, its verification, and retraining
# --------------------------------------------------------------------------------------------


def _snapshot_names() -> list[str]:
    return [_step_dir(s) for s in DEMO_STEPS] + [BRIDGE_DIR]


def _file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file of every snapshot under ``root``, by path relative to ``root``."""
    digests: dict[str, str] = {}
    for name in _snapshot_names():
        for path in sorted((root / name).rglob("*")):
            if path.is_file():
                digests[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def retrain(out_dir: Path, *, progress: bool = True) -> Path:
    """Train the demo series into ``out_dir`` and write its ``manifest.json`` (sha256 of every
    file). This is how the shipped ``evaltests/demo`` was made: ``ckptgate demo --retrain DIR``.

    Deterministic on one kind of CPU with the pinned library versions (one thread, seeded,
    deterministic kernels); another CPU may produce other bytes. Shows a tqdm bar on stderr
    unless ``progress`` is false. Returns ``out_dir``.
    """
    from ckptgate.atomicio import write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _train_and_snapshot(out_dir, _RECIPE, progress)
    manifest = {
        "recipe_version": DEMO_RECIPE_VERSION,
        "steps": list(DEMO_STEPS),
        "plateau_steps": list(PLATEAU_STEPS),
        "bridge_step": BRIDGE_STEP,
        "seed": _TRAIN_SEED,
        "sha256": _file_digests(out_dir),
    }
    write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out_dir


@functools.cache
def verify(root: Path = SHIPPED_DIR) -> Path:
    """Check every file of the series under ``root`` against its manifest; return ``root``.

    Raises :class:`~ckptgate.errors.CkptgateError` naming each missing, extra or changed file,
    so a damaged install or an edited checkpoint never produces numbers that look like the
    demo's. About 30 ms for the shipped series; done once per process.
    """
    from ckptgate.errors import CkptgateError

    manifest_path = root / MANIFEST
    try:
        expected: dict[str, str] = json.loads(manifest_path.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise CkptgateError(f"demo checkpoints: cannot read {manifest_path} ({exc}); reinstall ckptgate") from exc
    found = _file_digests(root)
    problems = [f"{name}: missing" for name in sorted(expected.keys() - found.keys())]
    problems += [f"{name}: not in the manifest" for name in sorted(found.keys() - expected.keys())]
    problems += [f"{name}: sha256 differs" for name in sorted(expected.keys() & found.keys())
                 if expected[name] != found[name]]
    if problems:
        listed = "\n  ".join(problems)
        raise CkptgateError(
            f"the demo checkpoints under {root} do not match {MANIFEST}:\n  {listed}\n"
            "Their numbers would not be the demo's. Reinstall ckptgate (or `git checkout "
            "evaltests/demo` in a source checkout)."
        )
    return root


def demo_series() -> Path:
    """The shipped series folder (its children step_0100 ... and bridge), verified."""
    return verify(SHIPPED_DIR)


def demo_stage() -> list[Path]:
    """The shipped checkpoints after the bridge (steps 800, 850, 900: the stage the bridge gates)."""
    root = demo_series()
    return [root / _step_dir(step) for step in DEMO_STEPS if step > BRIDGE_STEP]


def demo_bridge() -> Path:
    """The shipped bridge checkpoint (step 500), verified."""
    return demo_series() / BRIDGE_DIR


def copy_demo(out_dir: Path) -> Path:
    """Copy the shipped, verified series into ``out_dir`` (a writable series to experiment with)."""
    source = demo_series()
    out_dir = Path(out_dir)
    for name in _snapshot_names():
        shutil.copytree(source / name, out_dir / name, dirs_exist_ok=True)
    shutil.copyfile(source / MANIFEST, out_dir / MANIFEST)
    return out_dir
