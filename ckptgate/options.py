"""The gate's command-line options (``pytest --help``, group "ckptgate").

Each option's value lands on ``config.option`` under ``ckptgate_<name>``; :mod:`ckptgate.runplan`
turns them into the run plan.
"""

from __future__ import annotations

import pytest

from ckptgate import exitcodes
from ckptgate.backends import BACKENDS

DEMO = "demo"
DEMO_ALL = "demo:all"
ALL = "all"  # --refresh without a benchmark: every benchmark


def add_options(parser: pytest.Parser) -> None:
    """The gate's command-line options, in one group of ``pytest --help``."""
    group = parser.getgroup("ckptgate", "ckptgate: gate language-model checkpoints")
    group.addoption(
        "--checkpoint",
        action="append",
        default=[],
        dest="ckptgate_checkpoints",
        metavar="PATH",
        help="Hugging Face checkpoint folder, or a parent folder of step_N / epoch_N / "
        "checkpoint-N / *_stepN / *_final children; repeatable. 'demo' is the shipped demo checkpoints after its bridge, 'demo:all' the whole demo series.",
    )
    group.addoption(
        "--bridge",
        action="append",
        default=[],
        dest="ckptgate_bridges",
        metavar="PATH",
        help="bridge checkpoint evaluated beside the candidates (repeatable; 'demo' is the demo bridge).",
    )
    group.addoption(
        "--control",
        action="append",
        default=[],
        dest="ckptgate_controls",
        metavar="PATH",
        help="a base model evaluated beside fine-tuned candidates on the same data, prompts and system "
        "prompt, shown side by side in the summary and the trend report; never gated (repeatable).",
    )
    group.addoption(
        "--suite",
        default=DEMO,
        dest="ckptgate_suite",
        metavar="NAME",
        help="suite name (evaltests/suites/NAME.yaml) or path to a suite YAML file (default: demo).",
    )
    group.addoption(
        "--baseline",
        default=None,
        dest="ckptgate_baseline",
        metavar="NAME",
        help="reference model whose stored numbers the run is compared with (baselines/NAME.yaml).",
    )
    group.addoption(
        "--backend",
        default="auto",
        choices=BACKENDS,
        dest="ckptgate_backend",
        help="model backend: auto (vLLM on GPUs when installed, else hf), hf or vllm (default: auto).",
    )
    group.addoption(
        "--gpus",
        default=None,
        dest="ckptgate_gpus",
        metavar="LIST",
        help="GPU indices the workers may use, e.g. 0,3,5 (default: every free GPU; one per worker).",
    )
    group.addoption(
        "--require-gpu",
        action="store_true",
        default=False,
        dest="ckptgate_require_gpu",
        help="a usage error when no GPU can be used, instead of running on the CPU (real gate runs).",
    )
    group.addoption(
        "--allow-tensor-parallel",
        action="store_true",
        default=False,
        dest="ckptgate_allow_tensor_parallel",
        help="split a checkpoint too big for one GPU over several (vLLM tensor_parallel_size 2, 4, ...); "
        "its results are then marked not reproducible (tensor_parallel_size 1: splitting a model over GPUs "
        "changes its numbers, so results would not reproduce).",
    )
    group.addoption(
        "--results-dir",
        default="results",
        dest="ckptgate_results_dir",
        metavar="DIR",
        help="where results, eval_summary.csv and summary.md are written (default: results/).",
    )
    group.addoption(
        "--limit",
        default=None,
        type=int,
        dest="ckptgate_limit",
        metavar="N",
        help="score only the first N documents of each task (smoke runs; recorded in the results).",
    )
    group.addoption(
        "--update-baselines",
        action="store_true",
        default=False,
        dest="ckptgate_update_baselines",
        help="write the measured values of the one --checkpoint into the --baseline file and print the "
        "diff; the run then fails, so an update never passes unnoticed.",
    )
    group.addoption(
        "--alpha",
        default=0.05,
        type=float,
        dest="ckptgate_alpha",
        metavar="A",
        help="family-wise error rate of the run's primary comparisons, Holm-corrected (default: 0.05).",
    )
    group.addoption(
        "--margins",
        default=None,
        dest="ckptgate_margins",
        metavar="FILE",
        help="margins file (written by `ckptgate calibrate`) applied over the suite's margins; replaces "
        "the suite's own margins file.",
    )
    group.addoption(
        "--report-only",
        action="store_true",
        default=False,
        dest="ckptgate_report_only",
        help="measure and report without gating: every row is INFO and the run exits 0 (a run whose "
        "primary metrics have nothing to be held against needs this, --bridge or --baseline).",
    )
    group.addoption(
        "--status-log",
        default=None,
        dest="ckptgate_status_log",
        metavar="FILE",
        help="append one JSON line per checkpoint x benchmark when it starts and ends (checkpoint, benchmark, "
        "verdict counts, samples, duration, outcome) to FILE, for log collectors; '-' for stderr.",
    )
    group.addoption(
        "--accept-inconclusive",
        action="store_true",
        default=False,
        dest="ckptgate_accept_inconclusive",
        help=f"exit 0 instead of {exitcodes.INCONCLUSIVE} when the run's verdict is INCONCLUSIVE (still reported as such).",
    )
    group.addoption(
        "--datasets",
        default=None,
        dest="ckptgate_datasets",
        metavar="DIR",
        help="local dataset copies, DIR/<task>/<split>.jsonl in each dataset's own schema, read instead "
        "of the hub (air-gapped clusters, fixtures).",
    )
    group.addoption(
        "--record-cache",
        default=None,
        dest="ckptgate_record_cache",
        metavar="DIR",
        help="where scored records are cached, keyed by checkpoint fingerprint and everything that shapes "
        "the numbers: a benchmark scored once is not scored again (default: ~/.cache/ckptgate/records; "
        "'none' scores everything afresh).",
    )
    group.addoption(
        "--shard",
        default=None,
        dest="ckptgate_shard",
        metavar="I/N",
        help="run shard I of N (counted from 1) of the run: each checkpoint's benchmarks go to one shard, "
        "by a stable hash of its label; the shards together are the whole run, each item once "
        "(ckptgate merge DIR --shards N joins their results folders).",
    )
    group.addoption(
        "--new-only",
        action="store_true",
        default=False,
        dest="ckptgate_new_only",
        help="leave out the candidates whose every result is already in the record cache for this suite and "
        "settings (what a nightly run over a training run's folder wants); nothing new: exit 0.",
    )
    group.addoption(
        "--refresh",
        action="append",
        nargs="?",
        const=ALL,
        default=None,
        dest="ckptgate_refresh",
        metavar="BENCHMARK",
        help="score again what the record cache holds: every benchmark (bare --refresh), or the "
        "benchmark named (repeatable); the new results replace the cached ones.",
    )
