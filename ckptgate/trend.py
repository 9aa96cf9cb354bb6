"""The trend report: one self-contained HTML file from a results folder's history (``ckptgate trend``).

For every benchmark x primary metric, one plot: each checkpoint's value against its training step
(checkpoints without a step come after the last step, in the order they first appear in the
history) with a 95% band of value +/- 1.96 standard errors. The band is drawn from the value's
own standard error because the intervals the history stores bound the *difference* from a
reference (bridge, baseline), not the value. The baseline's number is a horizontal line, the
bridge checkpoint a distinct marker, a checkpoint of any other role (a ``control``: a base model
evaluated beside fine-tuned ones) a dashed horizontal line. Points are coloured by verdict (pass
green, fail red, inconclusive amber, info grey); FAIL, INCONCLUSIVE and ERROR points carry a
label. A point's verdict is the worst of its comparisons' (threshold, bridge, baseline). Below
the plots, a table of the latest verdicts. Every checkpoint x benchmark x metric x reference
shows the row of the latest run that measured it.

The file needs no server and no network: plotly.js and the data are inlined. The plotted points
are also embedded as JSON (``<script type="application/json" id="trend-data">``) and the table's
rows carry ``data-*`` attributes, for scripts and tests that read the report.
"""

from __future__ import annotations

import html
import json
import math
import re
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from ckptgate import history
from ckptgate.atomicio import write_text
from ckptgate.errors import CkptgateError

REPORT_NAME = "trend.html"
Z95 = 1.959963984540054  # two-sided 95% normal quantile
BAND = "95% band: value \u00b1 1.96\u00b7stderr"
# Worst first: a point's verdict is the first of these among its comparisons' verdicts.
SEVERITY = ("error", "fail", "inconclusive", "pending", "pass", "improved", "not_improved", "info")
FLAGGED = ("fail", "inconclusive", "error")
GREY = "#8c8c8c"
VERDICT_COLOURS = {
    "pass": "#2ca02c",
    "improved": "#2ca02c",
    "fail": "#d62728",
    "error": "#7f0000",
    "inconclusive": "#ffb000",
    "pending": "#ffb000",
    "not_improved": GREY,
    "info": GREY,
}
BASELINE_PREFIX, BRIDGE_PREFIX = "baseline:", "bridge:"
POINT_ROLES = ("candidate", "bridge")  # drawn as points; any other role is a horizontal line
PLOT_HEIGHT = 460


@dataclass(frozen=True)
class Comparison:
    """One reference a point was held against, as the latest run that did it judged."""

    against: str
    verdict: str
    reference: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Point:
    """One checkpoint's value on one plot."""

    checkpoint: str
    step: int | None
    role: str
    x: float
    value: float
    stderr: float | None
    band_low: float | None
    band_high: float | None
    verdict: str
    bridge: bool
    flagged: bool
    run_id: str
    started: str
    comparisons: tuple[Comparison, ...]


@dataclass(frozen=True)
class Line:
    """A horizontal reference: a baseline's number, a control checkpoint, a bridge not plotted."""

    kind: str  # "baseline", "bridge", or the checkpoint's role ("control", ...)
    label: str
    value: float


@dataclass(frozen=True)
class Plot:
    benchmark: str
    metric: str
    setting: str
    points: tuple[Point, ...]
    lines: tuple[Line, ...]
    element_id: str  # the plot's ``<div>``, unique in the page


# --------------------------------------------------------------------------- reading the history


def history_rows(history_db: Path, suite: str | None = None) -> list[dict[str, Any]]:
    """The primary-metric rows of the history (a results folder or its ``history.sqlite``),
    oldest run first, only ``suite``'s when given."""
    results_dir = _results_dir(history_db)
    rows = history.query(results_dir, primary_only=True)
    if not rows:
        raise CkptgateError(f"{history.db_path(results_dir)}: no primary-metric results recorded yet")
    if suite is None:
        return rows
    chosen = [row for row in rows if row["suite"] == suite]
    if not chosen:
        known = ", ".join(sorted({row["suite"] for row in rows}))
        raise CkptgateError(f"{history.db_path(results_dir)}: no results of suite {suite!r} (suites recorded: {known})")
    return chosen


