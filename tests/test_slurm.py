"""``ckptgate slurm``: the size table, the commands and dependency it builds, --dry-run, and a real
one-node SLURM cluster (ci/slurm/start_local.sh) running two shards of the demo and their merge."""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import json
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ckptgate import cli, exitcodes, slurm
from ckptgate.errors import CkptgateError, InfrastructureError
from ckptgate.resources import evaltests_dir

ROOT = Path(__file__).resolve().parent.parent
START, STOP = ROOT / "ci" / "slurm" / "start_local.sh", ROOT / "ci" / "slurm" / "stop_local.sh"
CLUSTER_DIR = Path(os.environ.get("CKPTGATE_SLURM_DIR", "/var/tmp/ckptgate-slurm"))

# Llama-3-8B and Llama-3.1-70B's config.json sizes (8.03B and 70.6B weights).
LLAMA_8B = {"hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 14336, "vocab_size": 128256,
            "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": False}
LLAMA_70B = LLAMA_8B | {"hidden_size": 8192, "num_hidden_layers": 80, "intermediate_size": 28672,
                        "num_attention_heads": 64}


# -- the size table ----------------------------------------------------------------------------

@pytest.mark.parametrize(("parameters", "label"), [
    (0, "1B"), (1_500_000_000, "1B"), (1_500_000_001, "3B"), (4_000_000_000, "3B"), (4_000_000_001, "8B"),
    (10_000_000_000, "8B"), (10_000_000_001, "70B"), (400_000_000_000, "70B"), (None, "1B"),
])
def test_the_size_table_boundaries(parameters: int | None, label: str) -> None:
    assert slurm.choose_resources(parameters).label == label


def test_the_size_table_rows() -> None:
    rows = {r.label: (r.mem, r.gpus, r.gpu_memory_gb, r.cpus) for _, r in slurm.RESOURCE_TABLE}
    assert rows == {"1B": ("32G", 1, None, 4), "3B": ("64G", 1, 80, 4), "8B": ("96G", 1, 80, 8),
                    "70B": ("256G", 4, 80, 8)}


def test_parameters_are_estimated_from_a_decoder_config() -> None:
    assert slurm.estimate_parameters(LLAMA_8B) == pytest.approx(8.03e9, rel=0.01)
    assert slurm.estimate_parameters(LLAMA_70B) == pytest.approx(70.6e9, rel=0.01)
    assert slurm.estimate_parameters({"hidden_size": 64}) is None


def test_the_demo_checkpoints_are_sized_from_their_weights() -> None:
    folder, parameters = slurm.largest_checkpoint("demo")
    assert folder is not None and folder.parent == evaltests_dir() / "demo"
    assert parameters is not None and 0.8e6 < parameters < 1e6
    config = json.loads((folder / "config.json").read_text())
    assert slurm.estimate_parameters(config) == pytest.approx(parameters, rel=0.02)  # the estimate agrees


def test_the_largest_checkpoint_decides(tmp_path: Path) -> None:
    for name, config in (("step_1", LLAMA_8B), ("step_2", LLAMA_70B), ("notes", None)):
        (tmp_path / name).mkdir()
        if config is not None:  # config only: sized by the estimate
            (tmp_path / name / "config.json").write_text(json.dumps(config))
    folder, parameters = slurm.largest_checkpoint(str(tmp_path))
    assert folder == tmp_path / "step_2"
    assert slurm.choose_resources(parameters).label == "70B"


