"""A notebook of everyday data-science idioms (tests/notebooks/), run plain and with every cell
under ``%%checkpoint`` by scripts/compare_notebook.py: no cell may fail only under nbresume, the
outputs must equal the plain run's, and a re-run must restore every cell with the same outputs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "tests" / "notebooks").glob("*.ipynb"))


def _compare_module() -> Any:
    path = REPO / "scripts" / "compare_notebook.py"
    spec = importlib.util.spec_from_file_location("compare_notebook", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_checkpoint_lines_are_taken_out_and_put_back_on_every_code_cell() -> None:
    import nbformat

    compare = _compare_module()
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext nbresume"),
            nbformat.v4.new_code_cell("%%checkpoint a --force\nx = 1"),
            nbformat.v4.new_code_cell("%%timeit\nx + 1"),
            nbformat.v4.new_code_cell("y = 2"),
        ]
    )
    plain, wrapped = compare.variants(nb)
    assert [c.source for c in plain.cells] == ["", "x = 1", "%%timeit\nx + 1", "y = 2"]
    assert [c.source for c in wrapped.cells] == [
        "%load_ext nbresume",
        "",
        "%%checkpoint cell-001\nx = 1",
        "%%timeit\nx + 1",
        "%%checkpoint cell-003\ny = 2",
    ]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_every_cell_gives_the_plain_outputs_and_restores(notebook: Path, tmp_path: Path) -> None:
    report = _compare_module().compare(notebook, tmp_path, timeout=300)
    assert report["code_cells"] >= 10
    assert report["findings"] == []


def test_the_clock_and_timeits_loop_count_are_masked() -> None:
    compare = _compare_module()

    def stream(text: str) -> list[dict[str, Any]]:
        return [{"output_type": "stream", "name": "stdout", "text": text}]

    summary = "Date:                Thu, 03 Dec 2026   Prob (F-statistic):  1.0\nTime:  14:58:01\n"
    later = "Date:                Fri, 04 Dec 2026   Prob (F-statistic):  1.0\nTime:  09:01:59\n"
    assert compare.own(stream(summary)) == compare.own(stream(later))
    faster = "1.2 ms ± 3 µs per loop (mean ± std. dev. of 7 runs, 1,000 loops each)"
    slower = "9.1 ms ± 8 µs per loop (mean ± std. dev. of 7 runs, 100 loops each)"
    assert compare.own(stream(faster)) == compare.own(stream(slower))
    noisy = "The slowest run took 5.1 times longer than the fastest. This could mean that an "
    noisy += "intermediate result is being cached.\n" + slower
    assert compare.own(stream(noisy)) == compare.own(stream(slower))
    greek = "645 \u03bcs ± 51.4 \u03bcs per loop (mean ± std. dev. of 7 runs, 1,000 loops each)"
    assert compare.own(stream(greek)) == compare.own(stream(faster))  # IPython's mu is U+03BC
    assert compare.own(stream("prob 1.0")) != compare.own(stream("prob 2.0"))


def test_an_edit_is_appended_to_its_cell() -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1\n")])
    assert _compare_module().edited(nb, "0:x += 1").cells[0].source == "x = 1\nx += 1"
    assert nb.cells[0].source == "x = 1\n"


def test_after_an_edit_cells_reading_the_edited_value_run_again(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("base = [1, 2]\nother = 'x'"),
            nbformat.v4.new_code_cell("total = sum(base)\ntotal"),
            nbformat.v4.new_code_cell("print(other * 2)"),
        ]
    )
    (tmp_path / "nb").mkdir()
    path = tmp_path / "nb" / "edit.ipynb"
    nbformat.write(nb, path)
    report = _compare_module().compare(
        path, tmp_path / "work", timeout=120, edit="0:base.append(3)"
    )
    assert report["findings"] == []
    assert report["after_edit"] == {"restored": 1, "ran": 2}


def test_a_widgets_model_id_is_masked() -> None:
    compare = _compare_module()

    def view(model_id: str) -> list[dict[str, Any]]:
        data = {"application/vnd.jupyter.widget-view+json": {"model_id": model_id}}
        return [{"output_type": "display_data", "data": data, "metadata": {}}]

    assert compare.own(view("44fb8b89735a4144802dd29c28d0ec8b")) == compare.own(view("0" * 32))
