"""A .py file next to the notebook is the user's code: its functions, classes and modules are
fingerprinted by their code, and a cell that imports it has its files as an input.

Before, they were named like an installed package's: after editing ``mylib.py`` (and a reload,
or a restart) a checkpoint cell calling ``mylib.f`` restored the result of the old code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CellRun, runs
from nbresume._fingerprint import fingerprint
from nbresume._usermodules import import_inputs, is_user_module, module_files


@pytest.fixture
def modules(shell: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """``write(name, source)``: a module file in the notebook's folder, importable from it."""
    monkeypatch.syspath_prepend(str(Path.cwd()))
    written: list[str] = []

    def write(name: str, source: str) -> None:
        path = Path(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        written.append(name)
        importlib.invalidate_caches()

    try:
        yield write
    finally:
        for name in list(sys.modules):
            if name.partition(".")[0] in {n.partition(".")[0] for n in written}:
                del sys.modules[name]


def _edit(name: str, source: str) -> None:
    """Edit a module file (another length: the bytecode cache compares mtime and size)."""
    Path(name).with_suffix(".py").write_text(source)
    importlib.invalidate_caches()


def test_a_function_of_a_local_module_is_fingerprinted_by_its_code(
    modules: Callable[[str, str], None], run_cell: Callable[..., CellRun], shell: Any
) -> None:
    modules("mylib_a", "def f(x):\n    return x + 1\n")
    assert run_cell("from mylib_a import f").error is None
    cell = "%%checkpoint uses-f\ntick()\ny = f(1)\n"
    assert run_cell(cell).error is None
    assert run_cell(cell).error is None
    assert runs() == 1
    _edit("mylib_a", "def f(x):\n    return x + 100\n")
    assert run_cell("import mylib_a, importlib\nimportlib.reload(mylib_a)\nfrom mylib_a import f")
    again = run_cell(cell)
    assert again.error is None
    assert runs() == 2
    assert shell.user_ns["y"] == 101
    assert "input 'f' changed" in again.note_text, again.note_text


def test_a_local_module_used_by_attribute_is_an_input(
    modules: Callable[[str, str], None], run_cell: Callable[..., CellRun], shell: Any
) -> None:
    modules("mylib_b", "SCALE = 2\ndef f(x):\n    return x * SCALE\n")
    assert run_cell("import mylib_b").error is None
    cell = "%%checkpoint uses-mod\ntick()\ny = mylib_b.f(1)\n"
    assert run_cell(cell).error is None
    assert run_cell(cell).error is None
    assert runs() == 1
    _edit("mylib_b", "SCALE = 30\ndef f(x):\n    return x * SCALE\n")
    assert run_cell("import importlib\nimportlib.reload(mylib_b)").error is None
    again = run_cell(cell)
    assert runs() == 2
    assert shell.user_ns["y"] == 30
    assert "input 'mylib_b' changed" in again.note_text, again.note_text


def test_a_cell_importing_a_local_module_runs_again_when_its_file_changes(
    modules: Callable[[str, str], None], run_cell: Callable[..., CellRun], shell: Any
) -> None:
    modules("mylib_c", "def f(x):\n    return x + 1\n")
    cell = "%%checkpoint imports\ntick()\nfrom mylib_c import f\ny = f(1)\n"
    assert run_cell(cell).error is None
    assert run_cell(cell).error is None
    assert runs() == 1
    _edit("mylib_c", "def f(x):\n    return x + 100\n")
    del sys.modules["mylib_c"]  # a new kernel: the import reads the file
    again = run_cell(cell)
    assert again.error is None
    assert runs() == 2
    assert shell.user_ns["y"] == 101
    assert "'import mylib_c'" in again.note_text, again.note_text


def test_a_module_the_local_module_imports_counts_too(
    modules: Callable[[str, str], None], run_cell: Callable[..., CellRun], shell: Any
) -> None:
    modules("helpers_d", "K = 1\n")
    modules("mylib_d", "from helpers_d import K\ndef f(x):\n    return x + K\n")
    cell = "%%checkpoint deep\ntick()\nimport mylib_d\ny = mylib_d.f(1)\n"
    assert run_cell(cell).error is None
    _edit("helpers_d", "K = 100\n")
    for name in ("mylib_d", "helpers_d"):
        del sys.modules[name]
    assert run_cell(cell).error is None
    assert runs() == 2
    assert shell.user_ns["y"] == 101


def test_a_package_of_the_users_is_found_without_importing_it(
    modules: Callable[[str, str], None],
) -> None:
    modules("pkg_e.__init__", "")
    modules("pkg_e.models", "def fit():\n    return 1\n")
    here = Path.cwd().resolve()
    found = [p.relative_to(here).as_posix() for p in module_files("pkg_e.models")]
    assert found == ["pkg_e/__init__.py", "pkg_e/models.py"]
    assert "pkg_e" not in sys.modules
    assert set(import_inputs(["pkg_e", "pkg_e.models"])) == {"import pkg_e", "import pkg_e.models"}


def test_installed_packages_stay_named(modules: Callable[[str, str], None]) -> None:
    import json

    assert import_inputs(["json", "numpy", "nbresume", "no_such_module"]) == {}
    assert not is_user_module("json")
    assert not is_user_module("nbresume._keys")
    assert fingerprint(json.dumps) == fingerprint(json.dumps)


def test_a_class_of_a_local_module_is_fingerprinted_by_its_body(
    modules: Callable[[str, str], None],
) -> None:
    modules("mylib_f", "class Model:\n    def predict(self):\n        return 1\n")
    import mylib_f  # type: ignore[import-not-found]

    before = fingerprint(mylib_f.Model())
    _edit("mylib_f", "class Model:\n    def predict(self):\n        return 1000\n")
    importlib.reload(mylib_f)
    assert fingerprint(mylib_f.Model()) != before


def test_a_local_module_read_by_a_notebook_function_counts_by_its_file(
    modules: Callable[[str, str], None], run_cell: Callable[..., CellRun], shell: Any
) -> None:
    """Reached from another value (a function's globals) a local module counts by its file: a
    whole local package is not walked for every input."""
    modules("mylib_g", "K = 1\n")
    assert run_cell("import mylib_g\ndef g():\n    return mylib_g.K").error is None
    cell = "%%checkpoint via-g\ntick()\ny = g()\n"
    assert run_cell(cell).error is None
    assert run_cell(cell).error is None
    assert runs() == 1
    _edit("mylib_g", "K = 100\n")
    assert run_cell("import importlib\nimportlib.reload(mylib_g)").error is None
    again = run_cell(cell)
    assert runs() == 2
    assert shell.user_ns["y"] == 100
    assert "input 'g' changed" in again.note_text, again.note_text
