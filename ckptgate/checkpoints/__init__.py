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

from ckptgate.checkpoints.discovery import discover, discover_all
from ckptgate.checkpoints.fingerprint import fingerprint
from ckptgate.checkpoints.layout import CONFIG_NAME, SAFE_INDEX_NAME, SAFE_WEIGHTS_NAME
from ckptgate.checkpoints.naming import STEP_PATTERNS_HELP, parse_step
from ckptgate.checkpoints.record import ROLES, Checkpoint
from ckptgate.checkpoints.shadow import default_shadow_root
from ckptgate.checkpoints.validation import parameter_count, validate_checkpoint

__all__ = [
    "CONFIG_NAME",
    "ROLES",
    "SAFE_INDEX_NAME",
    "SAFE_WEIGHTS_NAME",
    "STEP_PATTERNS_HELP",
    "Checkpoint",
    "default_shadow_root",
    "discover",
    "discover_all",
    "fingerprint",
    "parameter_count",
    "parse_step",
    "validate_checkpoint",
]
