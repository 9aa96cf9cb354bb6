"""The checkpoint record: one validated checkpoint, as backends and results see it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptgate.checkpoints.naming import order_key, parse_step
from ckptgate.errors import CheckpointError

ROLES = ("candidate", "bridge", "control")  # control: a base model shown beside fine-tuned candidates, never gated


@dataclass(frozen=True)
class Checkpoint:
    """One validated checkpoint, ready to be handed to a backend.

    ``label`` is unique within a run and safe as a single path component (results are
    written under it). ``load_path`` is what loaders get: ``path`` itself, or a shadow view
    of symlinks when the folder needs one (see the module docstring). ``step`` is ``None``
    for names without a number, including ``*_final``; use :attr:`is_final` /
    :attr:`sort_key` to order such checkpoints last.
    """

    label: str
    path: Path
    step: int | None
    load_path: Path
    fingerprint: str
    role: str = "candidate"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise CheckpointError(
                f"Checkpoint {self.label!r} has role {self.role!r}; the role must be one of {', '.join(ROLES)}."
            )

    @property
    def is_final(self) -> bool:
        """True for a ``*_final`` folder, which sorts after every numbered step.

        Judged by the label (the name the checkpoint was found under, possibly prefixed) and,
        failing that, by the resolved folder name.
        """
        return self.step is None and (parse_step(self.label)[1] or parse_step(self.path.name)[1])

    @property
    def sort_key(self) -> tuple[int, int, str]:
        """Order by step number (numerically), ``*_final`` and unnumbered ones last."""
        return order_key(self.step, self.is_final, self.label)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, for shipping to xdist workers and into result files."""
        return {
            "label": self.label,
            "path": str(self.path),
            "step": self.step,
            "load_path": str(self.load_path),
            "fingerprint": self.fingerprint,
            "role": self.role,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Checkpoint:
        """Inverse of :meth:`to_dict`."""
        try:
            step = d["step"]
            return cls(
                label=str(d["label"]),
                path=Path(d["path"]),
                step=None if step is None else int(step),
                load_path=Path(d["load_path"]),
                fingerprint=str(d["fingerprint"]),
                role=str(d.get("role", "candidate")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"A serialised checkpoint record is malformed ({exc!r}): {d!r}. It should come from "
                "Checkpoint.to_dict(); re-run discovery instead of editing the record by hand."
            ) from None
