"""Scorer for lm-evaluation-harness tasks: one ``simple_evaluate`` call on a pre-loaded model.

Metrics, filters and stderr are lm-eval's own; this module only selects the task, passes the
mandated seeds and settings, and reshapes the output.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptgate.cache import cache_root, files_digest
from ckptgate.errors import SuiteError
from scorers.base import SEED, MetricValue, ScoreResult
from scorers.lm_eval_speedups import install_template_cache
from scorers.nltk_data import ensure_punkt_tab, needs_punkt_tab

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

    from ckptgate.backends import ModelSession
    from ckptgate.suites import Benchmark, Suite

# lm-eval's default; recorded with each result. Only metrics without a closed-form standard
# error (median, f1, perplexity, bleu, ...) are bootstrapped.
BOOTSTRAP_ITERS = 100_000
# Greedy decoding unless a benchmark's gen_kwargs say otherwise.
GREEDY: dict[str, Any] = {"temperature": 0, "do_sample": False}


@functools.cache
def task_manager(task_paths: tuple[Path, ...], include_defaults: bool) -> TaskManager:
    """Indexing lm-eval's task tree takes seconds: build one manager per process and suite."""
    from lm_eval.tasks import TaskManager

    return TaskManager(
        include_path=[str(p) for p in task_paths] or None, include_defaults=include_defaults
    )


def suite_task_manager(suite: Suite) -> TaskManager:
    return task_manager(suite.task_paths, suite.include_default_tasks)


class LmEvalTaskScorer:
    """Runs a benchmark's lm-eval task through ``lm_eval.simple_evaluate``.

    ``datasets`` is an optional folder of local dataset copies, ``<datasets>/<task>/<split>.jsonl``
    in the dataset's own schema: such a task reads them instead of its hub dataset (air-gapped
    clusters; the project's own tests run the real task definitions on small fixtures this way).
    """

    name = "lm_eval"

    def __init__(self, datasets: Path | None = None) -> None:
        self.datasets = datasets

    def check(self, suite: Suite) -> None:
        known = set(suite_task_manager(suite).all_tasks)
        if self.datasets is not None:
            _override_dir(suite_task_manager(suite), self.datasets)  # every local data folder names a task
        for bench in suite.benchmarks:
            if bench.task not in known:
                close = difflib.get_close_matches(bench.task, known, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise SuiteError(
                    f"{suite.path}: benchmark {bench.id!r} names lm-eval task {bench.task!r}, "
                    f"which is not among the tasks lm-eval knows here "
                    f"(task directories: {', '.join(map(str, suite.task_paths)) or 'none'}; "
                    f"built-in tasks {'included' if suite.include_default_tasks else 'excluded'}).{hint}"
                )

    def score(
        self,
        session: ModelSession,
        suite: Suite,
        benchmarks: Sequence[Benchmark],
        *,
        limit: int | None,
    ) -> dict[str, ScoreResult]:
        """All ``benchmarks`` in as few ``simple_evaluate`` calls as lm-eval allows.

        One call evaluates every task it is given in one pass per request type, which is what a
        user running lm-eval directly gets; each call costs seconds of fixed overhead, so the
        checkpoint's benchmarks share calls. A call cannot hold the same task twice (e.g. one
        task at two shot counts), so such benchmarks go to separate calls.
        """
        install_template_cache()
        base, manager = suite_task_manager(suite), self.task_manager(suite)
        prepared = [_prepare(manager, bench, self.local_data(bench.task, base)) for bench in benchmarks]
        scores: dict[str, ScoreResult] = {}
        for batch in _batches(prepared):
            scores |= _evaluate(session, manager, batch, limit)
        return scores

    def task_manager(self, suite: Suite) -> TaskManager:
        """The suite's tasks; with local data, plus same-named task YAMLs that read it, indexed
        after lm-eval's own so they replace them (also as members of lm-eval's groups)."""
        if self.datasets is None:
            return suite_task_manager(suite)
        overrides = _override_dir(suite_task_manager(suite), self.datasets)
        return task_manager(suite.task_paths + (overrides,), suite.include_default_tasks)

    def local_data(self, task: str, manager: TaskManager | None = None) -> LocalData | None:
        """Local split files (task -> split -> file) for ``task`` and, for a group, its members;
        None when there are none and the task reads its own dataset."""
        if self.datasets is None:
            return None
        names = [task] + (list(_group_members(manager, task)) if manager is not None else [])
        found = {name: _splits(self.datasets / name) for name in names if (self.datasets / name).is_dir()}
        return found or None


LocalData = dict[str, dict[str, Path]]


def _splits(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.glob("*.jsonl"))}


