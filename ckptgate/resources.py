"""Where the project's shipped data lives, in a source checkout and in an installed package alike.

The gate's test files, suites, task YAMLs with their data and the demo checkpoints form the
package ``evaltests``; the baseline files (the repository's ``baselines/`` folder) install as the
package ``ckptgate_baselines``. Both are found through the import system, so an editable install,
a wheel in a virtual environment and a plain source checkout resolve them the same way, from any
working directory.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _package_dir(package: str, source_folder: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return _SOURCE_ROOT / source_folder  # running from a checkout that is not installed


def evaltests_dir() -> Path:
    """The gate's benchmarks as pytest tests, with ``suites/``, ``tasks/`` and ``demo/``."""
    return _package_dir("evaltests", "evaltests")


def baselines_dir() -> Path:
    """The shipped baseline files (``<name>.yaml``, one per reference model)."""
    return _package_dir("ckptgate_baselines", "baselines")


def source_checkout() -> Path | None:
    """The project's git work tree when running from one (for the commit recorded with results),
    else None: an installed package must not report the commit of a repository it sits in."""
    return _SOURCE_ROOT if (_SOURCE_ROOT / ".git").exists() and (_SOURCE_ROOT / "evaltests").is_dir() else None
