"""Devices: which GPUs a run may use, read through NVML, and which one each worker gets.

The controller process asks NVML (nvidia-ml-py's ``pynvml``) for the GPUs and the processes
holding them; it never initialises CUDA. A GPU is *free* when no compute process holds it and
its used memory is under ``FREE_MEMORY_MIB``. A process holding a GPU whose parent is gone
(re-parented to init, seed 002's "zombie") is reported with its PID and the command that ends
it; ckptgate never kills a process itself.

Each xdist worker is pinned to one GPU before anything can initialise CUDA: its environment at
start-up carries ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (so CUDA numbers GPUs like NVML does) and
``CUDA_VISIBLE_DEVICES=<index>``, plus ports of its own for anything that opens one
(``MASTER_PORT`` for torch.distributed, ``VLLM_PORT``). Without GPUs, or without NVML, the run
uses the CPU.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptgate.errors import DeviceError

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


def _orphaned(pid: int, proc: Path = Path("/proc")) -> bool:
    """Re-parented to init (PPID 1), or its parent no longer exists. A PID outside our PID
    namespace (a container's view) cannot be judged: not called orphaned."""
    try:
        fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    ppid = int(fields[1])
    return ppid == 1 or not (proc / str(ppid)).exists()


def _command(pid: int, proc: Path = Path("/proc")) -> str:
    try:
        return (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Plan:
    """The device each worker gets: GPU indices (None: the CPU) and the notes to print."""

    gpus: tuple[int, ...] | None
    notes: tuple[str, ...] = ()
    memory_mib: dict[int, int] = field(default_factory=dict)  # GPU index -> total memory

    @property
    def device(self) -> str:
        return "cpu" if self.gpus is None else "cuda"


def plan(inv: Inventory, *, workers: int, requested: Sequence[int] | None = None, require_gpu: bool = False) -> Plan:
    """Choose one free GPU per worker (``requested``: only these indices), or the CPU when the
    machine has none. Usage errors for what cannot run: a requested GPU that is missing or busy,
    more workers than free GPUs, ``require_gpu`` on a machine without one."""
    notes = [f"GPU {gpu.index} is held by orphaned PID {p.pid} ({p.command or 'command unknown'}): "
             f"end it with `kill {p.pid}` (ckptgate does not kill processes)" for gpu, p in inv.zombies()]
    if not inv.gpus:
        if require_gpu or requested:
            why = inv.reason or "NVML lists no GPU"
            raise DeviceError(f"{'--gpus' if requested else '--require-gpu'} asks for GPUs, but none can be used: {why}")
        return Plan(None, tuple(notes + [f"no GPU ({inv.reason or 'NVML lists none'}): running on the CPU"]))
    by_index = {gpu.index: gpu for gpu in inv.gpus}
    if requested:
        unknown = [i for i in requested if i not in by_index]
        if unknown:
            raise DeviceError(f"--gpus {','.join(map(str, requested))}: no GPU {unknown[0]} on this machine "
                             f"(it has {len(inv.gpus)}: {', '.join(str(g.index) for g in inv.gpus)})")
        busy = [by_index[i] for i in requested if not by_index[i].free]
        if busy:
            raise DeviceError(_with_notes("--gpus names busy GPU(s): "
                                          + "; ".join(f"GPU {g.index}: {g.why_busy()}" for g in busy), notes))
        candidates = [by_index[i] for i in requested]
    else:
        candidates = [gpu for gpu in inv.gpus if gpu.free]
        notes += [f"GPU {gpu.index} is busy, skipped: {gpu.why_busy()}" for gpu in inv.gpus if not gpu.free]
    if workers > len(candidates):
        raise DeviceError(_with_notes(
            f"{workers} worker(s) need one free GPU each, but {len(candidates)} "
            f"{'of the GPUs given with --gpus are' if requested else 'are'} free"
            + (f" ({', '.join(str(g.index) for g in candidates)})" if candidates else "")
            + f": use -n {len(candidates)}" + (" or free a GPU" if len(candidates) < len(inv.gpus) else ""),
            notes,
        ))
    chosen = candidates[:workers]
    return Plan(tuple(g.index for g in chosen), tuple(notes), {g.index: g.total_mib for g in chosen})


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


def worker_env(gpu: int | None, ports: tuple[int, int]) -> dict[str, str]:
    """The environment a worker starts with: its GPU (hidden from CUDA: all of them on the
    CPU) and its own ports."""
    env = {"MASTER_PORT": str(ports[0]), "VLLM_PORT": str(ports[1])}
    if gpu is not None:
        env |= {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": str(gpu)}
    return env


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
# the rest is KV cache and activations. It reproduces seed 001's table: 8B in bf16 (16 GB) needs
# an 80 GB GPU, 70B (140 GB) needs four.
WEIGHT_SHARE = 0.6
SERVING_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def gpus_needed(parameters: int, total_mib: int, *, dtype: str = "bfloat16", utilization: float = 0.8) -> int:
    """How many GPUs of ``total_mib`` a model of ``parameters`` needs at ``dtype``."""
    weights_mib = parameters * SERVING_BYTES[dtype] / 2**20
    return max(1, math.ceil(weights_mib / (total_mib * utilization * WEIGHT_SHARE)))
