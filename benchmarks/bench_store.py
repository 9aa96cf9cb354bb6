"""The results store's costs on the demo series (hf backend, CPU, ``-n 2``), in one run:

1. cold: the whole series (``demo:all``: five checkpoints and the bridge) with an empty record cache;
2. warm: the same command again (every result read from the cache, no model loaded, no xdist
   worker started), beside the start-up every run pays (the same command with ``--collect-only``);
3. changed task: one task file touched: only that benchmark is scored again;
4. killed: a cold run killed with SIGKILL half-way, then re-run: the work the re-run redoes.

    .venv/bin/python benchmarks/bench_store.py [--limit N]

Work is counted in model-output chunks (each benchmark's requests are stored in twentieths as
they complete): the kill row reports the chunks the re-run scored beyond what an uninterrupted
run scores. Targets: warm <= 3% of cold; a kill redoes < 10% of the work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST = str(Path(sys.executable).parent / "pytest")
sys.path.insert(0, str(ROOT))

from scorers.resume import stored_chunks  # noqa: E402


def command(results: Path, cache: Path, suite: Path, limit: int | None) -> list[str]:
    extra = [] if limit is None else ["--limit", str(limit)]
    # hypothesis's pytest plugin comes with this project's test dependencies, not with the gate's
    # install, and imports hypothesis at the end of every run (about a second): left out here.
    return [PYTEST, str(ROOT / "evaltests"), "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q", "-n", "2",
            "--checkpoint", "demo:all",
            "--suite", str(suite), "--record-cache", str(cache), "--results-dir", str(results), *extra]


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - started


def stored(cache: Path) -> int:
    return stored_chunks(cache / "chunks")


def scored_in(results: Path) -> tuple[int, int]:
    """(benchmarks scored, benchmarks read from the cache) by the run that wrote ``results``."""
    records = [json.loads(p.read_text()) for p in results.glob("by_checkpoint/*/*.json") if p.with_suffix(".samples.jsonl").exists()]
    cached = sum(bool(r["timing"]["from_cache"]) for r in records)
    return len(records) - cached, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    tasks = work / "tasks"
    shutil.copytree(ROOT / "evaltests" / "tasks" / "demo", tasks)
    suite = work / "demo.yaml"
    suite.write_text((ROOT / "evaltests/suites/demo.yaml").read_text().replace("../tasks/demo", str(tasks)))
    cache = work / "cache"
    rows = []
    cold = timed(command(work / "cold", cache, suite, args.limit))
    total_chunks = stored(cache)
    rows.append(("cold", cold, *scored_in(work / "cold"), "100%"))
    floor = timed([*command(work / "floor", cache, suite, args.limit), "--collect-only"])
    rows.append(("start-up (--collect-only)", floor, 0, 0, "what any run pays before its first benchmark"))
    warm = timed(command(work / "warm", cache, suite, args.limit))
    rows.append(("warm (unchanged)", warm, *scored_in(work / "warm"),
                 f"{warm / cold:.1%} of cold; beyond start-up {(warm - floor) / cold:.1%} of cold"))
    with (tasks / "demo_choice.yaml").open("a") as handle:
        handle.write("# touched\n")
    changed = timed(command(work / "changed", cache, suite, args.limit))
    rows.append(("choice task file changed", changed, *scored_in(work / "changed"), f"{changed / cold:.1%} of cold"))
    killed_cache = work / "killed-cache"
    started = time.perf_counter()
    proc = subprocess.Popen(command(work / "killed", killed_cache, suite, args.limit), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    while stored(killed_cache) < total_chunks // 2 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    until_kill = time.perf_counter() - started
    before = stored(killed_cache)
    resumed = timed(command(work / "killed", killed_cache, suite, args.limit))
    # Each worker loses at most the chunk it was scoring when killed; every stored chunk is read back.
    lost = min(2, total_chunks - before)
    rows.append(("re-run after SIGKILL at half", resumed, *scored_in(work / "killed"),
                 f"{before}/{total_chunks} chunks kept; redone <= {lost} chunk(s) = {lost / total_chunks:.1%} of the "
                 f"work; killed + re-run = {(until_kill + resumed) / cold:.0%} of one cold run"))
    print(f"demo:all, hf backend on {os.cpu_count()} CPU(s), limit {args.limit or 'none'}; {total_chunks} model-output chunks in a cold run")
    print(f"{'run':<30} {'seconds':>8} {'scored':>7} {'cached':>7}  note")
    for name, seconds, scored, cached, note in rows:
        print(f"{name:<30} {seconds:>8.1f} {scored:>7} {cached:>7}  {note}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
