"""The run plan: checkpoints, suite, references, devices and settings, resolved from the options.

:func:`plan_run` is a function of the options alone (and of what is on disk and on the machine):
it discovers and validates every checkpoint, loads the suite, the baseline and the margins,
checks that the data the suite reads is on this machine, plans the GPUs and the tensor-parallel
size, and refuses a gate run whose primary metrics have nothing to be held against. The plan
travels to xdist workers as JSON (:meth:`RunPlan.to_wire`).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from ckptgate import devices, hubdata, sharding
from ckptgate.backends import LoadSpec, resolve_backend
from ckptgate.baselines import BASELINES_DIR, Baseline, load_baseline
from ckptgate.cache import cache_root
from ckptgate.checkpoints import Checkpoint, discover_all, parameter_count
from ckptgate.errors import CkptgateError, DataUnavailable, DeviceError
from ckptgate.options import ALL, DEMO, DEMO_ALL
from ckptgate.recordcache import RecordCache
from ckptgate.suites import Benchmark, Suite, did_you_mean, load_suite
from scorers.lm_eval_task import LmEvalTaskScorer
from scorers.packaged_data import PACKAGED
from scorers.slice_scorer import PerplexityScorer
from scorers.suite_scorer import SuiteScorer, only


@dataclass
class RunPlan:
    """What the run evaluates and how: resolved and validated from the options on the controller
    (bad input is a usage error before any model loads) and shipped to xdist workers."""

    checkpoints: list[Checkpoint]
    suite: Suite
    backend: str
    results_dir: Path
    limit: int | None
    baseline_name: str | None  # a baseline name or file path (--baseline)
    alpha: float = 0.05
    record_cache: Path | None = None
    update_baseline: bool = False  # --update-baselines: the baseline is written, not compared with
    datasets: Path | None = None  # --datasets: local dataset copies
    device: str = "cpu"  # "cpu" or "cuda": what every worker's model runs on
    devices: devices.Plan | None = None  # the controller's: GPU per worker, notes
    tensor_parallel: int = 1  # GPUs per model (> 1 only with --allow-tensor-parallel: not reproducible)
    weights: dict[str, float] = field(default_factory=dict)  # checkpoint label -> cost of one benchmark
    report_only: bool = False  # --report-only: measure, never gate
    accept_inconclusive: bool = False  # --accept-inconclusive: INCONCLUSIVE exits 0
    run_id: str = field(default_factory=lambda: new_run_id())  # this run's, in its records and runs/<id>/
    status_log: str | None = None  # --status-log: where status lines go ("-": stderr), absolute
    refresh: tuple[str, ...] = ()  # --refresh: benchmark ids scored again whatever the cache holds ("all": every one)
    shard: tuple[int, int] | None = None  # --shard I/N: only this part of the run (ckptgate.sharding)
    _baseline: Baseline | None = None

    @cached_property
    def _shard_labels(self) -> frozenset[str]:
        """The labels this shard evaluates (hashing every label once, not once per test item)."""
        assert self.shard is not None
        return frozenset(sharding.labels_in([c.label for c in self.checkpoints], self.shard))

    def in_shard(self, checkpoint: Checkpoint) -> bool:
        """Whether this run (its --shard, if any) evaluates ``checkpoint``'s benchmarks."""
        return self.shard is None or checkpoint.label in self._shard_labels

    def refreshes(self, bench: Benchmark) -> bool:
        return ALL in self.refresh or bench.id in self.refresh

    def baseline(self) -> Baseline | None:
        """The baseline compared with (None when there is none, or while it is being written)."""
        if self.baseline_name is None or self.update_baseline:
            return None
        if self._baseline is None:
            self._baseline = load_baseline(self.baseline_name)
        return self._baseline

    @property
    def bridges(self) -> list[Checkpoint]:
        return [c for c in self.checkpoints if c.role == "bridge"]

    @property
    def candidates(self) -> list[Checkpoint]:
        return [c for c in self.checkpoints if c.role == "candidate"]

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
            "run_id": self.run_id,
            "refresh": list(self.refresh),
            "status_log": self.status_log,
            "shard": None if self.shard is None else list(self.shard),
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> RunPlan:
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
            run_id=wire["run_id"],
            refresh=tuple(wire["refresh"]),
            status_log=wire["status_log"],
            shard=None if wire["shard"] is None else (wire["shard"][0], wire["shard"][1]),
        )


