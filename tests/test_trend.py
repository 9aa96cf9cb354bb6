"""The trend report (ckptgate.trend, ``ckptgate trend``): a history written by the history's own
writer from summary rows, the report built from it, its data checked as Python sees it, then the
page opened in headless Chromium (rendered SVG, flagged labels, table rows, a screenshot)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ckptgate import cli, history, trend
from ckptgate.errors import CkptgateError
from ckptgate.results import SummaryRow

CHOICE, GSM = ("choice", "acc,none"), ("gsm8k_4shot", "exact_match,flexible-extract")
CANDIDATES = {"step_0100": 100, "step_0200": 200, "step_0300": 300, "step_0400": 400, "step_0500": 500,
              "step_0600": 600}
BRIDGE, CONTROL, BASELINE = "bridge", "base_model", "release-1"
BASELINE_VALUE = {CHOICE: 0.55, GSM: 0.30}
# the latest run's values; step_0300's older run (r1) measured it differently, and FAILed it
VALUES = {CHOICE: {"step_0100": 0.48, "step_0200": 0.53, "step_0300": 0.57, "step_0400": 0.56, "step_0500": 0.50,
                   "step_0600": 0.60, BRIDGE: 0.58, CONTROL: 0.45},
          GSM: {"step_0100": 0.20, "step_0200": 0.24, "step_0300": 0.29, "step_0400": 0.31, "step_0500": 0.33,
                "step_0600": 0.32, BRIDGE: 0.31, CONTROL: 0.12}}
# verdicts that are not PASS, by (benchmark metric, checkpoint, reference)
VERDICTS = {(CHOICE, "step_0500", f"bridge:{BRIDGE}"): "fail",
            (CHOICE, "step_0400", f"baseline:{BASELINE}"): "inconclusive",
            (GSM, "step_0600", f"bridge:{BRIDGE}"): "inconclusive"}
FLAGGED = {(CHOICE[0], "step_0500"): "fail", (CHOICE[0], "step_0400"): "inconclusive",
           (GSM[0], "step_0600"): "inconclusive"}
STDERR = 0.02


def _row(checkpoint: str, bench: tuple[str, str], against: str, *, value: float, run_id: str, verdict: str = "pass",
         primary: bool = True, role: str = "candidate") -> SummaryRow:
    reference = {"threshold": None, f"bridge:{BRIDGE}": VALUES[bench][BRIDGE],
                 f"baseline:{BASELINE}": BASELINE_VALUE[bench]}.get(against)
    delta = None if reference is None else value - reference
    return SummaryRow.from_dict({
        "checkpoint": checkpoint, "step": CANDIDATES.get(checkpoint), "role": role, "benchmark": bench[0],
        "task": f"demo_{bench[0]}", "setting": "0-shot", "metric": bench[1], "against": against, "primary": primary,
        "value": value, "stderr": STDERR, "n": 400, "reference": reference, "delta": delta,
        "ci_low": None if delta is None else delta - 0.03, "ci_high": None if delta is None else delta + 0.03,
        "verdict": verdict, "fingerprint": "f" * 64, "run_id": run_id,
    })


def _latest_run_rows() -> list[SummaryRow]:
    rows = []
    for bench in (CHOICE, GSM):
        for label in ("step_0300", "step_0400", "step_0500", "step_0600"):
            value = VALUES[bench][label]
            for against in ("threshold", f"bridge:{BRIDGE}", f"baseline:{BASELINE}"):
                rows.append(_row(label, bench, against, value=value, run_id="r2",
                                 verdict=VERDICTS.get((bench, label, against), "pass")))
            rows.append(_row(label, bench, f"bridge:{BRIDGE}", value=value, run_id="r2", verdict="info",
                             primary=False))  # a secondary metric's row: not on the plots
        rows.append(_row(BRIDGE, bench, "threshold", value=VALUES[bench][BRIDGE], run_id="r2", verdict="info",
                         role="bridge"))
        rows.append(_row(CONTROL, bench, "", value=VALUES[bench][CONTROL], run_id="r2", verdict="info", role="control"))
    return rows


def _older_run_rows() -> list[SummaryRow]:
    rows = []
    for bench in (CHOICE, GSM):
        for label in ("step_0100", "step_0200", "step_0300"):
            value = VALUES[bench][label] - (0.1 if label == "step_0300" else 0.0)
            for against in ("threshold", f"bridge:{BRIDGE}"):
                verdict = "fail" if label == "step_0300" and against != "threshold" else "pass"
                rows.append(_row(label, bench, against, value=value, run_id="r1", verdict=verdict))
    return rows


def build_history(results: Path) -> Path:
    """Two nightly runs in ``results/history.sqlite``, written by the history's own writer."""
    older = history.Run("r1", "2026-12-01T02:00:00+0000", "2026-12-01T03:00:00+0000", "nightly", "hf", "NO-GO",
                        "pytest --checkpoint run", None)
    latest = history.Run("r2", "2026-12-02T02:00:00+0000", "2026-12-02T03:00:00+0000", "nightly", "hf", "NO-GO",
                         "pytest --checkpoint run", None)
    history.record(results, older, _older_run_rows(), {})
    history.record(results, latest, _latest_run_rows(), {})
    return history.db_path(results)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("results")
    build_history(results)
    return trend.write_report(history.db_path(results), results / trend.REPORT_NAME)


