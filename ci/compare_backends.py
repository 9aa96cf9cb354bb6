"""Compare two gate runs of the same checkpoints and suite on different backends (hf, vllm):
every metric of every benchmark. Exit 1 on a mismatch.

    python ci/compare_backends.py results/backends/hf results/backends/vllm

Accuracy-type metrics must be equal; log-likelihood-derived ones (perplexity, bits per byte) may
differ by float rounding between the backends' kernels (relative 1e-5).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ckptgate.results import read_records

TOLERANCE = 1e-5
CONTINUOUS = ("perplexity", "bits_per_byte", "gold_logprob")


def records(results: Path) -> dict[tuple[str, str], dict]:
    return {(r["checkpoint"]["label"], r["benchmark"]["id"]): r for r in read_records(results)}


def main(first: Path, second: Path) -> int:
    a, b = records(first), records(second)
    if not a or set(a) != set(b):
        print(f"the runs scored different benchmarks: {sorted(set(a) ^ set(b)) or 'none at all'}")
        return 1
    problems, compared = [], 0
    for key in sorted(a):
        backends = (a[key]["backend"]["backend"], b[key]["backend"]["backend"])
        for metric, value in a[key]["metrics"].items():
            x, y = value["value"], b[key]["metrics"][metric]["value"]
            compared += 1
            continuous = any(word in metric for word in CONTINUOUS)
            same = abs(x - y) <= TOLERANCE * max(1.0, abs(x)) if continuous else x == y
            status = "same" if same else "DIFFERENT"
            print(f"{key[0]:<12} {key[1]:<14} {metric:<32} {backends[0]} {x:.6f}  {backends[1]} {y:.6f}  {status}")
            if not same:
                problems.append(f"{key} {metric}")
    print(f"{compared} metrics compared, {len(problems)} different")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
