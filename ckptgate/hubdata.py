"""Hub datasets a suite reads: fetch them once (``ckptgate prefill``), then run offline.

Prefetch, then run offline, in two phases. Where the hub is reachable, ``ckptgate prefill --suite NAME``
downloads every hub dataset the suite's lm-eval tasks read, at a pinned revision (the suite's
``dataset_revisions`` or, when it pins none, the revision the hub serves at that moment), and
writes a manifest (``<cache>/hub-datasets.json``) with the commit, the snapshot folder and a
sha256 of its files. A gate run never downloads: it sets the HF offline switches, reads each
task from its manifest snapshot, records the revision and hash with the results, and fails
before loading any model when a dataset it needs is not in the manifest.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptgate.cache import cache_root, exclusive, files_digest
from ckptgate.errors import CkptgateError
from ckptgate.atomicio import write_text

MANIFEST_NAME = "hub-datasets.json"
# dataset_path values that name a datasets builder for local files, not a hub repository
LOCAL_BUILDERS = frozenset({"json", "csv", "parquet", "text", "arrow", "pandas", "imagefolder", "audiofolder", "webdataset"})
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
Download = Callable[..., str]  # huggingface_hub.snapshot_download's shape


@dataclass(frozen=True)
class Snapshot:
    """One hub dataset repository as fetched: where it lies and what it was."""

    repo: str
    revision: str  # the commit
    path: Path
    sha256: str
    files: int
    fetched: str

    def record(self) -> dict[str, Any]:
        """What a benchmark's results say about the data it read."""
        return {"source": "hub", "repo": self.repo, "revision": self.revision, "sha256": self.sha256,
                "snapshot": str(self.path)}


def is_hub_dataset(dataset_path: Any) -> bool:
    if not isinstance(dataset_path, str) or not dataset_path or dataset_path in LOCAL_BUILDERS:
        return False
    return not Path(dataset_path).expanduser().is_absolute() and not dataset_path.startswith(".")


def manifest_path() -> Path:
    return cache_root() / MANIFEST_NAME


def load_manifest(path: Path | None = None) -> dict[str, Snapshot]:
    """The fetched dataset snapshots recorded in the manifest (repo -> snapshot)."""
    path = path or manifest_path()
    try:
        return {repo: Snapshot(repo=repo, revision=e["revision"], path=Path(e["path"]), sha256=e["sha256"],
                               files=int(e["files"]), fetched=e["fetched"])
                for repo, e in _read(path)["datasets"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(path, exc) from None


def _read(path: Path) -> dict[str, Any]:
    """The manifest as stored: {"datasets": repo -> entry, "models": model -> entry}."""
    if not path.is_file():
        return {"datasets": {}, "models": {}}
    try:
        raw = json.loads(path.read_text())
        return {"datasets": dict(raw["datasets"]), "models": dict(raw.get("models", {}))}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _corrupt(path, exc) from None


def _corrupt(path: Path, exc: Exception) -> CkptgateError:
    return CkptgateError(f"{path}: not a ckptgate prefill manifest ({exc!r}); run ckptgate prefill again")


@contextmanager
def _manifest() -> Iterator[dict[str, Any]]:
    """The manifest, locked against other prefills, written back (atomically) after the block."""
    path = manifest_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_suffix(".lock")):
        raw = _read(path)
        yield raw
        write_text(path, json.dumps(raw, indent=2, sort_keys=True) + "\n")


def available(snapshots: dict[str, Snapshot], repos: Iterable[str]) -> tuple[dict[str, Snapshot], list[str]]:
    """The manifest's snapshots of ``repos`` still on disk, and the repos that are not."""
    found, missing = {}, []
    for repo in sorted(set(repos)):
        snap = snapshots.get(repo)
        if snap is not None and snap.path.is_dir():
            found[repo] = snap
        else:
            missing.append(repo)
    return found, missing


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def prefill(repos: Iterable[str], revisions: dict[str, str] | None = None, *, download: Download | None = None,
            progress: Callable[[str], None] = print) -> dict[str, Snapshot]:
    """Fetch each dataset repository at its pinned revision (default: what the hub serves now)
    into the Hugging Face cache and record it in the manifest; returns the manifest."""
    download = download or _snapshot_download()
    revisions = revisions or {}
    failed: list[str] = []
    with _manifest() as raw:
        for repo in sorted(set(repos)):
            progress(f"fetching dataset {repo} @ {revisions.get(repo, 'latest')} ...")
            try:
                folder = Path(download(repo_id=repo, repo_type="dataset", revision=revisions.get(repo)))
            except Exception as exc:  # noqa: BLE001 - the hub's errors are many; each is reported, the rest fetched
                failed.append(_fetch_failure(repo, exc))
                progress(f"  {failed[-1]}")
                continue
            files = sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts)
            if not files:
                raise CkptgateError(f"dataset {repo}: the download holds no files ({folder})")
            digest = files_digest((str(p.relative_to(folder)), p) for p in files)
            raw["datasets"][repo] = {"revision": folder.name, "path": str(folder), "sha256": digest,
                                     "files": len(files), "fetched": _now()}
            progress(f"  {repo}: revision {folder.name}, {len(files)} file(s), sha256 {digest[:16]}")
    if failed:  # what was fetched is in the manifest; a second prefill fetches only the rest
        raise CkptgateError("could not fetch " + "; ".join(failed))
    return load_manifest()


def _fetch_failure(repo: str, exc: Exception) -> str:
    """What went wrong fetching ``repo``, and what to do about it."""
    name = type(exc).__name__
    if name == "GatedRepoError":
        return (f"dataset {repo}: gated on the hub - accept its terms at https://huggingface.co/datasets/{repo} "
                "with your account, log in (`hf auth login`, or set HF_TOKEN) and run prefill again")
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError"):
        return f"dataset {repo}: {name} - check the name and the revision pinned in the suite ({exc})"
    return f"dataset {repo}: {name}: {exc}"


# What a run needs of a model besides its weights: config, tokenizer, chat template.
MODEL_FILES = ("*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja")


def prefill_model(model: str, *, download: Download | None = None, progress: Callable[[str], None] = print) -> Path:
    """A model's config and tokenizer files: a local checkpoint folder is checked, a hub model id
    is fetched (weights are not: a gate runs local checkpoints) and recorded in the manifest."""
    local = Path(model).expanduser()
    if local.exists():
        from ckptgate.checkpoints import discover

        discover(local)  # the same validation a gate run does (config, tokenizer, weights)
        progress(f"model {model}: local checkpoint, nothing to fetch")
        return local
    download = download or _snapshot_download()
    with _manifest() as raw:
        progress(f"fetching tokenizer and config of {model} ...")
        folder = Path(download(repo_id=model, repo_type="model", allow_patterns=list(MODEL_FILES)))
        raw["models"][model] = {"revision": folder.name, "path": str(folder), "fetched": _now()}
    progress(f"  {model}: revision {folder.name} ({folder})")
    return folder


def _snapshot_download() -> Download:
    from huggingface_hub import snapshot_download

    return snapshot_download


def go_offline() -> None:
    """Nothing in a gate run may reach a hub: every download must have happened in prefill."""
    for name in OFFLINE_SWITCHES:
        os.environ[name] = "1"
