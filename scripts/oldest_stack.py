"""Print the oldest stack nbresume claims, as pip constraints: every lower bound pinned.

    python scripts/oldest_stack.py [pyproject.toml] > oldest.txt
    pip install -c oldest.txt dist/nbresume-*.whl
    python scripts/oldest_stack.py --python [pyproject.toml]     # 3.10: the oldest Python claimed

Each requirement of ``[project].dependencies`` becomes its lower bound's release series:
``ipython>=8.10`` -> ``ipython==8.10.*``, ``ipywidgets>=8`` -> ``ipywidgets==8.0.*`` (the newest
patch release of the oldest minor: what a user on an old stack has, bug fixes included). A bound
with a patch part keeps it: ``x>=1.2.3`` -> ``x>=1.2.3,==1.2.*``. The pins are read from
pyproject.toml each time, so they cannot drift from what the package claims; a dependency without
a lower bound is an error (the oldest stack would be whatever pip finds first). What the pinned
packages need themselves is left to pip's resolver (their newest versions that fit).

``--python`` prints the lower bound of ``requires-python`` (``>=3.10`` -> ``3.10``): the oldest stack
runs on the oldest Python, as a user's environment from that time would.

Used by ``STACK=oldest .ci/wheel-check``; tests/test_oldest_stack.py checks the mapping.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent


def pin(requirement: str) -> str:
    """One dependency -> its oldest-stack constraint line (no extras: constraints cannot have any)."""
    req = Requirement(requirement)
    floors = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    if len(floors) != 1:
        raise ValueError(
            f"dependency {requirement!r} has no single lower bound (>=, == or ~=): "
            "the oldest stack would be undefined; write one in pyproject.toml"
        )
    floor = floors[0]
    major, minor = (*floor.release, 0)[:2]
    series = f"=={major}.{minor}.*"
    line = f"{req.name}{series}" if len(floor.release) <= 2 else f"{req.name}>={floor},{series}"
    return f"{line}; {req.marker}" if req.marker else line


def _project(pyproject: Path) -> dict[str, Any]:
    import tomllib  # NB. Python 3.11+: the script runs on the builder's Python, not the tested one

    return dict(tomllib.loads(pyproject.read_text())["project"])


def pins(pyproject: Path) -> list[str]:
    """The constraint lines for every dependency of ``pyproject``, in its order."""
    return [pin(requirement) for requirement in _project(pyproject)["dependencies"]]


def oldest_python(pyproject: Path) -> str:
    """``major.minor`` of the lower bound of ``requires-python``."""
    requires = _project(pyproject).get("requires-python", "")
    floors = [Version(s.version) for s in SpecifierSet(requires) if s.operator in (">=", "~=")]
    if len(floors) != 1:
        raise ValueError(f"requires-python {requires!r} has no single lower bound (>=)")
    major, minor = (*floors[0].release, 0)[:2]
    return f"{major}.{minor}"


def main(argv: list[str]) -> int:
    python = "--python" in argv
    argv = [arg for arg in argv if arg != "--python"]
    pyproject = Path(argv[0]) if argv else REPO / "pyproject.toml"
    try:
        lines = [oldest_python(pyproject)] if python else pins(pyproject)
    except ValueError as exc:
        print(f"oldest_stack: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
