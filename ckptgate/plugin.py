"""The pytest plugin: options, checkpoint resolution, parametrization, fixtures and reports.

Flow: ``pytest_configure`` resolves and validates every checkpoint and the suite on the
controller (bad input is a usage error, exit code 4, before any model loads) and ships the
result to xdist workers. ``pytest_generate_tests`` parametrizes each ``@pytest.mark.gate(name)``
test over the suite's benchmarks for ``name`` x the checkpoints. Items are grouped by checkpoint
(xdist ``loadgroup``) so each worker loads a checkpoint once. Each test's fixture runs the
benchmark, writes its results, and the test asserts the verdict. The controller merges the
workers' rows into ``eval_summary.csv`` / ``summary.md`` and checks that grouping happened.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ckptgate import devices, exitcodes, gate, hubdata, invocation, reports, results, scheduling
from ckptgate.backends import BACKENDS, LoadSpec, ModelPool, resolve_backend
from ckptgate.checkpoints import Checkpoint, discover_all, parameter_count
from ckptgate.baselines import BASELINES_DIR, Baseline, load_baseline, measured_from_record, run_settings, update_baseline
from ckptgate.cache import cache_root
from ckptgate.errors import CkptgateError, DeviceError
from ckptgate.evaluation import Evaluator, Scored
from ckptgate.pairing import PairingError, item_stderr
from ckptgate.recordcache import RecordCache
from ckptgate.scores import ScoreResult
from ckptgate.provenance import provenance
from ckptgate.suites import Benchmark, Suite, load_suite
from scorers.lm_eval_task import LmEvalTaskScorer, suite_task_manager
from scorers.packaged_data import PACKAGED

DEMO = "demo"
DEMO_ALL = "demo:all"
WIRE_KEY = "ckptgate"
_STATE = pytest.StashKey["GateState"]()
_GROUP = pytest.StashKey[str]()  # an item's work group (see ckptgate.scheduling)


@dataclass(frozen=True)
class Case:
    """One test item's work: a benchmark on a checkpoint."""

    benchmark: Benchmark
    checkpoint: Checkpoint

    def id(self, several_variants: bool) -> str:
        label = self.checkpoint.label
        return f"{self.benchmark.id}-{label}" if several_variants else label


@dataclass
class GateState:
    """What this process knows about the run; the controller's copy also merges the workers'."""

    checkpoints: list[Checkpoint]
    suite: Suite
    backend: str
    results_dir: Path
    limit: int | None
    baseline_name: str | None  # a baseline name or file path (--baseline)
    alpha: float = 0.05
    record_cache: Path | None = None
    rows: list[results.SummaryRow] = field(default_factory=list)
    groups_by_worker: dict[str, set[str]] = field(default_factory=dict)  # work groups each worker ran
    weights: dict[str, float] = field(default_factory=dict)  # checkpoint label -> cost of one benchmark
    loads: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    worker: str = "main"  # this process: "main", or the xdist worker id (gw0, gw1, ...)
    family_size: int | None = None  # Holm's m, counted on first use (see _policy)
    late_failures: list[results.SummaryRow] = field(default_factory=list)
    baseline_diff: str | None = None  # set when --update-baselines wrote (or kept) the file
    update_baseline: bool = False  # --update-baselines: the baseline is written, not compared with
    datasets: Path | None = None  # --datasets: local dataset copies
    device: str = "cpu"  # "cpu" or "cuda": what every worker's model runs on
    devices: devices.Plan | None = None  # the controller's: GPU per worker, notes
    tensor_parallel: int = 1  # GPUs per model (> 1 only with --allow-tensor-parallel: not reproducible)
    report_only: bool = False  # --report-only: measure, never gate
    accept_inconclusive: bool = False  # --accept-inconclusive: INCONCLUSIVE exits 0
    verdict: str | None = None  # the run's, once settled (gate.RUN_VERDICTS)
    _baseline: Baseline | None = None

    def baseline(self) -> Baseline | None:
        """The baseline compared with (None when there is none, or while it is being written)."""
        if self.baseline_name is None or self.update_baseline:
            return None
        if self._baseline is None:
            self._baseline = load_baseline(self.baseline_name)
        return self._baseline

    def to_wire(self) -> dict[str, Any]:
        return {
            "checkpoints": [c.to_dict() for c in self.checkpoints],
            "suite": str(self.suite.path),
            "backend": self.backend,
            "results_dir": str(self.results_dir),
            "limit": self.limit,
            "baseline": self.baseline_name,
            "alpha": self.alpha,
            "record_cache": None if self.record_cache is None else str(self.record_cache),
            "update_baseline": self.update_baseline,
            "datasets": None if self.datasets is None else str(self.datasets),
            "device": self.device,
            "tensor_parallel": self.tensor_parallel,
            "weights": self.weights,
            "margins": None if self.suite.margins_file is None else str(self.suite.margins_file),
            "report_only": self.report_only,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> GateState:
        return cls(
            checkpoints=[Checkpoint.from_dict(c) for c in wire["checkpoints"]],
            suite=load_suite(wire["suite"], margins=wire["margins"]),
            backend=wire["backend"],
            results_dir=Path(wire["results_dir"]),
            limit=wire["limit"],
            baseline_name=wire["baseline"],
            alpha=wire["alpha"],
            record_cache=None if wire["record_cache"] is None else Path(wire["record_cache"]),
            update_baseline=wire["update_baseline"],
            datasets=None if wire["datasets"] is None else Path(wire["datasets"]),
            device=wire["device"],
            tensor_parallel=wire["tensor_parallel"],
            weights=wire["weights"],
            report_only=wire["report_only"],
        )

    def run_metadata(self) -> dict[str, Any]:
        return {
            "suite": self.suite.name,
            "backend": self.backend,
            "tensor parallelism": NOT_REPRODUCIBLE.format(tp=self.tensor_parallel) if self.tensor_parallel > 1 else None,
            "limit": self.limit,
            "bridges": ", ".join(c.label for c in self.checkpoints if c.role == "bridge"),
            "baseline": self.baseline_name,
            "verdict": self.verdict,
            "family-wise alpha": f"{self.alpha:g} (Holm over {self.family_size or 0} primary comparison(s))",
            "margins file": None if self.suite.margins_file is None else str(self.suite.margins_file),
            "checkpoints": ", ".join(c.label for c in self.checkpoints if c.role == "candidate"),
            "git_sha": provenance()["git_sha"],
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.started)),
        }


