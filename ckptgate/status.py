"""Structured status lines for log collectors: one JSON object per line when a checkpoint x
benchmark starts and when it ends (checkpoint, benchmark, counts, duration, outcome), written to
``--status-log FILE`` (appended; ``-`` for stderr). Each line is one ``write`` of a file opened
for appending, so lines from several xdist workers never interleave."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STDERR = "-"


def outcome(verdicts: Sequence[str], primary: Sequence[bool]) -> str:
    """One word for a benchmark's checks: fail (a primary check failed or errored), inconclusive,
    pass, or report (nothing gated)."""
    gating = [v for v, p in zip(verdicts, primary) if p and v not in ("info",)]
    if any(v in ("fail", "error") for v in gating):
        return "fail"
    if any(v in ("inconclusive", "pending") for v in gating):
        return "inconclusive"
    return "pass" if gating else "report"


def line(event: str, **fields: Any) -> dict[str, Any]:
    return {"event": event, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields}


def counts(verdicts: Sequence[str]) -> dict[str, int]:
    return dict(Counter(verdicts))


def emit(target: str | None, record: dict[str, Any]) -> None:
    """Write ``record`` as one JSON line to ``target`` (a path, ``-`` for stderr, None: nowhere)."""
    if target is None:
        return
    text = json.dumps(record, default=str, sort_keys=True) + "\n"
    if target == STDERR:
        sys.stderr.write(text)
        sys.stderr.flush()
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
