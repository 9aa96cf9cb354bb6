"""A run killed with SIGKILL in the middle of a benchmark resumes from its last stored chunk of
model outputs, and ends with per-sample records and metrics identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from scorers.resume import CHUNKS, ChunkStore, run_chunked, stored_chunks
from test_e2e import PYTEST, ROOT

LIMIT = "40"


def _command(demo_root: Path, results: Path, cache: Path) -> list[str]:
    return [PYTEST, str(ROOT / "evaltests"), "-p", "no:cacheprovider", "-n", "0", "--limit", LIMIT,
            "--checkpoint", str(demo_root / "step_0800"), "--record-cache", str(cache), "--results-dir", str(results)]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def _stored(cache: Path) -> int:
    return stored_chunks(cache / "chunks")


def _outputs(results: Path) -> tuple[dict[str, bytes], dict[str, object]]:
    folder = results / "by_checkpoint" / "step_0800"
    samples = {p.name: p.read_bytes() for p in sorted(folder.glob("*.samples.jsonl"))}
    metrics = {p.name: json.loads(p.read_text())["metrics"] for p in sorted(folder.glob("*.json"))}
    return samples, metrics


@pytest.fixture(scope="module")
def uninterrupted(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], dict[str, object], int]:
    root = tmp_path_factory.mktemp("uninterrupted")
    proc = subprocess.run(_command(demo_root, root / "results", root / "cache"), cwd=ROOT, env=_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return (*_outputs(root / "results"), _stored(root / "cache"))


@pytest.mark.parametrize("kill_after", [3, 30, 70])
def test_a_killed_run_resumes_from_its_last_chunk_and_ends_identical(
        demo_root: Path, tmp_path: Path, uninterrupted: tuple[dict[str, bytes], dict[str, object], int], kill_after: int) -> None:
    samples, metrics, total = uninterrupted
    results, cache = tmp_path / "results", tmp_path / "cache"
    proc = subprocess.Popen(_command(demo_root, results, cache), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while _stored(cache) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = _stored(cache)
    assert kill_after <= stored < total
    # nothing incomplete looks complete: every record on disk names a samples file with its hash
    for record in results.glob("by_checkpoint/*/*.json"):
        assert json.loads(record.read_text())["samples_count"] >= 0
    rerun = subprocess.run(_command(demo_root, results, cache), cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert _outputs(results) == (samples, metrics)
    # the rerun scored only the chunks the killed run had not stored: none was scored twice
    timings = {(p.parent.name, tuple(t["evaluated_with"])): t["chunks"]
               for p in results.glob("by_checkpoint/*/*.json") if not (t := json.loads(p.read_text())["timing"])["from_cache"]}
    assert sum(chunks.get("scored", 0) for chunks in timings.values()) == total - stored
    assert _stored(cache) == total


def test_chunks_are_a_twentieth_each_and_a_stored_chunk_is_not_scored_again(tmp_path: Path) -> None:
    store, counts = ChunkStore(tmp_path / "s.sqlite"), Counter[str]()
    calls: list[list[int]] = []

    def call(chunk: list[int]) -> list[float]:
        calls.append(chunk)
        return [x / 3 for x in chunk]

    first = run_chunked(store, "m", call, list(range(100)), lambda x: x, counts)
    assert len(calls) == CHUNKS and max(len(c) for c in calls) == 100 // CHUNKS
    assert first == [x / 3 for x in range(100)] and counts == {"scored": CHUNKS}
    again = run_chunked(store, "m", call, list(range(100)), lambda x: x, counts)
    assert again == first and len(calls) == CHUNKS and counts["from_store"] == CHUNKS
    run_chunked(store, "other model", call, list(range(100)), lambda x: x, counts)
    assert len(calls) == 2 * CHUNKS  # another model's outputs are never reused
