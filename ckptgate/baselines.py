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
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

import ruamel.yaml
import yaml
from pydantic import BeforeValidator, Field, model_validator
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.emitter import Emitter
from ruamel.yaml.error import CommentMark
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import SingleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from ckptgate import atomicio
from ckptgate.errors import BaselineError
from ckptgate.resources import baselines_dir
from ckptgate.yamlfile import ID, Invalid, Message, Model, load_model, load_yaml, resolve_data_file, rule

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


def _is_iso_date(text: str) -> bool:
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
    date: Annotated[str, BeforeValidator(_iso_date), rule(_is_iso_date),
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


def resolve_baseline_path(name_or_path: str) -> Path:
    """A baseline name (``qwen3-1.7b-base``) or a path to a baseline file."""
    return resolve_data_file(name_or_path, BASELINES_DIR, "baseline", BaselineError)


def load_baseline(name_or_path: str) -> Baseline:
    return _parse(resolve_baseline_path(name_or_path))


def _parse(path: Path) -> Baseline:
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


# --- writing ----------------------------------------------------------------------------------

_PYYAML = yaml.resolver.Resolver()  # how the gate reads the files
_WIDTH = 100  # the width text is folded at


def update_baseline(path: Path, measured: Sequence[Measured], *, model: str | None = None) -> str:
    """Write measured values into the baseline file (creating it, with ``model``, if missing)
    and return a unified diff of the change ('' if nothing changed).

    Existing (benchmark, metric) entries get value, n, stderr, source, date and settings
    replaced, and task and num_fewshot set to how the number was measured (their note/setting
    kept); new ones are appended. The file is edited in round-trip mode: every comment, the order
    of keys and entries and the text of every value not replaced survive; a changed value is
    replaced in place, a key an entry lacks goes where the schema orders it. Written atomically
    (temp file in the same folder + os.replace), and only after the new text has been checked to
    load, so a failed update leaves the old file intact.
    """
    for item in measured:
        _check_measured(path, item)
    old_text = path.read_text(encoding="utf-8") if path.exists() else ""
    if old_text:
        baseline = _parse(path)  # a malformed file fails with its line before anything is written
        if model is not None and baseline.model != model:
            raise BaselineError(
                f"{path} is the baseline of {baseline.model!r}, not of {model!r}; "
                f"choose the baseline file of the model that was measured"
            )
        keys = [(entry.benchmark, entry.metric) for entry in baseline.entries]
        # The entries as PyYAML reads them (as the gate does), to tell which values change.
        read: list[dict[str, Any]] = list(load_yaml(path, BaselineError)["entries"])
        text = old_text
    else:
        if model is None:
            raise BaselineError(f"{path} does not exist; give the model name to create it")
        keys, read = [], []
        text = (f"# Baseline numbers for {model}, as lm-eval reports them (fractions 0-1).\n"
                f"# Written by ckptgate --update-baselines.\n\nmodel: m\n\nentries: []\n")
    editor = _editor()
    try:
        doc = editor.load(text)
    except ruamel.yaml.YAMLError as exc:  # e.g. a key written twice: PyYAML reads the last, ruamel edits the first
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise BaselineError(f"{where}: cannot edit the file: {getattr(exc, 'problem', exc)}") from None
    if not old_text:
        doc["model"], doc["entries"] = _scalar(model), CommentedSeq()
    entries = doc["entries"]
    trailing = _lift_trailing(entries[-1] if entries else None)  # the comments that end the entries
    for item in measured:
        fresh = {
            "benchmark": item.benchmark,
            "task": item.task,
            "num_fewshot": item.num_fewshot,
            "metric": item.metric,
            "value": float(item.value),
            "n": item.n,
            "stderr": None if item.stderr is None else float(item.stderr),
            "source": item.source,
            "date": datetime.date.fromisoformat(item.date),
            "settings": item.settings,
        }
        key = (item.benchmark, item.metric)
        if key not in keys:
            keys.append(key)
            read.append({})
            entries.append(CommentedMap())
            if len(entries) > 1:
                entries.yaml_set_comment_before_after_key(len(entries) - 1, before="\n")  # a blank line
        index = keys.index(key)
        after = _lift_trailing(entries[index])  # e.g. the blank line before the next entry
        _put(entries[index], read[index], fresh, ENTRY_KEYS)
        _drop_trailing(entries[index], after)
        read[index] = {**read[index], **fresh}
    _drop_trailing(entries[-1], trailing)
    out = io.StringIO()
    editor.dump(doc, out)
    new_text = out.getvalue()
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


def _put(target: CommentedMap, read: dict[str, Any], values: dict[str, Any], order: Sequence[str]) -> None:
    """Write ``values`` into ``target`` (``read``: the same mapping as PyYAML reads it). A value
    that differs replaces the old one in place; a missing key is inserted after the keys that
    precede it in ``order``. A mapping value (settings) is edited key by key, and keys it no
    longer has are removed."""
    for key, value in values.items():
        if isinstance(value, dict):
            if not isinstance(target.get(key), CommentedMap):
                _set(target, key, CommentedMap(), order)
            for gone in [k for k in target[key] if k not in value]:
                del target[key][gone]
            was = read.get(key)
            _put(target[key], was if isinstance(was, dict) else {}, value, SETTINGS_KEYS)
        elif key not in target or not (type(read.get(key)) is type(value) and read.get(key) == value):
            _set(target, key, _scalar(value), order)  # (True is not 1, nor 0 the same text as 0.0)


def _set(target: CommentedMap, key: str, value: Any, order: Sequence[str]) -> None:
    if key in target:
        target[key] = value
    else:
        before = order[: order.index(key)]
        target.insert(max((i + 1 for i, k in enumerate(target) if k in before), default=0), key, value)


def _scalar(value: Any) -> Any:
    """A new value as the file should hold it: text that PyYAML would read as something else
    (``yes``, ``null``, ``2026-01-01``) is quoted."""
    if isinstance(value, str) and _PYYAML.resolve(yaml.ScalarNode, value, (True, False)) != "tag:yaml.org,2002:str":
        return SingleQuotedScalarString(value)
    return value


def _tail(node: Any) -> tuple[CommentedMap, Any] | None:
    """The mapping and key whose comment ends ``node`` (an entry): the comment lines that follow
    an entry belong to its last scalar."""
    while isinstance(node, CommentedMap) and node:
        key = list(node)[-1]
        if not (isinstance(node[key], CommentedMap) and node[key] and not node[key].fa.flow_style()):
            return node, key
        node = node[key]
    return None


def _lift_trailing(node: Any) -> str:
    """Take the lines after ``node`` (comments, blank lines) off it, leaving a comment on its last
    line, to put them back after whatever ends it once it is edited (:func:`_drop_trailing`)."""
    spot = _tail(node)
    slots = spot[0].ca.items.get(spot[1]) if spot else None
    token = slots[2] if slots and len(slots) > 2 else None
    if token is None:
        return ""
    same_line, _, after = token.value.partition("\n")
    token.value = same_line + "\n"
    return after


def _drop_trailing(node: Any, lines: str) -> None:
    spot = _tail(node)
    if not lines or spot is None:
        return
    slots = spot[0].ca.items.setdefault(spot[1], [None, None, None, None])
    if slots[2] is None:
        slots[2] = CommentToken("\n" + lines, CommentMark(0))
    else:
        slots[2].value += lines


class _Emitter(Emitter):
    """Folds long text as PyYAML does (ruamel breaks a line one word earlier), at 100 columns
    counted from the entry for text in one (PyYAML wrote each entry on its own, then indented
    it): the layout the files were first written in, so an update refolds no text it keeps."""

    write_plain = yaml.emitter.Emitter.write_plain

    def process_scalar(self) -> None:
        self.best_width = _WIDTH + (2 if (self.indent or 0) > 4 else 0)
        super().process_scalar()


class _Representer(RoundTripRepresenter):
    """Floats and nulls as PyYAML writes them: ``1.0e-05`` (PyYAML reads ``1e-05`` as text) and ``null``."""


_Representer.add_representer(float, yaml.representer.SafeRepresenter.represent_float)
_Representer.add_representer(type(None), yaml.representer.SafeRepresenter.represent_none)


def _editor() -> ruamel.yaml.YAML:
    """A round-trip YAML (comments, key order, quoting and number formats kept) in the layout of
    the baseline files: entries indented under ``entries:``, their keys under the dash."""
    editor = ruamel.yaml.YAML()
    editor.indent(mapping=2, sequence=4, offset=2)
    editor.width = _WIDTH
    editor.preserve_quotes = True
    editor.Emitter = _Emitter
    editor.Representer = _Representer
    return editor


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
