"""Fixtures shared by the project's own tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

# Nothing in the test suite may reach a model or dataset hub.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """The shipped demo checkpoint series, verified against its manifest."""
    from ckptgate.demo import demo_series

    return demo_series()