def _results_dir(history_db: Path) -> Path:
    path = Path(history_db)
    if not path.is_file() and path.name != history.DB_NAME:
        path = history.db_path(path)  # a results folder
    if path.name != history.DB_NAME:
        raise CkptgateError(f"{path}: a trend report reads a results folder's {history.DB_NAME}; "
                            "pass the folder (or rename the file)")
    if not path.is_file():
        raise CkptgateError(f"{path}: no such history database (no run has finished with this results folder)")
    return path.parent


def latest_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest run's row of every checkpoint x benchmark x metric x reference, in the order
    their keys first appear (oldest run first)."""
    latest: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["started"], r["run_id"])):
        key = (row["checkpoint"], row["benchmark"], row["metric"], row["against"])
        latest[key] = row  # dicts keep the key's first position; the value is the later row
    return list(latest.values())


# --------------------------------------------------------------------------- verdicts and positions


def point_verdict(verdicts: Iterable[str]) -> str:
    """The worst of a point's verdicts (FAIL over INCONCLUSIVE over PASS over info)."""
    found = set(verdicts)
    return next((v for v in SEVERITY if v in found), next(iter(sorted(found)), "info"))


def colour(verdict: str) -> str:
    return VERDICT_COLOURS.get(verdict, GREY)


def positions(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Each plotted checkpoint's place on the x axis: its step; checkpoints without one after the
    last step, one median step gap apart, in the order they first appear. Checkpoints drawn as
    lines (a control) take no place."""
    steps: dict[str, int | None] = {}
    for row in rows:
        if row["role"] not in POINT_ROLES:
            continue
        if row["step"] is not None or row["checkpoint"] not in steps:
            steps[row["checkpoint"]] = row["step"]
    known = sorted({s for s in steps.values() if s is not None})
    gaps = [b - a for a, b in zip(known, known[1:])]
    gap = statistics.median(gaps) if gaps else 1
    start = known[-1] if known else -gap
    out: dict[str, float] = {}
    unnumbered = 0
    for label, step in steps.items():
        if step is None:
            unnumbered += 1
            out[label] = start + unnumbered * gap
        else:
            out[label] = step
    return out


# --------------------------------------------------------------------------- plots


def build_plots(rows: Sequence[dict[str, Any]]) -> list[Plot]:
    """One plot per benchmark x primary metric, from the latest rows (:func:`latest_rows`)."""
    x_of = positions(rows)
    bridges = {row["against"][len(BRIDGE_PREFIX):] for row in rows if row["against"].startswith(BRIDGE_PREFIX)}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["benchmark"], row["metric"]), []).append(row)
    return [_plot(benchmark, metric, groups[benchmark, metric], x_of, bridges,
                  f"trend-{index}-{_slug(benchmark, metric)}")
            for index, (benchmark, metric) in enumerate(sorted(groups), start=1)]


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts)).strip("-")


def _plot(benchmark: str, metric: str, rows: list[dict[str, Any]], x_of: dict[str, float], bridges: set[str],
          element_id: str) -> Plot:
    by_checkpoint: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_checkpoint.setdefault(row["checkpoint"], []).append(row)
    points, lines = [], []
    for label, own in by_checkpoint.items():
        newest = max(own, key=lambda r: (r["started"], r["run_id"]))
        if _finite(newest["value"]) is None:
            continue  # an error row: in the table, not on the plot
        if newest["role"] in POINT_ROLES:
            points.append(_point(label, own, newest, x_of[label], label in bridges or newest["role"] == "bridge"))
        else:
            lines.append(Line(newest["role"], f"{newest['role']}: {label}", float(newest["value"])))
    plotted = {p.checkpoint for p in points}
    lines += _reference_lines(rows, BASELINE_PREFIX, "baseline", set())
    lines += _reference_lines(rows, BRIDGE_PREFIX, "bridge", plotted)
    points.sort(key=lambda p: (p.x, p.checkpoint))
    setting = next((row["setting"] for row in rows if row["setting"]), "")
    return Plot(benchmark, metric, setting, tuple(points), tuple(lines), element_id)


def _point(label: str, rows: list[dict[str, Any]], newest: dict[str, Any], x: float, bridge: bool) -> Point:
    value, stderr = float(newest["value"]), _finite(newest["stderr"])
    comparisons = tuple(Comparison(r["against"], r["verdict"], _finite(r["reference"]), _finite(r["delta"]),
                                   _finite(r["ci_low"]), _finite(r["ci_high"]))
                        for r in sorted(rows, key=lambda r: r["against"]))
    verdict = point_verdict(c.verdict for c in comparisons)
    half = None if stderr is None else Z95 * float(stderr)
    return Point(
        checkpoint=label, step=newest["step"], role=newest["role"], x=x, value=value, stderr=stderr,
        band_low=None if half is None else value - half, band_high=None if half is None else value + half,
        verdict=verdict, bridge=bridge, flagged=verdict in FLAGGED, run_id=newest["run_id"],
        started=newest["started"], comparisons=comparisons,
    )


def _reference_lines(rows: list[dict[str, Any]], prefix: str, kind: str, skip: set[str]) -> list[Line]:
    """One line per reference named ``<prefix><name>``: the latest row's reference value."""
    latest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["started"], r["run_id"])):
        name = row["against"][len(prefix):]
        if row["against"].startswith(prefix) and _finite(row["reference"]) is not None and name not in skip:
            latest[name] = row
    return [Line(kind, f"{kind}: {name}", float(row["reference"])) for name, row in sorted(latest.items())]


