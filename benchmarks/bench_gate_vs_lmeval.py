"""Wall time of the gate against lm-eval run directly, on the same demo checkpoints and tasks.

    .venv/bin/python benchmarks/bench_gate_vs_lmeval.py [--checkpoint PATH | --series] [--repeat N] [--no-cli]

Runs, one after the other as child processes of this script:
  (a) the gate: ``pytest evaltests --checkpoint CKPT`` (one process) on a copy of the demo suite
      without its report-only extra (``gold_logprob``: one more loglikelihood pass that lm-eval
      does not make), i.e. the same scoring work as (b);
  (a+) the gate on the demo suite as shipped, extra pass included;
  (b) one ``lm_eval.simple_evaluate`` call with all the suite's tasks per checkpoint, in one
      process (one HFLM per checkpoint);
  (c) the ``lm_eval`` command once per task and checkpoint (what the seeds' SLURM scripts do).
and prints wall times and ratios to (b), plus a check that (a) and (b) agree on every metric.
The default is the demo's step_0800; ``--series`` runs all three demo checkpoints, where the
fixed start-up and shut-down costs of each variant weigh less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ckptgate.checkpoints import discover  # noqa: E402
from ckptgate.suites import Suite, load_suite  # noqa: E402

PY = sys.executable
BIN = Path(PY).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

DIRECT = r"""
import json, sys
from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
ckpts, task_dir, out, spec = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
tm = TaskManager(include_path=task_dir, include_defaults=False)
metrics = {}
for label, ckpt in ckpts.items():
    lm = HFLM(pretrained=ckpt, device="cpu", dtype="float32", batch_size=32)
    # the gate lets the task's max_gen_toks bound generation (ckptgate.backends.hf.honour_max_gen_toks);
    # without this, a checkpoint's generation_config max_new_tokens overrides it and (b) would
    # generate to another length than (a)
    lm.model.generation_config.max_new_tokens = None
    # one call for all tasks; per-task few-shot counts are set in the task YAMLs' num_fewshot,
    # which the suite repeats, so num_fewshot is left to the tasks here
    r = simple_evaluate(model=lm, tasks=list(spec), task_manager=tm, log_samples=True,
                        gen_kwargs={"temperature": 0, "do_sample": False},
                        random_seed=42, numpy_random_seed=42, torch_random_seed=42, fewshot_random_seed=42)
    metrics[label] = {task: {k: v for k, v in r["results"][task].items() if "," in k and "_stderr" not in k}
                      for task in spec}
    del lm
json.dump(metrics, open(out, "w"))
"""


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", help="checkpoint folder, or a parent of several (default: the demo's step_0800)")
    which.add_argument("--series", action="store_true", help="all the demo checkpoints (step_0100, step_0300, step_0800)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all variants (interleaved); median and minimum are shown")
    parser.add_argument("--no-cli", action="store_true", help="leave out (c), the slowest variant")
    args = parser.parse_args()
    if args.checkpoint:
        ckpt = Path(args.checkpoint).resolve()
    else:
        from ckptgate.demo import demo_series

        ckpt = demo_series() if args.series else demo_series() / "step_0800"
    ckpts = {c.label: str(c.load_path) for c in discover(ckpt)}
    suite = load_suite("demo")
    task_dir = str(suite.task_paths[0])
    spec = {b.task: b.num_fewshot for b in suite.benchmarks}
    work = Path(tempfile.mkdtemp(prefix="ckptgate-bench-"))

    same_work = _without_extras(suite, work / "suite.yaml")

    def gate(suite_arg: str, results: str) -> float:
        return timed([str(BIN / "pytest"), "evaltests", "-q", "-p", "no:cacheprovider", "--checkpoint", str(ckpt),
                      "--suite", suite_arg, "--results-dir", str(work / results)])

    def direct() -> float:
        return timed([PY, "-c", DIRECT, json.dumps(ckpts), task_dir, str(work / "direct.json"), json.dumps(spec)])

    def cli_loop() -> float:
        total = 0.0
        for label, path in ckpts.items():
            for task, shots in spec.items():
                total += timed([str(BIN / "lm_eval"), "--model", "hf", "--model_args",
                                f"pretrained={path},dtype=float32", "--device", "cpu", "--batch_size", "32",
                                "--tasks", task, "--num_fewshot", str(shots or 0), "--include_path", task_dir,
                                "--seed", "42", "--gen_kwargs", "temperature=0", "--log_samples",
                                "--output_path", str(work / "cli" / label / task)])
        return total

    variants = {"(a) gate (pytest), same work as (b)": lambda: gate(str(same_work), "gate"),
                "(a+) gate, suite as shipped": lambda: gate("demo", "gate_shipped"),
                "(b) simple_evaluate, all tasks": direct,
                "(c) lm_eval CLI per task": cli_loop}
    if args.no_cli:
        del variants["(c) lm_eval CLI per task"]
    # Rounds interleave the variants, so drift in machine load hits all of them alike.
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, fn in variants.items():
            runs[name].append(fn())
    # The median resists one disturbed round; the minimum (timeit's choice) is the run least
    # disturbed by other load on the machine. Both are shown, each against (b)'s.
    medians = {name: statistics.median(values) for name, values in runs.items()}
    minima = {name: min(values) for name, values in runs.items()}
    ref = "(b) simple_evaluate, all tasks"
    print(f"\ncheckpoints: {', '.join(ckpts)} ({ckpt})\ntasks: {', '.join(spec)}   rounds: {args.repeat}\n")
    print(f"{'variant':<38} {'median s':>9} {'vs (b)':>7} {'min s':>7} {'vs (b)':>7}   {'all runs (s)'}")
    for name in runs:
        every = " ".join(f"{v:.1f}" for v in runs[name])
        print(f"{name:<38} {medians[name]:9.2f} {medians[name] / medians[ref]:6.2f}x "
              f"{minima[name]:7.2f} {minima[name] / minima[ref]:6.2f}x   {every}")
    print()
    compare_metrics(work, suite)


def _without_extras(suite: Suite, out: Path) -> Path:
    """A copy of ``suite`` without report-only extra passes, its task paths made absolute."""
    import yaml

    data = yaml.safe_load(suite.path.read_text())
    data["task_paths"] = [str(path) for path in suite.task_paths]
    for bench in data["benchmarks"]:
        bench.pop("gold_logprob", None)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def compare_metrics(work: Path, suite: Suite) -> None:
    direct = json.loads((work / "direct.json").read_text())
    for variant, results in (("(a)", "gate"), ("(a+)", "gate_shipped")):
        worst = 0.0
        for label, tasks in direct.items():
            for bench in suite.benchmarks:
                record = work / results / "by_checkpoint" / label / f"{bench.id}.json"
                gate_metrics = json.loads(record.read_text())["metrics"]
                for key, value in tasks[bench.task].items():
                    worst = max(worst, abs(gate_metrics[key]["value"] - value))
        print(f"largest metric difference between {variant} and (b): {worst:.3g}")


if __name__ == "__main__":
    main()
