"""GPU inventory and planning through a fake NVML (free, busy, orphaned, mixed, none, no NVML),
model-size planning, and each real xdist worker pinned to its own GPU at start-up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest
from helpers_modules import load_module
from test_e2e import PYTEST, ROOT

from ckptgate import devices
from ckptgate.errors import DeviceError, GpuUnavailable

FAKE_NVML_DIR = Path(__file__).resolve().parent / "fake_nvml"
FAKE_VLLM_DIR = Path(__file__).resolve().parent / "fake_vllm"


def fake_module() -> ModuleType:
    return load_module("fake_pynvml", FAKE_NVML_DIR / "pynvml.py")


def nvml(*gpus: dict[str, Any], error: str | None = None) -> Any:
    return fake_module().FakeNvml(list(gpus), error)


FREE = {"used_mib": 300}
BUSY = {"used_mib": 40000, "processes": [{"pid": os.getpid(), "used_mib": 39000}]}  # a live, parented process


def test_free_and_busy_gpus_are_told_apart_and_nvml_is_shut_down() -> None:
    fake = nvml(FREE, BUSY, {"used_mib": 5000})  # the third: memory held, no process listed
    inv = devices.inventory(fake)
    assert [g.free for g in inv.gpus] == [True, False, False] and fake.initialised == 0
    assert inv.gpus[0].total_mib == 81559 and inv.gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert inv.gpus[1].processes[0].pid == os.getpid() and not inv.gpus[1].processes[0].orphaned
    plan = devices.plan(inv, workers=1)
    assert plan.gpus == (0,) and plan.device == "cuda"
    assert any("GPU 1 is busy, skipped" in n for n in plan.notes) and any("GPU 2 is busy" in n for n in plan.notes)


def test_all_free_gpus_by_default_one_per_worker() -> None:
    plan = devices.plan(devices.inventory(nvml(FREE, FREE, FREE)), workers=2)
    assert plan.gpus == (0, 1) and plan.memory_mib == {0: 81559, 1: 81559}


def test_more_workers_than_free_gpus_is_a_usage_error_saying_how_many_are_free() -> None:
    with pytest.raises(DeviceError, match=r"8 worker\(s\) need one free GPU each, but 2 are free \(0, 2\): use -n 2"):
        devices.plan(devices.inventory(nvml(FREE, BUSY, FREE)), workers=8)


def test_gpus_option_picks_and_refuses_busy_or_missing_ones() -> None:
    inv = devices.inventory(nvml(FREE, BUSY, FREE, FREE))
    assert devices.plan(inv, workers=2, requested=[3, 0]).gpus == (3, 0)
    with pytest.raises(GpuUnavailable, match=r"busy GPU\(s\): GPU 1: PID"):
        devices.plan(inv, workers=1, requested=[1])
    with pytest.raises(DeviceError, match="no GPU 7 on this machine"):
        devices.plan(inv, workers=1, requested=[7])
    with pytest.raises(DeviceError, match="of the GPUs given with --gpus are free"):
        devices.plan(inv, workers=3, requested=[0, 2])
    assert devices.parse_gpus("0,3,5") == [0, 3, 5] and devices.parse_gpus(None) is None
    for bad in ("0,a", "1,1", "-1", ","):
        with pytest.raises(DeviceError, match="--gpus"):
            devices.parse_gpus(bad)


def test_no_gpu_or_no_nvml_runs_on_the_cpu_unless_a_gpu_is_required() -> None:
    for inv in (devices.inventory(nvml()), devices.inventory(nvml(error="NVML Shared Library Not Found"))):
        plan = devices.plan(inv, workers=2)
        assert plan.gpus is None and plan.device == "cpu" and "running on the CPU" in plan.notes[-1]
        with pytest.raises(DeviceError, match="--require-gpu asks for GPUs, but none can be used"):
            devices.plan(inv, workers=1, require_gpu=True)
    assert "Library Not Found" in devices.inventory(nvml(error="NVML Shared Library Not Found")).reason


def orphan() -> int:
    """A ``sleep`` whose parent has exited (a double fork): the kernel re-parents it to init, or
    to the nearest live subreaper (systemd --user on a desktop session)."""
    out = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True)
    return int(out.stdout)


def reaped_pid() -> int:
    """The PID of a process that has exited and been reaped: nothing by that PID is visible now."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not psutil.pid_exists(gone.pid)
    return gone.pid


