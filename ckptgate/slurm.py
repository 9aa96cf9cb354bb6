"""``ckptgate slurm``: one gate run spread over a SLURM cluster, as a job array and a merge job.

The checkpoints' benchmarks are split into N shards (the gate's ``--shard i/N``). Each shard is
one task of a SLURM job array, submitted through submitit: task i (array index i - 1) runs the
gate as a subprocess, ``python -m pytest <evaltests> --shard i/N``, with its own results folder
``DIR/shards/<i>-of-<N>`` (and its JUnit XML there) and the shared record cache ``DIR/records``.
Its exit code says whether it ran: 0 (GO), 1 (NO-GO) and 6 (INCONCLUSIVE) are verdicts, so the
task succeeded; any other code fails the task. A merge job, submitted with the dependency
``afterany:<array job id>`` so it runs however the shards ended, runs ``ckptgate merge DIR
--shards N``: it checks every shard's results are there, settles the verdicts over their union and
writes ``DIR/summary.md``, ``DIR/eval_summary.csv`` and ``DIR/junit.xml``; its exit code is the
run's verdict. ``--wait`` waits for it and exits with that code.

Each job's resources come from the size of the largest checkpoint under the root
(:data:`RESOURCE_TABLE`, chosen by :func:`choose_resources`); ``--cpus-per-task``, ``--mem``,
``--gpus-per-task`` (``--no-gpu``) override it, e.g. for a cluster without GPUs, whose nodes
reject a GPU request. Job states are read from the job folders (submitit's result files) and
``squeue``, never ``sacct``: clusters without accounting work too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptgate import exitcodes
from ckptgate.errors import CkptgateError, InfrastructureError
from ckptgate.resources import evaltests_dir
from ckptgate.sharding import shard_dir

if TYPE_CHECKING:
    import argparse

    import submitit

VERDICT_CODES = frozenset({exitcodes.GO, exitcodes.NO_GO, exitcodes.INCONCLUSIVE})
DEMO_SPECS = ("demo", "demo:all")  # the gate's --checkpoint names for the shipped demo series
DEFAULT_TIME_MIN = 24 * 60
MERGE_TIME_MIN = 60
#: The gate options each shard's command sets itself.
SET_PER_SHARD = frozenset({"--checkpoint", "--suite", "--shard", "--results-dir", "--record-cache", "--junitxml",
                           "--junit-xml"})
_MEM = re.compile(r"^[1-9][0-9]*[KMGT]?$")
_EXIT_CODE = re.compile(r"ckptgate task: .* exited with code (-?\d+)")


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one job asks SLURM for. ``gpu_memory_gb`` is the memory each GPU needs (None: any
    GPU); SLURM has no portable request for it, so it is shown, and ``--constraint`` passes a
    site's feature name for such nodes."""

    label: str
    mem: str
    gpus: int
    cpus: int
    gpu_memory_gb: int | None = None

    def text(self) -> str:
        gpus = "no GPU" if self.gpus == 0 else f"{self.gpus} GPU(s)" + (
            f" of {self.gpu_memory_gb} GB" if self.gpu_memory_gb else "")
        return f"{self.cpus} CPU(s), {self.mem} memory, {gpus}"


#: Resources per job by the largest checkpoint's parameter count: (at most this many, resources).
RESOURCE_TABLE: tuple[tuple[float, Resources], ...] = (
    (1.5e9, Resources("1B", mem="32G", gpus=1, cpus=4)),
    (4e9, Resources("3B", mem="64G", gpus=1, cpus=4, gpu_memory_gb=80)),
    (10e9, Resources("8B", mem="96G", gpus=1, cpus=8, gpu_memory_gb=80)),
    (math.inf, Resources("70B", mem="256G", gpus=4, cpus=8, gpu_memory_gb=80)),
)
#: The merge job reads the shards' records and writes the reports: no GPU, little memory.
MERGE_RESOURCES = Resources("merge", mem="4G", gpus=0, cpus=1)


def choose_resources(parameters: int | None) -> Resources:
    """The table's row for a checkpoint of ``parameters`` weights; an unknown size gets the
    smallest row (the caller warns)."""
    if parameters is None:
        return RESOURCE_TABLE[0][1]
    return next(resources for most, resources in RESOURCE_TABLE if parameters <= most)