def _group_members(manager: TaskManager, task: str) -> list[str]:
    if task not in manager.all_groups:
        return []
    from lm_eval.tasks._yaml_loader import load_yaml

    members = load_yaml(str(manager.task_index[task].yaml_path), resolve_func=False).get("task", [])
    return [m for m in members if isinstance(m, str)]


def load_task(manager: TaskManager, name: str) -> dict[str, Any]:
    """``manager.load(name)``, with the local resources the task's code needs put in place first
    (IFEval's checkers download NLTK's punkt_tab on import when NLTK cannot find it)."""
    if needs_punkt_tab(_yaml_files(manager, name)):
        ensure_punkt_tab()
    return manager.load(name)


def _yaml_files(manager: TaskManager, task: str) -> list[Path]:
    """The YAML files defining ``task`` (its own, those it includes, its group members')."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = manager.task_index.get(task)
    pending = [] if entry is None or entry.yaml_path is None else [Path(entry.yaml_path)]
    found: list[Path] = []
    while pending:
        path = pending.pop()
        if path in found or not path.is_file():
            continue
        found.append(path)
        include = load_yaml(str(path), resolve_func=False, recursive=False).get("include") or []
        for name in include if isinstance(include, list) else [include]:
            pending.append(path.parent / str(name))  # an absolute include replaces the parent
    for member in _group_members(manager, task):
        found.extend(_yaml_files(manager, member))
    return found


def local_data_digest(local: LocalData | None) -> str | None:
    """sha256 over the local split files a benchmark reads: recorded with results, part of cache keys."""
    if local is None:
        return None
    return files_digest((f"{task}/{split}", path) for task, files in sorted(local.items()) for split, path in sorted(files.items()))


@dataclass
class _Prepared:
    """A benchmark's lm-eval task object, configured with the benchmark's shots and gen_kwargs."""

    benchmark: Benchmark
    task: Any  # lm_eval Task or Group
    leaves: frozenset[str]
    gen_kwargs: dict[str, Any]
    dataset: dict[str, Any] | None = None  # local data used instead of the task's dataset


def _prepare(manager: TaskManager, bench: Benchmark, local: LocalData | None = None) -> _Prepared:
    """Load and configure ``bench``'s task; ``local`` is the local data it reads (recorded)."""
    loaded = load_task(manager, bench.task)
    task = loaded["groups"].get(bench.task) or loaded["tasks"].get(bench.task)
    if task is None:
        raise SuiteError(
            f"benchmark {bench.id!r}: lm-eval name {bench.task!r} is a tag, not a task or group; "
            f"list its tasks as benchmarks of their own ({', '.join(sorted(loaded['tasks']))})"
        )
    gen_kwargs: dict[str, Any] = GREEDY | bench.gen_kwargs
    for leaf in loaded["tasks"].values():
        _configure(bench, leaf, gen_kwargs)
    dataset = None if local is None else {
        "local_files": {t: {split: str(path) for split, path in files.items()} for t, files in local.items()},
        "sha256": local_data_digest(local),
    }
    return _Prepared(bench, task, frozenset(loaded["tasks"]), gen_kwargs, dataset)