def test_an_unknown_size_gets_the_smallest_row_and_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["X"]}))
    assert cli.main(["slurm", "--checkpoint", str(tmp_path), "--shards", "2", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "warning: no checkpoint size could be read" in err
    assert "resources: 1B row (unknown size)" in out


def test_a_missing_or_empty_checkpoint_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(CkptgateError, match="no such folder"):
        slurm.make_plan(str(tmp_path / "nope"), "demo", 2, tmp_path)
    (tmp_path / "step_1").mkdir()
    with pytest.raises(CkptgateError, match="neither it nor a folder in it holds a config.json"):
        slurm.make_plan(str(tmp_path), "demo", 2, tmp_path)


def test_overrides_replace_the_table() -> None:
    row = slurm.choose_resources(70_000_000_000)
    small = slurm.Overrides(cpus=1, mem="3G", gpus=0).apply(row)
    assert (small.cpus, small.mem, small.gpus) == (1, "3G", 0)
    params = slurm.executor_parameters(small, name="x", time_min=10, partition="debug")
    assert params == {"job_name": "x", "time": 10, "cpus_per_task": 1, "mem": "3G", "partition": "debug"}
    assert slurm.executor_parameters(row, name="x", time_min=10)["gpus_per_task"] == 4
    assert slurm.Overrides().apply(row) == row
    with pytest.raises(CkptgateError, match="--mem 3 GB"):
        slurm.Overrides(mem="3 GB").apply(row)
    with pytest.raises(CkptgateError, match="--gpus-per-task -1"):
        slurm.Overrides(gpus=-1).apply(row)


# -- the commands ------------------------------------------------------------------------------

def test_the_command_of_shard_i(tmp_path: Path) -> None:
    assert slurm.shard_command("py", "/ckpts/run7", "qwen3", 2, 3, tmp_path, ["--limit", "20"]) == [
        "py", "-m", "pytest", str(evaltests_dir()), "-p", "no:cacheprovider", "--checkpoint", "/ckpts/run7",
        "--suite", "qwen3", "--shard", "2/3", "--results-dir", str(tmp_path / "shards" / "2-of-3"),
        "--record-cache", str(tmp_path / "records"), "--junitxml", str(tmp_path / "shards" / "2-of-3" / "junit.xml"),
        "--limit", "20"]
    assert slurm.merge_command("py", tmp_path, 3) == ["py", "-m", "ckptgate.cli", "merge", str(tmp_path),
                                                      "--shards", "3"]


def test_shards_given_gpus_require_them_and_cpu_shards_do_not(tmp_path: Path) -> None:
    on_gpus = slurm.make_plan("demo", "demo", 2, tmp_path, python="py")
    assert all("--require-gpu" in command for command in on_gpus.shard_commands)
    on_cpus = slurm.make_plan("demo", "demo", 2, tmp_path, python="py", overrides=slurm.Overrides(gpus=0))
    assert not any("--require-gpu" in command for command in on_cpus.shard_commands)


def test_the_plan_numbers_shards_from_one(tmp_path: Path) -> None:
    plan = slurm.make_plan("demo", "demo", 3, tmp_path, python="py")
    assert [c[c.index("--shard") + 1] for c in plan.shard_commands] == ["1/3", "2/3", "3/3"]
    assert plan.array_parameters["array_parallelism"] == 3
    assert plan.log_folder == tmp_path.resolve() / "slurm" / "%j"
    assert "gpus_per_task" not in plan.merge_parameters


def test_the_merge_depends_on_every_end_of_the_array() -> None:
    assert slurm.dependency("123") == "afterany:123"
    assert slurm.array_job_id("123_1") == slurm.array_job_id("123") == "123"


def test_options_each_shard_sets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CkptgateError, match="--results-dir: set per shard"):
        slurm.make_plan("demo", "demo", 2, tmp_path, pytest_args=["--results-dir=x"])
    with pytest.raises(CkptgateError, match="--shards 0"):
        slurm.make_plan("demo", "demo", 0, tmp_path)


def test_dry_run_prints_the_jobs_and_submits_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slurm, "submit", lambda plan: pytest.fail("--dry-run submitted"))
    code = cli.main(["slurm", "--checkpoint", "demo", "--suite", "demo", "--shards", "2", "--results-dir",
                     str(tmp_path), "--partition", "gpu", "--dry-run", "--", "--limit", "20"])
    out = capsys.readouterr().out
    assert code == 0
    assert "resources: 1B row (0.9M parameters, largest step_" in out
    assert ("sbatch --job-name=ckptgate-shard --time=1440 --cpus-per-task=4 --mem=32G --gpus-per-task=1 "
            "--partition=gpu --array=0-1%2") in out
    assert f"shard 1/2 (array index 0): {sys.executable} -m pytest" in out
    assert "--shard 2/2" in out and "--limit 20" in out
    assert "--dependency=afterany:<array job id>" in out
    assert f"-m ckptgate.cli merge {tmp_path} --shards 2" in out
    assert out.rstrip().endswith("dry run: nothing submitted")


def test_no_gpu_drops_the_gpu_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["slurm", "--checkpoint", "demo", "--shards", "1", "--results-dir", str(tmp_path), "--no-gpu",
              "--cpus-per-task", "1", "--mem", "3G", "--dry-run"])
    out = capsys.readouterr().out
    assert "--cpus-per-task=1 --mem=3G --array=0-0%1" in out and "gpus" not in out.split("shard 1/1")[0]
    assert "resources: 1B row (0.9M parameters, largest step_0900), overridden: 1 CPU(s), 3G memory, no GPU" in out


def test_without_sbatch_submitting_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(CkptgateError, match="sbatch not found.*--dry-run"):
        slurm.submit(slurm.make_plan("demo", "demo", 2, tmp_path))


