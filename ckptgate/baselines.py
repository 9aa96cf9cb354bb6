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
than reported as a regression. :mod:`ckptgate.baseline_update` writes measured values back into a file.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

import yaml
from pydantic import BeforeValidator, Field, model_validator

from ckptgate.errors import BaselineError
from ckptgate.resources import baselines_dir
from ckptgate.yamlfile import ID, Invalid, Message, Model, load_model, resolve_data_file, rule

BASELINES_DIR = baselines_dir()

# Settings that change the number a benchmark reports: a baseline measured under other values
# of these is not comparable.
NUMBER_CHANGING = ("task", "num_fewshot", "apply_chat_template", "max_model_len", "limit", "temperature")

USES = ("gate", "reference", "misleading")

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# --- the file's schema ------------------------------------------------------------------------

Setting = Annotated[str | int | float | bool | None, Message("setting {name!r} must be a single value, got {value!r}")]


class _Settings(Model):
    """``defaults`` and an entry's ``settings``; the keys in the order files are written."""

    harness: Setting = None
    harness_version: Setting = None
    backend: Setting = None
    dtype: Setting = None
    seed: Setting = None
    temperature: Setting = None
    max_model_len: Setting = None
    tensor_parallel_size: Setting = None
    gpu_memory_utilization: Setting = None
    apply_chat_template: Setting = None
    fewshot_as_multiturn: Setting = None
    limit: Setting = None
    batch_size: Setting = None


SettingsMap = Annotated[_Settings | None, Message("{name} must be a mapping of settings")]


def _iso_date(value: Any) -> Any:
    """A date YAML read as one, as the text YYYY-MM-DD (a time of day is not a date)."""
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def is_iso_date(text: str) -> bool:
    try:
        return bool(_DATE.match(text)) and bool(datetime.date.fromisoformat(text))
    except ValueError:
        return False


_N = "n must be a positive integer (samples scored), got {value!r}"
_TASK = "task must be an lm-eval task name, got {value!r}"


class _Entry(Model):
    """An entry; the keys in the order files are written."""

    what: ClassVar[str | None] = "entry {benchmark!r}"
    not_a_mapping: ClassVar[str] = "each entry must be a mapping, got {value!r}"

    benchmark: Annotated[str, rule(ID.match), Message(
        "benchmark {value!r} must be a suite benchmark id: letters, digits, '_', '.', '-'")]
    task: Annotated[str | None, rule(lambda task: task is None or task), Message(_TASK)] = None
    num_fewshot: Annotated[int | None, rule(lambda n: n is None or n >= 0),
                           Message("num_fewshot must be an integer >= 0, got {value!r}")] = None  # null: the task's default
    metric: Annotated[str, rule(lambda metric: "," in metric), Message(
        "metric {value!r} must be lm-eval's 'metric,filter' key, e.g. 'exact_match,strict-match' or 'acc,none'")]
    value: Annotated[float, rule(math.isfinite), Message("value must be a number, got {value!r}")]
    n: Annotated[int | None, rule(lambda n: n is None or n > 0), Message(_N)] = None
    stderr: Annotated[Annotated[float, Field(ge=0, allow_inf_nan=False)] | None,
                      Message("stderr must be a number >= 0 or null, got {value!r}")] = None
    source: Annotated[str, rule(str.strip), Message("source must be non-empty text")]
    date: Annotated[str, BeforeValidator(_iso_date), rule(is_iso_date),
                    Message("date must be a date written YYYY-MM-DD, got {value!r}")]
    use: Annotated[Literal[USES], Message(f"use must be one of {', '.join(USES)}, got {{value!r}}")] = "gate"
    setting: Annotated[str, Message("setting must be text")] = ""
    note: Annotated[str, Message("note must be text")] = ""
    settings: SettingsMap = None

    @model_validator(mode="before")
    @classmethod
    def _required(cls, raw: Any) -> Any:
        """All keys missing, in one message, before any value is checked. Only a reference number
        (from another harness) may lack an lm-eval task, shots and n."""
        if not isinstance(raw, dict) or not raw.keys() <= cls.model_fields.keys() or raw.get("use", "gate") not in USES:
            return raw  # an unknown key or use comes first
        required = {name for name, info in cls.model_fields.items() if info.is_required()}
        if raw.get("use") != "reference":
            required |= {"task", "num_fewshot", "n"}
        missing = sorted(required - raw.keys())
        if missing:
            raise Invalid(f"entry {raw.get('benchmark', '?')!r} is missing {', '.join(missing)}")
        return raw

    @model_validator(mode="after")
    def _measured(self) -> Self:
        if self.use != "reference" and self.task is None:
            raise Invalid(_TASK.format(value=None), "task")
        if self.use != "reference" and self.n is None:
            raise Invalid(_N.format(value=None), "n")
        return self


class _BaselineFile(Model):
    what: ClassVar[str | None] = "the baseline"

    model: Annotated[str, rule(bool), Message("model must be a model name, e.g. Qwen/Qwen3-1.7B-Base")]
    description: Annotated[str, Message("description must be text")] = ""
    defaults: SettingsMap = None
    entries: Annotated[list[_Entry], rule(bool), Message("entries must be a non-empty list")]


# Keys of `defaults` and of an entry's `settings`, and of an entry, in the order files are written.
SETTINGS_KEYS = tuple(_Settings.model_fields)
ENTRY_KEYS = tuple(_Entry.model_fields)


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


def resolve_baseline_path(name_or_path: str) -> Path:
    """A baseline name (``qwen3-1.7b-base``) or a path to a baseline file."""
    return resolve_data_file(name_or_path, BASELINES_DIR, "baseline", BaselineError)


def load_baseline(name_or_path: str) -> Baseline:
    return parse_file(resolve_baseline_path(name_or_path))


def parse_file(path: Path) -> Baseline:
    spec, data = load_model(path, _BaselineFile, BaselineError)
    defaults = _settings(spec.defaults)
    entries = tuple(
        BaselineEntry(
            **entry.model_dump(exclude={"settings"}),
            # A reference number was not measured under this file's lm-eval defaults: only its
            # own settings describe it.
            settings=_settings(entry.settings) if entry.use == "reference" else {**defaults, **_settings(entry.settings)},
            line=raw.line,
        )
        for entry, raw in zip(spec.entries, data["entries"])
    )
    seen: dict[tuple[str, str], int] = {}
    for entry in entries:  # two numbers for one (benchmark, metric) would make a comparison ambiguous
        key = (entry.benchmark, entry.metric)
        if key in seen:
            raise BaselineError(f"{path}:{entry.line}: benchmark {entry.benchmark!r} metric {entry.metric!r} "
                                f"appears twice (first at line {seen[key]})")
        seen[key] = entry.line
    return Baseline(name=path.stem, path=path, model=spec.model, description=spec.description, entries=entries)


def _settings(settings: _Settings | None) -> dict[str, Any]:
    return {} if settings is None else settings.model_dump(exclude_unset=True)


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
    if isinstance(value, (int, float)):
        return ("number", float(value))
    return ("other", value)


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