def _override_dir(base: TaskManager, datasets: Path) -> Path:
    """Write one task YAML per local data folder (``include`` the registered task, read the
    folder's split files) into a cache folder keyed by their content; returns the folder."""
    import yaml

    configs = {}
    for folder in sorted(p for p in datasets.iterdir() if p.is_dir()):
        entry = base.task_index.get(folder.name)
        if entry is None or entry.yaml_path is None or folder.name in base.all_groups:
            raise SuiteError(f"{folder}: local data folders are named after lm-eval tasks defined by a YAML "
                             f"file; {folder.name!r} is not one (for a group, give each member task's data)")
        config = {"include": str(entry.yaml_path), "task": folder.name, **_dataset_override(_splits(folder))}
        configs[folder.name] = yaml.safe_dump(config, sort_keys=False)
    key = hashlib.sha256(repr(sorted(configs.items())).encode()).hexdigest()[:16]
    target = cache_root() / "local-tasks" / key
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
        for name, text in configs.items():
            (staging / f"{name}.yaml").write_text(text, encoding="utf-8")
        try:
            staging.rename(target)
        except OSError:  # another process made it first: theirs is identical
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _dataset_override(files: dict[str, Path]) -> dict[str, Any]:
    return {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path) for split, path in files.items()}},
    }


def _configure(bench: Benchmark, leaf: Any, gen_kwargs: dict[str, Any]) -> None:
    """What ``simple_evaluate(num_fewshot=..., gen_kwargs=...)`` does, per benchmark.

    lm-eval silently keeps ``num_fewshot: 0`` when a task's YAML fixes it; a gate must not run
    other settings than the suite declares, so that is an error here.
    """
    if leaf.get_config("output_type") == "generate_until":
        leaf.set_config(key="generation_kwargs", value=gen_kwargs, update=True)
    if bench.num_fewshot is None:
        return
    if leaf.get_config("num_fewshot") == 0 and bench.num_fewshot != 0:
        raise SuiteError(
            f"benchmark {bench.id!r} asks for num_fewshot {bench.num_fewshot}, but lm-eval task "
            f"{leaf.task_name!r} fixes num_fewshot 0 in its config and would run zero-shot; "
            "set num_fewshot: 0 in the suite or use a task variant with shots"
        )
    leaf.set_config(key="num_fewshot", value=bench.num_fewshot)


def _batches(prepared: list[_Prepared]) -> list[list[_Prepared]]:
    """Greedy partition into calls whose task names and leaf tasks do not overlap."""
    batches: list[tuple[set[str], list[_Prepared]]] = []
    for item in prepared:
        names = item.leaves | {item.benchmark.task}
        for used, batch in batches:
            if used.isdisjoint(names):
                used.update(names)
                batch.append(item)
                break
        else:
            batches.append((set(names), [item]))
    return [batch for _, batch in batches]


def _evaluate(
    session: ModelSession, manager: TaskManager, batch: list[_Prepared], limit: int | None
) -> dict[str, ScoreResult]:
    from lm_eval import simple_evaluate

    out = simple_evaluate(
        model=session.lm,
        tasks=[item.task for item in batch],
        task_manager=manager,  # pre-built task objects; without it lm-eval re-indexes its task tree
        limit=limit,
        log_samples=True,
        bootstrap_iters=BOOTSTRAP_ITERS,
        random_seed=SEED,
        numpy_random_seed=SEED,
        torch_random_seed=SEED,
        fewshot_random_seed=SEED,
    )
    if out is None:
        raise RuntimeError("lm_eval.simple_evaluate returned no results (non-zero rank?)")
    scores = {item.benchmark.id: parse_output(out, item.benchmark.task, item.gen_kwargs) for item in batch}
    for item in batch:
        if item.dataset is not None:
            scores[item.benchmark.id].config["local_dataset"] = item.dataset
        if item.benchmark.gold_logprob:
            task_config = out["configs"].get(item.benchmark.task) or out["configs"][_leaves(out, item.benchmark.task)[0]]
            delimiter = str(task_config.get("target_delimiter", " "))
            add_gold_logprobs(session.lm, scores[item.benchmark.id], delimiter)
    return scores


