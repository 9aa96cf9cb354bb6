"""--shard i/N and ckptgate merge: shards are disjoint, cover the run exactly once, and merged
give the verdicts of one unsharded run; a missing shard fails the merge loudly."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptgate import cli, exitcodes, sharding
from ckptgate.errors import CkptgateError
from test_e2e import PYTEST, ROOT

LABELS = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12),
                  unique=True, max_size=40)


@given(labels=LABELS, shards=st.integers(min_value=1, max_value=12), seed=st.randoms())
def test_shards_are_disjoint_cover_the_run_once_and_do_not_depend_on_order(labels, shards, seed) -> None:  # type: ignore[no-untyped-def]
    parts = [sharding.labels_in(labels, (i, shards)) for i in range(1, shards + 1)]
    owned = [label for part in parts for label in part]
    assert sorted(owned) == sorted(labels) and len(owned) == len(set(owned))
    sizes = [len(part) for part in parts]
    assert max(sizes) - min(sizes) <= 1  # balanced: at most one checkpoint apart
    shuffled = list(labels)
    seed.shuffle(shuffled)
    assert sharding.assign(shuffled, shards) == sharding.assign(labels, shards)


def test_the_assignment_is_a_stable_hash_the_same_on_every_machine() -> None:
    assert sharding.assign(["step_0100", "step_0800", "bridge"], 2) == {"step_0100": 2, "step_0800": 1, "bridge": 1}


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "2", "1/2/3", ""])
def test_a_bad_shard_is_refused_with_the_form_to_use(text: str) -> None:
    with pytest.raises(CkptgateError, match="--shard"):
        sharding.parse(text)


def _run(tmp_path: Path, demo_root: Path, results: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTEST, str(ROOT / "evaltests"), "-p", "no:cacheprovider", "--limit", "20", "-k", "choice or arithmetic",
         "--checkpoint", str(demo_root / "step_0100"), "--checkpoint", str(demo_root / "step_0800"),
         "--record-cache", str(tmp_path / "records"), "--results-dir", str(results), *args],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)


def _rows(path: Path) -> list[tuple[str, ...]]:
    with path.open() as handle:
        return sorted((r["checkpoint"], r["benchmark"], r["metric"], r["against"], r["value"], r["p_holm"], r["verdict"])
                      for r in csv.DictReader(handle))


def test_two_shards_merged_give_the_unsharded_runs_verdicts(demo_root: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    whole = _run(tmp_path, demo_root, tmp_path / "whole")
    assert whole.returncode == exitcodes.NO_GO, whole.stdout[-3000:]  # step_0100 regresses
    run = tmp_path / "run"
    for index in (1, 2):
        shard = _run(tmp_path, demo_root, sharding.shard_dir(run, index, 2), "--shard", f"{index}/2",
                     "--junitxml", str(sharding.shard_dir(run, index, 2) / "junit.xml"))
        assert shard.returncode in (exitcodes.GO, exitcodes.NO_GO, exitcodes.INCONCLUSIVE), shard.stdout[-3000:]
        assert "deselected" in shard.stdout  # the other shard's checkpoint
    mine = [json.loads((sharding.shard_dir(run, i, 2) / sharding.MARKER).read_text())["mine"] for i in (1, 2)]
    assert sorted(mine[0] + mine[1]) == ["bridge", "step_0100", "step_0800"]
    assert cli.main(["merge", str(run), "--shards", "2"]) == exitcodes.NO_GO
    assert "ckptgate verdict: NO-GO" in capsys.readouterr().out
    assert _rows(run / "eval_summary.csv") == _rows(tmp_path / "whole" / "eval_summary.csv")
    junit = (run / "junit.xml").read_text()
    assert junit.count("<testcase") == 6 and 'name="verdict" value="NO-GO"' in junit and "<failure" in junit
    assert "merged" in (run / "summary.md").read_text()
    # One shard's output gone: the merge fails loudly, naming it, as a failure of the machine.
    (sharding.shard_dir(run, 2, 2) / sharding.MARKER).unlink()
    assert cli.main(["merge", str(run), "--shards", "2"]) == exitcodes.INFRA
    assert "shard 2 of 2: no " in capsys.readouterr().err


def test_a_shard_with_no_checkpoint_of_its_own_succeeds_and_says_so(demo_root: Path, tmp_path: Path) -> None:
    labels = ["step_0100", "step_0800", "bridge"]
    empty = next(i for i in range(1, 5) if not sharding.labels_in(labels, (i, 4)))
    proc = _run(tmp_path, demo_root, tmp_path / "empty", "--shard", f"{empty}/4")
    assert proc.returncode == exitcodes.GO, proc.stdout[-3000:]
    marker = json.loads((tmp_path / "empty" / sharding.MARKER).read_text())
    assert marker["mine"] == [] and marker["checkpoints"] == labels and marker["shard"] == empty