# --------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
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
        help="where bridge checkpoints' scored records are cached by fingerprint "
        "(default: ~/.cache/ckptgate/records; 'none' scores bridges afresh every run).",
    )


# --------------------------------------------------------------------------- configure


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    invocation.aim_at_gate(early_config, args)



def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gate(name): run the suite's benchmarks whose `test` is NAME over every checkpoint."
    )
    try:
        state = _worker_state(config) if _is_worker(config) else _controller_state(config)
        if state is not None and not _is_worker(config):
            _pin_main_process(config, state)
    except CkptgateError as exc:
        raise pytest.UsageError(str(exc)) from None
    if state is None:
        return
    state.worker = _worker_id(config)
    config.stash[_STATE] = state
    for tag in sorted(state.suite.tags()):
        config.addinivalue_line("markers", f"{tag}: benchmarks tagged '{tag}' in the suite.")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(state), "ckptgate-xdist")
    if _is_worker(config):
        # Workers re-parse the command line, so they do not see the controller's switch to
        # loadgroup; xdist's worker adds the "@group" suffix that groups items only with this set.
        config.option.loadgroup = True
    else:
        _force_loadgroup(config)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(_STATE, None)
    if state is None or state.devices is None:
        return None
    header = [f"ckptgate: device {state.devices.describe()}, backend {state.backend}"]
    if state.tensor_parallel > 1:
        header.append(f"ckptgate: {NOT_REPRODUCIBLE.format(tp=state.tensor_parallel)}")
    return header + [f"ckptgate: {n}" for n in state.devices.notes]


def _worker_count(config: pytest.Config) -> int:
    """How many processes evaluate: on a worker, xdist's count; on the controller, xdist's -n
    (resolved from "auto" by xdist), else one."""
    if _is_worker(config):
        return int(config.workerinput["workercount"])  # type: ignore[attr-defined]
    uses_xdist = config.pluginmanager.hasplugin("xdist") and getattr(config.option, "dist", "no") != "no"
    return max(1, int(getattr(config.option, "numprocesses", 0) or 0)) if uses_xdist else 1


def _pin_main_process(config: pytest.Config, state: GateState) -> None:
    """Without xdist workers this process evaluates: it takes the first planned GPU now, before
    anything initialises CUDA (xdist workers get theirs at start-up, see _XdistHooks)."""
    plan = state.devices
    if plan is not None and plan.gpus is not None and _worker_count(config) == 1:
        devices.pin_this_process(devices.worker_env(plan.worker_gpus(0), tuple(devices.free_ports(2))))


NOT_REPRODUCIBLE = ("tensor_parallel_size {tp} (--allow-tensor-parallel): results are NOT reproducible "
                    "(tensor_parallel_size 1 is the reproducible setting: splitting a model over GPUs "
                    "changes its numbers)")


def _tensor_parallel(plan: devices.Plan, parameters_of: dict[str, int], allow: bool) -> int:
    """GPUs per model: 1, or with ``allow`` the tensor-parallel size the largest checkpoint
    (label -> parameter count) needs. Says up front when a checkpoint cannot fit one GPU."""
    if plan.gpus is None:
        return 1
    smallest = min(plan.memory_mib.values())
    needed = {label: devices.gpus_needed(parameters, smallest) for label, parameters in parameters_of.items()}
    label = max(needed, key=lambda name: needed[name])
    if needed[label] == 1:
        return 1
    parameters = parameters_of[label]
    weights_gib = parameters * devices.SERVING_BYTES["bfloat16"] / 2**30
    too_big = (f"{label}: {parameters / 1e9:.1f}B parameters ({weights_gib:.0f} GiB in bf16) need "
               f"{needed[label]} GPUs of {smallest / 1024:.0f} GiB")
    if not allow:
        raise DeviceError(
            f"{too_big}, but ckptgate runs one GPU per model (tensor_parallel_size=1: results "
            "are reproducible only without tensor parallelism); use GPUs with more memory, or pass "
            "--allow-tensor-parallel to split it over several (its results are then marked not reproducible)"
        )
    return devices.tensor_parallel_size(needed[label])


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _worker_state(config: pytest.Config) -> GateState | None:
    wire = config.workerinput.get(WIRE_KEY)  # type: ignore[attr-defined]
    return None if wire is None else GateState.from_wire(wire)


