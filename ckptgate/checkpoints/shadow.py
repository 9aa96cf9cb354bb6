"""The read-only shadow view: symlinks under which an unsharded weights file appears by the name
its index expects, so loaders that trust the index find it; the user's folder is never touched."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from ckptgate.atomicio import remove_tree
from ckptgate.cache import cache_root
from ckptgate.checkpoints.layout import SAFE_INDEX_NAME, fail, list_names
from ckptgate.checkpoints.validation import Layout

def default_shadow_root() -> Path:
    """Where shadow views live: ``$XDG_CACHE_HOME/ckptgate/shadow`` or ``~/.cache/ckptgate/shadow``.

    A cache, not user data: any of it can be deleted at any time; it is rebuilt on demand.
    """
    return cache_root() / "shadow"


def _shadow_links(layout: Layout) -> dict[str, str]:
    """Symlink name -> absolute target for the shadow view of ``layout``.

    Every top-level entry of the user's folder is linked under its own name, except the
    unsharded weights file, which appears only under the name the index expects: kept under
    both names, transformers would load ``model.safetensors`` and never exercise the alias, and
    loaders that glob ``*.safetensors`` would see every tensor twice.
    """
    aliased = dict(layout.alias)
    sources = set(aliased.values())
    links = {n: str(layout.path / n) for n in list_names(layout.path) if n not in sources}
    links.update({expected: str(layout.path / present) for expected, present in aliased.items()})
    return links


def _shadow_is_current(folder: Path, links: dict[str, str]) -> bool:
    try:
        if set(os.listdir(folder)) != set(links):
            return False
        return all(os.readlink(folder / name) == target for name, target in links.items())
    except OSError:
        return False


def build_shadow(layout: Layout, fp: str, shadow_root: Path) -> Path:
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
        raise fail(
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
        raise fail(
            layout.path,
            f"its shadow view at {final} could not be put in place.",
            f"Delete {final} and run again. Your checkpoint folder is never modified.",
        )
    except OSError as exc:
        raise fail(
            layout.path,
            f"building its shadow view under {final.parent} failed ({exc.strerror}).",
            "Set XDG_CACHE_HOME to a writable folder that supports symlinks. Your checkpoint folder is never modified.",
        ) from None
    finally:
        if tmp.exists():
            remove_tree(tmp)
