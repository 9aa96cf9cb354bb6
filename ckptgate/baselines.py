"""Baselines: data files that record what a reference model scored, and how it was measured.

A baseline is a YAML file (``baselines/<name>.yaml``, or any path) holding one model's numbers,
as the fractions lm-eval reports (0.6861, not 68.61). Each entry serves one suite benchmark
and one lm-eval metric key (``metric,filter``). Entries are of three kinds (``use``):

* ``gate``: measured with lm-eval under recorded settings; a checkpoint may be compared with it.
* ``reference``: published by someone else with another harness (e.g. a technical report);
  shown for context, never gated, because prompts and scoring differ.
* ``misleading``: a number kept only to explain why it must not be used (e.g. a task whose
  scoring is known to under-count); never gated.

The settings that change a number (task, shots, chat template, context length, sample limit,
temperature) are recorded so that a comparison made under other settings can be refused rather
than reported as a regression. ``update_baseline`` writes measured values back into a file.
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ckptgate import atomicio
from ckptgate.errors import BaselineError
from ckptgate.resources import baselines_dir
from ckptgate.yamlfile import LineDict, check_keys, load_mapping, load_yaml, names_in, resolve_data_file

BASELINES_DIR = baselines_dir()

# Settings that change the number a benchmark reports: a baseline measured under other values
# of these is not comparable.
NUMBER_CHANGING = ("task", "num_fewshot", "apply_chat_template", "max_model_len", "limit", "temperature")

# Keys of `defaults` and of an entry's `settings`, in the order files are written.
SETTINGS_KEYS = (
    "harness",
    "harness_version",
    "backend",
    "dtype",
    "seed",
    "temperature",
    "max_model_len",
    "tensor_parallel_size",
    "gpu_memory_utilization",
    "apply_chat_template",
    "fewshot_as_multiturn",
    "limit",
    "batch_size",
)

# Keys of an entry, in the order files are written.
ENTRY_KEYS = (
    "benchmark",
    "task",
    "num_fewshot",
    "metric",
    "value",
    "n",
    "stderr",
    "source",
    "date",
    "use",
    "setting",
    "note",
    "settings",
)

USES = ("gate", "reference", "misleading")

_TOP_KEYS = ("model", "description", "defaults", "entries")
_ALWAYS_REQUIRED = {"benchmark", "metric", "value", "source", "date"}
# A reference number comes from another harness: it has no lm-eval task or sample count.
_REQUIRED_UNLESS_REFERENCE = {"task", "num_fewshot", "n"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class BaselineEntry:
    """One recorded number: a benchmark's metric for the baseline's model, and how it was got."""

    benchmark: str
    metric: str
    value: float
    n: int | None
    stderr: float | None
    source: str
    date: str
    use: str
    task: str | None
    num_fewshot: int | None
    settings: dict[str, Any]
    setting: str = ""
    note: str = ""
    line: int = 0

    @property
    def gating(self) -> bool:
        """Only numbers measured with lm-eval under recorded settings may gate a checkpoint."""
        return self.use == "gate"

    def recorded(self) -> dict[str, Any]:
        """The number-changing settings this entry records, in ``NUMBER_CHANGING`` order."""
        known = dict(self.settings)
        if self.task is not None:
            known["task"] = self.task
        if self.num_fewshot is not None:
            known["num_fewshot"] = self.num_fewshot
        return {key: known[key] for key in NUMBER_CHANGING if key in known}

    def conflicts(self, actual: dict[str, Any]) -> list[str]:
        """Human-readable differences for NUMBER_CHANGING keys recorded in the entry (task and
        num_fewshot come from the entry's own fields, the rest from settings) whose value differs
        from ``actual``.

        A key the entry does not record is not a conflict (see :meth:`unverified`), and neither
        is a recorded key that ``actual`` leaves out: there is nothing to compare it with.
        """
        return [
            f"{key}: baseline has {wanted!r}, this run has {actual[key]!r}"
            for key, wanted in self.recorded().items()
            if key in actual and not _same_setting(wanted, actual[key])
        ]

    def unverified(self, actual: dict[str, Any]) -> list[str]:
        """NUMBER_CHANGING keys present in ``actual`` but not recorded in the entry: the
        comparison cannot show that they match."""
        recorded = self.recorded()
        return [key for key in NUMBER_CHANGING if key in actual and key not in recorded]


@dataclass(frozen=True)
class Baseline:
    """A model's recorded numbers, from one baseline file."""

    name: str
    path: Path
    model: str
    description: str
    entries: tuple[BaselineEntry, ...]

    def find(self, benchmark: str, metric: str) -> BaselineEntry | None:
        for entry in self.entries:
            if entry.benchmark == benchmark and entry.metric == metric:
                return entry
        return None

    def for_benchmark(self, benchmark: str) -> list[BaselineEntry]:
        return [entry for entry in self.entries if entry.benchmark == benchmark]


@dataclass(frozen=True)
class Measured:
    """A number measured by ckptgate, as ``--update-baselines`` writes it."""

    benchmark: str
    task: str
    num_fewshot: int | None
    metric: str
    value: float
    n: int
    stderr: float | None
    settings: dict[str, Any]
    date: str
    source: str = "measured by ckptgate"


def available_baselines() -> list[str]:
    return names_in(BASELINES_DIR)


def resolve_baseline_path(name_or_path: str) -> Path:
    """A baseline name (``qwen3-1.7b-base``) or a path to a baseline file."""
    return resolve_data_file(name_or_path, BASELINES_DIR, "baseline", BaselineError)


def load_baseline(name_or_path: str) -> Baseline:
    return _parse(resolve_baseline_path(name_or_path))


# --- validation -------------------------------------------------------------------------------


def _fail(path: Path, line: int, message: str) -> NoReturn:
    raise BaselineError(f"{path}:{line}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse(path: Path) -> Baseline:
    data = load_mapping(
        path, what="the baseline", required={"model", "entries"}, optional={"description", "defaults"},
        error=BaselineError,
    )
    if not isinstance(data["model"], str) or not data["model"]:
        _fail(path, data.line_of("model"), "model must be a model name, e.g. Qwen/Qwen3-1.7B-Base")
    description = data.get("description", "")
    if not isinstance(description, str):
        _fail(path, data.line_of("description"), "description must be text")
    defaults = _settings(path, data, "defaults")
    raws = data["entries"]
    if not isinstance(raws, list) or not raws:
        _fail(path, data.line_of("entries"), "entries must be a non-empty list")
    entries = tuple(_entry(path, raw, defaults, data.line_of("entries")) for raw in raws)
    _reject_duplicates(path, entries)
    return Baseline(
        name=path.stem,
        path=path,
        model=data["model"],
        description=description,
        entries=entries,
    )


def _settings(path: Path, parent: LineDict, key: str) -> dict[str, Any]:
    """Validate a settings mapping (``defaults`` or an entry's ``settings``)."""
    raw = parent.get(key)
    if raw is None:
        return {}
    if not isinstance(raw, LineDict):
        _fail(path, parent.line_of(key), f"{key} must be a mapping of settings")
    check_keys(
        raw, path=path, what=key, required=set(), optional=set(SETTINGS_KEYS), error=BaselineError
    )
    for name, value in raw.items():
        if value is not None and not isinstance(value, (str, int, float, bool)):
            _fail(path, raw.line_of(name), f"setting {name!r} must be a single value, got {value!r}")
    return dict(raw)


def _entry(path: Path, raw: Any, defaults: dict[str, Any], list_line: int) -> BaselineEntry:
    if not isinstance(raw, LineDict):
        _fail(path, list_line, f"each entry must be a mapping, got {raw!r}")
    use = _use(path, raw)
    required = set(_ALWAYS_REQUIRED)
    if use != "reference":
        required |= _REQUIRED_UNLESS_REFERENCE
    check_keys(
        raw,
        path=path,
        what=f"entry {raw.get('benchmark', '?')!r}",
        required=required,
        optional=set(ENTRY_KEYS) - required,
        error=BaselineError,
    )
    overrides = _settings(path, raw, "settings")
    # A reference number was not measured under this file's lm-eval defaults: only its own
    # settings describe it.
    settings = overrides if use == "reference" else {**defaults, **overrides}
    return BaselineEntry(
        benchmark=_benchmark_id(path, raw),
        metric=_metric(path, raw),
        value=_value(path, raw),
        n=_n(path, raw),
        stderr=_stderr(path, raw),
        source=_text(path, raw, "source", required=True),
        date=_date(path, raw),
        use=use,
        task=_task(path, raw),
        num_fewshot=_num_fewshot(path, raw),
        settings=settings,
        setting=_text(path, raw, "setting"),
        note=_text(path, raw, "note"),
        line=raw.line,
    )


def _use(path: Path, raw: LineDict) -> str:
    use = raw.get("use", "gate")
    if use not in USES:
        _fail(path, raw.line_of("use"), f"use must be one of {', '.join(USES)}, got {use!r}")
    return str(use)


def _benchmark_id(path: Path, raw: LineDict) -> str:
    value = raw["benchmark"]
    if not isinstance(value, str) or not _ID.match(value):
        _fail(
            path,
            raw.line_of("benchmark"),
            f"benchmark {value!r} must be a suite benchmark id: letters, digits, '_', '.', '-'",
        )
    return value


def _metric(path: Path, raw: LineDict) -> str:
    value = raw["metric"]
    if not isinstance(value, str) or "," not in value:
        _fail(
            path,
            raw.line_of("metric"),
            f"metric {value!r} must be lm-eval's 'metric,filter' key, "
            f"e.g. 'exact_match,strict-match' or 'acc,none'",
        )
    return value


def _value(path: Path, raw: LineDict) -> float:
    value = raw["value"]
    if not _is_number(value) or not math.isfinite(value):
        _fail(path, raw.line_of("value"), f"value must be a number, got {value!r}")
    return float(value)


def _n(path: Path, raw: LineDict) -> int | None:
    value = raw.get("n")
    if value is None and raw.get("use") == "reference":
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        _fail(path, raw.line_of("n"), f"n must be a positive integer (samples scored), got {value!r}")
    return value


def _stderr(path: Path, raw: LineDict) -> float | None:
    value = raw.get("stderr")
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        _fail(path, raw.line_of("stderr"), f"stderr must be a number >= 0 or null, got {value!r}")
    return float(value)


def _text(path: Path, raw: LineDict, key: str, *, required: bool = False) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        _fail(path, raw.line_of(key), f"{key} must be {'non-empty ' if required else ''}text")
    return value


def _date(path: Path, raw: LineDict) -> str:
    value = raw["date"]
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, str) and _is_iso_date(value):
        return value
    _fail(path, raw.line_of("date"), f"date must be a date written YYYY-MM-DD, got {value!r}")


def _is_iso_date(text: str) -> bool:
    try:
        return bool(_DATE.match(text)) and bool(datetime.date.fromisoformat(text))
    except ValueError:
        return False


def _task(path: Path, raw: LineDict) -> str | None:
    value = raw.get("task")
    if value is None and raw.get("use") == "reference":
        return None
    if not isinstance(value, str) or not value:
        _fail(path, raw.line_of("task"), f"task must be an lm-eval task name, got {value!r}")
    return value


def _num_fewshot(path: Path, raw: LineDict) -> int | None:
    """``null`` is allowed and means the task's own default shot count."""
    value = raw.get("num_fewshot")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        _fail(path, raw.line_of("num_fewshot"), f"num_fewshot must be an integer >= 0, got {value!r}")
    return value


def _reject_duplicates(path: Path, entries: tuple[BaselineEntry, ...]) -> None:
    """Two numbers for one (benchmark, metric) would make a comparison ambiguous."""
    seen: dict[tuple[str, str], int] = {}
    for entry in entries:
        key = (entry.benchmark, entry.metric)
        if key in seen:
            _fail(
                path,
                entry.line,
                f"benchmark {entry.benchmark!r} metric {entry.metric!r} appears twice "
                f"(first at line {seen[key]})",
            )
        seen[key] = entry.line


def _same_setting(a: Any, b: Any) -> bool:
    """Equal after normalising how the value was written (``"4096"`` and ``4096``, ``0`` and
    ``0.0``), but without Python's ``True == 1``."""
    return _normalised(a) == _normalised(b)


def _normalised(value: Any) -> tuple[str, Any]:
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return ("str", value)
        if parsed is None or isinstance(parsed, (bool, int, float)):
            value = parsed
        else:
            return ("str", value)
    if value is None:
        return ("none", None)
    if isinstance(value, bool):
        return ("bool", value)
    if _is_number(value):
        return ("number", float(value))
    return ("other", value)


# --- writing ----------------------------------------------------------------------------------


def update_baseline(path: Path, measured: Sequence[Measured], *, model: str | None = None) -> str:
    """Write measured values into the baseline file (creating it, with ``model``, if missing)
    and return a unified diff of the change ('' if nothing changed).

    Existing (benchmark, metric) entries get value, n, stderr, source, date and settings
    replaced, and task and num_fewshot set to how the number was measured (their note/setting
    kept); new ones are appended. The leading comment block of the file is preserved; the rest is
    re-emitted in a stable, readable layout (keys in schema order, one entry per block, floats
    written with full precision), so a later update changes only the lines that changed. Written
    atomically (temp file in the same folder + os.replace), and only after the new text has been
    checked to load, so a failed update leaves the old file intact.
    """
    for item in measured:
        _check_measured(path, item)
    old_text = path.read_text(encoding="utf-8") if path.exists() else ""
    if old_text:
        doc = _plain_document(path)
        header = _leading_comments(old_text)
    else:
        if model is None:
            raise BaselineError(f"{path} does not exist; give the model name to create it")
        doc = {"model": model, "entries": []}
        header = _new_header(model)
    if model is not None and doc["model"] != model:
        raise BaselineError(
            f"{path} is the baseline of {doc['model']!r}, not of {model!r}; "
            f"choose the baseline file of the model that was measured"
        )
    for item in measured:
        _merge(doc["entries"], item)
    new_text = header + _emit(doc)
    if new_text == old_text:
        return ""
    atomicio.write_text(path, new_text, check=_parse)  # re-read before it replaces the file
    return _diff(path, old_text, new_text)


def _check_measured(path: Path, item: Measured) -> None:
    if not _is_iso_date(item.date):
        raise BaselineError(
            f"cannot write {item.benchmark!r} into {path}: date {item.date!r} is not YYYY-MM-DD"
        )
    unknown = sorted(set(item.settings) - set(SETTINGS_KEYS))
    if unknown:
        raise BaselineError(
            f"cannot write {item.benchmark!r} into {path}: unknown setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(SETTINGS_KEYS)}"
        )


def _plain_document(path: Path) -> dict[str, Any]:
    """The file's content as plain, schema-ordered data (validated first)."""
    _parse(path)
    data = load_yaml(path, BaselineError)
    doc: dict[str, Any] = {key: data[key] for key in _TOP_KEYS if key in data}
    if "defaults" in doc:
        doc["defaults"] = _ordered_settings(doc["defaults"])
    doc["entries"] = [_ordered_entry(dict(raw)) for raw in data["entries"]]
    return doc


def _ordered_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    settings = settings or {}
    return {key: settings[key] for key in SETTINGS_KEYS if key in settings}


def _ordered_entry(raw: dict[str, Any]) -> dict[str, Any]:
    entry = {key: raw[key] for key in ENTRY_KEYS if key in raw}
    if "settings" in entry:
        entry["settings"] = _ordered_settings(entry["settings"])
    if isinstance(entry.get("date"), str):
        entry["date"] = datetime.date.fromisoformat(entry["date"])
    return entry


def _merge(entries: list[dict[str, Any]], item: Measured) -> None:
    fresh = {
        "benchmark": item.benchmark,
        "task": item.task,
        "num_fewshot": item.num_fewshot,
        "metric": item.metric,
        "value": float(item.value),
        "n": item.n,
        "stderr": None if item.stderr is None else float(item.stderr),
        "source": item.source,
        "date": item.date,
        "settings": item.settings,
    }
    for index, entry in enumerate(entries):
        if entry["benchmark"] == item.benchmark and entry["metric"] == item.metric:
            entries[index] = _ordered_entry({**entry, **fresh})
            return
    entries.append(_ordered_entry(fresh))


def _leading_comments(text: str) -> str:
    """The comment block (and blank lines) at the top of a file, kept verbatim on rewrite."""
    kept = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        kept.append(line)
    return "".join(kept)


def _new_header(model: str) -> str:
    return (
        f"# Baseline numbers for {model}, as lm-eval reports them (fractions 0-1).\n"
        f"# Written by ckptgate --update-baselines.\n\n"
    )


class _Dumper(yaml.SafeDumper):
    """Indents list items under their key, which reads better than PyYAML's default."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _dump(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def _emit(doc: dict[str, Any]) -> str:
    """The body of a baseline file: top-level keys, then one block per entry."""
    top = {key: doc[key] for key in _TOP_KEYS if key in doc and key != "entries"}
    blocks = [textwrap.indent(_dump([entry]), "  ") for entry in doc["entries"]]
    return _dump(top) + "\nentries:\n" + "\n".join(blocks)


def _diff(path: Path, old: str, new: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=str(path) if old else "/dev/null",
            tofile=str(path),
        )
    )


def run_settings(config: dict[str, Any], backend: dict[str, Any]) -> dict[str, Any]:
    """The settings that shaped one benchmark's numbers, as a baseline records them: from the
    scorer's config (shots, generation settings, chat template, ``--limit``) and the backend's
    load settings. Used both to compare a run with a baseline and to write one."""
    gen = config.get("gen_kwargs") or {}
    return {
        "num_fewshot": config.get("num_fewshot"),
        "backend": backend.get("backend"),
        "dtype": backend.get("dtype"),
        "seed": backend.get("seed"),
        "temperature": gen.get("temperature"),
        "max_model_len": backend.get("max_model_len"),
        "tensor_parallel_size": backend.get("tensor_parallel_size"),
        "apply_chat_template": bool(config.get("apply_chat_template", False)),
        "limit": config.get("limit"),
        "batch_size": backend.get("batch_size"),
    }


def measured_from_record(record: dict[str, Any]) -> list[Measured]:
    """The declared metrics of one stored benchmark record (see ckptgate.results), as
    ``--update-baselines`` writes them, with the settings that shaped the numbers."""
    config = record.get("config", {})
    measured = run_settings(config, record.get("backend", {}))
    settings = {
        "harness": "lm-eval",
        "harness_version": record["provenance"]["versions"].get("lm_eval"),
        **{key: value for key, value in measured.items() if key in SETTINGS_KEYS},
    }
    bench = record["benchmark"]
    return [
        Measured(
            benchmark=bench["id"],
            task=bench["task"],
            num_fewshot=config.get("num_fewshot"),
            metric=key,
            value=metric["value"],
            n=metric["n"],
            stderr=metric["stderr"] if metric["stderr"] is not None else metric.get("stderr_derived"),
            settings={k: v for k, v in settings.items() if v is not None},
            date=record["date"][:10],
        )
        for key, metric in record["metrics"].items()
        if key in {m["key"] for m in bench["metrics"]} and metric["value"] is not None
    ]