# -- the jobs' functions and waiting -----------------------------------------------------------

def test_a_task_returns_a_verdict_and_fails_on_any_other_exit_code() -> None:
    for code in (exitcodes.GO, exitcodes.NO_GO, exitcodes.INCONCLUSIVE):
        assert slurm.run_shard([sys.executable, "-c", f"raise SystemExit({code})"]) == code
    with pytest.raises(slurm.TaskFailed) as failed:
        slurm.run_merge([sys.executable, "-c", "raise SystemExit(4)"])
    trace = "".join(traceback.format_exception(failed.value))  # what submitit hands back from the job
    assert slurm.exit_code_of_failure(trace) == 4
    assert slurm.exit_code_of_failure("MemoryError") is None


def test_waiting_on_a_job_that_ended_without_a_result_is_an_error(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slurm, "queue_state", lambda job_id: "CANCELLED")
    paths = SimpleNamespace(result_pickle=tmp_path / "r.pkl", stdout=tmp_path / "o", stderr=tmp_path / "e")
    with pytest.raises(InfrastructureError, match="merge job 7 ended \\(CANCELLED\\) without a result"):
        slurm.wait(SimpleNamespace(job_id="7", paths=paths), poll_s=0.01, grace_s=0.05)  # type: ignore[arg-type]


# -- a real cluster ----------------------------------------------------------------------------

def _gate_shards_and_merges() -> bool:
    """Whether this checkout's gate has --shard and ``ckptgate merge`` (the parts the results
    assertions need)."""
    from ckptgate import options

    subcommands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    return '"--shard"' in Path(options.__file__).read_text(encoding="utf-8") and "merge" in subcommands


def _alive(pidfile: Path) -> bool:
    try:
        return _pid_alive(int(pidfile.read_text()))
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _users() -> Iterator[dict[str, Any]]:
    """The test processes using the local cluster (xdist workers each set it up), under a lock:
    the last one out stops it, when the tests started it."""
    CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
    with open(CLUSTER_DIR / "test-users.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = CLUSTER_DIR / "test-users.json"
        state: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"pids": [], "started": False}
        state["pids"] = [pid for pid in state["pids"] if _pid_alive(pid)]
        yield state
        path.write_text(json.dumps(state))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def local_slurm() -> Iterator[dict[str, str]]:
    """The one-node cluster of ci/slurm/start_local.sh, started when not running; the
    environment that reaches it (SLURM_CONF)."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (apt-get install, munged, slurmd)")
    with _users() as users:
        was_running = _alive(CLUSTER_DIR / "run" / "slurmctld.pid")
        done = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.skip(f"the local SLURM cluster did not start (exit {done.returncode}; apt-get or slurmctld):\n"
                        f"{(done.stdout + done.stderr)[-3000:]}")
        users["started"] = bool(users["started"]) or not was_running
        users["pids"] = [*users["pids"], os.getpid()]
    yield os.environ | {"SLURM_CONF": str(CLUSTER_DIR / "slurm.conf")}
    with _users() as users:
        users["pids"] = [pid for pid in users["pids"] if pid != os.getpid()]
        if not users["pids"] and users["started"]:
            subprocess.run(["bash", str(STOP)], capture_output=True, check=False, timeout=120)
            users["started"] = False


def _slurm_command(results: Path, *extra: str) -> list[str]:
    """The submission the integration tests make: the demo in two shards, sized for this node
    (no GPU, one CPU and 3 GB per shard)."""
    return [sys.executable, "-m", "ckptgate.cli", "slurm", "--checkpoint", "demo", "--suite", "demo",
            "--shards", "2", "--results-dir", str(results), "--no-gpu", "--cpus-per-task", "1", "--mem", "3G",
            "--time", "15", *extra]


def _job_times(job_id: str, env: dict[str, str]) -> dict[str, tuple[str, str, str]]:
    """Each job (array task ``<id>_<index>``) of ``job_id``: (state, start, end), from scontrol
    (finished jobs stay listed for MinJobAge, 600 s on the local cluster)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, env=env,
                         check=True).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        name = fields["JobId"] if "ArrayTaskId" not in fields else f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
        jobs[name] = (fields["JobState"], fields["StartTime"], fields["EndTime"])
    return jobs


