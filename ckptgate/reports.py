"""Human-readable summaries of a run: the terminal table and ``summary.md``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ckptgate.results import SummaryRow

def format_value(value: float | None, stderr: float | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    if stderr is not None:
        text += f" ± {stderr:.4f}" if abs(stderr) < 100 else f" ± {stderr:.1f}"
    return text



_HEADER = ("checkpoint", "step", "benchmark", "metric", "value ± stderr", "threshold", "n", "verdict")


def _cells(row: SummaryRow) -> tuple[str, ...]:
    return (
        row.checkpoint + (" (bridge)" if row.role == "bridge" else ""),
        "" if row.step is None else str(row.step),
        row.benchmark,
        row.metric,
        format_value(row.value, row.stderr),
        row.threshold,
        "" if row.n is None else str(row.n),
        row.verdict.upper(),
    )


def text_table(rows: Sequence[SummaryRow]) -> list[str]:
    table = [_HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER))]
    out = []
    for index, line in enumerate(table):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def verdict_counts(rows: Sequence[SummaryRow]) -> str:
    counts = Counter(r.verdict for r in rows)
    return ", ".join(f"{counts[v]} {v}" for v in ("pass", "fail", "error", "info") if counts[v])


def markdown(rows: Sequence[SummaryRow], meta: dict[str, Any]) -> str:
    lines = ["# ckptgate summary", ""]
    lines += [f"- **{key}**: {value}" for key, value in meta.items() if value not in (None, "")]
    lines += [f"- **verdicts**: {verdict_counts(rows)}", ""]
    lines.append("| " + " | ".join(_HEADER) + " |")
    lines.append("|" + "|".join("---" for _ in _HEADER) + "|")
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |")
    return "\n".join(lines) + "\n"
