"""Content fingerprints: the same for any copy of a checkpoint, different after any training."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ckptgate.checkpoints.layout import fail
from ckptgate.checkpoints.validation import Layout, inspect
from ckptgate.checkpoints.weights import read_range

# Fingerprint sampling of each weight file's data section.
_FP_VERSION = b"ckptgate-fingerprint-v1"
_FP_EDGE = 1024 * 1024  # first and last 1 MiB
_FP_BLOCK = 64 * 1024  # middle blocks of 64 KiB
_FP_BLOCKS = 16

def fingerprint(path: Path) -> str:
    """Hex sha256 content fingerprint of the checkpoint at ``path`` (validated first).

    Hashed: a version tag; config.json, generation_config.json, the shard index and the
    tokenizer files in full (they are small); then for each ``*.safetensors`` file, sorted by
    name: its name, size, full JSON header, and samples of its data section -- the first and
    last 1 MiB and 16 evenly spaced 64 KiB blocks (the whole data section when it is smaller
    than that). About 3 MiB per weight file is read, so a 60 GB checkpoint costs seconds.

    Designed so that a copy of a checkpoint (other folder, other mtimes) has the same
    fingerprint -- no paths or timestamps go in -- and so that any change of config,
    tokenizer, tensor names/shapes/dtypes, or of every matrix (e.g. noise added to all
    weights, i.e. any further training) changes it. Accepted trade-off: a change confined to
    bytes between the sampled blocks (say one edited element) may leave it unchanged.
    """
    return fingerprint_layout(inspect(Path(path)))


def fingerprint_layout(layout: Layout) -> str:
    digest = hashlib.sha256(_FP_VERSION)

    def field(tag: str, data: bytes) -> None:
        digest.update(tag.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    for name in layout.hashed_files:
        field("file", name.encode())
        field("bytes", _read_small(layout.path, name))
    for weight in layout.weights:
        field("weights", weight.name.encode())
        field("size", str(weight.size).encode())
        field("header", weight.header)
        for offset, length in _sample_ranges(weight.size - weight.data_start):
            field("sample", read_range(layout.path, weight, weight.data_start + offset, length))
    return digest.hexdigest()


def _sample_ranges(data_len: int) -> list[tuple[int, int]]:
    """(offset, length) ranges of a data section to hash; depends only on its length."""
    if data_len <= 2 * _FP_EDGE + _FP_BLOCKS * _FP_BLOCK:
        return [(0, data_len)] if data_len else []
    middle_start, middle_len = _FP_EDGE, data_len - 2 * _FP_EDGE
    step = (middle_len - _FP_BLOCK) / (_FP_BLOCKS - 1)
    blocks = [(middle_start + int(i * step), _FP_BLOCK) for i in range(_FP_BLOCKS)]
    return [(0, _FP_EDGE), *blocks, (data_len - _FP_EDGE, _FP_EDGE)]


def _read_small(path: Path, name: str) -> bytes:
    try:
        return (path / name).read_bytes()
    except OSError as exc:
        raise fail(path, f"{name} cannot be read ({exc.strerror}).", "Check its permissions.") from None
