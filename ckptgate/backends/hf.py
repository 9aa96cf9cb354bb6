"""The Hugging Face backend: lm-eval's HFLM on the worker's device (CPU in this project's CI)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ckptgate.checkpoints import Checkpoint
from ckptgate.devices import cpu_share
from ckptgate.scores import SEED

if TYPE_CHECKING:
    from lm_eval.models.huggingface import HFLM

# lm-eval's "auto" batch size probes for the largest batch that does not run out of memory;
# on CPU that probe allocates until the host swaps, so CPU runs use a fixed batch size.
CPU_BATCH_SIZE = 32


def cpu_threads(processes: int) -> int:
    """Torch threads for this process when ``processes`` evaluate side by side: xdist workers
    must not oversubscribe the cores (two workers with a full-size torch thread pool each run
    several times slower)."""
    return cpu_share(processes)


def settings_for(dev: str, processes: int = 1, max_model_len: int | None = None) -> dict[str, Any]:
    on_gpu = dev.startswith("cuda")
    return {
        "device": dev,
        "dtype": "bfloat16" if on_gpu else "float32",
        "batch_size": "auto" if on_gpu else CPU_BATCH_SIZE,
        "seed": SEED,
        "max_model_len": max_model_len,
        "torch_threads": None if on_gpu else cpu_threads(processes),
    }


def load(checkpoint: Checkpoint, device: str = "cpu", processes: int = 1,
         max_model_len: int | None = None) -> tuple[HFLM, dict[str, Any]]:
    """Load ``checkpoint`` into lm-eval's HFLM on ``device`` (the planner's: "cuda" is the one GPU
    this worker sees); ``processes`` evaluate on this host at once; ``max_model_len`` caps prompt
    + generation like vLLM's setting of that name (HFLM max_length). torch and lm-eval's HF
    model are imported here: a run whose results all come from the record cache never pays for them."""
    import torch
    from lm_eval.models.huggingface import HFLM

    settings = settings_for(device, processes, max_model_len)
    if settings["torch_threads"] is not None:
        torch.set_num_threads(settings["torch_threads"])
    torch.manual_seed(SEED)
    lm = HFLM(
        pretrained=str(checkpoint.load_path),
        device=settings["device"],
        dtype=settings["dtype"],
        batch_size=settings["batch_size"],
        max_length=max_model_len,
        trust_remote_code=False,
    )
    ignored = honour_max_gen_toks(lm)
    if ignored is not None:
        settings["checkpoint_max_new_tokens_ignored"] = ignored
    return lm, {"backend": "hf", **settings}


def honour_max_gen_toks(lm: HFLM) -> int | None:
    """Make the task's ``max_gen_toks`` decide how long generations may be.

    lm-eval's HF backend passes ``max_length = prompt + max_gen_toks`` to ``generate``, but a
    checkpoint whose generation_config.json sets ``max_new_tokens`` silently overrides it
    (transformers gives ``max_new_tokens`` precedence), so the same task would generate to a
    different length on hf than on vLLM, and differently per checkpoint. Returns the value
    dropped (recorded with the results), or None.
    """
    config = getattr(lm.model, "generation_config", None)
    dropped = getattr(config, "max_new_tokens", None)
    if dropped is not None:
        config.max_new_tokens = None
    return dropped