def new_run_id() -> str:
    """Sortable by start time, unique across concurrent runs: ``20261203-141502-3fa9c1``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def plan_run(opt: Any, *, workers: int = 1, collect_only: bool = False,
             progress: AbstractContextManager[object] | None = None) -> RunPlan | None:
    """The run plan from the options (``config.option``: the ``ckptgate_*`` attributes), or None
    when no checkpoint is given. ``workers``: the processes that evaluate; ``collect_only``:
    listing tests needs no data; ``progress``: a context in which the demo's progress bars may
    reach the terminal. Raises :class:`CkptgateError` on bad input, before any model loads."""
    specs, bridges = opt.ckptgate_checkpoints, opt.ckptgate_bridges
    if not specs:
        if bridges:
            raise CkptgateError("--bridge needs at least one --checkpoint to compare with it")
        return None
    if opt.ckptgate_limit is not None and opt.ckptgate_limit < 1:
        raise CkptgateError(f"--limit must be a positive number of documents, got {opt.ckptgate_limit}")
    if not 0 < opt.ckptgate_alpha < 1:
        raise CkptgateError(f"--alpha must be between 0 and 1, got {opt.ckptgate_alpha}")
    plan_gpus = partial(devices.plan, devices.inventory(), workers=workers,
                        requested=devices.parse_gpus(opt.ckptgate_gpus), require_gpu=opt.ckptgate_require_gpu)
    gpus = plan_gpus()
    backend = resolve_backend(opt.ckptgate_backend, gpus.device)
    suite = load_suite(opt.ckptgate_suite, margins=opt.ckptgate_margins)
    baseline = _check_baseline(opt.ckptgate_baseline, update=opt.ckptgate_update_baselines)
    bridges = bridges or ([_suite_bridge(suite)] if suite.bridge else [])
    if not (opt.ckptgate_report_only or opt.ckptgate_update_baselines or bridges or baseline):
        _require_references(suite)
    datasets = _datasets_dir(opt.ckptgate_datasets)
    scorer, missing = data_scorer(suite, datasets)
    scorer.check(suite)
    if not collect_only:  # listing the tests needs no data; a run stops here
        _require_fetched(suite, missing)
    with progress or nullcontext():
        candidates = discover_all(_expand_demo(specs, "series"))
        bridge_ckpts = discover_all(_expand_demo(bridges, "bridge"), role="bridge") if bridges else []
        controls = discover_all(opt.ckptgate_controls, role="control") if opt.ckptgate_controls else []
    _reject_overlap(candidates, bridge_ckpts + controls)
    parameters_of = {c.label: parameter_count(c.path) for c in candidates + bridge_ckpts + controls}  # sizes the plan, orders work
    tensor_parallel = _tensor_parallel(gpus, parameters_of, opt.ckptgate_allow_tensor_parallel)
    if tensor_parallel > 1:
        if opt.ckptgate_update_baselines:
            raise CkptgateError("--update-baselines records reproducible numbers only: it cannot be combined "
                                f"with tensor parallelism (tensor_parallel_size {tensor_parallel} was needed)")
        LoadSpec(backend, gpus.device, tensor_parallel_size=tensor_parallel)  # hf cannot: says so now
        gpus = plan_gpus(per_worker=tensor_parallel)
    if opt.ckptgate_update_baselines and (baseline is None or len(candidates) != 1):
        raise CkptgateError(
            "--update-baselines writes one reference model's numbers: give exactly one --checkpoint "
            f"(got {len(candidates)}) and the --baseline NAME to write"
        )
    return RunPlan(
        checkpoints=candidates + bridge_ckpts + controls,
        suite=suite,
        backend=backend,
        results_dir=Path(opt.ckptgate_results_dir).resolve(),
        limit=opt.ckptgate_limit,
        baseline_name=baseline,
        alpha=opt.ckptgate_alpha,
        record_cache=_record_cache(opt.ckptgate_record_cache),
        update_baseline=opt.ckptgate_update_baselines,
        datasets=datasets,
        device=gpus.device,
        devices=gpus,
        tensor_parallel=tensor_parallel,
        weights={label: float(n) for label, n in parameters_of.items()},
        report_only=opt.ckptgate_report_only,
        accept_inconclusive=opt.ckptgate_accept_inconclusive,
        refresh=_refresh(suite, opt.ckptgate_refresh),
        status_log=_status_log(opt.ckptgate_status_log),
        shard=None if opt.ckptgate_shard is None else sharding.parse(opt.ckptgate_shard),
    )


def _suite_bridge(suite: Suite) -> str:
    """The suite's bridge, refused clearly when it names an environment variable that is not set."""
    assert suite.bridge is not None
    if "$" in suite.bridge:
        raise CkptgateError(f"suite {suite.name!r}: its bridge {suite.bridge} names an environment variable that "
                            "is not set: set it, or give the bridge checkpoint with --bridge PATH")
    return suite.bridge


