"""safetensors files, known from their headers: sizes, tensors and truncation, without reading data."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptgate.checkpoints.layout import fail

# safetensors refuses headers above 100 MB; anything bigger is corruption, not a header.
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


@dataclass(frozen=True)
class WeightFile:
    """One safetensors file, known from its header only."""

    name: str
    size: int
    header_len: int
    header: bytes
    tensors: frozenset[str]

    @property
    def data_start(self) -> int:
        return 8 + self.header_len


def read_header(ckpt: Path, file: Path) -> WeightFile:
    """Read the 8-byte length + JSON header of a safetensors file and check the file size.

    Never reads tensor data, so it costs the same for a 1 MB and a 60 GB file.
    """
    corrupt = "Re-copy or re-save this file; a partial copy or an interrupted save is the usual cause."
    try:
        size = file.stat().st_size
        with open(file, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise fail(
                    ckpt,
                    f"{file.name} is {size} bytes, too short to be a safetensors file (it needs at least an "
                    "8-byte header length).",
                    corrupt,
                )
            header_len = int.from_bytes(prefix, "little")
            if header_len == 0 or header_len > _MAX_HEADER_BYTES:
                raise fail(
                    ckpt,
                    f"{file.name} is not a valid safetensors file: its header length field says {header_len} "
                    "bytes.",
                    corrupt,
                )
            if 8 + header_len > size:
                raise fail(
                    ckpt,
                    f"{file.name} is truncated: it is {size} bytes but its header alone needs "
                    f"{8 + header_len} bytes.",
                    corrupt,
                )
            raw = handle.read(header_len)
    except OSError as exc:
        raise fail(ckpt, f"{file.name} cannot be read ({exc.strerror}).", "Check its permissions.") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(ckpt, f"{file.name} has a corrupt safetensors header ({exc}).", corrupt) from None
    if not isinstance(header, dict):
        raise fail(ckpt, f"{file.name} has a safetensors header that is not a JSON object.", corrupt)
    data_end = 0
    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        problem = _tensor_entry_problem(info)
        if problem:
            raise fail(ckpt, f"{file.name} has a corrupt header entry for tensor {tensor!r}: {problem}.", corrupt)
        data_end = max(data_end, info["data_offsets"][1])
    expected = 8 + header_len + data_end
    if size < expected:
        raise fail(
            ckpt,
            f"{file.name} is truncated: it is {size} bytes but its header describes {expected} bytes.",
            corrupt,
        )
    if size > expected:
        raise fail(
            ckpt,
            f"{file.name} is corrupt: it is {size} bytes but its header describes {expected} bytes "
            f"({size - expected} unexpected trailing bytes).",
            corrupt,
        )
    tensors = frozenset(k for k in header if k != "__metadata__")
    return WeightFile(file.name, size, header_len, raw, tensors)


def _tensor_entry_problem(info: Any) -> str | None:
    """Why a safetensors header entry is malformed, or None when it is fine."""
    if not isinstance(info, dict):
        return "not an object"
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str):
        return "no dtype"
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        return f"bad shape {shape!r}"
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        return f"bad data_offsets {offsets!r}"
    itemsize = _DTYPE_BYTES.get(dtype)
    if itemsize is not None:
        needed, span = math.prod(shape) * itemsize, offsets[1] - offsets[0]
        if span != needed:
            return f"{dtype} shape {shape} needs {needed} bytes but data_offsets span {span}"
    return None


def read_range(path: Path, weight: WeightFile, offset: int, length: int) -> bytes:
    try:
        with open(path / weight.name, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
    except OSError as exc:
        raise fail(path, f"{weight.name} cannot be read ({exc.strerror}).", "Check its permissions.") from None
    if len(data) != length:
        raise fail(
            path,
            f"{weight.name} shrank while it was being read ({offset + len(data)} of {offset + length} bytes).",
            "Wait for the copy or save that is writing it to finish, then run again.",
        )
    return data