class Parented:
    """psutil.Process as ``_orphaned`` reads it: only its parent's PID."""

    def __init__(self, ppid: int) -> None:
        self._ppid = ppid

    def ppid(self) -> int:
        return self._ppid


def test_orphaned_holder_is_reported_with_its_pid_and_how_to_end_it(monkeypatch: pytest.MonkeyPatch) -> None:
    child, adopted = subprocess.Popen(["sleep", "60"]), orphan()
    try:
        assert not devices._orphaned(child.pid)  # parent alive (this process)
        assert not devices._orphaned(reaped_pid())  # not visible
        # init's child; a subreaper that adopted it is a live parent, so it is not orphaned
        assert devices._orphaned(adopted) == (psutil.Process(adopted).ppid() == 1)
    finally:
        child.kill()
        child.wait()
        os.kill(adopted, signal.SIGKILL)
    gone = reaped_pid()
    with monkeypatch.context() as patch:  # the same verdicts wherever orphans are re-parented
        patch.setattr(devices.psutil, "Process", lambda pid: Parented({4242: 1, 4343: gone, 4444: os.getpid()}[pid]))
        assert devices._orphaned(4242) and devices._orphaned(4343)  # init's child; parent gone
        assert not devices._orphaned(4444)  # parent alive
    zombie = devices.Gpu(0, "H100", "00:10", 81559, 20000, (devices.GpuProcess(4242, 19000, True, "python train.py"),))
    plan = devices.plan(devices.Inventory((zombie, devices.Gpu(1, "H100", "00:11", 81559, 0))), workers=1)
    assert plan.gpus == (1,)
    assert any("orphaned PID 4242 (python train.py)" in n and "`kill 4242`" in n and "does not kill" in n
               for n in plan.notes)


@pytest.mark.parametrize(
    ("parameters", "total_gib", "needed"),
    [(1_000_000_000, 24, 1), (3_000_000_000, 80, 1), (8_000_000_000, 80, 1), (8_000_000_000, 24, 2),
     (70_000_000_000, 80, 4)],
)
def test_model_size_planning_matches_the_sizing_table(parameters: int, total_gib: int, needed: int) -> None:
    assert devices.gpus_needed(parameters, total_gib * 1024) == needed


def test_a_checkpoint_too_big_for_one_gpu_is_refused_before_anything_loads(demo_root: Path, tmp_path: Path) -> None:
    spec = tmp_path / "gpus.json"
    spec.write_text(json.dumps([{"total_mib": 1, "used_mib": 0}]))  # a 1 MiB GPU: the demo model cannot fit
    proc = pinned_run(spec, tmp_path, "--checkpoint", str(demo_root / "step_0800"))
    assert proc.returncode == 4, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "need" in proc.stderr and "tensor_parallel_size=1" in proc.stderr
    assert "pass --allow-tensor-parallel" in proc.stderr  # the way out, and its price, are named


PROBE = '''
import json, os
from pathlib import Path

import pytest


def _probe():
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    keys = ("CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES", "MASTER_PORT", "VLLM_PORT")
    out = Path.cwd() / "probe"
    out.mkdir(exist_ok=True)
    (out / f"{worker}.json").write_text(json.dumps({k: os.environ.get(k) for k in keys}))


# Gate tests (a run with --checkpoint must collect some) that record their worker's environment
# instead of evaluating.
@pytest.mark.gate("arithmetic")
def test_probe_arithmetic(benchmark_case):
    _probe()


@pytest.mark.gate("choice")
def test_probe_choice(benchmark_case):
    _probe()


@pytest.mark.gate("text")
def test_probe_text(benchmark_case):
    _probe()
'''


