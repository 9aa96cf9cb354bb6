"""HumanEval through the code sandbox: every canonical solution must pass, every bare prompt
(signature and docstring, no body) must fail; prints counts and samples per second.

    .venv/bin/python benchmarks/bench_sandbox_humaneval.py [--workers 1 2 4] [--busy N]

``--workers`` defaults to 1 and this process's share of the cores (what the gate uses: the
usable cores divided by PYTEST_XDIST_WORKER_COUNT, 1 when unset). Verdicts go by CPU time (5 s
per sample; 30 s wall-clock guard), so they must not change with ``--busy N``, which runs N
busy-looping processes alongside (e.g. twice the core count) to saturate the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ckptgate.sandbox import Sandbox, concurrency_share  # noqa: E402
from scorers.code_programs import humaneval_problems, humaneval_program  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, concurrency_share()}),
                        help="sandboxes at once, one run per value (default: 1 and this process's share of the cores)")
    parser.add_argument("--busy", type=int, default=0, help="busy-looping processes to run alongside (default 0)")
    args = parser.parse_args()
    problems = list(humaneval_problems().values())
    jobs = {
        "canonical solution": [(humaneval_program(p, p["canonical_solution"]), "") for p in problems],
        "bare prompt": [(humaneval_program(p, ""), "") for p in problems],
    }
    box = Sandbox()
    print(f"{len(problems)} HumanEval problems; sandbox layers: {', '.join(box.layers())}")
    print(f"limits: {box.limits.cpu_s:g} s CPU per sample, {box.limits.timeout_s:g} s wall-clock guard; "
          f"concurrency share here: {concurrency_share()}; busy processes alongside: {args.busy}\n")
    print(f"{'programs':<20} {'workers':>7} {'seconds':>8} {'samples/s':>10} {'max cpu s':>9}   verdicts")
    busy = [subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"], stdin=subprocess.DEVNULL,
                             start_new_session=True) for _ in range(args.busy)]
    try:
        for name, batch in jobs.items():
            for workers in args.workers:
                started = time.perf_counter()
                verdicts = box.run_many(batch, workers=workers)
                seconds = time.perf_counter() - started
                counts = Counter(v.status.value for v in verdicts)
                cpu = max(v.cpu_seconds or 0.0 for v in verdicts)
                print(f"{name:<20} {workers:>7} {seconds:8.2f} {len(batch) / seconds:10.1f} {cpu:9.3f}   "
                      + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    finally:
        for proc in busy:
            proc.kill()
        for proc in busy:
            proc.wait()


if __name__ == "__main__":
    main()
