"""Perplexity slices: samples of text corpora a pretraining run is scored on, fetched once.

A slice names a hub dataset (repository, config, split), the field(s) holding each document's
text, and a token budget. The corpora are large (C4's English split alone is hundreds of
gigabytes), so ``ckptgate prefill`` streams each one and keeps only its first documents, enough
for the budget with room to spare for any tokenizer, at a pinned commit; a gate run reads those
documents offline. Tokenizing and packing them is per tokenizer and happens at scoring time.

Local copies (``--datasets DIR``: ``DIR/<slice id>/<split>.jsonl``, one document per line in the
dataset's own schema) replace the hub for air-gapped machines and for the project's own tests.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from ckptgate.atomicio import publish_dir, remove_tree
from ckptgate.cache import cache_root, exclusive, files_digest
from ckptgate.errors import CkptgateError, SuiteError
from ckptgate.resources import evaltests_dir
from ckptgate.yamlfile import ID, Message, Model, Text, load_model, rule

CATALOGUE = evaltests_dir() / "stages" / "slices.yaml"

# Documents are fetched until they hold this many UTF-8 bytes per budgeted token: tokenizers
# of current models average 3 to 5 bytes per token on web text and code, so 8 leaves every
# tokenizer its full budget, at twice the download of the common case.
BYTES_PER_TOKEN_BOUND = 8
DOCS_NAME = "documents.jsonl"
META_NAME = "meta.json"

Stream = Callable[..., Iterable[dict[str, Any]]]  # datasets.load_dataset(..., streaming=True)'s shape
Resolve = Callable[[str, str | None], str]  # (repo, revision or None) -> the commit


@dataclass(frozen=True)
class Slice:
    """One perplexity slice: where its documents come from and how much of it is scored."""

    id: str
    dataset: str  # hub dataset repository
    split: str
    text_fields: tuple[str, ...] = ("text",)  # joined by a blank line (e.g. a problem and its solution)
    config: str | None = None
    revision: str | None = None  # None: the commit the hub serves when prefill runs (recorded)
    target_tokens: int = 5_000_000

    def key(self) -> str:
        """What determines the fetched documents (the budget only bounds how many are kept)."""
        spec = {"dataset": self.dataset, "config": self.config, "split": self.split,
                "text_fields": list(self.text_fields), "revision": self.revision}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def text(self, row: dict[str, Any]) -> str:
        missing = [name for name in self.text_fields if name not in row]
        if missing:
            raise CkptgateError(f"slice {self.id!r}: the documents of {self.dataset} have no field(s) "
                                f"{', '.join(missing)} (they have: {', '.join(sorted(row))})")
        return "\n\n".join(str(row[name]) for name in self.text_fields)


@dataclass(frozen=True)
class FetchedSlice:
    """A slice's documents on this machine, and what they are."""

    slice: Slice
    documents: tuple[tuple[str, str], ...]  # (document id, text), in the dataset's order
    record: dict[str, Any]  # source, revision, sha256, bytes: recorded with every result


class _SliceSpec(Model):
    what: ClassVar[str | None] = "slice"
    not_a_mapping: ClassVar[str] = "each slice must be a mapping with 'dataset' and 'split', got {value!r}"

    dataset: Text
    split: Text
    config: Text | None = None
    revision: Text | None = None
    text_fields: Annotated[list[str], rule(bool), Message("text_fields must be a non-empty list of field names")] = ["text"]


class _Catalogue(Model):
    what: ClassVar[str | None] = "the slice catalogue"

    slices: Annotated[dict[str, _SliceSpec], rule(lambda found: all(ID.match(name) for name in found)),
                      Message("slices maps slice ids (letters, digits, '_', '.', '-') to their sources")]


def load_catalogue(path: Path = CATALOGUE) -> dict[str, Slice]:
    """The slices a stage may name, by id (budgets come from the stage)."""
    spec, _ = load_model(path, _Catalogue, SuiteError)
    return {name: Slice(name, s.dataset, s.split, tuple(s.text_fields), s.config, s.revision)
            for name, s in spec.slices.items()}