def _finite(value: float | None) -> float | None:
    """``value`` as a float, None when missing or not finite (nothing to draw)."""
    return None if value is None or not math.isfinite(value) else float(value)


def figure(plot: Plot) -> go.Figure:
    """The plot as a Plotly figure (SVG scatter traces only: it renders without WebGL)."""
    fig = go.Figure()
    candidates = [p for p in plot.points if not p.bridge]
    _add_band(fig, candidates)
    if candidates:
        fig.add_trace(go.Scatter(x=[p.x for p in candidates], y=[p.value for p in candidates], mode="lines",
                                 line={"color": "#4c72b0", "width": 1.5}, name="value", hoverinfo="skip"))
    for verdict in SEVERITY:
        group = [p for p in candidates if p.verdict == verdict]
        if group:
            fig.add_trace(go.Scatter(
                x=[p.x for p in group], y=[p.value for p in group], mode="markers",
                name=verdict.upper().replace("_", " "),
                marker={"color": colour(verdict), "size": 10, "line": {"color": "white", "width": 1}},
                hovertext=[_hover(p) for p in group], hovertemplate="%{hovertext}<extra></extra>"))
    for p in (p for p in plot.points if p.bridge):
        fig.add_trace(_bridge_trace(p))
    for line in plot.lines:
        _add_line(fig, line)
    for index, p in enumerate(p for p in plot.points if p.flagged):
        fig.add_annotation(x=p.x, y=p.value, text=flag_label(p), showarrow=True, arrowhead=2, ax=0,
                           ay=-34 - 18 * (index % 2), font={"color": colour(p.verdict), "size": 12},
                           bgcolor="rgba(255,255,255,0.85)", bordercolor=colour(p.verdict))
    if any(p.step is None for p in plot.points):
        values, texts = ticks(plot.points)
        fig.update_xaxes(tickmode="array", tickvals=values, ticktext=texts)
    title = f"{plot.benchmark} \u2014 {plot.metric}" + (f" ({plot.setting})" if plot.setting else "")
    fig.update_layout(title=title, template="plotly_white", height=PLOT_HEIGHT, hovermode="closest",
                      xaxis_title="training step (checkpoints without a step after the last step, in order)",
                      yaxis_title=plot.metric, legend={"orientation": "v"}, margin={"t": 60, "r": 30})
    return fig


MAX_STEP_TICKS = 20