def _controller_state(config: pytest.Config) -> GateState | None:
    opt = config.option
    specs, bridges = opt.ckptgate_checkpoints, opt.ckptgate_bridges
    if not specs:
        if bridges:
            raise CkptgateError("--bridge needs at least one --checkpoint to compare with it")
        return None
    if opt.ckptgate_limit is not None and opt.ckptgate_limit < 1:
        raise CkptgateError(f"--limit must be a positive number of documents, got {opt.ckptgate_limit}")
    if not 0 < opt.ckptgate_alpha < 1:
        raise CkptgateError(f"--alpha must be between 0 and 1, got {opt.ckptgate_alpha}")
    plan_gpus = partial(devices.plan, devices.inventory(), workers=_worker_count(config),
                        requested=devices.parse_gpus(opt.ckptgate_gpus), require_gpu=opt.ckptgate_require_gpu)
    plan = plan_gpus()
    backend = resolve_backend(opt.ckptgate_backend, plan.device)
    suite = load_suite(opt.ckptgate_suite, margins=opt.ckptgate_margins)
    baseline = _check_baseline(opt.ckptgate_baseline, update=opt.ckptgate_update_baselines)
    bridges = bridges or ([suite.bridge] if suite.bridge else [])
    if not (opt.ckptgate_report_only or opt.ckptgate_update_baselines or bridges or baseline):
        _require_references(suite)
    datasets = _datasets_dir(opt.ckptgate_datasets)
    scorer, missing = _data_scorer(suite, datasets)
    scorer.check(suite)
    if not config.option.collectonly:  # listing the tests needs no data; a run stops here
        _require_fetched(suite, missing)
    with _capture_disabled(config):
        candidates = discover_all(_expand_demo(specs, "series"))
        bridge_ckpts = discover_all(_expand_demo(bridges, "bridge"), role="bridge") if bridges else []
    _reject_overlap(candidates, bridge_ckpts)
    parameters_of = {c.label: parameter_count(c.path) for c in candidates + bridge_ckpts}  # sizes the plan, orders work
    tensor_parallel = _tensor_parallel(plan, parameters_of, opt.ckptgate_allow_tensor_parallel)
    if tensor_parallel > 1:
        if opt.ckptgate_update_baselines:
            raise CkptgateError("--update-baselines records reproducible numbers only: it cannot be combined "
                                f"with tensor parallelism (tensor_parallel_size {tensor_parallel} was needed)")
        LoadSpec(backend, plan.device, tensor_parallel_size=tensor_parallel)  # hf cannot: says so now
        plan = plan_gpus(per_worker=tensor_parallel)
    if opt.ckptgate_update_baselines and (baseline is None or len(candidates) != 1):
        raise CkptgateError(
            "--update-baselines writes one reference model's numbers: give exactly one --checkpoint "
            f"(got {len(candidates)}) and the --baseline NAME to write"
        )
    return GateState(
        checkpoints=candidates + bridge_ckpts,
        suite=suite,
        backend=backend,
        results_dir=Path(opt.ckptgate_results_dir).resolve(),
        limit=opt.ckptgate_limit,
        baseline_name=baseline,
        alpha=opt.ckptgate_alpha,
        record_cache=_record_cache(opt.ckptgate_record_cache),
        update_baseline=opt.ckptgate_update_baselines,
        datasets=datasets,
        device=plan.device,
        devices=plan,
        tensor_parallel=tensor_parallel,
        weights={label: float(n) for label, n in parameters_of.items()},
        report_only=opt.ckptgate_report_only,
        accept_inconclusive=opt.ckptgate_accept_inconclusive,
    )


def _require_references(suite: Suite) -> None:
    """A gate run must hold every primary metric against something: a threshold, a bridge or a
    baseline. Without one the run would report numbers and exit 0, which reads as a pass."""
    bare = [f"{b.id} {m.key}" for b in suite.benchmarks if not b.opt_in for m in b.metrics
            if m.primary and not m.gating]
    if bare:
        raise CkptgateError(
            f"suite {suite.name!r}: primary metric(s) {_names(bare)} have nothing to be held against: give "
            "--bridge PATH (a checkpoint compared item by item, e.g. the previous stage's last step) or "
            "--baseline NAME (stored reference numbers), or --report-only to measure without gating"
        )


