"""Scorer for lm-evaluation-harness tasks: one ``simple_evaluate`` call on a pre-loaded model.

Metrics, filters and stderr are lm-eval's own; this module only selects the task, passes the
mandated seeds and settings, and reshapes the output.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ckptgate.atomicio import publish_dir
from ckptgate.cache import cache_root, files_digest
from ckptgate.errors import SuiteError
from ckptgate.hubdata import Snapshot, is_hub_dataset
from ckptgate.scores import SEED, LoadedModel, MetricValue, ScoreResult
from scorers.code_programs import sandbox_record
from scorers.lm_eval_speedups import install_template_cache
from scorers.nltk_data import ensure_punkt_tab, needs_punkt_tab
from scorers.packaged_data import packaged_files
from scorers.task_index import TaskIndex, load_or_build

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

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


Index = Union["TaskManager", TaskIndex]
"""What reads the task index: lm-eval's manager, or the part of it kept between runs."""


@functools.cache
def _task_index(task_paths: tuple[Path, ...], include_defaults: bool, names: tuple[str, ...]) -> Index:
    index = load_or_build(task_paths, include_defaults, names, lambda: task_manager(task_paths, include_defaults),
                          task_yamls)
    return task_manager(task_paths, include_defaults) if index is None else index


def suite_task_index(suite: Suite, extra: Iterable[str] = ()) -> Index:
    """The suite's tasks (and ``extra`` names: local data folders) as lm-eval indexes them,
    without building a ``TaskManager`` when a stored snapshot is still valid (see
    :mod:`scorers.task_index`): what a run needs before loading any task."""
    names = tuple(sorted({b.task for b in suite.benchmarks} | set(extra)))
    return _task_index(suite.task_paths, suite.include_default_tasks, names)


def yamls_of(index: Index, task: str) -> list[Path]:
    """:func:`task_yamls`, from the snapshot when it holds them."""
    if isinstance(index, TaskIndex) and task in index.yamls:
        return index.yamls[task]
    return task_yamls(index, task)  # type: ignore[arg-type]