def ticks(points: Sequence[Point]) -> tuple[list[float], list[str]]:
    """x-axis ticks where some checkpoints have no step: the steps (at most about
    ``MAX_STEP_TICKS`` of them) and, at their places, the labels of those without one."""
    steps = sorted({p.x for p in points if p.step is not None})
    stride = max(1, -(-len(steps) // MAX_STEP_TICKS))
    shown = [(x, f"{x:g}") for x in steps[::stride]]
    shown += sorted({(p.x, p.checkpoint) for p in points if p.step is None})
    return [x for x, _ in shown], [text for _, text in shown]


def flag_label(point: Point) -> str:
    """The visible label of a FAIL / INCONCLUSIVE / ERROR point."""
    return f"{point.checkpoint}: {point.verdict.upper()}"


def _add_band(fig: go.Figure, points: Sequence[Point]) -> None:
    banded = [p for p in points if p.band_low is not None and p.band_high is not None]
    if not banded:
        return
    xs = [p.x for p in banded]
    fig.add_trace(go.Scatter(x=xs + xs[::-1], y=[p.band_high for p in banded] + [p.band_low for p in banded][::-1],
                             fill="toself", fillcolor="rgba(76,114,176,0.15)", line={"width": 0}, mode="lines",
                             name=BAND, hoverinfo="skip"))


def _bridge_trace(point: Point) -> go.Scatter:
    half = None if point.stderr is None else Z95 * float(point.stderr)
    return go.Scatter(
        x=[point.x], y=[point.value], mode="markers+text", name=f"bridge: {point.checkpoint}",
        text=[f"bridge: {point.checkpoint}"], textposition="middle left",
        marker={"symbol": "diamond", "size": 14, "color": colour(point.verdict),
                "line": {"color": "black", "width": 2}},
        error_y=None if half is None else {"type": "constant", "value": half, "color": "black", "thickness": 1},
        hovertext=[_hover(point)], hovertemplate="%{hovertext}<extra></extra>")


def _add_line(fig: go.Figure, line: Line) -> None:
    style = {"baseline": ("#1f3b73", "solid"), "bridge": ("black", "dot")}.get(line.kind, ("#6a3d9a", "dash"))
    fig.add_hline(y=line.value, line={"color": style[0], "dash": style[1], "width": 1.5},
                  annotation={"text": f"{line.label} ({line.value:.4g})", "font": {"color": style[0]}},
                  annotation_position="top left")
    # a legend entry for the line (add_hline draws a shape, which the legend does not list)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=line.label,
                             line={"color": style[0], "dash": style[1]}))


def _hover(point: Point) -> str:
    step = "" if point.step is None else f" (step {point.step})"
    lines = [f"<b>{html.escape(point.checkpoint)}</b>{step}" + (" \u2014 bridge" if point.bridge else ""),
             f"value {point.value:.4g}"]
    if point.band_low is not None and point.band_high is not None:
        lines.append(f"{BAND}: [{point.band_low:.4g}, {point.band_high:.4g}]")
    for c in point.comparisons:
        text = f"vs {html.escape(c.against or 'report only')}: {c.verdict.upper()}"
        if c.delta is not None:
            text += f", delta {_signed(c.delta)}"
        if c.ci_low is not None and c.ci_high is not None:
            text += f", 95% CI of the delta [{_signed(c.ci_low)}, {_signed(c.ci_high)}]"
        lines.append(text)
    lines.append(f"run {html.escape(point.run_id)} ({html.escape(point.started[:19])})")
    return "<br>".join(lines)


# --------------------------------------------------------------------------- the page


def points_json(plots: Sequence[Plot]) -> str:
    """Every plotted point and line as JSON, safe inside a ``<script>`` element."""
    data = {"plots": [{"id": p.element_id, "benchmark": p.benchmark, "metric": p.metric, "setting": p.setting,
                       "band": BAND, "points": [asdict(point) for point in p.points],
                       "lines": [asdict(line) for line in p.lines]} for p in plots]}
    return json.dumps(data, sort_keys=True, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e")


TABLE_COLUMNS = ("checkpoint", "step", "benchmark", "metric", "against", "value", "delta", "95% CI of the delta",
                 "verdict", "run")


def verdict_table(rows: Sequence[dict[str, Any]]) -> str:
    """The latest verdicts, one ``<tr>`` per row with ``data-*`` attributes."""
    ordered = sorted(rows, key=lambda r: (r["benchmark"], r["metric"], r["step"] is None, r["step"] or 0,
                                          r["checkpoint"], r["against"]))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)
    return (f'<table id="verdicts"><thead><tr>{head}</tr></thead><tbody>\n'
            + "\n".join(_table_row(row) for row in ordered) + "\n</tbody></table>")