def _data_scorer(suite: Suite, datasets: Path | None) -> tuple[LmEvalTaskScorer, dict[str, list[str]]]:
    """This process's scorer, reading local data (--datasets) and the prefetched hub snapshots,
    and the hub datasets it lacks (repo -> tasks reading it; a pip package's copy counts as
    there). Sets the HF offline switches: a gate run never downloads."""
    needed = LmEvalTaskScorer(datasets).hub_repos(suite)
    snapshots, missing = hubdata.available(hubdata.load_manifest(), needed)
    hubdata.go_offline()
    lacking = {repo: needed[repo] for repo in missing if repo not in PACKAGED}
    return LmEvalTaskScorer(datasets, snapshots), lacking


def _require_fetched(suite: Suite, missing: dict[str, list[str]]) -> None:
    """Every hub dataset the suite reads must have been fetched by ``ckptgate prefill`` (or be
    given locally with --datasets). Checked before any model loads."""
    if missing:
        lines = [f"  {repo} (read by {_names(tasks)})" for repo, tasks in missing.items()]
        raise CkptgateError(
            f"suite {suite.name!r} reads hub datasets not fetched on this machine (a gate run never downloads):\n"
            + "\n".join(lines)
            + f"\nfetch them once where the hub is reachable: ckptgate prefill --suite {suite.name} "
            f"(manifest: {hubdata.manifest_path()}; snapshots in the Hugging Face cache), "
            "or give local copies with --datasets DIR"
        )


def _names(names: list[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _datasets_dir(option: str | None) -> Path | None:
    if option is None:
        return None
    path = Path(option).expanduser().resolve()
    if not path.is_dir():
        raise CkptgateError(f"--datasets {option}: no such folder (expected <folder>/<task>/<split>.jsonl)")
    return path


def _record_cache(option: str | None) -> Path | None:
    if option is None:
        return cache_root() / "records"
    return None if option.lower() == "none" else Path(option).expanduser().resolve()


def _expand_demo(specs: list[str], part: str) -> list[str]:
    """``demo`` names the shipped demo checkpoints after the bridge (``demo:all``: the whole series,
    with the two early ones that regress against the bridge), or as a bridge the demo bridge;
    each is checked against its manifest."""
    if DEMO not in specs and DEMO_ALL not in specs:
        return specs
    from ckptgate.demo import demo_bridge, demo_series, demo_stage

    expanded: list[str] = []
    for spec in specs:
        if part == "bridge" and spec == DEMO:
            expanded.append(str(demo_bridge()))
        elif part == "series" and spec == DEMO:
            expanded += [str(p) for p in demo_stage()]
        elif part == "series" and spec == DEMO_ALL:
            expanded.append(str(demo_series()))
        else:
            expanded.append(spec)
    return expanded


def _check_baseline(name: str | None, *, update: bool) -> str | None:
    """The baseline file's path, validated now so a bad file is a usage error before any model
    loads; with --update-baselines a new name is allowed (the file is created)."""
    if name is None:
        return None
    if update:
        path = Path(name) if Path(name).suffix in (".yaml", ".yml") else BASELINES_DIR / f"{name}.yaml"
        if path.exists():
            load_baseline(str(path))  # a malformed file is reported now, not after the run
        return str(path.resolve())
    return str(load_baseline(name).path)


def _reject_overlap(candidates: list[Checkpoint], bridges: list[Checkpoint]) -> None:
    labels = Counter(c.label for c in candidates + bridges)
    clashes = sorted(label for label, count in labels.items() if count > 1)
    if clashes:
        raise CkptgateError(
            f"checkpoint label(s) {', '.join(clashes)} appear both as --checkpoint and --bridge; "
            "pass each checkpoint once"
        )


class _capture_disabled:
    """Let progress bars (demo build) reach the terminal while pytest captures output."""

    def __init__(self, config: pytest.Config) -> None:
        self._capman = config.pluginmanager.getplugin("capturemanager")
        self._ctx: Any = None

    def __enter__(self) -> None:
        if self._capman is not None:
            self._ctx = self._capman.global_and_fixture_disabled()
            self._ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)


def _force_loadgroup(config: pytest.Config) -> None:
    """All of one checkpoint's tests must run on one worker, or the model loads twice."""
    dist = getattr(config.option, "dist", "no")
    if dist in ("no", "loadgroup"):
        return
    if dist == "load":  # xdist's default for -n
        config.option.dist = "loadgroup"
        return
    raise pytest.UsageError(
        f"--dist {dist} would split a checkpoint's benchmarks across workers and load the model "
        "on each; ckptgate runs with --dist loadgroup (leave --dist out)"
    )


# --------------------------------------------------------------------------- collection


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "benchmark_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("gate")
    if marker is None or not marker.args:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} uses the benchmark_case fixture but has no "
            "@pytest.mark.gate('name') marker naming its suite benchmarks"
        )
    state = metafunc.config.stash.get(_STATE, None)
    benchmarks = state.suite.for_test(marker.args[0]) if state else []
    checkpoints = state.checkpoints if state else []
    cases = [Case(b, c) for c in checkpoints for b in benchmarks]
    several = len(benchmarks) > 1
    metafunc.parametrize("benchmark_case", cases, ids=[case.id(several) for case in cases])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    gate_items = [item for item in items if item.get_closest_marker("gate")]
    state = config.stash.get(_STATE, None)
    if not gate_items:
        if state is not None and not _is_worker(config):  # xdist: the controller checks (_XdistHooks)
            raise pytest.UsageError(_no_gate_tests(config))
        return
    if state is None:
        raise pytest.UsageError(
            "the benchmark tests need checkpoints: pass --checkpoint PATH (repeatable) or "
            "--checkpoint demo for the embedded demo series"
        )
    runnable = [item for item in gate_items if _case(item) is not None and _wanted(config, _case(item))]
    idle = [item for item in gate_items if item not in runnable]
    if idle:  # gate tests whose benchmarks are not in this suite, or opt-in ones not asked for
        config.hook.pytest_deselected(items=idle)
    _check_suite_covered(session, state, gate_items)
    # Bridges first: their records are what every candidate is compared with.
    order = {c.label: (c.role != "bridge", i) for i, c in enumerate(state.checkpoints)}
    runnable.sort(key=lambda item: order[_case(item).checkpoint.label])  # type: ignore[union-attr]
    groups = scheduling.work_groups(
        [(item.nodeid, _case(item).checkpoint.label) for item in runnable], state.weights, _worker_count(config))  # type: ignore[union-attr]
    for item in runnable:
        case = _case(item)
        assert case is not None
        item.stash[_GROUP] = groups[item.nodeid]  # xdist appends "@group" to node ids after this hook
        item.add_marker(pytest.mark.xdist_group(name=item.stash[_GROUP]))
        for tag in case.benchmark.tags:
            item.add_marker(tag)
    others = [item for item in items if not item.get_closest_marker("gate")]
    items[:] = others + runnable