@dataclasses.dataclass(frozen=True)
class Overrides:
    """Explicit resources from the command line, each replacing the table's value when set."""

    cpus: int | None = None
    mem: str | None = None
    gpus: int | None = None

    def apply(self, resources: Resources) -> Resources:
        if self.mem is not None and not _MEM.match(self.mem):
            raise CkptgateError(f"--mem {self.mem}: expected SLURM's form, e.g. 4G, 4096M or 4096")
        if self.cpus is not None and self.cpus < 1:
            raise CkptgateError(f"--cpus-per-task {self.cpus}: must be at least 1")
        if self.gpus is not None and self.gpus < 0:
            raise CkptgateError(f"--gpus-per-task {self.gpus}: must be at least 0")
        return dataclasses.replace(resources, cpus=resources.cpus if self.cpus is None else self.cpus,
                                   mem=resources.mem if self.mem is None else self.mem,
                                   gpus=resources.gpus if self.gpus is None else self.gpus)


# -- sizing ------------------------------------------------------------------------------------

def checkpoint_folders(root: str) -> list[Path]:
    """The checkpoint folders a ``--checkpoint`` value names: the folder itself when it holds a
    config.json, else its children that do (``demo`` names the shipped demo series)."""
    path = evaltests_dir() / "demo" if root in DEMO_SPECS else Path(root).expanduser()
    if not path.is_dir():
        raise CkptgateError(f"--checkpoint {root}: no such folder")
    if (path / "config.json").is_file():
        return [path]
    found = sorted(child for child in path.iterdir() if (child / "config.json").is_file())
    if not found:
        raise CkptgateError(f"--checkpoint {root}: neither it nor a folder in it holds a config.json "
                            "(give a checkpoint folder or the parent of step_N checkpoint folders)")
    return found