class LmEvalTaskScorer:
    """Runs a benchmark's lm-eval task through ``lm_eval.simple_evaluate``.

    ``datasets`` is an optional folder of local dataset copies, ``<datasets>/<task>/<split>.jsonl``
    in the dataset's own schema: such a task reads them instead of its hub dataset (air-gapped
    clusters; the project's own tests run the real task definitions on small fixtures this way).
    ``snapshots`` are hub dataset repositories fetched by ``ckptgate prefill`` (repo -> snapshot):
    tasks reading one read its snapshot folder, and record its revision and hash.
    """

    def __init__(self, datasets: Path | None = None, snapshots: dict[str, Snapshot] | None = None,
                 other_data: frozenset[str] = frozenset()) -> None:
        self.datasets = datasets
        self.snapshots = snapshots or {}
        self.other_data = other_data  # --datasets folders that belong to other scorers (perplexity slices)

    def index(self, suite: Suite) -> Index:
        """The suite's task index, with the local data folders' names (each must name a task)."""
        return suite_task_index(suite, self._local_names())

    def _local_names(self) -> list[str]:
        if self.datasets is None:
            return []
        return [p.name for p in self.datasets.iterdir() if p.is_dir() and p.name not in self.other_data]

    def check(self, suite: Suite) -> None:
        base = self.index(suite)
        known = set(base.all_tasks)
        if self.datasets is not None:
            _local_overrides(base, self.datasets, self.other_data)  # every local data folder names a task
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
        session: LoadedModel,
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
        base, manager = self.index(suite), self.task_manager(suite)
        prepared = [_prepare(manager, bench, self.local_data(bench.task, base), self.hub_data(bench.task, base))
                    for bench in benchmarks]
        scores: dict[str, ScoreResult] = {}
        for batch in _batches(prepared):
            scores |= _evaluate(session, manager, batch, limit)
        return scores

    def task_manager(self, suite: Suite) -> TaskManager:
        """The suite's tasks; with local data or prefetched snapshots, plus same-named task YAMLs
        that read them, indexed after lm-eval's own so they replace them (also as members of
        lm-eval's groups). Local data (--datasets) wins over a snapshot, a snapshot over the
        copy a pip package ships."""
        base = self.index(suite)
        configs = {}
        for repo, leaves in self.hub_repos(suite).items():
            snapshot, files = self.snapshots.get(repo), self._packaged(repo)
            for leaf in leaves:
                if base.task_index[leaf].yaml_path is None:
                    continue  # defined in Python: nothing to include
                if snapshot is not None:
                    configs[leaf] = _override(base, leaf, dataset_path=str(snapshot.path))
                elif files:
                    configs[leaf] = _override(base, leaf, **_dataset_override(files))
        if self.datasets is not None:
            configs |= _local_overrides(base, self.datasets, self.other_data)
        if not configs:
            return suite_task_manager(suite)
        return task_manager(suite.task_paths + (_override_dir(configs),), suite.include_default_tasks)

    def local_data(self, task: str, base: Index) -> LocalData | None:
        """Local split files (task -> split -> file) for ``task`` and, for a group, its members:
        given with --datasets or shipped by a pip package; None when the task reads a hub dataset."""
        found = {}
        for name in dict.fromkeys([task, *leaf_tasks(base, task)]):
            folder = self._local_dir(name)
            files = _splits(folder) if folder is not None else self._packaged(_repo(base, name))
            if files:
                found[name] = files
        return found or None

    def hub_repos(self, suite: Suite, benchmarks: Sequence[Benchmark] | None = None) -> dict[str, list[str]]:
        """Hub dataset repositories the benchmarks read, each with the lm-eval tasks reading it;
        tasks given local data with --datasets read none."""
        base = self.index(suite)
        repos: dict[str, list[str]] = {}
        for bench in suite.benchmarks if benchmarks is None else benchmarks:
            for leaf in leaf_tasks(base, bench.task):
                repo = _repo(base, leaf)
                if self._local_dir(leaf) is None and repo is not None and leaf not in repos.get(repo, []):
                    repos.setdefault(repo, []).append(leaf)
        return repos

    def hub_data(self, task: str, base: Index) -> dict[str, Any] | None:
        """The prefetched snapshots ``task`` (or its group's members) reads: repo -> record.
        ``base`` is the suite's own task manager (tasks as lm-eval registers them)."""
        used = {}
        for leaf in leaf_tasks(base, task):
            repo = _repo(base, leaf)
            if self._local_dir(leaf) is None and repo in self.snapshots:
                used[repo] = self.snapshots[repo].record()
        return used or None

    def _local_dir(self, task: str) -> Path | None:
        """The --datasets folder holding ``task``'s split files, if there is one."""
        folder = None if self.datasets is None else self.datasets / task
        return folder if folder is not None and folder.is_dir() else None

    def _packaged(self, repo: str | None) -> dict[str, Path] | None:
        """A pip package's copy of ``repo`` (split -> file), when no snapshot was fetched."""
        return packaged_files(repo) if repo is not None and repo not in self.snapshots else None

    def data_digest(self, task: str, base: Index) -> str | None:
        """What the task reads instead of the hub's current data (local files, prefetched
        snapshots), as one digest: part of the bridge-record cache key."""
        local = local_data_digest(self.local_data(task, base))
        hub = self.hub_data(task, base)
        if hub is None:
            return local
        parts = [local or ""] + [f"{repo}@{record['sha256']}" for repo, record in sorted(hub.items())]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


LocalData = dict[str, dict[str, Path]]


def _splits(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.glob("*.jsonl"))}


def _repo(base: Index, task: str) -> str | None:
    """The hub dataset repository lm-eval task ``task`` reads; None for local or generated data."""
    entry = base.task_index.get(task)
    path = None if entry is None else (entry.cfg or {}).get("dataset_path")
    return path if is_hub_dataset(path) else None


def leaf_tasks(manager: Index, name: str) -> list[str]:
    """The lm-eval tasks ``name`` runs: itself, or a group's or tag's members, recursively (from
    the task index: nothing is loaded, no dataset is touched)."""
    entry = manager.task_index.get(name)
    if entry is None:
        return []
    kind = entry.kind.name
    if kind == "TAG":
        members = sorted(other for other, e in manager.task_index.items() if name in e.tags)
    elif kind == "GROUP":
        members = [m for m in (entry.cfg or {}).get("task", []) if isinstance(m, str)]
    else:
        return [name]
    return [leaf for member in members for leaf in leaf_tasks(manager, member)]