def _no_gate_tests(config: pytest.Config) -> str:
    return (f"--checkpoint was given, but the test paths ({_names([str(a) for a in config.args])}) hold no "
            "benchmark of the gate. Run the gate with `pytest --checkpoint PATH` (no test path: the installed "
            "benchmarks run), and the project's own tests with `pytest tests` (no --checkpoint)")


def _wanted(config: pytest.Config, case: Case | None) -> bool:
    """An opt-in benchmark runs only when named (its id, test or task) in -k or in a node id."""
    if case is None or not case.benchmark.opt_in:
        return case is not None
    bench = case.benchmark
    named = [config.option.keyword or "", *map(str, config.args)]
    return any(name in text for text in named for name in {bench.id, bench.test, bench.task})


def _case(item: pytest.Item) -> Case | None:
    """The item's case; None for a gate test the suite gives no benchmark (an empty parameter set)."""
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("benchmark_case") if callspec is not None else None
    return case if isinstance(case, Case) else None


def _check_suite_covered(session: pytest.Session, state: GateState, gate_items: list[pytest.Item]) -> None:
    """A suite benchmark that no collected test runs must not vanish silently."""
    if any("::" in arg for arg in session.config.args):
        return  # the user picked tests by node id
    tests = {item.get_closest_marker("gate").args[0] for item in gate_items}  # type: ignore[union-attr]
    orphans = [b.id for b in state.suite.benchmarks if b.test not in tests]
    if orphans:
        raise pytest.UsageError(
            f"suite {state.suite.name!r} declares benchmark(s) {', '.join(orphans)} but no collected "
            "test carries the matching @pytest.mark.gate(name); check their 'test' field"
        )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def evaluator(pytestconfig: pytest.Config) -> Iterator[Evaluator]:
    state = pytestconfig.stash[_STATE]
    workers = _worker_count(pytestconfig)
    spec = LoadSpec(state.backend, state.device, workers, state.suite.max_model_len, state.tensor_parallel)
    pool = ModelPool(spec)
    scorer, _ = _data_scorer(state.suite, state.datasets)
    cache = None
    if state.record_cache is not None:
        cache = RecordCache(state.record_cache, state.suite, state.limit, spec.expected_settings(),
                            local_data=lambda task: scorer.data_digest(task, suite_task_manager(state.suite)))
    yield Evaluator(pool, scorer, state.suite, state.limit, cache)
    pool.close(collect=False)  # the session is over: the process exits next
    state.loads.update(pool.loads)


@dataclass
class BenchmarkRun:
    """A benchmark evaluated on a checkpoint: its checks, and the assertion over them."""

    case: Case
    checks: list[gate.Check]
    policy: gate.Policy
    record_path: Path

    def check(self) -> None:
        """Fail on a failed (or uncomputable) check; an undecided one makes the test INCONCLUSIVE."""
        failed = any(c.verdict in ("fail", "error") for c in self.checks)
        if failed or self.inconclusive:
            report = reports.failure_report(self.case.checkpoint, self.case.benchmark, self.checks, self.policy)
            if failed:
                pytest.fail(report, pytrace=False)
            pytest.skip(f"{INCONCLUSIVE_WORD}: {report}")

    @property
    def inconclusive(self) -> bool:
        return any(c.verdict in ("inconclusive", "pending") for c in self.checks)