def _data(report_path: Path) -> dict[str, Any]:
    text = report_path.read_text(encoding="utf-8")
    start = text.index('<script type="application/json" id="trend-data">')
    body = text[text.index(">", start) + 1:text.index("</script>", start)]
    return json.loads(body)


# --------------------------------------------------------------------------- the pure-Python parts


def _plain(**row: Any) -> dict[str, Any]:
    base = {"checkpoint": "step_1", "step": 1, "role": "candidate", "benchmark": "b", "metric": "acc,none",
            "against": "threshold", "started": "2026-12-01T00:00:00+0000", "run_id": "r1", "value": 0.5,
            "stderr": None, "reference": None, "delta": None, "ci_low": None, "ci_high": None, "verdict": "pass",
            "setting": "0-shot"}
    return {**base, **row}


def test_the_latest_run_row_of_each_checkpoint_benchmark_metric_and_reference_is_kept() -> None:
    rows = [_plain(value=0.1), _plain(against="bridge:b", value=0.1),
            _plain(value=0.2, run_id="r2", started="2026-12-02T00:00:00+0000"),
            _plain(checkpoint="step_2", step=2, value=0.3)]
    latest = trend.latest_rows(rows)
    assert [(r["checkpoint"], r["against"], r["value"]) for r in latest] == [
        ("step_1", "threshold", 0.2), ("step_1", "bridge:b", 0.1), ("step_2", "threshold", 0.3)]


def test_a_point_takes_its_worst_verdict_and_its_colour() -> None:
    assert trend.point_verdict(["pass", "fail", "inconclusive"]) == "fail"
    assert trend.point_verdict(["pass", "inconclusive", "info"]) == "inconclusive"
    assert trend.point_verdict(["info", "pass"]) == "pass"
    assert trend.point_verdict(["info"]) == "info"
    assert trend.point_verdict(["something_new"]) == "something_new"
    assert trend.colour("pass") == "#2ca02c" and trend.colour("fail") == "#d62728"
    assert trend.colour("inconclusive") == "#ffb000"
    assert trend.colour("info") == trend.colour("not_improved") == trend.colour("unknown") == trend.GREY


def test_checkpoints_without_a_step_come_after_the_last_step_in_order() -> None:
    rows = [_plain(checkpoint="bridge", step=None), _plain(checkpoint="step_100", step=100),
            _plain(checkpoint="step_300", step=300), _plain(checkpoint="step_200", step=200),
            _plain(checkpoint="final", step=None)]
    assert trend.positions(rows) == {"bridge": 400, "step_100": 100, "step_300": 300, "step_200": 200, "final": 500}
    assert trend.positions([_plain(checkpoint="a", step=None), _plain(checkpoint="b", step=None)]) == {"a": 0, "b": 1}
    assert trend.positions([_plain(checkpoint="base", step=None, role="control")]) == {}  # a line, not a point


def test_the_axis_names_the_checkpoints_without_a_step() -> None:
    rows = [_plain(checkpoint=f"step_{s}", step=s) for s in range(100, 4100, 100)]
    rows += [_plain(checkpoint="bridge", step=None, role="bridge"),
             _plain(checkpoint="base", step=None, role="control")]
    (plot,) = trend.build_plots(rows)
    values, texts = trend.ticks(plot.points)
    assert texts[-1] == "bridge" and values[-1] == 4100 and len(values) == 21  # every other step of 40, the bridge
    assert texts[:3] == ["100", "300", "500"]
    assert [line.label for line in plot.lines] == ["control: base"]
    assert trend.ticks(plot.points[:3]) == ([100, 200, 300], ["100", "200", "300"])


