"""Provenance recorded with every result: package versions and this project's git SHA."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

from ckptgate.resources import source_checkout

_PACKAGES = (
    "pytest-ckptgate",
    "lm_eval",
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "accelerate",
    "vllm",
    "pytest",
    "pytest-xdist",
    "numpy",
)


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def versions() -> dict[str, str]:
    found = {name: package_version(name) for name in _PACKAGES}
    found["python"] = platform.python_version()
    return {name: v for name, v in found.items() if v is not None}


@functools.cache
def git_sha() -> str | None:
    """The project's commit, with ``-dirty`` when the work tree has uncommitted changes; None
    for an installed package (its version is recorded instead)."""
    checkout = source_checkout()
    if checkout is None:
        return None
    try:
        sha = _git(checkout, "rev-parse", "HEAD")
        dirty = _git(checkout, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def _git(checkout: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(checkout), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()


def provenance() -> dict[str, Any]:
    return {"git_sha": git_sha(), "versions": versions(), "host": platform.node()}