@pytest.fixture
def benchmark_run(benchmark_case: Case, evaluator: Evaluator, request: pytest.FixtureRequest) -> BenchmarkRun:
    state = request.config.stash[_STATE]
    bench, ckpt = benchmark_case.benchmark, benchmark_case.checkpoint
    group = request.node.stash[_GROUP]
    state.groups_by_worker.setdefault(state.worker, set()).add(group)
    try:
        run = _evaluate(state, evaluator, benchmark_case, request.session, group)
    except CkptgateError as exc:
        _record(state, ckpt, bench, gate.error_checks(bench, str(exc)))
        pytest.fail(str(exc), pytrace=False)
    except BaseException as exc:
        _record(state, ckpt, bench, gate.error_checks(bench, f"{type(exc).__name__}: {exc}"))
        raise
    return run


def _evaluate(state: GateState, evaluator: Evaluator, case: Case, session: pytest.Session, group: str) -> BenchmarkRun:
    bench, ckpt = case.benchmark, case.checkpoint
    planned = lambda: _planned(session, group)  # noqa: E731
    bridges = [b for b in state.checkpoints if b.role == "bridge"] if ckpt.role == "candidate" else []
    scored = evaluator.reference(ckpt, bench, planned) if ckpt.role == "bridge" else evaluator.score(ckpt, bench, planned)
    # After the candidate: its first test scored all its benchmarks, so loading a bridge here (when
    # no other worker has scored it yet) never makes the candidate load twice.
    refs = [(b.label, evaluator.reference(b, bench, planned).result) for b in bridges]
    score = scored.result
    policy = _policy(state, session)
    references = gate.References(bridges=refs, baseline=state.baseline(), settings=_run_settings(state, bench, scored))
    checks = gate.judge(bench, score, role=ckpt.role, references=references, policy=policy)
    if state.report_only:
        checks = gate.report_only(checks)
    record = {
        "checkpoint": ckpt.to_dict(),
        "benchmark": {**bench.to_dict(), "suite": state.suite.name},
        "metrics": _metrics_with_derived_stderr(score),
        "higher_is_better": score.higher_is_better,
        "checks": [c.to_dict() for c in checks],
        "policy": {"alpha": policy.alpha, "family_size": policy.family_size, "report_only": state.report_only},
        "settled": False,  # set when the run ends and Holm's correction has decided pending checks
        "references": {"bridges": [label for label, _ in refs], "baseline": state.baseline_name},
        "config": {**score.config, "limit": state.limit},
        "backend": scored.settings,
        "reproducible": state.tensor_parallel == 1,
        "timing": {
            "load_s": round(scored.load_seconds, 3),
            "eval_s": round(scored.eval_seconds, 3),
            "evaluated_with": list(scored.evaluated_with),
            "from_cache": scored.cached,
        },
        "worker": state.worker,
        "provenance": provenance(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = results.write_benchmark(state.results_dir, ckpt.label, bench.id, record, score.samples)
    _record(state, ckpt, bench, checks)
    _warn_if_truncated(ckpt, bench, score)
    return BenchmarkRun(case=case, checks=checks, policy=policy, record_path=path)


class GenerationTruncatedWarning(UserWarning):
    """Generations ran into the benchmark's max_gen_toks."""


def _warn_if_truncated(ckpt: Checkpoint, bench: Benchmark, score: ScoreResult) -> None:
    cut = score.config.get("truncated_generations")
    if cut and cut["count"]:
        warnings.warn(GenerationTruncatedWarning(
            f"{bench.id} on {ckpt.label}: {cut['count']} of {cut['of']} generations reached max_gen_toks "
            f"{'/'.join(map(str, cut['max_gen_toks']))} and were cut off (counted in the results); if the task "
            "needs longer answers, raise max_gen_toks in the suite's gen_kwargs"), stacklevel=2)


def _metrics_with_derived_stderr(score: ScoreResult) -> dict[str, Any]:
    """lm-eval's metrics; where lm-eval gives no stderr (the perplexity family), also the one
    derived from per-item values, as ``stderr_derived`` (used for baseline comparisons)."""
    metrics = score.to_dict()["metrics"]
    for key, metric in metrics.items():
        if metric["stderr"] is None and metric["value"] is not None:
            try:
                metric["stderr_derived"] = item_stderr(score.samples, key)
            except PairingError:
                pass  # corpus-level metric: no per-item values
    return metrics


def _run_settings(state: GateState, bench: Benchmark, scored: Scored) -> dict[str, Any]:
    """This run's settings that change a benchmark's numbers, as a baseline records them."""
    config = {"num_fewshot": bench.num_fewshot, **scored.result.config, "limit": state.limit}
    return {"task": bench.task, **run_settings(config, scored.settings)}


def _planned(session: pytest.Session, group: str) -> list[Benchmark]:
    """The benchmarks this process runs in work ``group`` (one checkpoint's, or a share of them
    when it is split over workers): the group's selected items, all on one worker, in run order."""
    cases = (_case(item) for item in session.items if item.stash.get(_GROUP, None) == group)
    return [c.benchmark for c in cases if c is not None]


def _policy(state: GateState, session: pytest.Session) -> gate.Policy:
    """Holm's family: every primary metric of every selected candidate test, once per reference
    it is compared with (each bridge, and the baseline where it holds a gating entry for the
    metric). The same on every worker: all collect the same items."""
    if state.family_size is None:
        bridges, baseline = sum(c.role == "bridge" for c in state.checkpoints), state.baseline()

        def comparisons(bench: Benchmark, key: str) -> int:
            entry = None if baseline is None else baseline.find(bench.id, key)
            return bridges + (entry is not None and entry.gating)

        cases = [c for c in map(_case, session.items) if c is not None and c.checkpoint.role == "candidate"]
        state.family_size = sum(comparisons(c.benchmark, m.key) for c in cases for m in c.benchmark.metrics if m.primary)
    return gate.Policy(alpha=state.alpha, family_size=state.family_size)


def _record(state: GateState, ckpt: Checkpoint, bench: Benchmark, checks: list[gate.Check]) -> None:
    context = results.row_context(ckpt.to_dict(), bench.to_dict(), state.limit)
    state.rows.extend(results.SummaryRow.from_check(c.to_dict(), **context) for c in checks)


def _worker_id(config: pytest.Config) -> str:
    return config.workerinput["workerid"] if _is_worker(config) else "main"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- xdist


class _XdistHooks:
    """Ship the resolved run to workers; gather their rows and grouping evidence back."""

    def __init__(self, state: GateState) -> None:
        self.state = state

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WIRE_KEY] = self.state.to_wire()

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """loadgroup, with each checkpoint's work groups handed out longest first."""
        if getattr(config.option, "dist", "no") != "loadgroup":
            return None
        return scheduling.CheckpointScheduling(config, log, self.state.weights)

    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: list[Any]) -> None:
        """Give each worker its environment at start-up, before it can initialise CUDA: its own
        GPU (CUDA_VISIBLE_DEVICES, PCI bus order) and its own ports. execnet sets a spec's env
        in the new interpreter before xdist's worker code (and so anything of ours) runs."""
        plan = self.state.devices
        ports = devices.free_ports(2 * len(specs))
        for i, spec in enumerate(specs):
            gpus = None if plan is None else plan.worker_gpus(i)
            spec.env.update(devices.worker_env(gpus, (ports[2 * i], ports[2 * i + 1])))

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Gate items carry their work group as xdist's ``@group`` suffix: a worker that collected
        none means the test paths hold no benchmark (a usage error, raised here on the controller:
        raised on a worker it would crash xdist)."""
        if ids and not any("@" in nodeid for nodeid in ids):  # none at all: pytest's own "no tests ran"
            raise pytest.UsageError(_no_gate_tests(node.config))

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        payload = output.get(WIRE_KEY)
        if payload is None:
            return
        data = json.loads(payload)
        self.state.rows.extend(results.SummaryRow.from_dict(r) for r in data["rows"])
        self.state.groups_by_worker[data["worker"]] = set(data["groups"])
        self.state.loads.update(data["loads"])
        if data["family_size"] is not None:
            self.state.family_size = max(self.state.family_size or 0, data["family_size"])


# --------------------------------------------------------------------------- session end


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    if _is_worker(config):
        config.workeroutput[WIRE_KEY] = json.dumps(  # type: ignore[attr-defined]
            {
                "worker": state.worker,
                "rows": [r.to_dict() for r in state.rows],
                "groups": sorted(state.groups_by_worker.get(state.worker, set())),
                "loads": dict(state.loads),
                "family_size": state.family_size,
            }
        )
        return
    if state.family_size is None and session.items:  # no xdist: this process ran the tests
        _policy(state, session)
    policy = gate.Policy(alpha=state.alpha, family_size=state.family_size or 0)
    settled = gate.settle(state.rows, policy)
    state.late_failures = [new for old, new in zip(state.rows, settled) if old.verdict == "pending" and new.verdict == "fail"]
    state.rows = settled
    state.verdict = gate.run_verdict(settled) if settled else None
    state.problems.extend(_grouping_problems(state))
    if state.update_baseline and state.baseline_name is not None:
        state.baseline_diff = _update_baseline(state)
    failed = state.problems or state.late_failures or state.baseline_diff is not None
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if state.verdict == "INCONCLUSIVE" and session.exitstatus == pytest.ExitCode.OK and not state.accept_inconclusive:
        session.exitstatus = exitcodes.INCONCLUSIVE
    if state.rows:
        rows = results.sort_rows(state.rows)
        results.settle_records(state.results_dir, rows)
        results.write_summary(state.results_dir, rows, reports.markdown(rows, state.run_metadata()))


def _update_baseline(state: GateState) -> str:
    """Write the candidate's measured numbers into the baseline file; returns the diff."""
    assert state.baseline_name is not None
    (candidate,) = [c for c in state.checkpoints if c.role == "candidate"]
    records = [r for r in results.read_records(state.results_dir) if r["checkpoint"]["label"] == candidate.label]
    measured = [m for record in records for m in measured_from_record(record)]
    return update_baseline(Path(state.baseline_name), measured, model=str(candidate.path))


