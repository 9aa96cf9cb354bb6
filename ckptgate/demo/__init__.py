"""Embedded demo checkpoints: a tiny, genuine Qwen3 series shipped with the project.

The gate needs checkpoints whose benchmark scores really differ, without downloading anything.
The project ships one small ``Qwen3ForCausalLM`` training run (about 0.9M parameters, byte-level
BPE tokenizer, bf16 safetensors) in ``evaltests/demo``, and this module both finds those files
(checking every byte against the sha256 recorded in ``manifest.json``) and holds the code that
trained them, so ``ckptgate demo --retrain DIR`` can regenerate them:

* ``step_0100``, ``step_0300``, ``step_0800``: the early series, whose scores rise with training,
  so a gate comparing them has real regressions and improvements to find;
* ``step_0850``, ``step_0900``: a late plateau. The learning rate falls linearly to zero after
  step 800, as real runs anneal it, so these checkpoints and step_0800 are of equal quality:
  consecutive checkpoints that a gate must not call regressions;
* ``bridge``: the snapshot at :data:`BRIDGE_STEP`, between step_0300 and step_0800.

The weights are shipped, not trained on each machine, because training is not bit-identical
across CPU instruction sets and thread counts: a locally trained series scores differently on
every machine, and so would every number in the documentation and the tests.

Each snapshot is an ordinary Hugging Face folder (``config.json``, ``model.safetensors``,
``generation_config.json``, tokenizer files with a ChatML chat template) that ``transformers``
and vLLM load offline. The three skills match the demo lm-eval tasks shipped in
``evaltests/tasks/demo`` (GSM8K-format arithmetic, a four-way multiple choice, plain text for
perplexity); the items of those tasks are generated here too (:func:`write_eval_data`) and are held
out from training.

Nothing here contacts a hub: the tokenizer, config, model and data are all built in code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

from ckptgate.demo.data import EVAL_FILES, eval_data_files, write_eval_data
from ckptgate.demo.recipe import BRIDGE_DIR, BRIDGE_STEP, DEMO_RECIPE_VERSION, DEMO_STEPS, PLATEAU_STEPS, RECIPE, TRAIN_SEED
from ckptgate.demo.training import step_dir, train_and_snapshot
from ckptgate.resources import evaltests_dir

__all__ = [
    "BRIDGE_STEP",
    "DEMO_RECIPE_VERSION",
    "DEMO_STEPS",
    "EVAL_FILES",
    "PLATEAU_STEPS",
    "copy_demo",
    "demo_bridge",
    "demo_series",
    "demo_stage",
    "eval_data_files",
    "retrain",
    "verify",
    "write_eval_data",
]

#: The shipped series (package data of ``evaltests``) and its sha256 manifest.
SHIPPED_DIR = evaltests_dir() / "demo"
MANIFEST = "manifest.json"


def _snapshot_names() -> list[str]:
    return [step_dir(s) for s in DEMO_STEPS] + [BRIDGE_DIR]


def _file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file of every snapshot under ``root``, by path relative to ``root``."""
    digests: dict[str, str] = {}
    for name in _snapshot_names():
        for path in sorted((root / name).rglob("*")):
            if path.is_file():
                digests[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def retrain(out_dir: Path, *, progress: bool = True) -> Path:
    """Train the demo series into ``out_dir`` and write its ``manifest.json`` (sha256 of every
    file). This is how the shipped ``evaltests/demo`` was made: ``ckptgate demo --retrain DIR``.

    Deterministic on one kind of CPU with the pinned library versions (one thread, seeded,
    deterministic kernels); another CPU may produce other bytes. Shows a tqdm bar on stderr
    unless ``progress`` is false. Returns ``out_dir``.
    """
    from ckptgate.atomicio import write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_and_snapshot(out_dir, RECIPE, progress)
    manifest = {
        "recipe_version": DEMO_RECIPE_VERSION,
        "steps": list(DEMO_STEPS),
        "plateau_steps": list(PLATEAU_STEPS),
        "bridge_step": BRIDGE_STEP,
        "seed": TRAIN_SEED,
        "sha256": _file_digests(out_dir),
    }
    write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out_dir


@functools.cache
def verify(root: Path = SHIPPED_DIR) -> Path:
    """Check every file of the series under ``root`` against its manifest; return ``root``.

    Raises :class:`~ckptgate.errors.CkptgateError` naming each missing, extra or changed file,
    so a damaged install or an edited checkpoint never produces numbers that look like the
    demo's. About 30 ms for the shipped series; done once per process.
    """
    from ckptgate.errors import CkptgateError

    manifest_path = root / MANIFEST
    try:
        expected: dict[str, str] = json.loads(manifest_path.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise CkptgateError(f"demo checkpoints: cannot read {manifest_path} ({exc}); reinstall ckptgate") from exc
    found = _file_digests(root)
    problems = [f"{name}: missing" for name in sorted(expected.keys() - found.keys())]
    problems += [f"{name}: not in the manifest" for name in sorted(found.keys() - expected.keys())]
    problems += [f"{name}: sha256 differs" for name in sorted(expected.keys() & found.keys())
                 if expected[name] != found[name]]
    if problems:
        listed = "\n  ".join(problems)
        raise CkptgateError(
            f"the demo checkpoints under {root} do not match {MANIFEST}:\n  {listed}\n"
            "Their numbers would not be the demo's. Reinstall ckptgate (or `git checkout "
            "evaltests/demo` in a source checkout)."
        )
    return root


def demo_series() -> Path:
    """The shipped series folder (its children step_0100 ... and bridge), verified."""
    return verify(SHIPPED_DIR)


def demo_stage() -> list[Path]:
    """The shipped checkpoints after the bridge (steps 800, 850, 900: the stage the bridge gates)."""
    root = demo_series()
    return [root / step_dir(step) for step in DEMO_STEPS if step > BRIDGE_STEP]


def demo_bridge() -> Path:
    """The shipped bridge checkpoint (step 500), verified."""
    return demo_series() / BRIDGE_DIR


def copy_demo(out_dir: Path) -> Path:
    """Copy the shipped, verified series into ``out_dir`` (a writable series to experiment with)."""
    source = demo_series()
    out_dir = Path(out_dir)
    for name in _snapshot_names():
        shutil.copytree(source / name, out_dir / name, dirs_exist_ok=True)
    shutil.copyfile(source / MANIFEST, out_dir / MANIFEST)
    return out_dir
