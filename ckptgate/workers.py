"""Which process this is (the controller, or an xdist worker), how many evaluate, and the pytest
settings a gate run needs from xdist: ``--dist loadgroup``, and output not captured while the
demo checkpoints are built."""

from __future__ import annotations

from typing import Any

import pytest

from ckptgate import devices
from ckptgate.runplan import RunPlan


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def worker_id(config: pytest.Config) -> str:
    """"main", or the xdist worker id (gw0, gw1, ...)."""
    return config.workerinput["workerid"] if is_worker(config) else "main"  # type: ignore[attr-defined]


def worker_count(config: pytest.Config) -> int:
    """How many processes evaluate: on a worker, xdist's count; on the controller, xdist's -n
    (resolved from "auto" by xdist), else one."""
    if is_worker(config):
        return int(config.workerinput["workercount"])  # type: ignore[attr-defined]
    uses_xdist = config.pluginmanager.hasplugin("xdist") and getattr(config.option, "dist", "no") != "no"
    return max(1, int(getattr(config.option, "numprocesses", 0) or 0)) if uses_xdist else 1


def pin_main_process(config: pytest.Config, plan: RunPlan) -> None:
    """Without xdist workers this process evaluates: it takes the first planned GPU now, before
    anything initialises CUDA (xdist workers get theirs at start-up, see the plugin's xdist hooks)."""
    gpus = plan.devices
    if gpus is not None and gpus.gpus is not None and worker_count(config) == 1:
        devices.pin_this_process(devices.worker_env(gpus.worker_gpus(0), tuple(devices.free_ports(2))))


def run_in_this_process(config: pytest.Config) -> None:
    """Start no xdist workers: this process runs every test (called from this plugin's
    ``pytest_configure``, which runs before xdist's: xdist then starts no distributed session)."""
    config.option.dist = "no"
    config.option.tx = []
    config.option.numprocesses = 0


def force_loadgroup(config: pytest.Config) -> None:
    """All of one checkpoint's tests must run on one worker, or the model loads twice."""
    dist = getattr(config.option, "dist", "no")
    if dist in ("no", "loadgroup"):
        return
    if dist == "load":  # xdist's default for -n
        config.option.dist = "loadgroup"
        return
    raise pytest.UsageError(
        f"--dist {dist} would split a checkpoint's benchmarks across workers and load the model "
        "on each; ckptgate runs with --dist loadgroup (leave --dist out)"
    )


class capture_disabled:
    """Let progress bars (demo build) reach the terminal while pytest captures output."""

    def __init__(self, config: pytest.Config) -> None:
        self._capman = config.pluginmanager.getplugin("capturemanager")
        self._ctx: Any = None

    def __enter__(self) -> None:
        if self._capman is not None:
            self._ctx = self._capman.global_and_fixture_disabled()
            self._ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
