"""Discovery: a ``--checkpoint`` value (a checkpoint folder, or a parent of step folders) into
validated, fingerprinted checkpoint records with unique labels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ckptgate.checkpoints.fingerprint import fingerprint_layout
from ckptgate.checkpoints.layout import CONFIG_NAME, PICKLE_SUFFIXES, TRAINER_STATE, fail, list_names, summarise
from ckptgate.checkpoints.naming import STEP_PATTERNS_HELP, is_checkpoint_name, parse_step, safe_label, uniquify
from ckptgate.checkpoints.record import ROLES, Checkpoint
from ckptgate.checkpoints.shadow import build_shadow, default_shadow_root
from ckptgate.checkpoints.validation import inspect, is_nanotron, nanotron_advice, require_dir
from ckptgate.errors import CheckpointError

def _make_checkpoint(path: Path, name: str, role: str, shadow_root: Path | None) -> Checkpoint:
    """Validate, fingerprint and (if needed) shadow ``path``; ``name`` gives the label and step."""
    layout = inspect(path)
    fp = fingerprint_layout(layout)
    load_path = path
    if layout.alias:
        load_path = build_shadow(layout, fp, shadow_root or default_shadow_root())
    return Checkpoint(
        label=safe_label(name),
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
    if (path / CONFIG_NAME).is_file() or is_nanotron(path):
        return True
    names = list_names(path)
    if any(is_checkpoint_name(n) and (path / n).is_dir() for n in names):
        return False
    return any(
        (path / n).is_file()
        and (n.endswith(".safetensors") or (n.endswith(PICKLE_SUFFIXES) and not TRAINER_STATE.match(n)))
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
    require_dir(path)
    name = Path(os.path.normpath(path.absolute())).name  # a symlinked checkpoint keeps the name it is given by
    path = path.resolve()
    if _looks_like_checkpoint(path):
        return [_make_checkpoint(path, name or path.name, role, shadow_root)]
    names = list_names(path)
    children = [path / n for n in names if not n.startswith(".") and (path / n).is_dir()]
    matched = [c for c in children if is_checkpoint_name(c.name)]
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
    labels = uniquify([c.label for c in found])
    return [replace(c, label=label) for c, label in zip(found, labels, strict=True)]


def _no_checkpoints_error(path: Path, names: Sequence[str], children: Sequence[Path]) -> CheckpointError:
    entries = [n + ("/" if (path / n).is_dir() else "") for n in names if not n.startswith(".")]
    nanotron = [c.name for c in children if is_nanotron(c)]
    extra = ""
    if nanotron:
        extra = (
            f" Some sub-folders are Nanotron checkpoints ({summarise(nanotron)}), which must be converted to "
            "Hugging Face format first: " + nanotron_advice(path / nanotron[0])
        )
    return fail(
        path,
        "this is neither a checkpoint folder (no config.json) nor a folder of checkpoints: none of its "
        f"entries is named like a checkpoint (found: {summarise(entries)}).",
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
    labels = disambiguate(groups)
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
                raise fail(
                    ckpt.path,
                    f"this checkpoint is given twice: by --checkpoint {seen[ckpt.path]} and by --checkpoint "
                    f"{os.fspath(spec)}.",
                    "Pass each checkpoint (or its parent folder) only once.",
                )
            seen[ckpt.path] = os.fspath(spec)


def _prefixed(ckpt: Checkpoint, depth: int) -> str:
    parents = [p.name for p in ckpt.path.parents if p.name][: depth - 1]
    return "-".join([*(safe_label(p) for p in reversed(parents)), ckpt.label])


def disambiguate(groups: Sequence[Sequence[Checkpoint]]) -> list[list[str]]:
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
    flat = uniquify([label for glabels in labels for label in glabels])
    out: list[list[str]] = []
    for glabels in labels:
        out.append(flat[: len(glabels)])
        flat = flat[len(glabels) :]
    return out
