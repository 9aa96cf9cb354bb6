"""The Hugging Face backend: lm-eval's HFLM on the worker's device (CPU in this project's CI)."""

from __future__ import annotations

import os
from typing import Any

import torch
from lm_eval.models.huggingface import HFLM

from ckptgate.checkpoints import Checkpoint

SEED = 42
# lm-eval's "auto" batch size probes for the largest batch that does not run out of memory;
# on CPU that probe allocates until the host swaps, so CPU runs use a fixed batch size.
CPU_BATCH_SIZE = 32


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_threads(processes: int) -> int:
    """This process's share of the CPU cores when ``processes`` evaluate side by side: xdist
    workers must not oversubscribe the cores (two workers with a full-size torch thread pool
    each run several times slower)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, processes))


def settings_for(dev: str, processes: int = 1) -> dict[str, Any]:
    on_gpu = dev.startswith("cuda")
    return {
        "device": dev,
        "dtype": "bfloat16" if on_gpu else "float32",
        "batch_size": "auto" if on_gpu else CPU_BATCH_SIZE,
        "seed": SEED,
        "torch_threads": None if on_gpu else cpu_threads(processes),
    }


def load(checkpoint: Checkpoint, processes: int = 1) -> tuple[HFLM, dict[str, Any]]:
    """Load ``checkpoint`` into lm-eval's HFLM; ``processes`` evaluate on this host at once."""
    settings = settings_for(device(), processes)
    if settings["torch_threads"] is not None:
        torch.set_num_threads(settings["torch_threads"])
    torch.manual_seed(SEED)
    lm = HFLM(
        pretrained=str(checkpoint.load_path),
        device=settings["device"],
        dtype=settings["dtype"],
        batch_size=settings["batch_size"],
        trust_remote_code=False,
    )
    return lm, {"backend": "hf", **settings}