def load_task(manager: TaskManager, name: str) -> dict[str, Any]:
    """``manager.load(name)``, with the local resources the task's code needs put in place first
    (IFEval's checkers download NLTK's punkt_tab on import when NLTK cannot find it).

    Python's random is seeded first, as ``lm_eval --seed 42 --tasks NAME`` seeds it before it
    loads tasks: some tasks draw from it while preparing documents (GPQA shuffles each question's
    choices), and those draws must not depend on what was loaded before."""
    if needs_punkt_tab(task_yamls(manager, name)):
        ensure_punkt_tab()
    random.seed(SEED)
    return manager.load(name)


def task_yamls(manager: TaskManager, task: str) -> list[Path]:
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
    for member in leaf_tasks(manager, task):
        if member != task:
            found.extend(task_yamls(manager, member))
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
    members: dict[str, Any]  # the leaf tasks it runs: name -> lm-eval Task (itself, or a group's)
    gen_kwargs: dict[str, Any]
    dataset: dict[str, Any] | None = None  # local data used instead of the task's dataset
    hub: dict[str, Any] | None = None  # prefetched hub snapshots read: repo -> revision, sha256
    subset: Subset | None = None  # the documents drawn when the benchmark scores a subset

    @property
    def leaves(self) -> frozenset[str]:
        return frozenset(self.members)


@dataclass(frozen=True)
class Subset:
    """A deterministic random subset of a task's documents; for a group, a stratified one.

    Each member task contributes in proportion to its size (largest remainders, at least one
    document each: lm-eval cannot run a member with none), its documents shuffled with the run's
    seed and the first ones taken. ``--limit N`` takes the first N of each member's draw, as it
    takes the first N documents of each member of a group without a subset, so a limited run
    scores documents the full run scores.
    """

    size: int  # documents requested
    of: int  # documents the task has
    drawn: dict[str, tuple[int, ...]]  # member task -> its drawn document indices, in draw order

    @classmethod
    def draw(cls, sizes: dict[str, int], size: int) -> Subset:
        total = sum(sizes.values())
        quotas = _quotas(sizes, min(size, total))
        rng = random.Random(SEED)
        drawn = {}
        for leaf in sorted(sizes):
            order = list(range(sizes[leaf]))
            rng.shuffle(order)
            drawn[leaf] = tuple(order[:quotas[leaf]])
        return cls(size, total, drawn)

    def indices(self, limit: int | None) -> dict[str, list[int]]:
        """Each member task's drawn document indices, ascending (lm-eval's order)."""
        return {leaf: sorted(order[:limit]) for leaf, order in self.drawn.items() if order}

    def record(self, limit: int | None) -> dict[str, Any]:
        chosen = self.indices(limit)
        return {"size": sum(map(len, chosen.values())), "requested": self.size, "of": self.of,
                "seed": SEED, "doc_ids": chosen}


def _quotas(sizes: dict[str, int], size: int) -> dict[str, int]:
    """``size`` documents shared among tasks in proportion to their sizes (largest remainders),
    at least one for every task that has documents."""
    total = sum(sizes.values())
    members = [leaf for leaf in sorted(sizes) if sizes[leaf] > 0]
    if size < len(members):
        raise SuiteError(f"a subset of {size} documents cannot cover the group's {len(members)} tasks "
                         "(each needs at least one): ask for a larger subset")
    if size >= total:
        return dict(sizes)
    exact = {leaf: size * sizes[leaf] / total for leaf in members}
    quotas = {leaf: 0 for leaf in sizes} | {leaf: max(1, math.floor(exact[leaf])) for leaf in members}
    while sum(quotas.values()) < size:  # hand out what flooring left, largest remainder first
        leaf = max((leaf for leaf in members if quotas[leaf] < sizes[leaf]), key=lambda leaf: exact[leaf] - quotas[leaf])
        quotas[leaf] += 1
    while sum(quotas.values()) > size:  # the minimum of one overshot: take back where most over
        leaf = max((leaf for leaf in members if quotas[leaf] > 1), key=lambda leaf: quotas[leaf] - exact[leaf])
        quotas[leaf] -= 1
    return quotas


