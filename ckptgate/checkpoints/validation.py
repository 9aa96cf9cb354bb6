"""Validation: is a folder a loadable Hugging Face checkpoint? The first problem found is raised,
with what is wrong, where, and what to do."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ckptgate.checkpoints.layout import (
    CONFIG_NAME,
    METADATA_FILES,
    PICKLE_SUFFIXES,
    SAFE_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    TOKENIZER_FILES,
    TOKENIZER_VOCAB_SETS,
    TRAINER_STATE,
    fail,
    list_names,
    summarise,
)
from ckptgate.checkpoints.weights import WeightFile, read_header

_NANOTRON_CONVERT = (
    "torchrun --nproc_per_node=1 examples/llama/convert_nanotron_to_hf.py "
    "--checkpoint_path={ckpt} --save_path={out} --tokenizer_name={tok}"
)


@dataclass(frozen=True)
class Layout:
    """Everything validation learned about a folder; fingerprinting and shadowing reuse it."""

    path: Path
    weights: tuple[WeightFile, ...]
    hashed_files: tuple[str, ...]  # small files hashed in full (config, tokenizer, index ...)
    alias: tuple[tuple[str, str], ...]  # (name the index expects, unsharded file present)


def validate_checkpoint(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a loadable Hugging Face checkpoint.

    Cheap: reads config.json, the index, tokenizer file names and safetensors headers only.
    """
    inspect(Path(path))


def inspect(path: Path) -> Layout:
    """Validate ``path`` and describe it; the first problem found is raised."""
    require_dir(path)
    _reject_nanotron(path)
    _check_config(path)
    weights = _read_weight_headers(path)
    alias = _check_index(path, weights)
    vocab = _check_tokenizer(path)
    small = {CONFIG_NAME, *vocab}
    small.update(n for n in (*TOKENIZER_FILES, *METADATA_FILES) if (path / n).is_file())
    small.update(p.name for p in path.glob("*.tiktoken") if p.is_file())
    return Layout(
        path=path,
        weights=tuple(sorted(weights, key=lambda w: w.name)),
        hashed_files=tuple(sorted(small)),
        alias=tuple(sorted(alias.items())),
    )


def require_dir(path: Path) -> None:
    try:
        exists = path.exists()
    except OSError as exc:
        raise fail(path, f"the path cannot be accessed ({exc.strerror}).", "Check its permissions.") from None
    if not exists:
        hint = " (it is a broken symlink)" if path.is_symlink() else ""
        raise fail(
            path,
            f"the path does not exist{hint}.",
            "Check the spelling, or pass the folder that contains config.json and the *.safetensors files.",
        )
    if not path.is_dir():
        raise fail(
            path,
            "this is a file, not a folder.",
            f"Pass the checkpoint folder that contains config.json and the weights (here perhaps {path.parent}).",
        )


def is_nanotron(path: Path) -> bool:
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


def nanotron_advice(path: Path) -> str:
    tok = _nanotron_tokenizer(path) or "<tokenizer name or path>"
    command = _NANOTRON_CONVERT.format(ckpt=path, out=f"{path}_hf", tok=tok)
    return (
        "Convert it to Hugging Face format first with Nanotron's conversion script, from a clone of "
        f"the nanotron repository: `{command}` (add --config_cls=Qwen2Config for Qwen models), then "
        "pass the converted folder (the --save_path) instead."
    )


def _reject_nanotron(path: Path) -> None:
    if is_nanotron(path):
        raise fail(
            path,
            "this is a Nanotron checkpoint (config.yaml, model_config.json and a model/ folder), "
            "not a Hugging Face one, so neither transformers nor vLLM can load it.",
            nanotron_advice(path),
        )


