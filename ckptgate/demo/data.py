"""The demo's synthetic data: the three skills (arithmetic, multiple choice, text), the held-out
eval items shipped as the demo tasks' JSONL files, and the training stream that avoids them."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptgate.demo.recipe import EVAL_SEED, Recipe

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
class EvalData:
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


def make_eval_data() -> EvalData:
    """Generate the eval items deterministically (the shipped JSONL files are exactly these)."""
    rng = random.Random(EVAL_SEED)
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

    return EvalData(
        arith_fewshot=[_arith_item(a, b) for a, b in fewshot_pairs],
        arith_test=[_arith_item(a, b) for a, b in test_pairs],
        choice_test=[_choice_item(ns) for ns in choice_sets],
        text_test=[{"text": t} for t in texts],
    )


#: File name -> attribute of :class:`EvalData`, for the shipped JSONL files.
EVAL_FILES: dict[str, str] = {
    "arithmetic_fewshot.jsonl": "arith_fewshot",
    "arithmetic_test.jsonl": "arith_test",
    "choice_test.jsonl": "choice_test",
    "text_test.jsonl": "text_test",
}


def jsonl(rows: Sequence[dict[str, Any]]) -> str:
    """Serialise rows one JSON object a line, byte-stable (sorted keys, ASCII)."""
    return "".join(json.dumps(row, sort_keys=True, ensure_ascii=True) + "\n" for row in rows)


def eval_data_files() -> dict[str, str]:
    """The contents of the shipped eval JSONL files, by file name (what :func:`write_eval_data` writes)."""
    data = make_eval_data()
    return {name: jsonl(getattr(data, attr)) for name, attr in EVAL_FILES.items()}


def write_eval_data(data_dir: Path) -> None:
    """(Re)generate the demo tasks' JSONL files in ``data_dir``; the output is deterministic."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, text in eval_data_files().items():
        (data_dir / name).write_text(text, encoding="utf-8")


class TrainingStream:
    """Endless, seeded stream of training documents, avoiding every held-out eval item.

    Documents look like what the eval tasks feed the model: several QA pairs joined by blank
    lines (like a few-shot prompt), or a short paragraph of text.
    """

    def __init__(self, rng: random.Random, eval_data: EvalData, recipe: Recipe) -> None:
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
