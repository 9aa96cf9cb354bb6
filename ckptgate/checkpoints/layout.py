"""What a checkpoint folder holds, by file name, and how its problems are reported."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from ckptgate.errors import CheckpointError

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_INDEX_NAME = "model.safetensors.index.json"

# Vocabulary files: at least one of these "sets" must be complete for a tokenizer to count.
TOKENIZER_VOCAB_SETS: tuple[tuple[str, ...], ...] = (
    ("tokenizer.json",),
    ("tokenizer.model",),
    ("spiece.model",),
    ("sentencepiece.bpe.model",),
    ("vocab.json", "merges.txt"),
    ("vocab.txt",),
)
# Small files that change what the model computes or how text is tokenized: hashed in full.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)
METADATA_FILES = ("generation_config.json", SAFE_INDEX_NAME)

# Pickle-format weight files we recognise only to say "convert these".
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
# Trainer state that sits next to weights but is not weights.
TRAINER_STATE = re.compile(r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|rng_state.*\.pth|scaler\.pt)$")

def fail(path: Path, problem: str, fix: str) -> CheckpointError:
    return CheckpointError(f"Checkpoint {path}: {problem} {fix}")


def list_names(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        raise fail(path, f"the folder cannot be listed ({exc.strerror}).", "Check its permissions.") from None


def summarise(names: Sequence[str], limit: int = 12) -> str:
    if not names:
        return "nothing"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"
