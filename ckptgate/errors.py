"""Errors for bad input. Each carries a one-paragraph message for the user.

The pytest plugin turns every :class:`CkptgateError` raised before a model loads into a
``pytest.UsageError`` (exit code 4, no traceback), except an :class:`InfrastructureError`: the
machine failed, not the input, and the run exits with code 7 (``ckptgate.exitcodes.INFRA``) so
that on-call can tell the two apart.
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


class InfrastructureError(CkptgateError):
    """The machine failed, not the model or the input: a busy GPU, the code sandbox unavailable,
    a dataset not on this machine while offline, an engine that died. Exit code 7."""


class GpuUnavailable(DeviceError, InfrastructureError):
    """GPUs that exist (or were required) cannot be used now: busy, held, or no driver."""


class DataUnavailable(InfrastructureError):
    """Data the suite reads is not on this machine, and a gate run never downloads."""


class SandboxUnavailable(InfrastructureError):
    """The code sandbox does not start here, or lacks the isolation it requires."""