def _status_log(option: str | None) -> str | None:
    if option is None or option == "-":
        return option
    path = Path(option).expanduser().resolve()
    if path.is_dir():
        raise CkptgateError(f"--status-log {option}: a folder; give a file to append status lines to")
    return str(path)


def _refresh(suite: Suite, option: list[str] | None) -> tuple[str, ...]:
    """--refresh's benchmarks, each checked against the suite (a typo would refresh nothing)."""
    names = tuple(dict.fromkeys(option or ()))
    known = [b.id for b in suite.benchmarks]
    for name in names:
        if name != ALL and name not in known:
            raise CkptgateError(f"--refresh {name}: suite {suite.name!r} has no benchmark {name!r}"
                                f"{did_you_mean(name, known)} (a bare --refresh refreshes every benchmark)")
    return names


def _require_references(suite: Suite) -> None:
    """A gate run must hold every primary metric against something: a threshold, a bridge or a
    baseline. Without one the run would report numbers and exit 0, which reads as a pass."""
    bare = [f"{b.id} {m.key}" for b in suite.benchmarks if not b.opt_in for m in b.metrics
            if m.primary and not m.gating]
    if bare:
        raise CkptgateError(
            f"suite {suite.name!r}: primary metric(s) {names_text(bare)} have nothing to be held against: give "
            "--bridge PATH (a checkpoint compared item by item, e.g. the previous stage's last step) or "
            "--baseline NAME (stored reference numbers), or --report-only to measure without gating"
        )


def data_scorer(suite: Suite, datasets: Path | None) -> tuple[SuiteScorer, dict[str, list[str]]]:
    """This process's scorer, reading local data (--datasets), the prefetched hub snapshots and
    the fetched perplexity slices, and the data it lacks (hub repo or slice -> the tasks or
    benchmarks reading it; a pip package's copy counts as there). Sets the HF offline switches:
    a gate run never downloads."""
    scorer, lacking = _scorer_and_hub_gaps(suite, datasets)
    return scorer, lacking | scorer.perplexity.missing(suite)


def load_spec(plan: RunPlan, processes: int) -> LoadSpec:
    """How each of ``processes`` evaluating processes loads its models."""
    return LoadSpec(plan.backend, plan.device, processes, plan.suite.max_model_len, plan.tensor_parallel)