def test_a_bridge_without_rows_of_its_own_is_a_line_and_its_candidates_are_coloured() -> None:
    rows = [_plain(against="bridge:old", reference=0.6, delta=-0.1, verdict="fail"), _plain(against="threshold"),
            _plain(checkpoint="step_2", step=2, against="bridge:old", reference=0.6, verdict="inconclusive")]
    (plot,) = trend.build_plots(rows)
    assert [(line.kind, line.label, line.value) for line in plot.lines] == [("bridge", "bridge: old", 0.6)]
    assert [(p.checkpoint, p.verdict, p.flagged, p.band_low) for p in plot.points] == [
        ("step_1", "fail", True, None), ("step_2", "inconclusive", True, None)]  # no stderr: no band
    assert trend.flag_label(plot.points[0]) == "step_1: FAIL"


def test_a_missing_or_empty_history_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CkptgateError, match="no such history database"):
        trend.write_report(tmp_path / history.DB_NAME, tmp_path / "trend.html")
    with history.connect(history.db_path(tmp_path)):
        pass  # the schema, no rows
    with pytest.raises(CkptgateError, match="no primary-metric results"):
        trend.write_report(tmp_path, tmp_path / "trend.html")
    shutil.copy(history.db_path(tmp_path), tmp_path / "other.sqlite")
    with pytest.raises(CkptgateError, match="reads a results folder's history.sqlite"):
        trend.write_report(tmp_path / "other.sqlite", tmp_path / "trend.html")
    assert not (tmp_path / "trend.html").exists()


def test_an_unknown_suite_names_the_recorded_ones(tmp_path: Path) -> None:
    build_history(tmp_path)
    with pytest.raises(CkptgateError, match=r"no results of suite 'weekly' \(suites recorded: nightly\)"):
        trend.write_report(tmp_path, tmp_path / "trend.html", suite="weekly")
    assert trend.write_report(tmp_path, tmp_path / "trend.html", suite="nightly").is_file()


