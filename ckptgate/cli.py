"""The ``ckptgate`` command: helpers around the pytest gate.

    ckptgate demo DIR                 copy the shipped demo checkpoint series into DIR
    ckptgate demo --retrain DIR       train the demo series afresh into DIR (how it was made)
    ckptgate checkpoints PATH...      discover and validate checkpoints, print their fingerprints
    ckptgate report [--results-dir]   rebuild eval_summary.csv, summary.md (and trend.html) from stored results
    ckptgate merge DIR --shards N     join a run's --shard i/N results: one summary, JUnit file, verdict
    ckptgate nightly ROOT --suite S [--results-dir DIR]
                                      gate a training run's checkpoints not yet evaluated; history, trend.html
    ckptgate trend RESULTS_DIR        the history as one self-contained HTML trend report
    ckptgate prefill --suite NAME     fetch the hub datasets a suite reads, pin them in a manifest
    ckptgate calibrate --checkpoint RUN --suite NAME [--last K]
                                      margins from the noise between a run's last checkpoints
    ckptgate exec PROGRAM.py          run one program through the code sandbox, print the verdict
    ckptgate slurm --checkpoint ROOT --shards N [--wait] [-- PYTEST_ARGS]
                                      the gate as a SLURM job array of shards, then a merge job

The gate itself runs under pytest: ``pytest -n 2 evaltests --checkpoint PATH``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ckptgate import exitcodes
from ckptgate.errors import CkptgateError, InfrastructureError


def _demo(args: argparse.Namespace) -> int:
    from ckptgate import demo

    if args.retrain:
        out = demo.retrain(Path(args.dir), progress=not args.quiet)
        print(f"demo checkpoints trained into {out} (sha256 of every file in {out / demo.MANIFEST})")
    else:
        out = demo.copy_demo(Path(args.dir))
        print(f"demo checkpoints copied to {out}")
    return 0


def _checkpoints(args: argparse.Namespace) -> int:
    from ckptgate.checkpoints import discover_all

    for ckpt in discover_all(args.paths):
        step = "" if ckpt.step is None else f"step {ckpt.step}"
        shadow = "" if ckpt.load_path == ckpt.path else f"  (loads through {ckpt.load_path})"
        print(f"{ckpt.label:<24} {step:<12} {ckpt.fingerprint[:16]}  {ckpt.path}{shadow}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ckptgate import reports, results
    from ckptgate.merge import resettle

    results_dir = Path(args.results_dir)
    records = results.read_records(results_dir)
    if not records:
        raise CkptgateError(f"no benchmark results under {results_dir / 'by_checkpoint'}")
    rows = resettle(records)
    results.write_summary(results_dir, rows, reports.markdown(rows, {"source": str(results_dir)}))
    print("\n".join(reports.text_table(rows)))
    print(f"wrote {results_dir / 'eval_summary.csv'} and {results_dir / 'summary.md'}")
    trend_report = _write_trend(results_dir)
    if trend_report is not None:
        print(f"wrote {trend_report}")
    return 0


def _write_trend(results_dir: Path) -> Path | None:
    from ckptgate import trend

    return trend.refresh(results_dir)


def _merge(args: argparse.Namespace) -> int:
    from ckptgate import merge, reports

    results_dir = Path(args.results_dir)
    merged = merge.merge(results_dir, args.shards)
    print("\n".join(reports.text_table(merged.rows)))
    print(f"merged {args.shards} shard(s) into {results_dir}: summary.md, eval_summary.csv, junit.xml, by_checkpoint/")
    _write_trend(results_dir)
    print(f"ckptgate verdict: {merged.verdict} (exit code {merged.exit_code})")
    return merged.exit_code


def _history(args: argparse.Namespace) -> int:
    import json

    from ckptgate import history

    results_dir = Path(args.results_dir).resolve()
    if not history.db_path(results_dir).is_file():
        raise CkptgateError(f"{results_dir}: no {history.DB_NAME} (no run has finished with this results folder)")
    rows = history.query(results_dir, checkpoint=args.checkpoint, benchmark=args.benchmark, metric=args.metric,
                         since=args.since, until=args.until, primary_only=args.primary)
    if args.json:
        print("\n".join(json.dumps(row) for row in rows))
    else:
        print("\n".join(history.table(rows)))
        print(f"{len(rows)} row(s) from {len({row['run_id'] for row in rows})} run(s) in {history.db_path(results_dir)}")
    return 0


def _trend(args: argparse.Namespace) -> int:
    from ckptgate import trend

    results_dir = Path(args.results_dir)  # or its history.sqlite
    folder = results_dir.parent if results_dir.is_file() else results_dir
    out = Path(args.out) if args.out else folder / trend.REPORT_NAME
    print(f"wrote {trend.write_report(results_dir, out, suite=args.suite, title=args.title)}")
    return 0


def _prefill(args: argparse.Namespace) -> int:
    from ckptgate import hubdata
    from ckptgate.suites import load_suite
    from scorers.lm_eval_task import LmEvalTaskScorer
    from scorers.slice_scorer import PerplexityScorer
    from scorers.suite_scorer import SuiteScorer, only

    suite = load_suite(args.suite)
    datasets = Path(args.datasets).resolve() if args.datasets else None
    perplexity = PerplexityScorer(datasets)
    tasks = LmEvalTaskScorer(datasets, other_data=frozenset(perplexity.catalogue))
    SuiteScorer(tasks, perplexity).check(suite)
    perplexity.fetch(suite)  # the perplexity slices: only the documents their budgets need
    repos = tasks.hub_repos(only(suite, "lm_eval"))
    if repos:
        snapshots = hubdata.prefill(repos, suite.dataset_revisions)
        for repo, tasks in sorted(repos.items()):
            snap = snapshots[repo]
            print(f"{repo:<40} {snap.revision[:12]:<12} {snap.files:>5} file(s)  sha256 {snap.sha256[:16]}  "
                  f"({len(tasks)} task(s))")
    else:
        print(f"suite {suite.name!r} reads no hub datasets: nothing to fetch")
    if args.model:
        hubdata.prefill_model(args.model)
    print(f"manifest: {hubdata.manifest_path()}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from ckptgate import calibrate

    results_dir = Path(args.results_dir).resolve()
    extra = [] if args.limit is None else ["--limit", str(args.limit)]
    suite, window, rows = calibrate.calibrate(args.checkpoint, args.suite, last=args.last, results_dir=results_dir,
                                              alpha=args.alpha, pytest_args=extra)
    out = Path(args.out) if args.out else results_dir / f"margins-{suite.name}.yaml"
    calibrate.write_margins(out, suite, window, rows, args.alpha)
    print(f"checkpoint-to-checkpoint noise over {', '.join(c.label for c in window)} (suite {suite.name}):")
    print("\n".join(calibrate.table(rows)))
    print(f"wrote {out}: apply it with `pytest --margins {out}` or a suite's `margins:`")
    return 0


def _exec(args: argparse.Namespace) -> int:
    import json

    from ckptgate.sandbox import FULL_ISOLATION, Limits, Sandbox

    source = Path(args.program)
    if not source.is_file():
        raise CkptgateError(f"{source}: no such file")
    limits = Limits(cpu_s=args.timeout, timeout_s=max(Limits().timeout_s, 6 * args.timeout))
    box = Sandbox(limits, required=frozenset() if args.allow_weaker else FULL_ISOLATION)
    verdict = box.run(source.read_text(encoding="utf-8"))
    print(json.dumps(verdict.to_dict(), indent=2))
    return 0 if verdict.passed else 1


def _nightly(args: argparse.Namespace) -> int:
    from ckptgate import nightly

    return nightly.run(args)


def _slurm(args: argparse.Namespace) -> int:
    from ckptgate import slurm

    return slurm.command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ckptgate", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="copy (or --retrain) the demo checkpoint series (step_0100 ... bridge)")
    demo.add_argument("dir", help="output folder")
    demo.add_argument("--retrain", action="store_true",
                      help="train the series afresh (about 3 min on 2 cores; bit-identical only on the same kind of CPU)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)
    ckpts = sub.add_parser("checkpoints", help="discover and validate checkpoints")
    ckpts.add_argument("paths", nargs="+", help="checkpoint folders or parents of step_N folders")
    ckpts.set_defaults(func=_checkpoints)
    report = sub.add_parser("report", help="rebuild eval_summary.csv and summary.md (and trend.html where runs were recorded)")
    report.add_argument("--results-dir", default="results", help="results folder (default: results/)")
    report.set_defaults(func=_report)
    hist = sub.add_parser("history", help="every run's results in a results folder (its history.sqlite), as a table")
    hist.add_argument("--results-dir", default="results", help="results folder (default: results/)")
    hist.add_argument("--checkpoint", help="only this checkpoint label (e.g. step_0800)")
    hist.add_argument("--benchmark", help="only this benchmark id")
    hist.add_argument("--metric", help="only this metric ('acc' or 'acc,none')")
    hist.add_argument("--since", help="only runs started on or after this date (2026-12-01 or 2026-12-01T08:00)")
    hist.add_argument("--until", help="only runs started on or before this date")
    hist.add_argument("--primary", action="store_true", help="only primary metrics")
    hist.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    hist.set_defaults(func=_history)
    from ckptgate import nightly

    night = sub.add_parser("nightly", help="gate every checkpoint of a training run not yet evaluated, update the history "
                                           "and the trend report")
    nightly.add_arguments(night)
    night.set_defaults(func=_nightly)
    merge_cmd = sub.add_parser("merge", help="join the results of a run's --shard i/N parts: one summary, JUnit file, verdict")
    merge_cmd.add_argument("results_dir", metavar="RESULTS_DIR", help="the run's folder, holding shards/<i>-of-<N>/")
    merge_cmd.add_argument("--shards", type=int, required=True, help="how many shards the run was split into")
    merge_cmd.set_defaults(func=_merge)
    trend = sub.add_parser("trend", help="the history as one self-contained HTML file: plots by step, latest verdicts")
    trend.add_argument("results_dir", metavar="RESULTS_DIR", help="results folder (its history.sqlite)")
    trend.add_argument("--out", help="HTML file to write (default: RESULTS_DIR/trend.html)")
    trend.add_argument("--suite", help="only this suite's runs")
    trend.add_argument("--title", help="the page's title")
    trend.set_defaults(func=_trend)
    prefill = sub.add_parser("prefill", help="fetch every hub dataset a suite reads (where the hub is reachable)")
    prefill.add_argument("--suite", required=True, help="suite name or YAML path")
    prefill.add_argument("--model", help="also fetch this hub model's config and tokenizer (or check a local checkpoint)")
    prefill.add_argument("--datasets", help="folder of local dataset copies: tasks found there are not fetched")
    prefill.set_defaults(func=_prefill)
    cal = sub.add_parser("calibrate", help="suggest margins from the noise between a training run's last checkpoints")
    cal.add_argument("--checkpoint", required=True, metavar="RUN", help="a training run's folder of step_N checkpoints")
    cal.add_argument("--suite", default="demo", help="suite name or YAML path (default: demo)")
    cal.add_argument("--last", type=int, default=3, metavar="K", help="how many of the last checkpoints form the plateau (default 3)")
    cal.add_argument("--results-dir", default="results", help="where their results are read (and written when missing)")
    cal.add_argument("--alpha", type=float, default=0.05, help="the gate's alpha the margins are computed for (default 0.05)")
    cal.add_argument("--limit", type=int, default=None, help="measure only N documents per task (smoke runs)")
    cal.add_argument("--out", default=None, help="margins file to write (default: RESULTS_DIR/margins-SUITE.yaml)")
    cal.set_defaults(func=_calibrate)
    run = sub.add_parser("exec", help="run one program through the code sandbox, print its verdict as JSON")
    run.add_argument("program", help="a Python file (program and its asserts)")
    run.add_argument("--timeout", type=float, default=5.0, help="CPU seconds the program may use (default 5); the wall-clock guard is 6 times that, at least 30 s")
    run.add_argument("--allow-weaker", action="store_true",
                     help="run even where isolation layers are missing (they are listed in the verdict)")
    run.set_defaults(func=_exec)
    from ckptgate import slurm

    slurm_cmd = sub.add_parser("slurm", help="submit the gate to SLURM: a job array of N shards, then a merge job")
    slurm.add_arguments(slurm_cmd)
    slurm_cmd.set_defaults(func=_slurm)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] | None = None
    if "--" in argv:  # what follows is the gate's pytest arguments (nightly, slurm)
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    if extra is not None:
        if not hasattr(args, "pytest_args"):
            build_parser().error(f"ckptgate {args.command} takes no pytest arguments (after --)")
        args.pytest_args = extra
    try:
        return int(args.func(args))
    except InfrastructureError as exc:
        print(f"ckptgate: infrastructure failure: {exc}", file=sys.stderr)
        return exitcodes.INFRA
    except CkptgateError as exc:
        print(f"ckptgate: error: {exc}", file=sys.stderr)
        return exitcodes.USAGE


if __name__ == "__main__":
    sys.exit(main())
