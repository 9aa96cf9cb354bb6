"""ckptgate's cache folder and the cross-process lock that guards what is built into it.

Everything under the cache is rebuilt on demand and may be deleted at any time: the demo
checkpoints, shadow views of checkpoint folders, and scored records of bridge checkpoints.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path



def cache_root() -> Path:
    """``$XDG_CACHE_HOME/ckptgate`` (when set to an absolute path), else ``~/.cache/ckptgate``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "ckptgate"


def files_digest(named_files: Iterable[tuple[str, Path]]) -> str:
    """sha256 over (name, content) pairs in the order given: keys cache entries to file contents."""
    digest = hashlib.sha256()
    for name, path in named_files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing) for the block.

    pytest-xdist workers that need the same cache entry queue here: one builds it, the others
    wait and then find it built.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
