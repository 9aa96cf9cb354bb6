"""HumanEval through the code sandbox: every canonical solution must pass, every bare prompt
(signature and docstring, no body) must fail; prints counts and samples per second.

    .venv/bin/python benchmarks/bench_sandbox_humaneval.py [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ckptgate.sandbox import Sandbox  # noqa: E402
from scorers.code_programs import humaneval_problems, humaneval_program  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    args = parser.parse_args()
    problems = list(humaneval_problems().values())
    jobs = {
        "canonical solution": [(humaneval_program(p, p["canonical_solution"]), "") for p in problems],
        "bare prompt": [(humaneval_program(p, ""), "") for p in problems],
    }
    box = Sandbox()
    print(f"{len(problems)} HumanEval problems; sandbox layers: {', '.join(box.layers())}\n")
    print(f"{'programs':<20} {'workers':>7} {'seconds':>8} {'samples/s':>10}   verdicts")
    for name, batch in jobs.items():
        for workers in args.workers:
            started = time.perf_counter()
            verdicts = box.run_many(batch, workers=workers)
            seconds = time.perf_counter() - started
            counts = Counter(v.status.value for v in verdicts)
            print(f"{name:<20} {workers:>7} {seconds:8.2f} {len(batch) / seconds:10.1f}   "
                  + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))


if __name__ == "__main__":
    main()
