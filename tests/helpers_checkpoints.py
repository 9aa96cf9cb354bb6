"""Tiny fabricated checkpoints for the checkpoint-discovery tests (no model, no network)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

ARCH = ["Qwen3ForCausalLM"]


def write_tokenizer(folder: Path, vocab_size: int = 32) -> None:
    """A real (tiny) WordLevel tokenizer.json, as `tokenizers` writes it."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(vocab_size - 1)} | {"[UNK]": vocab_size - 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))


def tensors(seed: int = 0, rows: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "model.embed_tokens.weight": rng.standard_normal((rows, 8), dtype=np.float32),
        "model.layers.0.mlp.weight": rng.standard_normal((8, 8), dtype=np.float32),
        "lm_head.weight": rng.standard_normal((rows, 8), dtype=np.float32),
    }


def make_checkpoint(
    folder: Path,
    *,
    seed: int = 0,
    weights: dict[str, np.ndarray] | None = None,
    config: dict[str, Any] | None = None,
    tokenizer: bool = True,
    weights_name: str = "model.safetensors",
) -> Path:
    """A minimal Hugging Face-style folder: config.json, one safetensors file, tokenizer.json."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"architectures": ARCH, "model_type": "qwen3"} if config is None else config
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    save_file(tensors(seed) if weights is None else weights, str(folder / weights_name))
    if tokenizer:
        write_tokenizer(folder)
    return folder


def write_index(folder: Path, weight_map: dict[str, str]) -> None:
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")


def safetensors_keys(file: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(file), "np") as handle:
        return list(handle.keys())


def tree_state(folder: Path) -> dict[str, tuple[str, str]]:
    """Relative path -> (kind, sha256 of content or link target): compares folders byte for byte."""
    state: dict[str, tuple[str, str]] = {}
    for root, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            p = Path(root) / name
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                state[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                state[rel] = ("dir", "")
            else:
                state[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return state