def estimate_parameters(config: dict[str, Any]) -> int | None:
    """A standard decoder's weight count from its config.json: embeddings (twice when untied),
    attention (with grouped key/value heads) and a gated MLP per layer; None when a field is missing."""
    try:
        hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        intermediate, vocab = int(config["intermediate_size"]), int(config["vocab_size"])
    except (KeyError, TypeError, ValueError):
        return None
    heads = int(config.get("num_attention_heads") or 1)
    head_dim = int(config.get("head_dim") or hidden // heads)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", False) else 2)
    return embeddings + layers * (attention + 3 * hidden * intermediate)


def parameters_of(folder: Path) -> int | None:
    """The checkpoint's weight count from its safetensors headers, else estimated from its config."""
    from ckptgate.checkpoints import parameter_count

    try:
        return parameter_count(folder)
    except (CkptgateError, OSError, ValueError, KeyError):
        pass
    try:
        return estimate_parameters(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def largest_checkpoint(root: str) -> tuple[Path | None, int | None]:
    """The largest checkpoint under ``root`` and its weight count (None, None when none is known)."""
    sizes = [(size, folder) for folder in checkpoint_folders(root) if (size := parameters_of(folder)) is not None]
    if not sizes:
        return None, None
    size, folder = max(sizes)
    return folder, size


# -- commands ----------------------------------------------------------------------------------

def shard_command(python: str, checkpoint: str, suite: str, index: int, shards: int, results_dir: Path,
                  pytest_args: Sequence[str] = ()) -> list[str]:
    """The gate run of shard ``index`` of ``shards`` (1-based), as array task ``index - 1`` runs it."""
    out = shard_dir(results_dir, index, shards)
    return [python, "-m", "pytest", str(evaltests_dir()), "-p", "no:cacheprovider",
            "--checkpoint", checkpoint, "--suite", suite, "--shard", f"{index}/{shards}",
            "--results-dir", str(out), "--record-cache", str(results_dir / "records"),
            "--junitxml", str(out / "junit.xml"), *pytest_args]


def merge_command(python: str, results_dir: Path, shards: int) -> list[str]:
    return [python, "-m", "ckptgate.cli", "merge", str(results_dir), "--shards", str(shards)]


def dependency(array_job_id: str) -> str:
    """The merge job's dependency: start once every array task has ended, however it ended."""
    return f"afterany:{array_job_id}"


def array_job_id(job_id: str) -> str:
    """The job array's id from one task's id (``123_0`` -> ``123``; a one-task array is ``123``)."""
    return job_id.split("_", 1)[0]


def executor_parameters(resources: Resources, *, name: str, time_min: int, partition: str | None = None,
                        constraint: str | None = None) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters (its names for sbatch's options) for one kind of job."""
    params: dict[str, Any] = {"job_name": name, "time": time_min, "cpus_per_task": resources.cpus,
                              "mem": resources.mem}
    if resources.gpus:
        params["gpus_per_task"] = resources.gpus
    if partition:
        params["partition"] = partition
    if constraint:
        params["constraint"] = constraint
    return params


def sbatch_flags(params: dict[str, Any]) -> list[str]:
    """The sbatch options submitit writes for ``params`` (as shown by --dry-run)."""
    flags = []
    for key, value in params.items():
        if key == "array_parallelism":
            continue
        flags.append(f"--{key.replace('_', '-')}={value}")
    return flags


# -- the plan ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a submission sends, worked out before anything is submitted."""

    shards: int
    results_dir: Path
    resources: Resources
    largest: Path | None
    parameters: int | None
    shard_commands: tuple[tuple[str, ...], ...]
    merge_command: tuple[str, ...]
    array_parameters: dict[str, Any]
    merge_parameters: dict[str, Any]

    @property
    def log_folder(self) -> Path:
        """submitit's job folder pattern: one folder per job (array task ``<id>_<index>``)."""
        return self.results_dir / "slurm" / "%j"


def make_plan(checkpoint: str, suite: str, shards: int, results_dir: Path, *, overrides: Overrides = Overrides(),
              partition: str | None = None, time_min: int = DEFAULT_TIME_MIN, constraint: str | None = None,
              max_parallel: int | None = None, pytest_args: Sequence[str] = (),
              python: str = sys.executable) -> Plan:
    if shards < 1:
        raise CkptgateError(f"--shards {shards}: must be at least 1")
    if max_parallel is not None and max_parallel < 1:
        raise CkptgateError(f"--max-parallel {max_parallel}: must be at least 1")
    taken = sorted({arg.split("=")[0] for arg in pytest_args if arg.split("=")[0] in SET_PER_SHARD})
    if taken:
        raise CkptgateError(f"{', '.join(taken)}: set per shard by ckptgate slurm; leave them out of the pytest arguments")
    largest, parameters = largest_checkpoint(checkpoint)
    resources = overrides.apply(choose_resources(parameters))
    results_dir = results_dir.expanduser().resolve()
    ckpt = checkpoint if checkpoint in DEMO_SPECS else str(Path(checkpoint).expanduser().resolve())
    suite_arg = str(Path(suite).resolve()) if Path(suite).suffix in (".yaml", ".yml") else suite
    # A shard given GPUs must use them: without --require-gpu a node whose GPUs cannot be used would
    # fall back to the CPU and take many times longer; with it, the shard fails as the machine's fault (exit 7).
    gate_args = ["--require-gpu", *pytest_args] if resources.gpus and "--require-gpu" not in pytest_args else pytest_args
    commands = tuple(tuple(shard_command(python, ckpt, suite_arg, i, shards, results_dir, gate_args))
                     for i in range(1, shards + 1))
    array = executor_parameters(resources, name="ckptgate-shard", time_min=time_min, partition=partition,
                                constraint=constraint)
    array["array_parallelism"] = max_parallel or shards
    merge = executor_parameters(MERGE_RESOURCES, name="ckptgate-merge", time_min=MERGE_TIME_MIN, partition=partition)
    return Plan(shards, results_dir, resources, largest, parameters, commands,
                tuple(merge_command(python, results_dir, shards)), array, merge)


def size_text(parameters: int | None) -> str:
    if parameters is None:
        return "unknown size"
    return f"{parameters / 1e9:.2f}B parameters" if parameters >= 1e8 else f"{parameters / 1e6:.1f}M parameters"


def warnings_of(plan: Plan) -> list[str]:
    if plan.parameters is None:
        return [f"warning: no checkpoint size could be read (no safetensors header or config.json sizes); "
                f"using the smallest resources ({plan.resources.text()}); set --cpus-per-task, --mem, "
                "--gpus-per-task to choose"]
    return []


def describe(plan: Plan) -> list[str]:
    """What --dry-run prints: the resources and why, each job's sbatch options and commands."""
    where = "" if plan.largest is None else f", largest {plan.largest.name}"
    n = plan.shards
    array = plan.array_parameters
    overridden = ", overridden" if plan.resources != choose_resources(plan.parameters) else ""
    lines = [
        f"resources: {plan.resources.label} row ({size_text(plan.parameters)}{where}){overridden}: "
        f"{plan.resources.text()} per shard",
        f"array job: {n} task(s), at most {array['array_parallelism']} at once: sbatch "
        + " ".join([*sbatch_flags(array), f"--array=0-{n - 1}%{array['array_parallelism']}"]),
    ]
    for i, command in enumerate(plan.shard_commands, start=1):
        lines.append(f"  shard {i}/{n} (array index {i - 1}): {shlex.join(command)}")
    lines += [
        "merge job: sbatch " + " ".join([*sbatch_flags(plan.merge_parameters),
                                         "--dependency=" + dependency("<array job id>")]),
        f"  {shlex.join(plan.merge_command)}",
        f"logs: {plan.log_folder} (one folder per job: <array job id>_<index>, <merge job id>)",
    ]
    return lines


# -- the jobs' functions (run on the cluster) --------------------------------------------------

class TaskFailed(RuntimeError):
    """A job's command ended with an exit code that is not a verdict."""


def run_shard(command: Sequence[str]) -> int:
    """One array task: the shard's gate run; its verdict's exit code, or TaskFailed."""
    code = subprocess.run(list(command), check=False).returncode
    if code in VERDICT_CODES:
        return code
    raise TaskFailed(f"ckptgate task: {shlex.join(command)} exited with code {code}")


def run_merge(command: Sequence[str]) -> int:
    """The merge job: ``ckptgate merge``; the run's verdict's exit code, or TaskFailed."""
    return run_shard(command)


# -- submitting and waiting --------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Submission:
    array_job_id: str
    shard_jobs: tuple[submitit.Job[int], ...]
    merge_job: submitit.Job[int]


def submit(plan: Plan) -> Submission:
    """Submit the job array, then the merge job depending on it (the array is cancelled when the
    merge job cannot be submitted)."""
    if shutil.which("sbatch") is None:
        raise CkptgateError("sbatch not found: run `ckptgate slurm` where SLURM's commands are (a login node), "
                            "or add --dry-run to see what would be submitted")
    import submitit
    from submitit.core.utils import FailedJobError

    executor = submitit.SlurmExecutor(folder=plan.log_folder)
    executor.update_parameters(**plan.array_parameters)
    try:
        shard_jobs = executor.map_array(run_shard, [list(c) for c in plan.shard_commands])
    except FailedJobError as exc:
        raise CkptgateError(f"sbatch refused the job array: {_sbatch_error(exc)}") from None
    array_id = array_job_id(shard_jobs[0].job_id)
    merge_executor = submitit.SlurmExecutor(folder=plan.log_folder)
    merge_executor.update_parameters(**plan.merge_parameters, dependency=dependency(array_id),
                                     additional_parameters={"kill-on-invalid-dep": "yes"})
    try:
        merge_job = merge_executor.submit(run_merge, list(plan.merge_command))
    except FailedJobError as exc:
        subprocess.run(["scancel", array_id], check=False)
        raise CkptgateError(f"sbatch refused the merge job (job array {array_id} cancelled): "
                            f"{_sbatch_error(exc)}") from None
    return Submission(array_id, tuple(shard_jobs), merge_job)


def _sbatch_error(exc: Exception) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if "error" in line.lower()) or str(exc)
    if "gres" in text.lower() or "gpu" in text.lower():
        text += " (a cluster without GPUs: add --no-gpu, or --gpus-per-task 0)"
    return text


def submitted_lines(plan: Plan, submission: Submission) -> list[str]:
    folder = plan.log_folder.parent
    merge_id = submission.merge_job.job_id
    return [
        f"array job {submission.array_job_id}: {plan.shards} shard(s); logs in "
        f"{folder}/{submission.array_job_id}_<index>/ (shard i is index i-1)",
        f"merge job {merge_id} (after any end of {submission.array_job_id}): logs in {folder}/{merge_id}/",
        f"results: {plan.results_dir} (shards/<i>-of-{plan.shards}/, then summary.md, eval_summary.csv, junit.xml)",
    ]


def queue_state(job_id: str) -> str | None:
    """The job's state as squeue shows it (``PENDING``, ``RUNNING``, ``COMPLETED`` ...), None once
    SLURM no longer lists it."""
    done = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True,
                          text=True, check=False)
    states = done.stdout.split()
    return states[0] if done.returncode == 0 and states else None


_ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
          "BOOT_FAIL", "DEADLINE"}