def _check_config(path: Path) -> None:
    config = path / CONFIG_NAME
    example = '"architectures": ["Qwen3ForCausalLM"]'
    if not config.is_file():
        raise fail(
            path,
            "there is no config.json, so the model class and its shape are unknown.",
            "Save the checkpoint with `model.save_pretrained(folder)` (which writes config.json), or copy "
            "the config.json of the model it was trained from.",
        )
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(
            path,
            f"config.json is not valid JSON ({exc}).",
            "Re-save it with `model.config.save_pretrained(folder)` or fix the file by hand.",
        ) from None
    if not isinstance(data, dict):
        raise fail(
            path,
            f"config.json holds a JSON {type(data).__name__}, not an object.",
            "Re-save it with `model.config.save_pretrained(folder)`.",
        )
    arch = data.get("architectures")
    if not (isinstance(arch, list) and arch and all(isinstance(a, str) and a for a in arch)):
        raise fail(
            path,
            f"config.json has no non-empty `architectures` list (found {arch!r}), so loaders cannot "
            "tell which model class to build.",
            f"Add the class name of the model, e.g. {example}, to config.json.",
        )


def _read_weight_headers(path: Path) -> list[WeightFile]:
    names = list_names(path)
    safetensors = [n for n in names if n.endswith(".safetensors") and (path / n).is_file()]
    if safetensors:
        return [read_header(path, path / n) for n in safetensors]
    pickles = [n for n in names if n.endswith(PICKLE_SUFFIXES) and not TRAINER_STATE.match(n)]
    if pickles:
        raise fail(
            path,
            f"the weights are in PyTorch pickle format ({', '.join(pickles[:5])}); ckptgate only loads "
            "safetensors, which it can check for truncation and fingerprint without unpickling.",
            "Convert once with `AutoModelForCausalLM.from_pretrained(folder).save_pretrained(out)` (transformers "
            "5 always writes safetensors; on transformers 4 pass `safe_serialization=True`), copy the tokenizer "
            "files along, and pass the new folder.",
        )
    raise fail(
        path,
        f"no weights were found: there is no *.safetensors file (the folder holds: {summarise(names)}).",
        "Point at the folder written by `model.save_pretrained(...)`, which contains model.safetensors "
        "or model-0000X-of-0000N.safetensors shards.",
    )


def _check_index(path: Path, weights: Sequence[WeightFile]) -> dict[str, str]:
    """Check that the weights are where loaders will look; return {expected name: present file}.

    The returned alias is non-empty only in the known "unsharded file under an index" case.
    """
    present = {w.name: w for w in weights}
    index = path / SAFE_INDEX_NAME
    if not index.is_file():
        if SAFE_WEIGHTS_NAME in present:
            return {}
        raise fail(
            path,
            f"there is no {SAFE_WEIGHTS_NAME} and no {SAFE_INDEX_NAME}, only {summarise(sorted(present))}; "
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
    raise fail(
        path,
        f"{SAFE_INDEX_NAME} names weight files that do not exist: {summarise(missing)} "
        f"(present: {summarise(sorted(present))}).",
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
        raise fail(path, f"{SAFE_INDEX_NAME} is not valid JSON ({exc}).", fix) from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not (
        isinstance(weight_map, dict)
        and weight_map
        and all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items())
    ):
        raise fail(path, f"{SAFE_INDEX_NAME} has no `weight_map` from tensor names to file names.", fix)
    bad = sorted({v for v in weight_map.values() if Path(v).name != v or v in ("", ".", "..")})
    if bad:
        raise fail(path, f"{SAFE_INDEX_NAME} points outside the folder: {summarise(bad)}.", fix)
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
        n for n in list_names(path) if n.startswith(("tokenizer", "vocab", "merges", "special_tokens", "spiece"))
    ]
    accepted = " or ".join("+".join(g) for g in TOKENIZER_VOCAB_SETS) + " or a *.tiktoken file"
    raise fail(
        path,
        f"no tokenizer vocabulary was found (tokenizer files present: {summarise(tokenizerish)}); "
        f"benchmarks need one of {accepted}.",
        "Save it next to the weights with `tokenizer.save_pretrained(folder)` (e.g. the tokenizer of the base "
        "model the run started from).",
    )


def parameter_count(path: Path) -> int:
    """Number of weights in the checkpoint's safetensors files, from their headers (nothing
    else is read): what the device planner sizes a model by."""
    total = 0
    for weight in inspect(Path(path)).weights:
        header = json.loads(weight.header)
        total += sum(math.prod(info["shape"]) for name, info in header.items() if name != "__metadata__")
    return total
