"""Run untrusted, model-written programs without harm to the host.

Each program (plus its tests) runs in a fresh child process tree, never in the pytest process:
``unshare`` (util-linux) gives it new PID, mount, network, IPC and UTS namespaces (and a user
namespace when ckptgate is not root), and :mod:`ckptgate.sandbox_inside`, the first process in
them, makes the filesystem read-only with private scratch tmpfs, sets resource limits, drops to
an unprivileged uid when it can, and runs the program. This side feeds the job on stdin, scrubs
the environment, caps captured output, enforces the wall-clock guard by killing the whole
process group (the PID namespace takes every descendant with it), and turns what happened into
a :class:`Verdict`. Which isolation layers were active is verified inside (namespace inodes
compared with ours) and reported with every verdict; a sandbox missing a required layer
refuses to run instead of running weaker.

Time is judged on CPU seconds, not wall-clock seconds, so that a verdict does not depend on how
busy the machine is: ``Limits.cpu_s`` is the budget that decides a timeout. Each process of the
program gets it as RLIMIT_CPU (SIGXCPU at the budget, SIGKILL a second later for a program that
ignores SIGXCPU), and the CPU time of the whole process tree (every process the program or the
sandbox reaped: ``getrusage(RUSAGE_CHILDREN)`` inside, after the program's process ended) over
the budget is a timeout too, so forking busy children does not multiply the budget. Children
still running when the program's process ends are killed uncounted (at most ``processes`` of
them, each under its own RLIMIT_CPU). ``Limits.timeout_s`` is only a generous wall-clock guard
for programs that sleep or block. Both end as :attr:`Status.TIMEOUT`; the detail says which.
How many sandboxes run at once is this process's share of the cores (:func:`concurrency_share`),
so that pytest-xdist workers side by side do not oversubscribe the machine between them.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ckptgate.devices import cpu_share
from ckptgate.errors import SandboxUnavailable

INSIDE = Path(__file__).with_name("sandbox_inside.py")
NAMESPACES = ("pid", "mnt", "net", "ipc", "uts", "user")
# What a full sandbox has on Linux with unprivileged namespaces (this project's CI machines).
FULL_ISOLATION = frozenset({
    "pid-namespace", "mnt-namespace", "net-namespace", "ipc-namespace", "uts-namespace",
    "read-only-filesystem", "private-tmp", "resource-limits", "clean-environment", "process-group",
})
ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp/work", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"  # an assertion failed
    ERROR = "error"  # another exception, or the program exited before its tests finished
    TIMEOUT = "timeout"  # the CPU-time budget ran out, or the wall-clock guard
    RESOURCE_LIMIT = "resource-limit"  # memory, processes, file size or output over their limits
    SANDBOX_ERROR = "sandbox-error"  # the sandbox failed: never the model's fault


@dataclass(frozen=True)
class Limits:
    cpu_s: float = 5.0  # CPU seconds per sample, the whole process tree: the limit verdicts go by
    timeout_s: float = 30.0  # wall-clock guard against programs that sleep or block, well above cpu_s
    memory_mb: int = 1024
    processes: int = 32
    file_size_mb: int = 16
    open_files: int = 64
    output_kb: int = 256  # stdout + stderr kept; more ends the run as resource-limit
    tmpfs_mb: int = 64  # private /tmp (and the working directory in it)


@dataclass(frozen=True)
class Verdict:
    status: Status
    seconds: float
    detail: str = ""
    exception: str | None = None
    stdout: str = ""
    stderr: str = ""
    isolation: tuple[str, ...] = ()
    returncode: int | None = None
    cpu_seconds: float | None = None  # CPU time of the program's process tree (None: killed by the wall-clock guard)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self, excerpt: int = 2000) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["isolation"] = list(self.isolation)
        data["stdout"], data["stderr"] = self.stdout[-excerpt:], self.stderr[-excerpt:]
        data["seconds"] = round(self.seconds, 3)
        if self.cpu_seconds is not None:
            data["cpu_seconds"] = round(self.cpu_seconds, 3)
        return data


def xdist_workers() -> int:
    """How many pytest-xdist workers run side by side (PYTEST_XDIST_WORKER_COUNT; 1 without xdist)."""
    try:
        return max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        return 1


def concurrency_share() -> int:
    """How many sandboxes this process runs at once: the usable cores divided among the xdist
    workers of the run (``pytest -n 8`` on 96 cores: 12 per worker, 96 in all), at least 1."""
    return cpu_share(xdist_workers())


@dataclass
class Sandbox:
    """Runs programs under ``limits``; refuses to run without the ``required`` isolation layers."""

    limits: Limits = field(default_factory=Limits)
    required: frozenset[str] = FULL_ISOLATION
    workers: int | None = None  # sandboxes at once in run_many; None: concurrency_share()
    _layers: tuple[str, ...] | None = field(default=None, init=False, repr=False)

    def layers(self) -> tuple[str, ...]:
        """The isolation layers active here, found by running an empty program once."""
        if self._layers is None:
            probe = self._execute("", "")
            if probe.status is not Status.PASSED:
                raise SandboxUnavailable(f"the code sandbox does not start here: {probe.detail}\n{probe.stderr[-2000:]}")
            self._layers = probe.isolation
        return self._layers

    def check(self) -> None:
        missing = sorted(self.required - set(self.layers()))
        if missing:
            raise SandboxUnavailable(
                f"the code sandbox lacks isolation layers required here: {', '.join(missing)} "
                f"(active: {', '.join(self.layers())}); model-written code is not run without them. "
                "Namespaces need util-linux unshare and unprivileged user namespaces (or root)."
            )

    def run(self, program: str, tests: str = "") -> Verdict:
        """Run ``program`` followed by ``tests`` (e.g. MBPP's asserts) in a fresh sandbox."""
        self.check()
        return self._execute(program, tests)

    def worker_count(self) -> int:
        """How many sandboxes ``run_many`` runs at once: ``workers``, else this process's share
        of the cores (:func:`concurrency_share`), at least 1."""
        return max(1, self.workers or concurrency_share())

    def run_many(self, jobs: Sequence[tuple[str, str]], workers: int | None = None) -> list[Verdict]:
        """Verdicts of many (program, tests) jobs, at most ``workers`` (default
        :meth:`worker_count`) sandboxes at a time, in order."""
        self.check()
        workers = max(1, workers or self.worker_count())
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda job: self._execute(*job), jobs))

    def _execute(self, program: str, tests: str) -> Verdict:
        nonce = secrets.token_hex(16)
        source = program if not tests else f"{program}\n\n{tests}\n"
        read_fd, write_fd = os.pipe()
        workdir = tempfile.mkdtemp(prefix="ckptgate-sandbox-")
        started = time.monotonic()
        try:
            job = {"source": source, "nonce": nonce, "record_fd": write_fd, "limits": asdict(self.limits),
                   "namespaces": _namespace_inodes(), "drop_root": True, "workdir": workdir,
                   "parent_layers": ["clean-environment", "process-group"]}
            try:
                proc = subprocess.Popen(
                    [*_unshare(), sys.executable, "-I", "-S", str(INSIDE)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    pass_fds=(write_fd,), env=ENVIRONMENT, cwd=workdir, start_new_session=True,
                )
            except OSError as exc:
                return Verdict(Status.SANDBOX_ERROR, 0.0, detail=f"cannot start the sandbox: {exc}")
            finally:
                os.close(write_fd)
            out, err, records, ending = _communicate(proc, json.dumps(job).encode(), read_fd, self.limits)
        finally:
            os.close(read_fd)
            shutil.rmtree(workdir, ignore_errors=True)
        return _verdict(time.monotonic() - started, proc.returncode, out, err, _mine(records, nonce), ending, self.limits)


def _unshare() -> list[str]:
    tool = shutil.which("unshare")
    if tool is None or sys.platform != "linux":
        return []
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [tool, *user, "--pid", "--fork", "--kill-child", "--mount-proc", "--mount", "--net", "--ipc", "--uts", "--"]


def _namespace_inodes() -> dict[str, int]:
    inodes = {}
    for name in NAMESPACES:
        try:
            inodes[name] = os.stat(f"/proc/self/ns/{name}").st_ino
        except OSError:
            pass
    return inodes


def _communicate(proc: subprocess.Popen[bytes], job: bytes, record_fd: int, limits: Limits) -> tuple[bytes, bytes, bytes, str]:
    """Feed the job, collect output (capped), records; kill the process group past the
    wall-clock guard or on excess output. Returns stdout, stderr, records and why it ended early ("" if it did not)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(job)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): [], record_fd: []}
    cap, kept, ending = limits.output_kb * 1024, 0, ""
    deadline = time.monotonic() + limits.timeout_s
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ending = "timeout"
                break
            for key, _ in sel.select(timeout=remaining):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fd)
                    continue
                chunks[key.fd].append(data)
                if key.fd != record_fd:
                    kept += len(data)
            if kept > cap:
                ending = "output"
                break
    if ending:
        _kill_group(proc)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
    return (b"".join(chunks[proc.stdout.fileno()]), b"".join(chunks[proc.stderr.fileno()]),
            b"".join(chunks[record_fd]), ending)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _mine(raw: bytes, nonce: str) -> list[dict[str, Any]]:
    """The inside's records: lines carrying this job's nonce (anything else is ignored)."""
    records = []
    for line in raw.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("nonce") == nonce:
            records.append(record)
    return records


_RESOURCE_EXCEPTIONS = {"MemoryError": "memory limit", "BlockingIOError": "process limit (fork refused)"}
_RESOURCE_ERRNOS = {27: "file size limit", 28: "scratch space full", 12: "memory limit", 24: "open files limit"}
_SIGNALS = {signal.SIGXFSZ: (Status.RESOURCE_LIMIT, "file size limit")}


# RLIMIT_CPU stops a process when the kernel's tick-based account of its CPU time reaches the
# limit; getrusage can report that a tick or two lower. A child stopped at a whole-second budget
# (its parent waiting, then finishing normally) would read as just under the budget and pass, so
# a process tree within this much of the budget counts as over it.
CPU_SLACK_S = 0.05


def _cpu_detail(limits: Limits, cpu: float | None) -> str:
    used = f" (used {cpu:.2f} s)" if cpu is not None else ""
    return f"cpu time over {limits.cpu_s:g} s{used}"


def _verdict(seconds: float, returncode: int | None, out: bytes, err: bytes, records: list[dict[str, Any]],
             ending: str, limits: Limits) -> Verdict:
    started = next((r for r in records if r.get("stage") == "started"), None)
    done = [r for r in records if r.get("stage") == "done"]
    ended = next((r for r in records if r.get("stage") == "ended"), {})
    cpu = float(ended["cpu_s"]) if isinstance(ended.get("cpu_s"), (int, float)) else None
    common = {"seconds": seconds, "stdout": out.decode("utf-8", "replace"), "stderr": err.decode("utf-8", "replace"),
              "isolation": tuple(started["layers"]) if started else (), "returncode": ended.get("exit", returncode),
              "cpu_seconds": cpu}
    if ending == "timeout":
        return Verdict(Status.TIMEOUT, detail=f"wall clock over {limits.timeout_s:g} s guard", **common)
    if ending == "output":
        return Verdict(Status.RESOURCE_LIMIT, detail=f"output over {limits.output_kb} KB", **common)
    if started is None:
        return Verdict(Status.SANDBOX_ERROR, detail=f"the sandbox did not start the program (exit code {returncode})", **common)
    signalled = ended.get("signal")
    if (cpu is not None and cpu > limits.cpu_s - CPU_SLACK_S) or signalled == signal.SIGXCPU:
        # the process tree's CPU time over the budget, or a process stopped at its RLIMIT_CPU
        # (SIGXCPU; SIGKILL at the hard limit comes with the tree over the budget too)
        return Verdict(Status.TIMEOUT, detail=_cpu_detail(limits, cpu), **common)
    failures = [r for r in done if r.get("outcome") == "exception"]
    if failures:
        return _exception_verdict(failures[0], common)
    if any(r.get("outcome") == "completed" for r in done):
        return Verdict(Status.PASSED, **common)
    if signalled is not None:
        number = int(signalled)
        status, detail = _SIGNALS.get(number, (Status.ERROR, f"killed by signal {signal.Signals(number).name}"))
        return Verdict(status, detail=detail, **common)
    return Verdict(Status.ERROR, detail=f"exited before the tests finished (exit code {common['returncode']})", **common)


def _exception_verdict(record: dict[str, Any], common: dict[str, Any]) -> Verdict:
    name, message = str(record.get("exception", "?")), str(record.get("message", ""))
    if name == "AssertionError":
        return Verdict(Status.FAILED, detail=f"AssertionError {message}".strip(), exception=name, **common)
    if name in _RESOURCE_EXCEPTIONS or record.get("errno") in _RESOURCE_ERRNOS:
        detail = _RESOURCE_EXCEPTIONS.get(name) or _RESOURCE_ERRNOS[record["errno"]]
        return Verdict(Status.RESOURCE_LIMIT, detail=f"{detail} ({name})", exception=name, **common)
    if name == "SystemExit":
        return Verdict(Status.ERROR, detail=f"exited before the tests finished (SystemExit {message})".strip(),
                       exception=name, **common)
    return Verdict(Status.ERROR, detail=f"{name}: {message}", exception=name, **common)