def _table_row(row: dict[str, Any]) -> str:
    attrs = {"checkpoint": row["checkpoint"], "benchmark": row["benchmark"], "metric": row["metric"],
             "against": row["against"], "verdict": row["verdict"], "role": row["role"]}
    low, high = row["ci_low"], row["ci_high"]
    interval = "" if low is None or high is None else f"[{_signed(low)}, {_signed(high)}]"
    checkpoint = row["checkpoint"] + ("" if row["role"] == "candidate" else f" ({row['role']})")
    cells = (checkpoint, "" if row["step"] is None else str(row["step"]), row["benchmark"], row["metric"],
             row["against"] or "report only", _number(row["value"]),
             "" if row["delta"] is None else _signed(row["delta"]), interval, row["verdict"].upper().replace("_", " "),
             row["run_id"])
    data = " ".join(f'data-{k}="{html.escape(str(v), quote=True)}"' for k, v in attrs.items())
    tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells[:-2])
    verdict = f'<td class="verdict" style="color:{colour(row["verdict"])}">{html.escape(cells[-2])}</td>'
    return f"<tr {data}>{tds}{verdict}<td>{html.escape(cells[-1])}</td></tr>"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _signed(value: float) -> str:
    """``+0.0123``: four significant digits, float noise (2.8e-17 for 0.33 - 0.30 - 0.03) as 0."""
    return f"{round(value, 12) + 0.0:+.4g}"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.trend-plot { height: %dpx; margin-bottom: 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
th { background: #f4f4f4; }
td.verdict { font-weight: bold; }
""" % PLOT_HEIGHT


def render(plots: Sequence[Plot], rows: Sequence[dict[str, Any]], title: str, facts: Sequence[str]) -> str:
    """The whole page: plotly.js inlined once in the head, then one ``<section>`` per plot."""
    sections = []
    for plot in plots:
        div = pio.to_html(figure(plot), full_html=False, include_plotlyjs=False, div_id=plot.element_id,
                          default_height=f"{PLOT_HEIGHT}px", config={"displaylogo": False, "responsive": True})
        sections.append(f'<section class="trend-plot" data-benchmark="{html.escape(plot.benchmark, quote=True)}" '
                        f'data-metric="{html.escape(plot.metric, quote=True)}">{div}</section>')
    facts_html = "".join(f"<li>{html.escape(f)}</li>" for f in facts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
<ul class="facts">{facts_html}</ul>
{"".join(sections)}
<h2>Latest verdicts (primary metrics)</h2>
{verdict_table(rows)}
<script type="application/json" id="trend-data">{points_json(plots)}</script>
</body>
</html>
"""


def write_report(history_db: Path, out: Path, *, suite: str | None = None, title: str | None = None) -> Path:
    """Write the trend report of ``history_db`` (a results folder or its ``history.sqlite``) to
    ``out`` atomically; returns ``out``."""
    all_rows = history_rows(history_db, suite)
    rows = latest_rows(all_rows)
    plots = build_plots(rows)
    runs = sorted({(r["started"], r["run_id"]) for r in all_rows})
    results_dir = _results_dir(history_db)
    facts = [f"history: {history.db_path(results_dir)}",
             f"suite: {suite}" if suite else f"suites: {', '.join(sorted({r['suite'] for r in all_rows}))}",
             f"{len(runs)} run(s), the latest {runs[-1][1]} started {runs[-1][0]}",
             f"{len({r['checkpoint'] for r in rows})} checkpoint(s), {len(plots)} benchmark x primary metric plot(s)",
             f"each point: the latest run's value; shaded: {BAND}; intervals in the table are 95% intervals of "
             "the difference from the reference"]
    page = render(plots, rows, title or f"ckptgate trend: {results_dir.name}" + (f" ({suite})" if suite else ""), facts)
    out = Path(out)
    write_text(out, page)
    return out


def refresh(results_dir: Path) -> Path | None:
    """``results_dir/trend.html`` rewritten from its history after a run (nightly, merge, report);
    None, with a note on stderr, when there is no history or nothing to plot (report-only rows)."""
    if not history.db_path(results_dir).is_file():
        return None
    try:
        return write_report(results_dir, results_dir / REPORT_NAME)
    except CkptgateError as exc:
        print(f"ckptgate: no trend report: {exc}", file=sys.stderr)
        return None