def pinned_run(spec: Path, tmp_path: Path, *args: str, fake_vllm: bool = False) -> subprocess.CompletedProcess[str]:
    """pytest with ckptgate, seeing the fake GPUs of ``spec`` in the controller and workers
    (and, with ``fake_vllm``, a ``vllm`` module, so that the vLLM backend can be chosen)."""
    fakes = [FAKE_NVML_DIR, *([FAKE_VLLM_DIR] if fake_vllm else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, fakes), str(ROOT)]),
           "CKPTGATE_FAKE_NVML": str(spec), "HF_HUB_OFFLINE": "1"}
    for key in (*devices.PINNED_ENV, "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        env.pop(key, None)  # not inherited from an outer xdist run of this test
    return subprocess.run([PYTEST, "-p", "no:cacheprovider", *args],
                          cwd=tmp_path, capture_output=True, text=True, env=env, check=False)


def test_each_xdist_worker_starts_pinned_to_its_own_gpu_and_ports(demo_root: Path, tmp_path: Path) -> None:
    spec = tmp_path / "gpus.json"
    spec.write_text(json.dumps([FREE, BUSY, FREE, FREE]))
    (tmp_path / "test_probe.py").write_text(PROBE)
    proc = pinned_run(spec, tmp_path, "-n", "3", "test_probe.py", "--checkpoint", str(demo_root / "step_0800"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ckptgate: device GPU 0, 2, 3 (one per worker" in proc.stdout and "GPU 1 is busy, skipped" in proc.stdout
    seen = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "probe").glob("gw*.json")}
    assert seen, proc.stdout[-2000:]
    assert all(env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for env in seen.values())
    by_worker = {worker: env["CUDA_VISIBLE_DEVICES"] for worker, env in seen.items()}
    assert {"gw0": "0", "gw1": "2", "gw2": "3"}.items() >= by_worker.items()  # its own GPU, in plan order
    ports = [env[k] for env in seen.values() for k in ("MASTER_PORT", "VLLM_PORT")]
    assert len(set(ports)) == len(ports)  # no two workers share a port
    # Without xdist the main process evaluates: it takes the first free GPU itself.
    proc = pinned_run(spec, tmp_path, "test_probe.py", "--checkpoint", str(demo_root / "step_0800"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert json.loads((tmp_path / "probe" / "main.json").read_text())["CUDA_VISIBLE_DEVICES"] == "0"


def test_more_workers_than_free_gpus_stops_before_any_test_runs(demo_root: Path, tmp_path: Path) -> None:
    spec = tmp_path / "gpus.json"
    spec.write_text(json.dumps([FREE, BUSY]))
    (tmp_path / "test_probe.py").write_text(PROBE)
    proc = pinned_run(spec, tmp_path, "-n", "2", "test_probe.py", "--checkpoint", str(demo_root / "step_0800"))
    assert proc.returncode == 7 and "but 1 are free (0): use -n 1" in proc.stderr  # a busy GPU: the machine's failure
    assert "infrastructure failure" in proc.stderr
    assert not (tmp_path / "probe").exists()


TINY = {"total_mib": 2, "used_mib": 0}  # the demo model (0.85M parameters) needs two of these


def probe_files(tmp_path: Path) -> dict[str, dict[str, str]]:
    return {p.stem: json.loads(p.read_text()) for p in (tmp_path / "probe").glob("*.json")}


def test_tensor_parallel_gives_each_worker_its_share_of_gpus_and_marks_the_run(demo_root: Path, tmp_path: Path) -> None:
    spec = tmp_path / "gpus.json"
    spec.write_text(json.dumps([TINY] * 5))
    (tmp_path / "test_probe.py").write_text(PROBE)
    ckpt = ("--checkpoint", str(demo_root / "step_0800"))
    proc = pinned_run(spec, tmp_path, "-n", "2", "test_probe.py", *ckpt, "--allow-tensor-parallel", fake_vllm=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "device GPU 0, 1, 2, 3 (2 per worker, tensor parallel" in proc.stdout, proc.stdout[-2000:]
    assert "tensor_parallel_size 2 (--allow-tensor-parallel): results are NOT reproducible" in proc.stdout
    seen = {worker: env["CUDA_VISIBLE_DEVICES"] for worker, env in probe_files(tmp_path).items()}
    assert {"gw0": "0,1", "gw1": "2,3"}.items() >= seen.items() and seen, proc.stdout[-2000:]
    # three workers would need six GPUs; the hf backend cannot split a model
    proc = pinned_run(spec, tmp_path, "-n", "3", "test_probe.py", *ckpt, "--allow-tensor-parallel", fake_vllm=True)
    assert proc.returncode == 4 and "3 worker(s) need 2 free GPUs each, but 5 are free" in proc.stderr
    assert "use -n 2" in proc.stderr
    proc = pinned_run(spec, tmp_path, "test_probe.py", *ckpt, "--allow-tensor-parallel", "--backend", "hf")
    assert proc.returncode == 4 and "tensor_parallel_size 2 runs through vLLM (--backend vllm)" in proc.stderr
    proc = pinned_run(spec, tmp_path, "test_probe.py", *ckpt, "--allow-tensor-parallel", "--update-baselines",
                      "--baseline", str(tmp_path / "new.yaml"), fake_vllm=True)
    assert proc.returncode == 4 and "--update-baselines records reproducible numbers only" in proc.stderr


def test_tensor_parallel_sizes_are_powers_of_two_and_plans_hand_out_gpu_blocks() -> None:
    assert [devices.tensor_parallel_size(n) for n in (1, 2, 3, 4, 5, 8)] == [1, 2, 4, 4, 8, 8]
    plan = devices.plan(devices.inventory(nvml(FREE, BUSY, FREE, FREE, FREE)), workers=2, per_worker=2)
    assert plan.gpus == (0, 2, 3, 4) and plan.worker_gpus(0) == (0, 2) and plan.worker_gpus(1) == (3, 4)
    with pytest.raises(DeviceError, match="worker 3 has no GPU planned"):
        plan.worker_gpus(2)
    with pytest.raises(DeviceError, match=r"1 worker\(s\) need 8 free GPUs each, but 4 are free .*: free more GPUs"):
        devices.plan(devices.inventory(nvml(FREE, BUSY, FREE, FREE, FREE)), workers=1, per_worker=8)
    assert devices.worker_env((3, 4), (1, 2))["CUDA_VISIBLE_DEVICES"] == "3,4"


# A process tree below one root: an exited child it never reaps (a zombie), and a bash named
# like vLLM's engine core whose own child is named like a tensor-parallel worker. Each reports its PID.
ENGINE_SCRIPT = "exec -a VLLM::Worker_TP0 sleep 60 & echo worker $!; wait"
TREE = f"""
import os, subprocess, sys
zombie = subprocess.Popen(["true"])
os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped
print("zombie", zombie.pid, flush=True)
engine = subprocess.Popen(["bash", "-c", "exec -a VLLM::EngineCore bash -c '{ENGINE_SCRIPT}'"])
print("engine", engine.pid, flush=True)
engine.wait()
"""


def wait_for_exec(pid: int, argv0: str, wait_s: float = 10.0) -> None:
    deadline = time.monotonic() + wait_s
    while psutil.Process(pid).cmdline()[:1] != [argv0]:
        assert time.monotonic() < deadline, f"PID {pid} did not become {argv0}"
        time.sleep(0.01)


def test_descendants_are_found_through_every_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    root = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    other = subprocess.Popen(["sleep", "60"])  # not below the root
    pids: dict[str, int] = {}
    try:
        assert root.stdout is not None
        while len(pids) < 3:
            name, pid = root.stdout.readline().split()
            pids[name] = int(pid)
        wait_for_exec(pids["worker"], "VLLM::Worker_TP0")  # it reports its PID from before its exec
        assert psutil.Process(pids["zombie"]).status() == psutil.STATUS_ZOMBIE
        assert devices.descendants(root.pid) == sorted([(pids["engine"], f"VLLM::EngineCore -c {ENGINE_SCRIPT}"),
                                                         (pids["worker"], "VLLM::Worker_TP0 60")])
        assert devices.descendants(pids["worker"]) == [] and devices.descendants(reaped_pid()) == []
        with monkeypatch.context() as patch:
            patch.setattr(psutil, "PROCFS_PATH", "/missing")  # /proc cannot be read
            assert devices.descendants(root.pid) == []
    finally:
        for pid in (pids.get("worker"), pids.get("engine")):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):  # the engine may exit once its worker is killed
                    os.kill(pid, signal.SIGKILL)
        root.kill()
        root.wait()
        other.kill()
        other.wait()
