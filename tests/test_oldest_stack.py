"""scripts/oldest_stack.py: the oldest stack CI tests is every lower bound of pyproject, pinned."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load() -> Any:
    spec = importlib.util.spec_from_file_location(
        "nbresume_oldest_stack", REPO / "scripts" / "oldest_stack.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("requirement", "line"),
    [
        ("ipython>=8.10", "ipython==8.10.*"),
        ("ipywidgets>=8", "ipywidgets==8.0.*"),
        ("xxhash>=3", "xxhash==3.0.*"),
        ("Some_Thing>=1.2.3", "Some_Thing>=1.2.3,==1.2.*"),  # not the older 1.2.0
        ("x[extra]>=2.1,<4", "x==2.1.*"),  # constraints cannot have extras
        ("x~=1.4", "x==1.4.*"),
        ('x>=2; python_version < "3.12"', 'x==2.0.*; python_version < "3.12"'),
    ],
)
def test_a_lower_bound_becomes_its_release_series(requirement: str, line: str) -> None:
    assert _load().pin(requirement) == line


@pytest.mark.parametrize("requirement", ["x", "x<3", "x!=1.0", "x>=1,>=2"])
def test_a_dependency_without_one_lower_bound_is_refused(requirement: str) -> None:
    with pytest.raises(ValueError, match="no single lower bound"):
        _load().pin(requirement)


def test_every_dependency_of_pyproject_is_pinned_at_its_floor() -> None:
    tomllib = pytest.importorskip("tomllib")  # the script runs on the builder's Python (3.11+)

    from packaging.requirements import Requirement

    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = _load().pins(REPO / "pyproject.toml")
    assert [Requirement(line).name for line in lines] == [
        Requirement(dep).name for dep in dependencies
    ]
    assert "ipython==8.10.*" in lines
    assert "nbformat==5.9.*" in lines
    for line in lines:
        assert re.fullmatch(r"[\w.-]+==\d+\.\d+\.\*", line), line


def test_a_pyproject_with_a_floorless_dependency_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tomllib")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["ipython>=8.10", "diskcache"]\n')
    assert _load().main([str(pyproject)]) == 1
    assert "'diskcache' has no single lower bound" in capsys.readouterr().err


def test_the_oldest_python_is_the_lower_bound_of_requires_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    assert _load().main(["--python", str(REPO / "pyproject.toml")]) == 0
    assert capsys.readouterr().out == "3.10\n"
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\nrequires-python = "!=3.9.*"\ndependencies = []\n')
    assert _load().main(["--python", str(pyproject)]) == 1
    assert "requires-python '!=3.9.*' has no single lower bound" in capsys.readouterr().err
