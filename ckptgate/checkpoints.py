"""Checkpoint discovery, validation and fingerprinting, all before any model loads.

Why this exists: a gate run can take hours, so a typo in a path, a half-copied shard or a
Nanotron folder that was never converted must be caught in the first second, with a message
that says what is wrong, where, and what to do -- not as a traceback from deep inside
transformers or vLLM halfway through the run. Every problem raises :class:`CheckpointError`.

What counts as a checkpoint (a Hugging Face ``save_pretrained`` folder):

* ``config.json`` that parses and has a non-empty ``architectures`` list;
* weights as safetensors: ``model.safetensors``, or shards listed by
  ``model.safetensors.index.json``. Pickle weights (``.bin``/``.pt``) are **not** supported:
  they cannot be checked for truncation or fingerprinted without unpickling (slow, and it runs
  arbitrary code); the error says how to convert them with ``save_pretrained``;
* a tokenizer, i.e. a vocabulary file: ``tokenizer.json``, a SentencePiece model
  (``tokenizer.model``, ``spiece.model``, ``sentencepiece.bpe.model``), a ``*.tiktoken`` file,
  ``vocab.json`` + ``merges.txt`` (byte-level BPE), or ``vocab.txt`` (WordPiece).
  ``tokenizer_config.json`` alone does not count: it holds settings, not a vocabulary.

Only headers of safetensors files are read during validation (8 bytes + the JSON header).

The "shadow view": some training code saves a single ``model.safetensors`` next to an index
that expects ``model-00001-of-00001.safetensors``. Loaders that trust the index (vLLM filters
the weight files by the index's ``weight_map``) then find no weights. Rather than touch the
user's files, :func:`discover` builds a folder of symlinks under
``<shadow_root>/<fingerprint>/<path digest>/`` in which the unsharded file appears under the
name the index expects, and points :attr:`Checkpoint.load_path` at it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ckptgate.atomicio import remove_tree
from ckptgate.cache import cache_root
from ckptgate.errors import CheckpointError

__all__ = [
    "Checkpoint",
    "default_shadow_root",
    "discover",
    "discover_all",
    "fingerprint",
    "parse_step",
    "validate_checkpoint",
]

ROLES = ("candidate", "bridge")

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_INDEX_NAME = "model.safetensors.index.json"

# Vocabulary files: at least one of these "sets" must be complete for a tokenizer to count.
TOKENIZER_VOCAB_SETS: tuple[tuple[str, ...], ...] = (
    ("tokenizer.json",),
    ("tokenizer.model",),
    ("spiece.model",),
    ("sentencepiece.bpe.model",),
    ("vocab.json", "merges.txt"),
    ("vocab.txt",),
)
# Small files that change what the model computes or how text is tokenized: hashed in full.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)
_METADATA_FILES = ("generation_config.json", SAFE_INDEX_NAME)

# Pickle-format weight files we recognise only to say "convert these".
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
# Trainer state that sits next to weights but is not weights.
_TRAINER_STATE = re.compile(r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|rng_state.*\.pth|scaler\.pt)$")

# safetensors refuses headers above 100 MB; anything bigger is corruption, not a header.
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip

# Fingerprint sampling of each weight file's data section.
_FP_VERSION = b"ckptgate-fingerprint-v1"
_FP_EDGE = 1024 * 1024  # first and last 1 MiB
_FP_BLOCK = 64 * 1024  # middle blocks of 64 KiB
_FP_BLOCKS = 16

STEP_PATTERNS_HELP = (
    "step_N, epoch_N, checkpoint-N, <name>_stepN (e.g. run3_step2000), <name>_final"
)
_STEP_RES = (
    re.compile(r"^(?:step|epoch)[_-]?(\d+)$", re.IGNORECASE),
    re.compile(r"^checkpoint[_-](\d+)$", re.IGNORECASE),
    re.compile(r"^.+[_-](?:step|epoch)[_-]?(\d+)$", re.IGNORECASE),
)
_FINAL_RE = re.compile(r"^(?:.+[_-])?final$", re.IGNORECASE)
_UNSAFE_LABEL_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

_NANOTRON_CONVERT = (
    "torchrun --nproc_per_node=1 examples/llama/convert_nanotron_to_hf.py "
    "--checkpoint_path={ckpt} --save_path={out} --tokenizer_name={tok}"
)


# --------------------------------------------------------------------------------------------
# The record


@dataclass(frozen=True)
class Checkpoint:
    """One validated checkpoint, ready to be handed to a backend.

    ``label`` is unique within a run and safe as a single path component (results are
    written under it). ``load_path`` is what loaders get: ``path`` itself, or a shadow view
    of symlinks when the folder needs one (see the module docstring). ``step`` is ``None``
    for names without a number, including ``*_final``; use :attr:`is_final` /
    :attr:`sort_key` to order such checkpoints last.
    """

    label: str
    path: Path
    step: int | None
    load_path: Path
    fingerprint: str
    role: str = "candidate"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise CheckpointError(
                f"Checkpoint {self.label!r} has role {self.role!r}; the role must be one of {', '.join(ROLES)}."
            )

    @property
    def is_final(self) -> bool:
        """True for a ``*_final`` folder, which sorts after every numbered step.

        Judged by the label (the name the checkpoint was found under, possibly prefixed) and,
        failing that, by the resolved folder name.
        """
        return self.step is None and (parse_step(self.label)[1] or parse_step(self.path.name)[1])

    @property
    def sort_key(self) -> tuple[int, int, str]:
        """Order by step number (numerically), ``*_final`` and unnumbered ones last."""
        if self.step is not None:
            return (0, self.step, self.label)
        return (2 if self.is_final else 1, 0, self.label)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, for shipping to xdist workers and into result files."""
        return {
            "label": self.label,
            "path": str(self.path),
            "step": self.step,
            "load_path": str(self.load_path),
            "fingerprint": self.fingerprint,
            "role": self.role,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Checkpoint:
        """Inverse of :meth:`to_dict`."""
        try:
            step = d["step"]
            return cls(
                label=str(d["label"]),
                path=Path(d["path"]),
                step=None if step is None else int(step),
                load_path=Path(d["load_path"]),
                fingerprint=str(d["fingerprint"]),
                role=str(d.get("role", "candidate")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"A serialised checkpoint record is malformed ({exc!r}): {d!r}. It should come from "
                "Checkpoint.to_dict(); re-run discovery instead of editing the record by hand."
            ) from None


# --------------------------------------------------------------------------------------------
# Names and steps


def parse_step(name: str) -> tuple[int | None, bool]:
    """Parse a checkpoint folder name into ``(step, is_final)``.

    * ``step_0300``, ``step-300``, ``epoch_3``, ``checkpoint-300``, ``run3_step2000``,
      ``run3_epoch_2`` -> ``(number, False)``;
    * ``final``, ``run3_final`` -> ``(None, True)``;
    * anything else -> ``(None, False)``: not a checkpoint name (parents ignore such children).

    Leading zeros are ignored, so ``step_0900`` < ``step_1000`` numerically.
    """
    for pattern in _STEP_RES:
        match = pattern.match(name)
        if match:
            return int(match.group(1)), False
    return None, bool(_FINAL_RE.match(name))


def _is_checkpoint_name(name: str) -> bool:
    step, final = parse_step(name)
    return step is not None or final


def _safe_label(name: str) -> str:
    """A label usable as one path component and as a pytest id fragment."""
    label = _UNSAFE_LABEL_CHARS.sub("_", name).strip("_")
    return label if label not in ("", ".", "..") else "checkpoint"


def _uniquify(labels: Sequence[str]) -> list[str]:
    """Keep the first of each label, suffix later repeats with -2, -3, ... (last resort)."""
    seen: set[str] = set()
    out: list[str] = []
    for label in labels:
        candidate, n = label, 1
        while candidate in seen:
            n += 1
            candidate = f"{label}-{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


# --------------------------------------------------------------------------------------------
# Validation


def _fail(path: Path, problem: str, fix: str) -> CheckpointError:
    return CheckpointError(f"Checkpoint {path}: {problem} {fix}")


@dataclass(frozen=True)
class _WeightFile:
    """One safetensors file, known from its header only."""

    name: str
    size: int
    header_len: int
    header: bytes
    tensors: frozenset[str]

    @property
    def data_start(self) -> int:
        return 8 + self.header_len


@dataclass(frozen=True)
class _Layout:
    """Everything validation learned about a folder; fingerprinting and shadowing reuse it."""

    path: Path
    weights: tuple[_WeightFile, ...]
    hashed_files: tuple[str, ...]  # small files hashed in full (config, tokenizer, index ...)
    alias: tuple[tuple[str, str], ...]  # (name the index expects, unsharded file present)


def validate_checkpoint(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a loadable Hugging Face checkpoint.

    Cheap: reads config.json, the index, tokenizer file names and safetensors headers only.
    """
    _inspect(Path(path))


def _inspect(path: Path) -> _Layout:
    """Validate ``path`` and describe it; the first problem found is raised."""
    _require_dir(path)
    _reject_nanotron(path)
    _check_config(path)
    weights = _read_weight_headers(path)
    alias = _check_index(path, weights)
    vocab = _check_tokenizer(path)
    small = {CONFIG_NAME, *vocab}
    small.update(n for n in (*_TOKENIZER_FILES, *_METADATA_FILES) if (path / n).is_file())
    small.update(p.name for p in path.glob("*.tiktoken") if p.is_file())
    return _Layout(
        path=path,
        weights=tuple(sorted(weights, key=lambda w: w.name)),
        hashed_files=tuple(sorted(small)),
        alias=tuple(sorted(alias.items())),
    )


def _require_dir(path: Path) -> None:
    try:
        exists = path.exists()
    except OSError as exc:
        raise _fail(path, f"the path cannot be accessed ({exc.strerror}).", "Check its permissions.") from None
    if not exists:
        hint = " (it is a broken symlink)" if path.is_symlink() else ""
        raise _fail(
            path,
            f"the path does not exist{hint}.",
            "Check the spelling, or pass the folder that contains config.json and the *.safetensors files.",
        )
    if not path.is_dir():
        raise _fail(
            path,
            "this is a file, not a folder.",
            f"Pass the checkpoint folder that contains config.json and the weights (here perhaps {path.parent}).",
        )


def _is_nanotron(path: Path) -> bool:
    """Nanotron saves config.yaml + model_config.json + a model/ tree of per-rank shards."""
    return (
        (path / "model").is_dir()
        and ((path / "config.yaml").is_file() or (path / "model_config.json").is_file())
        and not (path / CONFIG_NAME).is_file()
    )


def _nanotron_tokenizer(path: Path) -> str | None:
    """Best effort: the tokenizer named in Nanotron's config.yaml, to fill in the command."""
    try:
        import yaml

        data = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
        name = data.get("tokenizer", {}).get("tokenizer_name_or_path")
        return str(name) if name else None
    except Exception:  # noqa: BLE001 - a hint only; any problem means "no hint"
        return None


def _nanotron_advice(path: Path) -> str:
    tok = _nanotron_tokenizer(path) or "<tokenizer name or path>"
    command = _NANOTRON_CONVERT.format(ckpt=path, out=f"{path}_hf", tok=tok)
    return (
        "Convert it to Hugging Face format first with Nanotron's conversion script, from a clone of "
        f"the nanotron repository: `{command}` (add --config_cls=Qwen2Config for Qwen models), then "
        "pass the converted folder (the --save_path) instead."
    )


def _reject_nanotron(path: Path) -> None:
    if _is_nanotron(path):
        raise _fail(
            path,
            "this is a Nanotron checkpoint (config.yaml, model_config.json and a model/ folder), "
            "not a Hugging Face one, so neither transformers nor vLLM can load it.",
            _nanotron_advice(path),
        )


def _check_config(path: Path) -> None:
    config = path / CONFIG_NAME
    example = '"architectures": ["Qwen3ForCausalLM"]'
    if not config.is_file():
        raise _fail(
            path,
            "there is no config.json, so the model class and its shape are unknown.",
            "Save the checkpoint with `model.save_pretrained(folder)` (which writes config.json), or copy "
            "the config.json of the model it was trained from.",
        )
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(
            path,
            f"config.json is not valid JSON ({exc}).",
            "Re-save it with `model.config.save_pretrained(folder)` or fix the file by hand.",
        ) from None
    if not isinstance(data, dict):
        raise _fail(
            path,
            f"config.json holds a JSON {type(data).__name__}, not an object.",
            "Re-save it with `model.config.save_pretrained(folder)`.",
        )
    arch = data.get("architectures")
    if not (isinstance(arch, list) and arch and all(isinstance(a, str) and a for a in arch)):
        raise _fail(
            path,
            f"config.json has no non-empty `architectures` list (found {arch!r}), so loaders cannot "
            "tell which model class to build.",
            f"Add the class name of the model, e.g. {example}, to config.json.",
        )


def _list_names(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        raise _fail(path, f"the folder cannot be listed ({exc.strerror}).", "Check its permissions.") from None


def _read_weight_headers(path: Path) -> list[_WeightFile]:
    names = _list_names(path)
    safetensors = [n for n in names if n.endswith(".safetensors") and (path / n).is_file()]
    if safetensors:
        return [_read_header(path, path / n) for n in safetensors]
    pickles = [n for n in names if n.endswith(_PICKLE_SUFFIXES) and not _TRAINER_STATE.match(n)]
    if pickles:
        raise _fail(
            path,
            f"the weights are in PyTorch pickle format ({', '.join(pickles[:5])}); ckptgate only loads "
            "safetensors, which it can check for truncation and fingerprint without unpickling.",
            "Convert once with `AutoModelForCausalLM.from_pretrained(folder).save_pretrained(out)` (transformers "
            "5 always writes safetensors; on transformers 4 pass `safe_serialization=True`), copy the tokenizer "
            "files along, and pass the new folder.",
        )
    raise _fail(
        path,
        f"no weights were found: there is no *.safetensors file (the folder holds: {_summarise(names)}).",
        "Point at the folder written by `model.save_pretrained(...)`, which contains model.safetensors "
        "or model-0000X-of-0000N.safetensors shards.",
    )


def _summarise(names: Sequence[str], limit: int = 12) -> str:
    if not names:
        return "nothing"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"


def _read_header(ckpt: Path, file: Path) -> _WeightFile:
    """Read the 8-byte length + JSON header of a safetensors file and check the file size.

    Never reads tensor data, so it costs the same for a 1 MB and a 60 GB file.
    """
    corrupt = "Re-copy or re-save this file; a partial copy or an interrupted save is the usual cause."
    try:
        size = file.stat().st_size
        with open(file, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _fail(
                    ckpt,
                    f"{file.name} is {size} bytes, too short to be a safetensors file (it needs at least an "
                    "8-byte header length).",
                    corrupt,
                )
            header_len = int.from_bytes(prefix, "little")
            if header_len == 0 or header_len > _MAX_HEADER_BYTES:
                raise _fail(
                    ckpt,
                    f"{file.name} is not a valid safetensors file: its header length field says {header_len} "
                    "bytes.",
                    corrupt,
                )
            if 8 + header_len > size:
                raise _fail(
                    ckpt,
                    f"{file.name} is truncated: it is {size} bytes but its header alone needs "
                    f"{8 + header_len} bytes.",
                    corrupt,
                )
            raw = handle.read(header_len)
    except OSError as exc:
        raise _fail(ckpt, f"{file.name} cannot be read ({exc.strerror}).", "Check its permissions.") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(ckpt, f"{file.name} has a corrupt safetensors header ({exc}).", corrupt) from None
    if not isinstance(header, dict):
        raise _fail(ckpt, f"{file.name} has a safetensors header that is not a JSON object.", corrupt)
    data_end = 0
    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        problem = _tensor_entry_problem(info)
        if problem:
            raise _fail(ckpt, f"{file.name} has a corrupt header entry for tensor {tensor!r}: {problem}.", corrupt)
        data_end = max(data_end, info["data_offsets"][1])
    expected = 8 + header_len + data_end
    if size < expected:
        raise _fail(
            ckpt,
            f"{file.name} is truncated: it is {size} bytes but its header describes {expected} bytes.",
            corrupt,
        )
    if size > expected:
        raise _fail(
            ckpt,
            f"{file.name} is corrupt: it is {size} bytes but its header describes {expected} bytes "
            f"({size - expected} unexpected trailing bytes).",
            corrupt,
        )
    tensors = frozenset(k for k in header if k != "__metadata__")
    return _WeightFile(file.name, size, header_len, raw, tensors)


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


def _check_index(path: Path, weights: Sequence[_WeightFile]) -> dict[str, str]:
    """Check that the weights are where loaders will look; return {expected name: present file}.

    The returned alias is non-empty only in the known "unsharded file under an index" case.
    """
    present = {w.name: w for w in weights}
    index = path / SAFE_INDEX_NAME
    if not index.is_file():
        if SAFE_WEIGHTS_NAME in present:
            return {}
        raise _fail(
            path,
            f"there is no {SAFE_WEIGHTS_NAME} and no {SAFE_INDEX_NAME}, only {_summarise(sorted(present))}; "
            "loaders look for exactly those two names.",
            f"Rename a single weights file to {SAFE_WEIGHTS_NAME}, or restore the {SAFE_INDEX_NAME} that "
            "was saved with the shards.",
        )
    weight_map = _read_weight_map(path, index)
    referenced = sorted(set(weight_map.values()))
    missing = [name for name in referenced if name not in present]
    if not missing:
        return {}
    if len(missing) == 1:
        wanted = {t for t, f in weight_map.items() if f == missing[0]}
        matches = [w for w in weights if w.name not in referenced and wanted <= w.tensors]
        if len(matches) == 1:
            return {missing[0]: matches[0].name}
    raise _fail(
        path,
        f"{SAFE_INDEX_NAME} names weight files that do not exist: {_summarise(missing)} "
        f"(present: {_summarise(sorted(present))}).",
        "Copy the missing shards, or if the checkpoint really is a single file, delete the stale index so "
        f"that {SAFE_WEIGHTS_NAME} is used.",
    )


def _read_weight_map(path: Path, index: Path) -> dict[str, str]:
    fix = (
        f"Restore the {SAFE_INDEX_NAME} written by save_pretrained, or delete it if the weights are "
        f"one {SAFE_WEIGHTS_NAME}."
    )
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"{SAFE_INDEX_NAME} is not valid JSON ({exc}).", fix) from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not (
        isinstance(weight_map, dict)
        and weight_map
        and all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items())
    ):
        raise _fail(path, f"{SAFE_INDEX_NAME} has no `weight_map` from tensor names to file names.", fix)
    bad = sorted({v for v in weight_map.values() if Path(v).name != v or v in ("", ".", "..")})
    if bad:
        raise _fail(path, f"{SAFE_INDEX_NAME} points outside the folder: {_summarise(bad)}.", fix)
    return weight_map


def _check_tokenizer(path: Path) -> list[str]:
    """Return the vocabulary files found; raise when there is no usable tokenizer."""
    found: list[str] = []
    for group in TOKENIZER_VOCAB_SETS:
        if all((path / name).is_file() for name in group):
            found.extend(group)
    found.extend(p.name for p in sorted(path.glob("*.tiktoken")) if p.is_file())
    if found:
        return found
    tokenizerish = [
        n for n in _list_names(path) if n.startswith(("tokenizer", "vocab", "merges", "special_tokens", "spiece"))
    ]
    accepted = " or ".join("+".join(g) for g in TOKENIZER_VOCAB_SETS) + " or a *.tiktoken file"
    raise _fail(
        path,
        f"no tokenizer vocabulary was found (tokenizer files present: {_summarise(tokenizerish)}); "
        f"benchmarks need one of {accepted}.",
        "Save it next to the weights with `tokenizer.save_pretrained(folder)` (e.g. the tokenizer of the base "
        "model the run started from).",
    )


# --------------------------------------------------------------------------------------------
# Fingerprint


def parameter_count(path: Path) -> int:
    """Number of weights in the checkpoint's safetensors files, from their headers (nothing
    else is read): what the device planner sizes a model by."""
    total = 0
    for weight in _inspect(Path(path)).weights:
        header = json.loads(weight.header)
        total += sum(math.prod(info["shape"]) for name, info in header.items() if name != "__metadata__")
    return total


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
    return _fingerprint(_inspect(Path(path)))


def _fingerprint(layout: _Layout) -> str:
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
            field("sample", _read_range(layout.path, weight, weight.data_start + offset, length))
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
        raise _fail(path, f"{name} cannot be read ({exc.strerror}).", "Check its permissions.") from None


def _read_range(path: Path, weight: _WeightFile, offset: int, length: int) -> bytes:
    try:
        with open(path / weight.name, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
    except OSError as exc:
        raise _fail(path, f"{weight.name} cannot be read ({exc.strerror}).", "Check its permissions.") from None
    if len(data) != length:
        raise _fail(
            path,
            f"{weight.name} shrank while it was being read ({offset + len(data)} of {offset + length} bytes).",
            "Wait for the copy or save that is writing it to finish, then run again.",
        )
    return data


# --------------------------------------------------------------------------------------------
# Shadow view


def default_shadow_root() -> Path:
    """Where shadow views live: ``$XDG_CACHE_HOME/ckptgate/shadow`` or ``~/.cache/ckptgate/shadow``.

    A cache, not user data: any of it can be deleted at any time; it is rebuilt on demand.
    """
    return cache_root() / "shadow"


def _shadow_links(layout: _Layout) -> dict[str, str]:
    """Symlink name -> absolute target for the shadow view of ``layout``.

    Every top-level entry of the user's folder is linked under its own name, except the
    unsharded weights file, which appears only under the name the index expects: kept under
    both names, transformers would load ``model.safetensors`` and never exercise the alias, and
    loaders that glob ``*.safetensors`` would see every tensor twice.
    """
    aliased = dict(layout.alias)
    sources = set(aliased.values())
    links = {n: str(layout.path / n) for n in _list_names(layout.path) if n not in sources}
    links.update({expected: str(layout.path / present) for expected, present in aliased.items()})
    return links


def _shadow_is_current(folder: Path, links: dict[str, str]) -> bool:
    try:
        if set(os.listdir(folder)) != set(links):
            return False
        return all(os.readlink(folder / name) == target for name, target in links.items())
    except OSError:
        return False


def _build_shadow(layout: _Layout, fp: str, shadow_root: Path) -> Path:
    """Create (or reuse) the shadow view, atomically: symlinks go into a temp dir that is renamed.

    Keyed by fingerprint *and* a digest of the user's path: two copies of a checkpoint share
    a fingerprint but must each load their own files. Concurrent builders are safe: the
    loser of the rename race checks that the winner's view is identical and uses it.
    """
    links = _shadow_links(layout)
    final = shadow_root / fp / hashlib.sha256(str(layout.path).encode()).hexdigest()[:16]
    if _shadow_is_current(final, links):
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as exc:
        raise _fail(
            layout.path,
            f"it needs a shadow view (its {SAFE_INDEX_NAME} expects {', '.join(dict(layout.alias))}) but "
            f"{final.parent} cannot be created ({exc.strerror}).",
            "Set XDG_CACHE_HOME to a writable folder. Your checkpoint folder is never modified.",
        ) from None
    try:
        for name, target in links.items():
            os.symlink(target, tmp / name)
        os.chmod(tmp, 0o555)
        for _ in range(3):
            try:
                os.rename(tmp, final)
                return final
            except OSError:
                if _shadow_is_current(final, links):
                    return final
                # A stale view (the folder gained or lost files): move it aside, then retry.
                stale = final.with_name(f".{final.name}.stale-{os.getpid()}-{os.urandom(4).hex()}")
                try:
                    os.rename(final, stale)
                    remove_tree(stale)
                except OSError:
                    pass
        raise _fail(
            layout.path,
            f"its shadow view at {final} could not be put in place.",
            f"Delete {final} and run again. Your checkpoint folder is never modified.",
        )
    except OSError as exc:
        raise _fail(
            layout.path,
            f"building its shadow view under {final.parent} failed ({exc.strerror}).",
            "Set XDG_CACHE_HOME to a writable folder that supports symlinks. Your checkpoint folder is never modified.",
        ) from None
    finally:
        if tmp.exists():
            remove_tree(tmp)


# --------------------------------------------------------------------------------------------
# Discovery


def _make_checkpoint(path: Path, name: str, role: str, shadow_root: Path | None) -> Checkpoint:
    """Validate, fingerprint and (if needed) shadow ``path``; ``name`` gives the label and step."""
    layout = _inspect(path)
    fp = _fingerprint(layout)
    load_path = path
    if layout.alias:
        load_path = _build_shadow(layout, fp, shadow_root or default_shadow_root())
    return Checkpoint(
        label=_safe_label(name),
        path=path,
        step=parse_step(name)[0],
        load_path=load_path,
        fingerprint=fp,
        role=role,
    )


def _looks_like_checkpoint(path: Path) -> bool:
    """A folder meant as one checkpoint (rather than a parent of several).

    config.json (or a Nanotron layout) decides; otherwise weight files at the top level do,
    unless sub-folders are named like checkpoints (then it is a parent with stray files).
    """
    if (path / CONFIG_NAME).is_file() or _is_nanotron(path):
        return True
    names = _list_names(path)
    if any(_is_checkpoint_name(n) and (path / n).is_dir() for n in names):
        return False
    return any(
        (path / n).is_file()
        and (n.endswith(".safetensors") or (n.endswith(_PICKLE_SUFFIXES) and not _TRAINER_STATE.match(n)))
        for n in names
    )


def discover(
    spec: str | os.PathLike[str],
    *,
    role: str = "candidate",
    shadow_root: Path | None = None,
) -> list[Checkpoint]:
    """Resolve one ``--checkpoint`` value into validated checkpoints, ordered by step.

    ``spec`` is either a checkpoint folder (it has config.json) -> that one checkpoint, or a
    parent whose sub-folders are named like checkpoints (:func:`parse_step`) -> all of them,
    numerically by step, ``*_final`` last; other sub-folders are ignored. If any matching
    sub-folder is invalid, one error lists them all, so a run is fixed in one go.
    """
    if role not in ROLES:
        raise CheckpointError(f"Unknown checkpoint role {role!r}; expected one of {', '.join(ROLES)}.")
    path = Path(os.path.expanduser(os.fspath(spec)))
    _require_dir(path)
    path = path.resolve()
    if _looks_like_checkpoint(path):
        return [_make_checkpoint(path, path.name, role, shadow_root)]
    names = _list_names(path)
    children = [path / n for n in names if not n.startswith(".") and (path / n).is_dir()]
    matched = [c for c in children if _is_checkpoint_name(c.name)]
    if not matched:
        raise _no_checkpoints_error(path, names, children)
    found: list[Checkpoint] = []
    problems: list[str] = []
    for child in matched:
        try:
            # A symlinked child keeps the name it has here; its path is resolved.
            found.append(_make_checkpoint(child.resolve(), child.name, role, shadow_root))
        except CheckpointError as exc:
            problems.append(f"- {child.name}: {exc}")
    if problems:
        raise CheckpointError(
            f"Checkpoint folder {path}: {len(problems)} of its {len(matched)} checkpoints cannot be used. "
            "Fix or move them out of the folder, or pass the good ones one by one with --checkpoint:\n"
            + "\n".join(problems)
        )
    found.sort(key=lambda c: c.sort_key)
    labels = _uniquify([c.label for c in found])
    return [replace(c, label=label) for c, label in zip(found, labels, strict=True)]


def _no_checkpoints_error(path: Path, names: Sequence[str], children: Sequence[Path]) -> CheckpointError:
    entries = [n + ("/" if (path / n).is_dir() else "") for n in names if not n.startswith(".")]
    nanotron = [c.name for c in children if _is_nanotron(c)]
    extra = ""
    if nanotron:
        extra = (
            f" Some sub-folders are Nanotron checkpoints ({_summarise(nanotron)}), which must be converted to "
            "Hugging Face format first: " + _nanotron_advice(path / nanotron[0])
        )
    return _fail(
        path,
        "this is neither a checkpoint folder (no config.json) nor a folder of checkpoints: none of its "
        f"entries is named like a checkpoint (found: {_summarise(entries)}).",
        f"Pass a folder containing config.json and *.safetensors, or a parent whose sub-folders are named "
        f"{STEP_PATTERNS_HELP}.{extra}",
    )


def discover_all(
    specs: Sequence[str | os.PathLike[str]],
    *,
    role: str = "candidate",
    shadow_root: Path | None = None,
) -> list[Checkpoint]:
    """Discover every ``--checkpoint`` value; keep their order, make labels unique.

    Label rule: a checkpoint keeps its folder name unless another spec produced the same
    label; then every checkpoint of each colliding spec is prefixed with its parent folder
    name (``runA-step_100``, ``runB-step_100``), then grandparent, ... until unique; as a last
    resort ``-2``, ``-3`` is appended. The same checkpoint folder reached twice (given twice,
    or once directly and once through its parent) is an error.
    """
    if not specs:
        raise CheckpointError("No checkpoint was given. Pass --checkpoint PATH (repeatable).")
    groups = [discover(spec, role=role, shadow_root=shadow_root) for spec in specs]
    _reject_duplicates(specs, groups)
    labels = _disambiguate(groups)
    return [
        replace(ckpt, label=label)
        for group, group_labels in zip(groups, labels, strict=True)
        for ckpt, label in zip(group, group_labels, strict=True)
    ]


def _reject_duplicates(
    specs: Sequence[str | os.PathLike[str]], groups: Sequence[Sequence[Checkpoint]]
) -> None:
    seen: dict[Path, str] = {}
    for spec, group in zip(specs, groups, strict=True):
        for ckpt in group:
            if ckpt.path in seen:
                raise _fail(
                    ckpt.path,
                    f"this checkpoint is given twice: by --checkpoint {seen[ckpt.path]} and by --checkpoint "
                    f"{os.fspath(spec)}.",
                    "Pass each checkpoint (or its parent folder) only once.",
                )
            seen[ckpt.path] = os.fspath(spec)


def _prefixed(ckpt: Checkpoint, depth: int) -> str:
    parents = [p.name for p in ckpt.path.parents if p.name][: depth - 1]
    return "-".join([*(_safe_label(p) for p in reversed(parents)), ckpt.label])


def _disambiguate(groups: Sequence[Sequence[Checkpoint]]) -> list[list[str]]:
    depths = [1] * len(groups)
    for _ in range(32):
        labels = [[_prefixed(c, depths[i]) for c in group] for i, group in enumerate(groups)]
        owners: dict[str, set[int]] = {}
        for i, glabels in enumerate(labels):
            for label in glabels:
                owners.setdefault(label, set()).add(i)
        colliding = set().union(*(o for o in owners.values() if len(o) > 1))
        growable = {i for i in colliding if any(len(c.path.parents) > depths[i] for c in groups[i])}
        if not growable:
            break
        for i in growable:
            depths[i] += 1
    flat = _uniquify([label for glabels in labels for label in glabels])
    out: list[list[str]] = []
    for glabels in labels:
        out.append(flat[: len(glabels)])
        flat = flat[len(glabels) :]
    return out
