"""Devices: which GPUs a run may use, read through NVML, and which one each worker gets.

The controller process asks NVML (nvidia-ml-py's ``pynvml``) for the GPUs and the processes
holding them; it never initialises CUDA. A GPU is *free* when no compute process holds it and
its used memory is under ``FREE_MEMORY_MIB``. A process holding a GPU whose parent is gone
(re-parented to init, a "zombie") is reported with its PID and the command that ends
it; ckptgate never kills a process itself.

Each xdist worker is pinned to one GPU (several with ``--allow-tensor-parallel``) before
anything can initialise CUDA: its environment at start-up carries ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
(so CUDA numbers GPUs like NVML does) and ``CUDA_VISIBLE_DEVICES=<index>[,<index>...]``, plus
ports of its own for anything that opens one (``MASTER_PORT`` for torch.distributed,
``VLLM_PORT``). Without GPUs, or without NVML, the run uses the CPU.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from ckptgate.errors import DeviceError, GpuUnavailable

# Memory a GPU may show in use and still count as free: the driver's own context on an idle
# GPU is a few hundred MiB at most.
FREE_MEMORY_MIB = 1024
PINNED_ENV = ("CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES", "MASTER_PORT", "VLLM_PORT")


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_mib: int
    orphaned: bool  # its parent is gone: nothing will end it
    command: str = ""


@dataclass(frozen=True)
class Gpu:
    index: int  # NVML's index = CUDA's with CUDA_DEVICE_ORDER=PCI_BUS_ID
    name: str
    pci_bus_id: str
    total_mib: int
    used_mib: int
    processes: tuple[GpuProcess, ...] = ()

    @property
    def free(self) -> bool:
        return not self.processes and self.used_mib < FREE_MEMORY_MIB

    def why_busy(self) -> str:
        if not self.processes:
            return f"{self.used_mib} MiB in use with no compute process listed"
        return ", ".join(f"PID {p.pid} ({p.used_mib} MiB{'; orphaned' if p.orphaned else ''})" for p in self.processes)


@dataclass(frozen=True)
class Inventory:
    """What NVML showed; ``gpus`` is empty without a driver or NVML (``reason`` says which)."""

    gpus: tuple[Gpu, ...] = ()
    reason: str = ""

    def zombies(self) -> list[tuple[Gpu, GpuProcess]]:
        return [(gpu, proc) for gpu in self.gpus for proc in gpu.processes if proc.orphaned]


def cpu_share(processes: int) -> int:
    """This process's share of the usable CPU cores (its affinity mask) when ``processes``
    processes work side by side, at least 1: torch threads of the hf backend, sandboxes at once."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, processes))