def exit_code_of_failure(trace: str) -> int | None:
    """The exit code a failed task's error names (see :class:`TaskFailed`), None if none."""
    found = _EXIT_CODE.findall(trace)
    return int(found[-1]) if found else None


def wait(job: submitit.Job[int], *, poll_s: float = 2.0, grace_s: float = 60.0) -> int:
    """Wait for ``job`` (the merge job) and return its command's exit code. A job that ends
    without a result (cancelled, killed, out of time) is an InfrastructureError naming its state
    and log."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    ended_at: float | None = None
    last = ""
    while not job.paths.result_pickle.exists():
        state = queue_state(job.job_id)
        if state != last and state is not None:
            print(f"merge job {job.job_id}: {state}", file=sys.stderr, flush=True)
            last = state
        if state is None or state in _ENDED:
            ended_at = ended_at or time.monotonic()
            if time.monotonic() - ended_at > grace_s:
                raise InfrastructureError(f"merge job {job.job_id} ended ({state or 'no longer listed'}) without a result; "
                                    f"see {job.paths.stdout} and {job.paths.stderr}")
        time.sleep(poll_s)
    try:
        return int(job.result())
    except (FailedJobError, UncompletedJobError) as exc:
        code = exit_code_of_failure(str(exc))
        if code is None:
            raise InfrastructureError(f"merge job {job.job_id} failed: {exc}") from None
        print(f"merge job {job.job_id} exited with code {code}; its log: {job.paths.stdout}", file=sys.stderr)
        return code


# -- the command ---------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``ckptgate slurm``'s options."""
    parser.add_argument("--checkpoint", required=True, metavar="ROOT",
                        help="a checkpoint folder or a parent of checkpoint folders, as the gate's --checkpoint "
                             "(its largest checkpoint sizes the jobs); 'demo' is the shipped demo series")
    parser.add_argument("--suite", default="demo", help="suite name or YAML path (default: demo)")
    parser.add_argument("--shards", type=int, required=True, metavar="N", help="how many array tasks share the run")
    parser.add_argument("--results-dir", default="results", metavar="DIR",
                        help="results folder on a filesystem every node sees (default: results/): shards/, records/, "
                             "slurm/ (job logs), then the merged summary")
    parser.add_argument("--partition", help="SLURM partition (default: the cluster's default)")
    parser.add_argument("--time", type=int, default=DEFAULT_TIME_MIN, metavar="MINUTES",
                        help=f"time limit of each shard (default {DEFAULT_TIME_MIN})")
    parser.add_argument("--max-parallel", type=int, default=None, metavar="K",
                        help="at most K shards running at once (default: all)")
    parser.add_argument("--cpus-per-task", type=int, default=None, metavar="N", help="override the size table's CPUs")
    parser.add_argument("--mem", default=None, metavar="SIZE", help="override the size table's memory (e.g. 4G)")
    parser.add_argument("--gpus-per-task", type=int, default=None, metavar="N",
                        help="override the size table's GPUs (0: none, for clusters without GPUs)")
    parser.add_argument("--no-gpu", action="store_true", help="the same as --gpus-per-task 0")
    parser.add_argument("--constraint", default=None, metavar="FEATURES",
                        help="sbatch --constraint for the shards (e.g. your site's feature for 80 GB GPUs)")
    parser.add_argument("--dry-run", action="store_true", help="print the jobs and commands, submit nothing")
    parser.add_argument("--wait", action="store_true", help="wait for the merge job; exit with its exit code")
    parser.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                        help="passed to every shard's pytest (after --), e.g. -- --limit 20")


def command(args: argparse.Namespace) -> int:
    """Run ``ckptgate slurm`` from its parsed options."""
    if args.no_gpu and args.gpus_per_task not in (None, 0):
        raise CkptgateError("--no-gpu and --gpus-per-task disagree: give one")
    overrides = Overrides(cpus=args.cpus_per_task, mem=args.mem, gpus=0 if args.no_gpu else args.gpus_per_task)
    plan = make_plan(args.checkpoint, args.suite, args.shards, Path(args.results_dir), overrides=overrides,
                     partition=args.partition, time_min=args.time, constraint=args.constraint,
                     max_parallel=args.max_parallel, pytest_args=args.pytest_args)
    for line in warnings_of(plan):
        print(line, file=sys.stderr)
    print("\n".join(describe(plan)))
    if args.dry_run:
        print("dry run: nothing submitted")
        return 0
    submission = submit(plan)
    print("\n".join(submitted_lines(plan, submission)), flush=True)
    if not args.wait:
        return 0
    try:
        return wait(submission.merge_job)
    except KeyboardInterrupt:
        print(f"stopped waiting; the jobs go on (scancel {submission.array_job_id} {submission.merge_job.job_id} "
              "stops them)", file=sys.stderr)
        return 2  # interrupted
