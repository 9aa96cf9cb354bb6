"""Errors for bad input. Each carries a one-paragraph message for the user.

The pytest plugin turns every :class:`CkptgateError` raised before a model loads into a
``pytest.UsageError`` (exit code 4, no traceback).
"""

from __future__ import annotations


class CkptgateError(Exception):
    """Bad input: the message says what is wrong and what to do about it."""


class CheckpointError(CkptgateError):
    """A checkpoint path is missing, malformed or not in Hugging Face format."""


class SuiteError(CkptgateError):
    """A suite file is malformed or names something that does not exist."""


class BaselineError(CkptgateError):
    """A baseline file is malformed, or names a baseline that does not exist."""


class DeviceError(CkptgateError):
    """The GPUs asked for cannot be used (missing, busy, fewer free than workers)."""