def pick(catalogue: dict[str, Slice], name: str, where: str) -> Slice:
    """Slice ``name`` of the catalogue; an unknown name is an error naming the closest ones."""
    if name in catalogue:
        return catalogue[name]
    close = difflib.get_close_matches(name, catalogue, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else f" Known slices: {', '.join(sorted(catalogue))}."
    raise SuiteError(f"{where}: unknown perplexity slice {name!r}.{hint}")


def slice_folder(spec: Slice) -> Path:
    return cache_root() / "slices" / spec.id / spec.key()


def fetch(spec: Slice, *, stream: Stream | None = None, resolve: Resolve | None = None,
          progress: Callable[[str], None] = print) -> Path:
    """Stream ``spec``'s documents from the hub until they hold ``BYTES_PER_TOKEN_BOUND`` bytes per
    budgeted token (or the split ends), and keep them with their commit; returns the folder.
    A folder already fetched with as large a budget is kept as it is."""
    folder = slice_folder(spec)
    with exclusive(folder.parent / ".lock"):
        if folder.is_dir() and _read_meta(folder)["target_tokens"] >= spec.target_tokens:
            progress(f"slice {spec.id}: already fetched ({folder})")
            return folder
        commit = (resolve or _hub_commit)(spec.dataset, spec.revision)
        progress(f"slice {spec.id}: streaming {spec.dataset}"
                 f"{'/' + spec.config if spec.config else ''} [{spec.split}] @ {commit[:12]} ...")
        rows = (stream or _hub_stream())(spec.dataset, name=spec.config, split=spec.split, streaming=True,
                                          revision=commit)
        documents = list(_enough(spec, rows))
        if not documents:
            raise CkptgateError(f"slice {spec.id}: {spec.dataset} [{spec.split}] streamed no documents")
        if folder.is_dir():  # fetched before with a smaller budget: replaced
            remove_tree(folder)
        publish_dir(folder, lambda staging: _write(staging, spec, commit, documents))
    meta = _read_meta(folder)
    progress(f"  {spec.id}: {meta['documents']} documents, {meta['bytes']:,} bytes, sha256 {meta['sha256'][:16]}")
    return folder


def _enough(spec: Slice, rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    wanted, held = spec.target_tokens * BYTES_PER_TOKEN_BOUND, 0
    for row in rows:
        text = spec.text(row)
        if not text.strip():
            continue  # empty rows (wikitext's blank lines) are not documents
        yield text
        held += len(text.encode())
        if held >= wanted:
            return


def _write(folder: Path, spec: Slice, commit: str, documents: list[str]) -> None:
    docs = folder / DOCS_NAME
    docs.write_text("".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in documents),
                    encoding="utf-8")
    meta = {"slice": spec.id, "dataset": spec.dataset, "config": spec.config, "split": spec.split,
            "text_fields": list(spec.text_fields), "revision": commit, "target_tokens": spec.target_tokens,
            "documents": len(documents), "bytes": sum(len(text.encode()) for text in documents),
            "sha256": files_digest([(DOCS_NAME, docs)]), "fetched": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (folder / META_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / META_NAME).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise CkptgateError(f"{folder}: the fetched slice is unreadable ({exc}); delete the folder and "
                            "run `ckptgate prefill` again") from None


def local_copy(spec: Slice, datasets: Path | None) -> Path | None:
    """The slice's local copy, ``<datasets>/<slice id>/<split>.jsonl``, if there is one."""
    local = None if datasets is None else datasets / spec.id / f"{spec.split}.jsonl"
    return local if local is not None and local.is_file() else None


def load(spec: Slice, datasets: Path | None = None) -> FetchedSlice:
    """The slice's documents: a local copy under ``datasets`` if there is one, else what prefill
    fetched (checked against its hash); a clear error saying how to fetch them otherwise."""
    local = local_copy(spec, datasets)
    if local is not None:
        rows = _jsonl(local)
        texts = [text for row in rows if (text := spec.text(row)).strip()]
        record = {"source": "local", "path": str(local), "sha256": files_digest([(DOCS_NAME, local)])}
        return FetchedSlice(spec, _numbered(texts), record)
    folder = slice_folder(spec)
    if not folder.is_dir():
        raise CkptgateError(
            f"slice {spec.id!r} ({spec.dataset} [{spec.split}]) has not been fetched on this machine: run "
            "`ckptgate prefill --suite SUITE` where the hub is reachable (it streams only the documents the "
            f"budget needs), or give a local copy as --datasets DIR with DIR/{spec.id}/{spec.split}.jsonl")
    meta = _read_meta(folder)
    digest = files_digest([(DOCS_NAME, folder / DOCS_NAME)])
    if digest != meta["sha256"]:
        raise CkptgateError(f"{folder}: the fetched documents do not match their recorded sha256; delete the "
                            "folder and run `ckptgate prefill` again")
    texts = [str(row["text"]) for row in _jsonl(folder / DOCS_NAME)]
    record = {"source": "hub", "repo": spec.dataset, "config": spec.config, "split": spec.split,
              "revision": meta["revision"], "sha256": digest, "documents": meta["documents"]}
    return FetchedSlice(spec, _numbered(texts), record)


def _numbered(texts: list[str]) -> tuple[tuple[str, str], ...]:
    """A document's id is its position among the slice's documents (empty rows skipped, as when
    fetched): the same on every machine that reads the same data."""
    return tuple((str(index), text) for index, text in enumerate(texts))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise CkptgateError(f"{path}:{number}: not a JSON object per line ({exc})") from None
        if not isinstance(row, dict):
            raise CkptgateError(f"{path}:{number}: not a JSON object per line (a {type(row).__name__})")
        rows.append(row)
    return rows


def _hub_commit(repo: str, revision: str | None) -> str:
    from huggingface_hub import HfApi

    sha = HfApi().dataset_info(repo, revision=revision).sha
    if not sha:
        raise CkptgateError(f"dataset {repo}: the hub gave no commit for revision {revision or 'main'}")
    return str(sha)


def _hub_stream() -> Stream:
    from datasets import load_dataset

    return load_dataset
