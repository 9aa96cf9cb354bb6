"""A stand-in for nvidia-ml-py's ``pynvml`` with the calls ckptgate makes, serving GPUs described
in JSON. Tests import :class:`FakeNvml` directly, or put this folder first on PYTHONPATH with
CKPTGATE_FAKE_NVML naming a JSON file, so that a real pytest run (controller and xdist workers)
sees these GPUs: a list of {"name", "total_mib", "used_mib", "processes": [{"pid", "used_mib"}]},
or {"error": "..."} for a machine whose driver NVML cannot load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

MIB = 2**20


class NVMLError(Exception):
    pass


class FakeNvml:
    def __init__(self, gpus: list[dict[str, Any]] | None = None, error: str | None = None) -> None:
        self.gpus, self.error, self.initialised = gpus or [], error, 0

    def nvmlInit(self) -> None:
        if self.error:
            raise NVMLError(self.error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return {"index": index, **self.gpus[index]}

    def nvmlDeviceGetName(self, handle: dict[str, Any]) -> bytes:
        return handle.get("name", "NVIDIA H100 80GB HBM3").encode()

    def nvmlDeviceGetPciInfo(self, handle: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(busId=f"00000000:{handle['index'] + 0x10:02X}:00.0".encode())

    def nvmlDeviceGetMemoryInfo(self, handle: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(total=handle.get("total_mib", 81559) * MIB, used=handle.get("used_mib", 0) * MIB)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: dict[str, Any]) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=p["pid"], usedGpuMemory=p["used_mib"] * MIB) for p in handle.get("processes", [])]


def _from_environment() -> FakeNvml:
    path = os.environ.get("CKPTGATE_FAKE_NVML")
    spec = json.loads(Path(path).read_text()) if path else []
    return FakeNvml(error=spec["error"]) if isinstance(spec, dict) else FakeNvml(spec)


_fake = _from_environment()
nvmlInit = _fake.nvmlInit
nvmlShutdown = _fake.nvmlShutdown
nvmlDeviceGetCount = _fake.nvmlDeviceGetCount
nvmlDeviceGetHandleByIndex = _fake.nvmlDeviceGetHandleByIndex
nvmlDeviceGetName = _fake.nvmlDeviceGetName
nvmlDeviceGetPciInfo = _fake.nvmlDeviceGetPciInfo
nvmlDeviceGetMemoryInfo = _fake.nvmlDeviceGetMemoryInfo
nvmlDeviceGetComputeRunningProcesses = _fake.nvmlDeviceGetComputeRunningProcesses