def _grouping_problems(state: GateState) -> list[str]:
    """Self-check: every work group ran on one worker, and each checkpoint was loaded at most
    once per group (once, unless it was split over idle workers)."""
    problems = []
    workers_of: dict[str, list[str]] = {}
    for worker, groups in state.groups_by_worker.items():
        for group in groups:
            workers_of.setdefault(group, []).append(worker)
    for group, workers in sorted(workers_of.items()):
        if len(workers) > 1:
            problems.append(
                f"work group {group} ran on {len(workers)} workers ({', '.join(sorted(workers))}): "
                "xdist did not group its tests (is pytest>=9.2 installed? see pytest-xdist issue 1386)"
            )
    groups_of = Counter(scheduling.label_of(group) for group in workers_of)
    bridges = {c.label for c in state.checkpoints if c.role == "bridge"}
    for label, count in sorted(state.loads.items()):
        # A bridge is also a reference of every candidate: each worker may load it once for that
        # (without the record cache, workers do not share its scored records).
        allowed = max(1, groups_of[label]) + (len(state.groups_by_worker) if label in bridges else 0)
        if count > allowed:
            problems.append(f"checkpoint {label} was loaded {count} times for {groups_of[label]} work group(s); "
                            "tests were not kept together")
    return problems


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or _is_worker(config):
        return
    tr = terminalreporter
    if state.rows:
        rows = results.sort_rows(state.rows)
        tr.write_sep("=", f"ckptgate summary: suite {state.suite.name}, backend {state.backend}")
        for line in reports.text_table(rows):
            tr.write_line(line)
        tr.write_line(f"verdicts: {reports.verdict_counts(rows)}")
        tr.write_line(
            f"family-wise alpha {state.alpha:g}, Holm over {state.family_size or 0} primary comparison(s); "
            "MDE = the worsening that FAILs 80% of the time"
        )
        undecided = [r for r in rows if r.primary and r.role == "candidate" and r.verdict == "inconclusive"]
        for row in undecided:
            tr.write_line(f"  INCONCLUSIVE {row.checkpoint} {row.benchmark} {row.metric} vs {row.against}: "
                          f"{reports.why(row)}", yellow=True)
        tr.write_line(f"results: {state.results_dir} (eval_summary.csv, summary.md, by_checkpoint/)")
        if state.tensor_parallel > 1:
            tr.write_line(NOT_REPRODUCIBLE.format(tp=state.tensor_parallel), yellow=True)
    if state.late_failures:
        tr.write_line(
            f"ckptgate gate FAILED: {len(state.late_failures)} comparison(s) whose tests passed are significant "
            "regressions once the whole run's p-values are known (Holm):",
            red=True,
        )
        for row in state.late_failures:
            tr.write_line(f"  {row.checkpoint} {row.benchmark} {row.metric} vs {row.against}: p={row.p_value:.3g}, "
                          f"Holm p={row.p_holm:.3g}", red=True)
    if state.baseline_diff is not None:
        _report_baseline_update(tr, state)
    for problem in state.problems:
        tr.write_line(f"ckptgate self-check FAILED: {problem}", red=True)
    if state.verdict is not None:
        _report_verdict(tr, state)


