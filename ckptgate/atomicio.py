"""Files and folders written whole or not at all.

Every file the project writes (results, summaries, baselines, margins, manifests, caches) goes
through :func:`write_bytes`: a temporary file beside the target, fsync, then one rename, so an
interrupted run never leaves a file that looks complete. Folders (cache entries, the demo
checkpoints) are built beside their target and moved into place with :func:`publish_dir`. New
files get the mode the user's umask gives (temporary files are created 0o600, which would hide
results from teammates and artifact uploaders); a rewritten file keeps its mode.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def umask() -> int:
    """The process's file-creation mask, read without changing it (Linux reports it in /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)  # elsewhere: read by setting, then restore at once
    os.umask(current)
    return current


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0o666 less the umask."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode ``mkdir`` would give a new folder (``mkdtemp`` makes them 0o700)."""
    return 0o777 & ~umask()


def write_bytes(path: Path, data: bytes, *, check: Callable[[Path], object] | None = None) -> None:
    """Write ``path`` whole or not at all. ``check`` is called on the complete temporary file
    before it replaces ``path`` (e.g. re-parse what was written); if it raises, ``path`` is
    left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else file_mode()
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        if check is not None:
            check(Path(tmp_name))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str, *, check: Callable[[Path], object] | None = None) -> None:
    """:func:`write_bytes` of ``text`` in UTF-8."""
    write_bytes(path, text.encode("utf-8"), check=check)


def remove_tree(folder: Path) -> None:
    """Delete ``folder`` (a staging folder or a cache entry, never user data), even where it or a
    folder in it was made read-only; best effort: cleanup never hides the error that caused it."""

    def writable_then_retry(function: Callable[[str], object], name: str, _: object) -> None:
        try:
            os.chmod(os.path.dirname(name), 0o700)
            function(name)
        except OSError:
            pass

    try:
        os.chmod(folder, 0o700)
    except OSError:
        pass
    shutil.rmtree(folder, onerror=writable_then_retry)


def publish_dir(target: Path, fill: Callable[[Path], None]) -> Path:
    """Build a folder with ``fill`` beside ``target``, then move it into place in one rename, so
    nothing ever sees it half written. When ``target`` appeared meanwhile (another process
    built the same content-keyed entry), that one is kept and this copy dropped."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging.chmod(dir_mode())  # mkdtemp's 0o700 would hide the entry from other users
        fill(staging)
    except BaseException:
        remove_tree(staging)
        raise
    try:
        staging.rename(target)
    except OSError:
        remove_tree(staging)
        if not target.is_dir():
            raise
    return target