def record_cache(plan: RunPlan, spec: LoadSpec, scorer: SuiteScorer) -> RecordCache | None:
    """The run's record cache (None with ``--record-cache none``)."""
    if plan.record_cache is None:
        return None
    return RecordCache(plan.record_cache, plan.suite, plan.limit, spec.expected_settings(),
                       lambda bench: scorer.inputs(plan.suite, bench), run_id=plan.run_id, refresh=plan.refreshes)


def cached(plan: RunPlan, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    """Those of ``checkpoints`` whose every planned result (each benchmark of the suite but the
    opt-in ones) is in the record cache; none under --refresh or without a cache."""
    if plan.refresh or plan.record_cache is None:
        return []
    cache = record_cache(plan, load_spec(plan, 1), suite_scorer(plan.suite, plan.datasets))
    assert cache is not None
    wanted = [bench for bench in plan.suite.benchmarks if not bench.opt_in]
    return [c for c in checkpoints if all(cache.has(c, bench) for bench in wanted)]


def evaluated(plan: RunPlan) -> list[Checkpoint]:
    """The candidates already evaluated for this suite and these settings (``--new-only`` leaves
    them out)."""
    return cached(plan, plan.candidates)


def without(plan: RunPlan, dropped: list[Checkpoint]) -> RunPlan:
    """The plan without the ``dropped`` checkpoints."""
    gone = {c.label for c in dropped}
    return replace(plan, checkpoints=[c for c in plan.checkpoints if c.label not in gone])


def fully_cached(plan: RunPlan) -> bool:
    """Whether the record cache holds every planned result (each checkpoint, bridges included, x
    each benchmark but the opt-in ones): then no model is loaded and the run needs no workers.
    Only parallelism depends on it: a result found missing later is scored all the same."""
    if plan.refresh or plan.update_baseline or plan.record_cache is None:
        return False
    mine = [ckpt for ckpt in plan.checkpoints if plan.in_shard(ckpt)]
    return len(cached(plan, mine)) == len(mine)


def suite_scorer(suite: Suite, datasets: Path | None) -> SuiteScorer:
    """The scorer of an evaluating process (an xdist worker): as :func:`data_scorer`'s, without
    reading every slice again to see what is missing (the controller checked before any model loaded)."""
    return _scorer_and_hub_gaps(suite, datasets)[0]


def _scorer_and_hub_gaps(suite: Suite, datasets: Path | None) -> tuple[SuiteScorer, dict[str, list[str]]]:
    perplexity = PerplexityScorer(datasets)
    slice_names = frozenset(perplexity.catalogue)
    tasks = only(suite, "lm_eval")
    needed = LmEvalTaskScorer(datasets, other_data=slice_names).hub_repos(tasks)
    snapshots, missing = hubdata.available(hubdata.load_manifest(), needed)
    hubdata.go_offline()
    lacking = {repo: needed[repo] for repo in missing if repo not in PACKAGED}
    return SuiteScorer(LmEvalTaskScorer(datasets, snapshots, other_data=slice_names), perplexity), lacking


def _require_fetched(suite: Suite, missing: dict[str, list[str]]) -> None:
    """Every hub dataset the suite reads must have been fetched by ``ckptgate prefill`` (or be
    given locally with --datasets). Checked before any model loads."""
    if missing:
        lines = [f"  {repo} (read by {names_text(tasks)})" for repo, tasks in missing.items()]
        raise DataUnavailable(
            f"suite {suite.name!r} reads hub datasets not fetched on this machine (a gate run never downloads):\n"
            + "\n".join(lines)
            + f"\nfetch them once where the hub is reachable: ckptgate prefill --suite {suite.name} "
            f"(manifest: {hubdata.manifest_path()}; snapshots in the Hugging Face cache), "
            "or give local copies with --datasets DIR"
        )


def names_text(names: list[str], most: int = 4) -> str:
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
            f"checkpoint label(s) {', '.join(clashes)} appear more than once among --checkpoint, --bridge and "
            "--control; "
            "pass each checkpoint once"
        )


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
