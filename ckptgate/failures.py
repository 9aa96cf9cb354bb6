"""Which failures are the machine's, not the model's or the input's: exit code 7
(``exitcodes.INFRA``) instead of NO-GO, so on-call knows which one failed.

Our own :class:`~ckptgate.errors.InfrastructureError` (a busy GPU, the sandbox unavailable, a
dataset not on this machine while offline), and what the libraries raise when a device or an
engine dies: out of memory, CUDA/NCCL errors, vLLM's engine errors, a full disk.
"""

from __future__ import annotations

import errno

from ckptgate.errors import InfrastructureError

_DEVICE_MESSAGES = ("CUDA error", "CUDA out of memory", "NCCL", "CUBLAS_STATUS", "cuDNN error",
                    "device-side assert", "Engine core", "EngineCore", "engine died", "ECC error")
_DISK_ERRNOS = (errno.ENOSPC, errno.EIO, errno.EDQUOT)


def infrastructure(exc: BaseException) -> str | None:
    """Why ``exc`` is an infrastructure failure, in a few words; None when it is not one."""
    name, module = type(exc).__name__, type(exc).__module__
    if isinstance(exc, InfrastructureError):
        return str(exc).splitlines()[0]
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError":
        return f"out of memory ({name})"
    if module.split(".")[0] == "vllm":
        return f"vLLM engine failure ({name}: {_first_line(exc)})"
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return f"storage failure ({errno.errorcode.get(exc.errno or 0, exc.errno)}: {_first_line(exc)})"
    if isinstance(exc, RuntimeError) and any(text in str(exc) for text in _DEVICE_MESSAGES):
        return f"device or engine failure ({name}: {_first_line(exc)})"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no message"