def _prepare(manager: TaskManager, bench: Benchmark, local: LocalData | None = None,
             hub: dict[str, Any] | None = None) -> _Prepared:
    """Load and configure ``bench``'s task; ``local`` and ``hub`` are the data it reads (recorded)."""
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
    subset = None
    if bench.subset is not None:
        subset = Subset.draw({name: len(leaf.eval_docs) for name, leaf in loaded["tasks"].items()}, bench.subset)
    return _Prepared(bench, task, dict(loaded["tasks"]), gen_kwargs, dataset, hub, subset)


def _local_overrides(base: Index, datasets: Path, skip: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """One task config per local data folder (except those named in ``skip``), reading the
    folder's split files."""
    configs = {}
    for folder in sorted(p for p in datasets.iterdir() if p.is_dir() and p.name not in skip):
        entry = base.task_index.get(folder.name)
        if entry is None or entry.yaml_path is None or folder.name in base.all_groups:
            raise SuiteError(f"{folder}: local data folders are named after lm-eval tasks defined by a YAML "
                             f"file; {folder.name!r} is not one (for a group, give each member task's data)")
        configs[folder.name] = _override(base, folder.name, **_dataset_override(_splits(folder)))
    return configs


def _override(base: Index, task: str, **fields: Any) -> dict[str, Any]:
    """A task config that ``include``s the registered ``task`` and replaces some of its fields
    (where its data comes from); same name, so it replaces the registered task."""
    return {"include": str(base.task_index[task].yaml_path), "task": task, **fields}


def _override_dir(overrides: dict[str, dict[str, Any]]) -> Path:
    """Write the task configs as YAML files into a cache folder keyed by their content; returns it."""
    import yaml

    configs = {name: yaml.safe_dump(config, sort_keys=False) for name, config in overrides.items()}
    key = hashlib.sha256(repr(sorted(configs.items())).encode()).hexdigest()[:16]
    target = cache_root() / "local-tasks" / key
    if target.is_dir():
        return target

    def fill(folder: Path) -> None:
        for name, text in configs.items():
            (folder / f"{name}.yaml").write_text(text, encoding="utf-8")

    return publish_dir(target, fill)


def _dataset_override(files: dict[str, Path]) -> dict[str, Any]:
    # The json loader types each column from the first file it reads; a test split may leave a
    # column empty (MGSM's test questions have no worked answer), so it is read last.
    ordered = sorted(files.items(), key=lambda item: item[0] == "test")
    return {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path) for split, path in ordered}},
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
    """Greedy partition into calls whose task names and leaf tasks do not overlap, and whose
    benchmarks agree on the chat template (one setting per ``simple_evaluate`` call)."""
    batches: list[tuple[set[str], list[_Prepared]]] = []
    for item in prepared:
        names = item.leaves | {item.benchmark.task}
        for used, batch in batches:
            if used.isdisjoint(names) and batch[0].benchmark.chat_template == item.benchmark.chat_template:
                used.update(names)
                batch.append(item)
                break
        else:
            batches.append((set(names), [item]))
    return [batch for _, batch in batches]