class _Resources(HTMLParser):
    """Every element attribute that could load something (script contents are not parsed as tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.loads: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
        self.loads += [(tag, name, value) for name, value in attrs if name in ("src", "href", "srcset", "data")]
        if tag == "link" or tag == "iframe" or (tag == "meta" and ("http-equiv", "refresh") in attrs):
            self.loads.append((tag, "", None))


def test_the_report_is_self_contained(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    parser = _Resources()
    parser.feed(text)
    assert parser.loads == []  # no script src, stylesheet link, image, frame or redirect
    assert len(parser.scripts) >= 3 and all("src" not in s for s in parser.scripts)
    assert "Plotly.newPlot" in text and "@import" not in text and "url(http" not in text
    assert len(text) > 1_000_000  # plotly.js itself is inside


def test_the_data_block_holds_every_plotted_point(report: Path) -> None:
    data = _data(report)
    plots = {(p["benchmark"], p["metric"]): p for p in data["plots"]}
    assert set(plots) == {CHOICE, GSM}
    for bench, plot in plots.items():
        points = {p["checkpoint"]: p for p in plot["points"]}
        assert set(points) == set(CANDIDATES) | {BRIDGE}  # the control is a line, not a point
        for label, point in points.items():
            assert point["value"] == pytest.approx(VALUES[bench][label])  # the latest run's (step_0300: r2)
            assert point["band_low"] == pytest.approx(point["value"] - 1.96 * STDERR, abs=1e-4)
            assert point["band_high"] == pytest.approx(point["value"] + 1.96 * STDERR, abs=1e-4)
            assert point["x"] == CANDIDATES.get(label, 700)  # the bridge has no step: after the last
            assert point["bridge"] is (label == BRIDGE)
            assert point["flagged"] is ((bench[0], label) in FLAGGED)
            expected = FLAGGED.get((bench[0], label), "info" if label == BRIDGE else "pass")
            assert point["verdict"] == expected
        assert [p["checkpoint"] for p in plot["points"]] == [*CANDIDATES, BRIDGE]
        lines = {(line["kind"], line["label"]): line["value"] for line in plot["lines"]}
        assert lines == {("control", f"control: {CONTROL}"): VALUES[bench][CONTROL],
                         ("baseline", f"baseline: {BASELINE}"): BASELINE_VALUE[bench]}
        assert plot["band"] == trend.BAND
    step_0500 = next(p for p in plots[CHOICE]["points"] if p["checkpoint"] == "step_0500")
    assert {c["against"]: c["verdict"] for c in step_0500["comparisons"]} == {
        "threshold": "pass", f"bridge:{BRIDGE}": "fail", f"baseline:{BASELINE}": "pass"}


def test_the_table_has_one_row_per_latest_primary_result(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    table = text[text.index('<table id="verdicts">'):text.index("</table>")]
    # per benchmark: step_0100/0200 x 2 references (r1), step_0300..0600 x 3 (r2), the bridge, the control
    assert table.count("<tr data-checkpoint=") == 2 * (2 * 2 + 4 * 3 + 2)
    assert ('data-checkpoint="step_0500" data-benchmark="choice" data-metric="acc,none" '
            'data-against="bridge:bridge" data-verdict="fail"') in table
    assert 'data-checkpoint="step_0300" data-benchmark="choice" data-metric="acc,none" data-against="bridge:bridge" ' \
           'data-verdict="pass"' in table  # the older run's FAIL is superseded
    assert 'data-checkpoint="base_model" data-benchmark="gsm8k_4shot"' in table and 'data-role="control"' in table


def test_the_command_writes_the_report_into_the_results_folder(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    build_history(tmp_path)
    assert cli.main(["trend", str(tmp_path)]) == 0
    assert (tmp_path / "trend.html").is_file() and str(tmp_path / "trend.html") in capsys.readouterr().out
    out = tmp_path / "elsewhere" / "nightly.html"
    assert cli.main(["trend", str(tmp_path), "--out", str(out), "--suite", "nightly", "--title", "Nightly"]) == 0
    assert "<title>Nightly</title>" in out.read_text(encoding="utf-8")
    assert cli.main(["trend", str(tmp_path / "nothing")]) == 4
    assert "no such history database" in capsys.readouterr().err


# --------------------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (CI installs Debian's chromium)")
BROWSER_LIMIT_S = 300  # a hung browser fails the test instead of hanging the suite; normal runs take seconds


def _chromium(report_path: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
               "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: the page must need no network
               "--window-size=1400,2000", "--virtual-time-budget=5000", *args, report_path.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_LIMIT_S, check=True)


@pytest.fixture(scope="module")
def dom(report: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return _chromium(report, tmp_path_factory.mktemp("chromium-profile"), "--dump-dom").stdout


@needs_chromium
def test_chromium_renders_every_plot(dom: str) -> None:
    assert dom.count('class="main-svg"') >= 2 * 2  # plotly draws two main SVG layers per plot
    for benchmark, metric in (CHOICE, GSM):
        section = _section(dom, benchmark)
        assert 'class="main-svg"' in section and "scatterlayer" in section
        # every point drawn as an SVG marker: 6 candidates (coloured by verdict) and the bridge
        assert section.count('class="point"') == len(CANDIDATES) + 1
        for line in (f"bridge: {BRIDGE}", f"control: {CONTROL}", f"baseline: {BASELINE}"):
            assert line in section
        assert trend.BAND in section and metric in section
        assert f'data-unformatted="{BRIDGE}"' in section  # the x axis names the checkpoint without a step


@needs_chromium
def test_chromium_shows_the_flagged_labels_and_every_table_row(dom: str) -> None:
    for (benchmark, label), verdict in FLAGGED.items():
        section = _section(dom, benchmark)
        assert f'class="annotation-text"' in section and f"{label}: {verdict.upper()}" in section
    assert "step_0300: FAIL" not in dom  # superseded by the latest run
    for label in [*CANDIDATES, BRIDGE, CONTROL]:
        for benchmark, _ in (CHOICE, GSM):
            assert f'data-checkpoint="{label}" data-benchmark="{benchmark}"' in dom


def _section(dom: str, benchmark: str) -> str:
    start = dom.index(f'<section class="trend-plot" data-benchmark="{benchmark}"')
    return dom[start:dom.index("</section>", start)]


@needs_chromium
def test_chromium_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "trend.png"
    _chromium(report, tmp_path / "profile", f"--screenshot={shot}")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 2000)
    assert len(png) > 30_000  # a blank page of this size compresses to a few kilobytes
    pixels = zlib.decompress(b"".join(_chunks(png, b"IDAT")))
    assert len(set(pixels)) > 64  # text, markers, colours and anti-aliasing: many distinct byte values


def _chunks(png: bytes, kind: bytes) -> list[bytes]:
    found, at = [], 8
    while at < len(png):
        length = int.from_bytes(png[at:at + 4], "big")
        if png[at + 4:at + 8] == kind:
            found.append(png[at + 8:at + 8 + length])
        at += 12 + length
    return found