def add_gold_logprobs(lm: Any, score: ScoreResult, delimiter: str) -> None:
    """Score each document's reference answer after its own prompt and store it on the samples
    as ``gold_logprob``: one loglikelihood request per document, on the loaded model."""
    from lm_eval.api.instance import Instance

    pairs: dict[Any, tuple[str, str]] = {}
    for sample in score.samples:
        pairs.setdefault(sample["doc_id"], (str(sample["arguments"][0][0]), delimiter + str(sample["target"])))
    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=0, metadata=("gold", doc, 1))
        for doc, pair in pairs.items()
    ]
    logprobs = {doc: float(ll) for doc, (ll, _greedy) in zip(pairs, lm.loglikelihood(requests))}
    for sample in score.samples:
        sample["gold_logprob"] = logprobs[sample["doc_id"]]


def parse_output(out: dict[str, Any], task: str, gen_kwargs: dict[str, Any]) -> ScoreResult:
    """Reshape ``simple_evaluate``'s output for one task into a :class:`ScoreResult`."""
    task_results = out["results"][task]
    leaves = _leaves(out, task)
    n = sum(int(out["n-samples"][leaf]["effective"]) for leaf in leaves)
    metrics: dict[str, MetricValue] = {}
    for key, value in task_results.items():
        if "," not in key or "_stderr," in key:
            continue
        metric, _, filt = key.partition(",")
        stderr = task_results.get(f"{metric}_stderr,{filt}")
        metrics[key] = MetricValue(value=_number(value), stderr=_number(stderr), n=n)
    config = {
        "task_config": _per_leaf(out["configs"], task, leaves),
        "task_version": out.get("versions", {}).get(task),
        "num_fewshot": _shots(out.get("n-shot", {}), task, leaves),
        "gen_kwargs": gen_kwargs,
        "limit": out["config"].get("limit"),
        "bootstrap_iters": out["config"].get("bootstrap_iters"),
        "seeds": {
            name: out["config"].get(name)
            for name in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")
        },
        "batch_sizes": out["config"].get("batch_sizes"),
        "task_hashes": _per_leaf(out.get("task_hashes", {}), task, leaves),
    }
    directions = {name: bool(v) for leaf in leaves for name, v in out.get("higher_is_better", {}).get(leaf, {}).items()}
    samples = [_tagged(sample, leaf, len(leaves) > 1) for leaf in leaves for sample in out["samples"][leaf]]
    return ScoreResult(metrics=metrics, samples=samples, config=config, higher_is_better=directions)


def _per_leaf(table: dict[str, Any], task: str, leaves: list[str]) -> Any:
    """A task's entry of an lm-eval output table; for a group (which has none), its leaves'."""
    return table[task] if task in table else {leaf: table.get(leaf) for leaf in leaves}


def _shots(table: dict[str, Any], task: str, leaves: list[str]) -> Any:
    """The few-shot count; a group's, when all its leaves share one (else per leaf)."""
    shots = _per_leaf(table, task, leaves)
    if isinstance(shots, dict) and len(set(shots.values())) == 1:
        return next(iter(shots.values()))
    return shots


def _leaves(out: dict[str, Any], task: str) -> list[str]:
    """The tasks whose samples make up ``task``: itself, or a group's leaf tasks (recursively)."""
    children = out.get("group_subtasks", {}).get(task)
    if not children:
        return [task]
    return [leaf for child in children for leaf in _leaves(out, child)]


def _tagged(sample: dict[str, Any], leaf: str, several: bool) -> dict[str, Any]:
    """A group's samples carry their task, and item ids that stay unique across its tasks."""
    if not several:
        return sample
    return {**sample, "task": leaf, "doc_id": f"{leaf}/{sample['doc_id']}"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # lm-eval writes "N/A" for a stderr it did not compute
    value = float(value)
    return value if math.isfinite(value) else None