def _report_verdict(tr: Any, state: GateState) -> None:
    colour = {"GO": {"green": True}, "NO-GO": {"red": True}}.get(state.verdict or "", {"yellow": True})
    meaning = {
        "GO": "every primary comparison passed",
        "NO-GO": "a primary comparison failed",
        "INCONCLUSIVE": "no primary comparison failed, but not every one could be shown to pass"
        + (" (--accept-inconclusive: exit 0)" if state.accept_inconclusive else f" (exit code {exitcodes.INCONCLUSIVE})"),
        "REPORT ONLY": "measured, nothing gated",
    }[state.verdict or "REPORT ONLY"]
    tr.write_sep("=", f"ckptgate verdict: {state.verdict}: {meaning}", bold=True, **colour)


INCONCLUSIVE_WORD = "INCONCLUSIVE"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Mark a gate test whose checks are undecided: reported as INCONCLUSIVE (letter I), and in
    JUnit as a <skipped> element with the reason plus a ``verdict`` property."""
    outcome = yield
    report = outcome.get_result()
    run = getattr(item, "funcargs", {}).get("benchmark_run")
    if report.when == "call" and isinstance(run, BenchmarkRun):
        verdict = "fail" if report.failed else "inconclusive" if run.inconclusive and report.skipped else "pass"
        report.ckptgate_verdict = verdict
        item.user_properties.append(("verdict", verdict))  # JUnit takes properties from the teardown report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, Any] | None:
    if getattr(report, "ckptgate_verdict", None) == "inconclusive":
        return "inconclusive", "I", (INCONCLUSIVE_WORD, {"yellow": True})
    return None


def _report_baseline_update(tr: Any, state: GateState) -> None:
    diff = state.baseline_diff
    if not diff:
        tr.write_line(f"ckptgate: --update-baselines: {state.baseline_name} already holds these numbers", yellow=True)
        return
    tr.write_sep("-", f"ckptgate: --update-baselines wrote {state.baseline_name}")
    for line in diff.splitlines():
        tr.write_line(line)
    tr.write_line("review the diff and commit it; this run fails so an update never passes unnoticed", yellow=True)