def _verdict_code(summary_csv: Path) -> int:
    """The exit code the merged rows call for: NO-GO on a FAIL, GO when every gating primary
    comparison passed, else INCONCLUSIVE (INFO rows, such as the bridge's own, never gate)."""
    with summary_csv.open(newline="") as f:
        verdicts = [row["verdict"] for row in csv.DictReader(f) if row["primary"] == "True" and row["verdict"] != "info"]
    if "fail" in verdicts:
        return exitcodes.NO_GO
    return exitcodes.GO if verdicts and all(v == "pass" for v in verdicts) else exitcodes.INCONCLUSIVE


def _ids(stdout: str) -> tuple[str, str]:
    array = re.search(r"^array job (\d+):", stdout, re.M)
    merge = re.search(r"^merge job (\d+) \(after any end of (\d+)\)", stdout, re.M)
    assert array and merge and merge.group(2) == array.group(1), stdout
    return array.group(1), merge.group(1)


@pytest.mark.slow
def test_a_real_cluster_runs_two_shards_then_their_merge(local_slurm: dict[str, str], tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = subprocess.run(_slurm_command(results, "--wait", "--", "--limit", "10"), cwd=tmp_path, env=local_slurm,
                          capture_output=True, text=True, timeout=900, check=False)
    array, merge = _ids(done.stdout)
    logs = results / "slurm"
    for index in (0, 1):  # both array tasks ran to the end (submitit wrote their results)
        assert (logs / f"{array}_{index}" / f"{array}_{index}_0_result.pkl").is_file(), done.stdout + done.stderr
    assert (logs / merge / f"{merge}_0_result.pkl").is_file(), done.stderr
    assert f"#SBATCH --dependency=afterany:{array}" in (logs / merge / f"{merge}_submission.sh").read_text()
    jobs = _job_times(array, local_slurm) | _job_times(merge, local_slurm)
    assert jobs[merge][1] >= max(jobs[f"{array}_{i}"][2] for i in (0, 1)), jobs  # the merge started after both
    if not _gate_shards_and_merges():
        pytest.skip("the gate has no --shard / `ckptgate merge` yet: the jobs ran, their results are not checked")
    for index in (1, 2):
        shard = results / "shards" / f"{index}-of-2"
        assert (shard / "junit.xml").is_file(), (logs / f"{array}_{index - 1}" / f"{array}_{index - 1}_0_log.err")
    for name in ("summary.md", "eval_summary.csv", "junit.xml"):
        assert (results / name).is_file(), done.stderr
    assert done.returncode == _verdict_code(results / "eval_summary.csv"), done.stdout + done.stderr
    verdict = {exitcodes.GO: "GO", exitcodes.NO_GO: "NO-GO", exitcodes.INCONCLUSIVE: "INCONCLUSIVE"}[done.returncode]
    assert f"**Verdict: {verdict}**" in (results / "summary.md").read_text()
    assert {state for state, _, _ in jobs.values()} == {"COMPLETED"}, jobs


@pytest.mark.slow
def test_a_shard_that_never_ran_fails_the_merge_loudly(local_slurm: dict[str, str], tmp_path: Path) -> None:
    """Shard 2 is cancelled while it waits behind shard 1 (one at a time): the merge still runs
    (afterany) and fails, naming the missing shard, and --wait exits with its code."""
    results = tmp_path / "results"
    proc = subprocess.Popen(_slurm_command(results, "--max-parallel", "1", "--wait", "--", "--limit", "5"),
                            cwd=tmp_path, env=local_slurm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("merge job "):
            break
    array, merge = _ids("".join(lines))
    subprocess.run(["scancel", f"{array}_1"], env=local_slurm, check=True)
    out, err = proc.communicate(timeout=900)
    assert (results / "slurm" / merge / f"{merge}_0_result.pkl").is_file(), err  # the merge ran all the same
    jobs = _job_times(array, local_slurm)  # a pending task cancelled leaves no job record
    assert f"{array}_0" in jobs and f"{array}_1" not in jobs, jobs
    assert not (results / "slurm" / f"{array}_1" / f"{array}_1_0_result.pkl").exists()
    assert proc.returncode not in slurm.VERDICT_CODES, out + err
    if not _gate_shards_and_merges():
        pytest.skip("the gate has no --shard / `ckptgate merge` yet: the merge ran, its message is not checked")
    assert proc.returncode == exitcodes.INFRA, out + err  # a shard that never ran is the machine's failure
    assert jobs[f"{array}_0"][0] == "COMPLETED", jobs  # shard 1 ran its gate
    log = "".join(p.read_text() for p in (results / "slurm" / merge).glob("*_log.*"))
    assert re.search(r"shard[^\n]*\b2\b|2-of-2", log, re.I), log[-3000:]
    assert not (results / "summary.md").exists()
