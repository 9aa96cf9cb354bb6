"""Margins: the smallest regression of a metric that matters, and where each one comes from.

A margin is absolute, in the metric's units (``0.015``: 1.5 points of accuracy), or relative to
the reference's value (``"1%"``). Each gating comparison carries one, decided in this order:

1. the margins file of the run (``--margins FILE``, else the suite's ``margins:``), typically
   written by ``ckptgate calibrate`` from the measured checkpoint-to-checkpoint noise;
2. the metric's own ``margin:`` in the suite;
3. the default for the metric's kind (below); a primary metric of no known kind must declare one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ckptgate.errors import SuiteError

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


@dataclass(frozen=True)
class Margin:
    """A margin and its origin (shown in reports: a user must know why a regression was tolerated)."""

    amount: float  # metric units, or a fraction of the reference when relative (0.01 = 1%)
    relative: bool = False
    source: str = "declared in the suite"

    def absolute(self, reference: float) -> float:
        """The margin in metric units at the reference's value."""
        return self.amount * abs(reference) if self.relative else self.amount

    def text(self) -> str:
        return f"{self.amount * 100:g}%" if self.relative else f"{self.amount:g}"

    @classmethod
    def parse(cls, raw: Any, where: str, source: str = "declared in the suite") -> Margin:
        """``0.015`` (absolute) or ``"1%"`` (relative); anything else is a SuiteError naming ``where``."""
        if isinstance(raw, str) and (match := _RELATIVE.match(raw)):
            amount = float(match.group(1)) / 100.0
            if amount >= 1.0:
                raise SuiteError(f"{where}: a relative margin must be below 100%, got {raw!r}")
            return cls(amount, True, source)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or raw < 0:
            raise SuiteError(f"{where}: margin must be a number >= 0 in the metric's units (e.g. 0.015) "
                             f"or a percentage of the reference (e.g. '1%'), got {raw!r}")
        return cls(float(raw), False, source)


@dataclass(frozen=True)
class Kind:
    name: str
    default: Margin
    reason: str


_PERPLEXITY = ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity")

KINDS: dict[str, Kind] = {
    "accuracy": Kind("0/1 accuracy", Margin(0.015, source="default for 0/1 accuracies"),
                     "1.5 points: a GSM8K-sized benchmark (1,319 items) resolves it, and a change below it is "
                     "within what consecutive checkpoints of one run differ by"),
    "pass@k": Kind("pass@k", Margin(0.02, source="default for pass@k"),
                   "2 points: code benchmarks are small (one HumanEval problem is 0.6 points) and greedy "
                   "code generations flip between checkpoints more often than short answers"),
    "rate": Kind("rate", Margin(0.02, source="default for rates"),
                 "2 points: instruction-level rates count several instructions per prompt, which are not "
                 "independent, so an item-level test understates their noise; the wider margin leaves room"),
    "perplexity": Kind("perplexity and bits per byte", Margin(0.01, True, "default for perplexity and bits per byte"),
                       "1% of the reference: per-document log-likelihood is so precise that any real change "
                       "is significant, and a change below 1% is immaterial"),
}


def kind_of(metric_key: str) -> str | None:
    """The kind of a metric (``metric,filter``) by its lm-eval name, or None when unknown."""
    name = metric_key.partition(",")[0]
    if name in _PERPLEXITY:
        return "perplexity"
    if name.startswith(("pass@", "pass_at_")):
        return "pass@k"
    if name.startswith(("prompt_level_", "inst_level_")) or name.endswith("_rate"):
        return "rate"
    if name in ("acc", "acc_norm", "exact_match", "math_verify", "em", "mc1", "mc2") or name.endswith("_acc"):
        return "accuracy"
    return None


def default_margin(metric_key: str) -> Margin | None:
    kind = kind_of(metric_key)
    return None if kind is None else KINDS[kind].default


# --------------------------------------------------------------------------- margins files


def load_margins_file(path: Path) -> dict[tuple[str, str], Margin]:
    """(benchmark id, metric key) -> margin, from a margins file::

        margins:
          arithmetic:
            exact_match,strict-match: {margin: 0.06, noise: 0.007}   # or just: 0.06, or '1%'
    """
    from ckptgate.yamlfile import load_mapping

    data = load_mapping(path, what="the margins file", required={"margins"},
                        optional={"suite", "written_by", "checkpoints", "alpha"}, error=SuiteError)
    raw = data["margins"]
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}:{data.line_of('margins')}: margins maps benchmark ids to {{metric key: margin}}")
    out: dict[tuple[str, str], Margin] = {}
    source = f"margins file {path.name}"
    for bench, metrics in raw.items():
        if not isinstance(metrics, dict):
            raise SuiteError(f"{path}: margins of benchmark {bench!r} must map metric keys to margins")
        for key, entry in metrics.items():
            value = entry.get("margin") if isinstance(entry, dict) else entry
            out[(str(bench), str(key))] = Margin.parse(value, f"{path}: {bench} {key}", source)
    return out


def apply_file(benchmarks: Any, path: Path) -> tuple[Any, ...]:
    """The suite's benchmarks with the file's margins applied; an entry naming no benchmark or
    metric of the suite is an error (a typo would otherwise silently keep the default)."""
    entries = load_margins_file(path)
    known = {(b.id, m.key) for b in benchmarks for m in b.metrics}
    unknown = sorted(set(entries) - known)
    if unknown:
        names = ", ".join(f"{b} {k}" for b, k in unknown[:4])
        raise SuiteError(f"{path}: margins for benchmark/metric(s) the suite does not have: {names}")
    return tuple(
        replace(b, metrics=tuple(replace(m, margin=entries.get((b.id, m.key), m.margin)) for m in b.metrics))
        for b in benchmarks
    )
