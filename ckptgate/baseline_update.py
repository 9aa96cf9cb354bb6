"""``--update-baselines``: measured values written into a baseline file, which is edited in
ruamel.yaml's round-trip mode so every comment, the order of keys and entries and untouched values
stay as they were; the new text is re-read before it replaces the file."""

from __future__ import annotations

import datetime
import difflib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ruamel.yaml
import yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.emitter import Emitter
from ruamel.yaml.error import CommentMark
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import SingleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from ckptgate import atomicio
from ckptgate.baselines import ENTRY_KEYS, SETTINGS_KEYS, is_iso_date, parse_file, run_settings
from ckptgate.errors import BaselineError
from ckptgate.yamlfile import load_yaml


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
        baseline = parse_file(path)  # a malformed file fails with its line before anything is written
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
    atomicio.write_text(path, new_text, check=parse_file)  # re-read before it replaces the file
    return _diff(path, old_text, new_text)


def _check_measured(path: Path, item: Measured) -> None:
    if not is_iso_date(item.date):
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
