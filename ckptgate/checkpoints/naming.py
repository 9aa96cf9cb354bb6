"""Checkpoint names: steps from folder names, labels safe as path components, unique labels."""

from __future__ import annotations

import re
from collections.abc import Sequence

STEP_PATTERNS_HELP = (
    "step_N, epoch_N, checkpoint-N, <name>_stepN (e.g. run3_step2000), <name>_final"
)
_STEP_RES = (
    re.compile(r"^(?:step|epoch)[_-]?(\d+)$", re.IGNORECASE),
    re.compile(r"^checkpoint[_-](\d+)$", re.IGNORECASE),
    re.compile(r"^.+[_-](?:step|epoch)[_-]?(\d+)$", re.IGNORECASE),
)
_FINAL_RE = re.compile(r"^(?:.+[_-])?final$", re.IGNORECASE)
_UNSAFE_LABEL_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

def parse_step(name: str) -> tuple[int | None, bool]:
    """Parse a checkpoint folder name into ``(step, is_final)``.

    * ``step_0300``, ``step-300``, ``epoch_3``, ``checkpoint-300``, ``run3_step2000``,
      ``run3_epoch_2`` -> ``(number, False)``;
    * ``final``, ``run3_final`` -> ``(None, True)``;
    * anything else -> ``(None, False)``: not a checkpoint name (parents ignore such children).

    Leading zeros are ignored, so ``step_0900`` < ``step_1000`` numerically.
    """
    for pattern in _STEP_RES:
        match = pattern.match(name)
        if match:
            return int(match.group(1)), False
    return None, bool(_FINAL_RE.match(name))


def order_key(step: int | None, final: bool, label: str) -> tuple[int, int, str]:
    """Checkpoints in training order: by step number (numerically), ``*_final`` and unnumbered
    ones last."""
    if step is not None:
        return (0, step, label)
    return (2 if final else 1, 0, label)


def is_checkpoint_name(name: str) -> bool:
    step, final = parse_step(name)
    return step is not None or final


def safe_label(name: str) -> str:
    """A label usable as one path component and as a pytest id fragment."""
    label = _UNSAFE_LABEL_CHARS.sub("_", name).strip("_")
    return label if label not in ("", ".", "..") else "checkpoint"


def uniquify(labels: Sequence[str]) -> list[str]:
    """Keep the first of each label, suffix later repeats with -2, -3, ... (last resort)."""
    seen: set[str] = set()
    out: list[str] = []
    for label in labels:
        candidate, n = label, 1
        while candidate in seen:
            n += 1
            candidate = f"{label}-{n}"
        seen.add(candidate)
        out.append(candidate)
    return out