def _evaluate(
    session: LoadedModel, manager: TaskManager, batch: list[_Prepared], limit: int | None
) -> dict[str, ScoreResult]:
    from lm_eval import simple_evaluate

    chosen = _chosen_documents(batch, limit)
    chat = batch[0].benchmark.chat_template
    out = simple_evaluate(
        model=session.lm,
        apply_chat_template=chat,  # few-shot examples as turns: lm-eval's default
        tasks=[item.task for item in batch],
        task_manager=manager,  # pre-built task objects; without it lm-eval re-indexes its task tree
        limit=None if chosen is not None else limit,
        samples=None if chosen is None else {leaf: _FastMembership(ids) for leaf, ids in chosen.items()},
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
        limits = _generation_limits(out, item.benchmark.task, session.lm)
        if limits:
            scores[item.benchmark.id].config["truncated_generations"] = truncated_generations(
                session.lm, scores[item.benchmark.id].samples, limits)
        if item.dataset is not None:
            scores[item.benchmark.id].config["local_dataset"] = item.dataset
        if item.hub is not None:
            scores[item.benchmark.id].config["hub_datasets"] = item.hub
        if item.subset is not None:
            scores[item.benchmark.id].config["subset"] = item.subset.record(limit)
        if chat:
            scores[item.benchmark.id].config["chat_template"] = _template_record(session.lm)
        sandboxed = [r for leaf in _leaves(out, item.benchmark.task) if (r := sandbox_record(leaf)) is not None]
        if sandboxed:  # verdict counts, isolation layers and limits of the code it ran
            scores[item.benchmark.id].config["sandbox"] = sandboxed[0] if len(sandboxed) == 1 else sandboxed
        if item.benchmark.gold_logprob:
            task_config = out["configs"].get(item.benchmark.task) or out["configs"][_leaves(out, item.benchmark.task)[0]]
            delimiter = str(task_config.get("target_delimiter", " "))
            add_gold_logprobs(session.lm, scores[item.benchmark.id], delimiter)
    return scores


def _template_record(lm: Any) -> dict[str, Any]:
    """The chat template the prompts were rendered with (its hash: a setting that changes numbers)."""
    template = lm.chat_template(True)
    return {"applied": True, "sha256": hashlib.sha256(str(template).encode()).hexdigest() if template else None}


def _chosen_documents(batch: list[_Prepared], limit: int | None) -> dict[str, list[int]] | None:
    """The documents each leaf task scores when some benchmark of the batch scores a subset
    (lm-eval takes either a document list per task or one ``limit``, not both): the subset's
    draw, and under ``--limit`` the first ``limit`` documents of the other tasks. None: no subset."""
    if all(item.subset is None for item in batch):
        return None
    chosen: dict[str, list[int]] = {}
    for item in batch:
        if item.subset is not None:
            chosen |= item.subset.indices(limit)
        elif limit is not None:
            for name, leaf in item.members.items():
                chosen[name] = list(range(min(limit, len(leaf.eval_docs))))
    return chosen


class _FastMembership(list):  # type: ignore[type-arg]
    """A document list lm-eval tests membership in once per document: a set makes that O(1)
    (12,000 of 40,000 HellaSwag documents would otherwise cost 480 million comparisons). The
    list is ascending: lm-eval maps its k-th chosen document back to ``ids[k]`` in the records."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__(ids)
        self._members = frozenset(ids)

    def __contains__(self, item: object) -> bool:
        return item in self._members


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


# Re-encoding a decoded generation can merge or split a token or two at the edges.
TRUNCATION_TOLERANCE = 2


def _generation_limits(out: dict[str, Any], task: str, lm: Any) -> dict[str, int]:
    """max_gen_toks per generate_until leaf task (lm-eval's model default where the task sets none)."""
    limits = {}
    for leaf in _leaves(out, task):
        config = out["configs"].get(leaf, {})
        if config.get("output_type") == "generate_until":
            gen = config.get("generation_kwargs") or {}
            limits[leaf] = int(gen.get("max_gen_toks", getattr(lm, "max_gen_toks", 256)))
    return limits


def truncated_generations(lm: Any, samples: list[dict[str, Any]], limits: dict[str, int]) -> dict[str, Any]:
    """How many generations ran into max_gen_toks (cut off, not stopped by a stop sequence or
    EOS): a benchmark whose generations are cut off measures the length limit, not the model."""
    only = next(iter(limits)) if len(limits) == 1 else None  # a single task's samples carry no task name
    cut: dict[tuple[Any, Any], bool] = {}  # per document: lm-eval keeps one sample per filter
    for index, sample in enumerate(samples):
        task = sample.get("task", only)
        limit = limits.get(task)
        if limit is None:
            continue
        text = sample["resps"][0][0] if sample.get("resps") else ""
        cut[(task, sample.get("doc_id", index))] = len(lm.tok_encode(str(text))) >= limit - TRUNCATION_TOLERANCE
    return {"count": sum(cut.values()), "of": len(cut), "max_gen_toks": sorted(set(limits.values()))}


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