def inventory(nvml: Any = None) -> Inventory:
    """The machine's GPUs through NVML; ``nvml`` replaces the ``pynvml`` module (tests)."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return Inventory(reason="NVML is not installed (pip install nvidia-ml-py)")
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no usable GPU
        return Inventory(reason=f"NVML found no driver ({type(exc).__name__}: {exc})")
    try:
        return Inventory(tuple(_gpu(nvml, i) for i in range(nvml.nvmlDeviceGetCount())), reason="")
    finally:
        nvml.nvmlShutdown()


def _gpu(nvml: Any, index: int) -> Gpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    name = nvml.nvmlDeviceGetName(handle)
    bus = nvml.nvmlDeviceGetPciInfo(handle).busId
    procs = tuple(
        GpuProcess(p.pid, (p.usedGpuMemory or 0) // 2**20, _orphaned(p.pid), _command(p.pid))
        for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    )
    return Gpu(index, _text(name), _text(bus), memory.total // 2**20, memory.used // 2**20, procs)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _orphaned(pid: int) -> bool:
    """Re-parented to init (PPID 1), or its parent no longer exists. A PID outside our PID
    namespace (a container's view) cannot be judged: not called orphaned."""
    try:
        ppid = psutil.Process(pid).ppid()
    except psutil.Error:  # gone, unreadable, or not visible from here
        return False
    return ppid == 1 or not psutil.pid_exists(ppid)


def _command(pid: int) -> str:
    """A process's command line, its arguments joined by spaces ("": gone or unreadable).
    Bytes that are not valid text read as U+FFFD, so the line can always be printed."""
    try:
        line = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""
    return os.fsencode(line).decode(errors="replace").strip()


def descendants(pid: int) -> list[tuple[int, str]]:
    """Live processes below ``pid`` (children, their children, ...): (PID, command line).
    Empty where /proc cannot be read. A process whose parent cannot be read is passed over,
    not taken for a failure (psutil's ``children()`` gives up on the first one)."""
    parents: dict[int, list[int]] = {}
    try:
        for process in psutil.process_iter(["ppid", "status"]):  # skips what exited while we looked
            ppid, status = process.info["ppid"], process.info["status"]
            if ppid is not None and status != psutil.STATUS_ZOMBIE:  # an exited child not yet reaped holds nothing
                parents.setdefault(ppid, []).append(process.pid)
    except (psutil.Error, OSError):
        return []
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        found.append((child, _command(child)))
        todo += parents.get(child, [])
    return sorted(found)


@dataclass(frozen=True)
class Plan:
    """The devices each worker gets: ``per_worker`` GPU indices each (None: the CPU), and the
    notes to print."""

    gpus: tuple[int, ...] | None
    notes: tuple[str, ...] = ()
    memory_mib: dict[int, int] = field(default_factory=dict)  # GPU index -> total memory
    per_worker: int = 1  # GPUs per worker: > 1 only for tensor parallelism

    @property
    def device(self) -> str:
        return "cpu" if self.gpus is None else "cuda"

    def worker_gpus(self, worker: int) -> tuple[int, ...] | None:
        """The GPUs of the ``worker``-th worker (0-based), in plan order; None on the CPU."""
        if self.gpus is None:
            return None
        mine = self.gpus[worker * self.per_worker:(worker + 1) * self.per_worker]
        if len(mine) < self.per_worker:
            raise DeviceError(f"worker {worker + 1} has no GPU planned for it ({len(self.gpus)} GPU(s) planned, "
                              f"{self.per_worker} per worker)")
        return mine

    def describe(self) -> str:
        if self.gpus is None:
            return "CPU"
        each = "one per worker" if self.per_worker == 1 else f"{self.per_worker} per worker, tensor parallel"
        return f"GPU {', '.join(map(str, self.gpus))} ({each}, CUDA_VISIBLE_DEVICES)"


def plan(inv: Inventory, *, workers: int, requested: Sequence[int] | None = None, require_gpu: bool = False,
         per_worker: int = 1) -> Plan:
    """Choose ``per_worker`` free GPUs for each worker (``requested``: only these indices), or
    the CPU when the machine has none. Usage errors for what cannot run: a requested GPU that is
    missing or busy, more GPUs needed than free, ``require_gpu`` on a machine without one."""
    notes = [f"GPU {gpu.index} is held by orphaned PID {p.pid} ({p.command or 'command unknown'}): "
             f"end it with `kill {p.pid}` (ckptgate does not kill processes)" for gpu, p in inv.zombies()]
    if not inv.gpus:
        if require_gpu or requested:
            why = inv.reason or "NVML lists no GPU"
            raise GpuUnavailable(f"{'--gpus' if requested else '--require-gpu'} asks for GPUs, but none can be used: {why}")
        return Plan(None, tuple(notes + [f"no GPU ({inv.reason or 'NVML lists none'}): running on the CPU"]))
    by_index = {gpu.index: gpu for gpu in inv.gpus}
    if requested:
        unknown = [i for i in requested if i not in by_index]
        if unknown:
            raise DeviceError(f"--gpus {','.join(map(str, requested))}: no GPU {unknown[0]} on this machine "
                             f"(it has {len(inv.gpus)}: {', '.join(str(g.index) for g in inv.gpus)})")
        busy = [by_index[i] for i in requested if not by_index[i].free]
        if busy:
            raise GpuUnavailable(_with_notes("--gpus names busy GPU(s): "
                                          + "; ".join(f"GPU {g.index}: {g.why_busy()}" for g in busy), notes))
        candidates = [by_index[i] for i in requested]
    else:
        candidates = [gpu for gpu in inv.gpus if gpu.free]
        notes += [f"GPU {gpu.index} is busy, skipped: {gpu.why_busy()}" for gpu in inv.gpus if not gpu.free]
    if workers * per_worker > len(candidates):
        busy = len(candidates) < len(inv.gpus)  # the machine has enough, but some are taken: infrastructure
        raise (GpuUnavailable if busy else DeviceError)(
            _with_notes(_too_few(workers, per_worker, candidates, requested=bool(requested), others=busy), notes))
    chosen = candidates[:workers * per_worker]
    return Plan(tuple(g.index for g in chosen), tuple(notes), {g.index: g.total_mib for g in chosen}, per_worker)


def _too_few(workers: int, per_worker: int, free: Sequence[Gpu], *, requested: bool, others: bool) -> str:
    each = "one free GPU" if per_worker == 1 else f"{per_worker} free GPUs"
    fits = len(free) // per_worker
    advice = f"use -n {fits}" if fits else "free more GPUs"
    return (f"{workers} worker(s) need {each} each, but {len(free)} "
            f"{'of the GPUs given with --gpus are' if requested else 'are'} free"
            + (f" ({', '.join(str(g.index) for g in free)})" if free else "")
            + f": {advice}" + (" or free a GPU" if others and fits else ""))


def _with_notes(message: str, notes: Sequence[str]) -> str:
    """An error message followed by what the inventory noticed (orphaned holders, busy GPUs)."""
    return "\n".join([message, *notes])


def parse_gpus(text: str | None) -> list[int] | None:
    """``--gpus 0,3,5`` as indices; None when not given."""
    if text is None:
        return None
    try:
        indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DeviceError(f"--gpus {text!r}: give GPU indices separated by commas, e.g. --gpus 0,3,5") from None
    if not indices or any(i < 0 for i in indices) or len(set(indices)) != len(indices):
        raise DeviceError(f"--gpus {text!r}: give distinct GPU indices >= 0, e.g. --gpus 0,3,5")
    return indices


def worker_env(gpus: Sequence[int] | None, ports: tuple[int, int]) -> dict[str, str]:
    """The environment a worker starts with: its GPUs (hidden from CUDA: all of them on the
    CPU) and its own ports."""
    env = {"MASTER_PORT": str(ports[0]), "VLLM_PORT": str(ports[1])}
    if gpus is not None:
        env |= {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}
    return env


def visible_gpus() -> list[int] | None:
    """The GPU indices this process was pinned to (CUDA_VISIBLE_DEVICES as ckptgate sets it:
    PCI bus order, so NVML's indices); None when it was not pinned to indices."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    parts = [part.strip() for part in visible.split(",") if part.strip()]
    return [int(part) for part in parts] if parts and all(part.isdigit() for part in parts) else None


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nothing listens on now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def pin_this_process(env: dict[str, str]) -> None:
    """Apply a worker environment to the running process (no xdist: the main process is the
    only worker). Must run before anything initialises CUDA."""
    os.environ.update(env)


# --------------------------------------------------------------------------- model-size planning

# Weights may take this share of the memory vLLM is allowed (gpu_memory_utilization of the GPU);
# the rest is KV cache and activations. It reproduces the usual sizing table: 8B in bf16 (16 GB) needs
# an 80 GB GPU, 70B (140 GB) needs four.
WEIGHT_SHARE = 0.6
SERVING_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def gpus_needed(parameters: int, total_mib: int, *, dtype: str = "bfloat16", utilization: float = 0.8) -> int:
    """How many GPUs of ``total_mib`` a model of ``parameters`` needs at ``dtype``."""
    weights_mib = parameters * SERVING_BYTES[dtype] / 2**20
    return max(1, math.ceil(weights_mib / (total_mib * utilization * WEIGHT_SHARE)))


def tensor_parallel_size(gpus: int) -> int:
    """The tensor-parallel size for a model that needs ``gpus`` GPUs: the next power of two
    (vLLM splits attention heads evenly over its GPUs; head counts are multiples of powers of two)."""
    return 1 << (max(1, gpus) - 1).bit_length()
