"""The example notebooks in notebooks/: each runs headless, a second run restores it, loops resume.

Every ``notebooks/*.ipynb`` (a glob: notebooks added later are covered) is copied into a fresh
directory and executed with nbclient, twice: the first run must succeed, the second must restore
every ``%%checkpoint`` cell (nothing runs again) and show the same outputs. The notebooks with a
long loop are also killed half-way through it (SIGKILL, as the out-of-memory killer would) and run
again in the same directory: the loop resumes and ends with the output of an uninterrupted run.

Kernels run isolated, as kernel_helpers' do: their own ``IPYTHONDIR``, ``XDG_CONFIG_HOME`` and
signing key, ``PYTEST_CURRENT_TEST`` removed (inherited, it turns off ipykernel's capture of the
file descriptors).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from kernel_helpers import KERNEL_ARGS, NOTE_KEY, kernel_env, note_kinds, notes, own_outputs
from nbresume.cli import main

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KEY = "nbresume-test-key"
CHECKPOINT = re.compile(r"^%%checkpoint\b")  # a cell magic is the cell's first line

# notebooks killed mid-loop: the first line of the loop cell, and the lines its loop prints
LOOPS = {
    "etl.ipynb": ("%%checkpoint etl-transform", 20),
    "sklearn_sweep.ipynb": ("%%checkpoint svc-sweep", 16),
    "training.ipynb": ("%%checkpoint train", 30),
}


def code_cells(nb: Any) -> list[tuple[int, Any]]:
    return [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def is_checkpoint(cell: Any) -> bool:
    return bool(CHECKPOINT.match(cell.source))


def stdout(cell: Any) -> str:
    return "".join(
        o["text"]
        for o in own_outputs(cell.outputs)
        if o["output_type"] == "stream" and o["name"] == "stdout"
    )


def note(cell: Any, kind: str) -> dict[str, Any]:
    """The metadata of nbresume's note of ``kind`` under ``cell``."""
    found = [o["metadata"][NOTE_KEY] for o in notes(cell.outputs)]
    for meta in found:
        if meta.get("kind") == kind:
            return dict(meta)
    raise AssertionError(f"no {kind!r} note under {cell.source.splitlines()[0]!r}: {found}")


def find_cell(nb: Any, first_line: str) -> int:
    for index, cell in code_cells(nb):
        if cell.source.splitlines()[0].startswith(first_line):
            return index
    raise AssertionError(f"no cell starts with {first_line!r}")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process's environment isolated under tmp_path: kernels started from it inherit it."""
    home = tmp_path / "home"
    home.mkdir()
    for name, value in kernel_env(home, key=KEY).items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    for name in ("NBRESUME_DIR", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)
    return home


def kernel_environ() -> dict[str, str]:
    # NB. pytest sets PYTEST_CURRENT_TEST again for each phase of a test: drop it at each start.
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def copy_notebook(source: Path, workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(source, workdir / source.name))


def make_client(
    nb: Any, workdir: Path, client: type[NotebookClient] = NotebookClient, **kwargs: Any
) -> Any:
    return client(
        nb,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        timeout=120,
        startup_timeout=60,
        iopub_timeout=10,
        extra_arguments=list(KERNEL_ARGS),
        **kwargs,
    )


def execute(path: Path) -> Any:
    """Run the notebook at ``path`` in a fresh kernel in its folder -> the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    make_client(nb, path.parent).execute(env=kernel_environ())
    return nb


@pytest.fixture(scope="module")
def first_runs() -> dict[str, Any]:
    """Executed notebooks of uninterrupted first runs, by name: the crash tests' reference."""
    return {}


def uninterrupted(name: str, workdir: Path, cache: dict[str, Any]) -> Any:
    if name not in cache:
        cache[name] = execute(copy_notebook(REPO / "notebooks" / name, workdir))
    return cache[name]


# -- committed without outputs ---------------------------------------------------------------------


def test_there_are_example_notebooks() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert {"quickstart.ipynb", *LOOPS} <= names, names


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_committed_without_outputs(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for index, cell in code_cells(nb):
        assert cell.outputs == [], f"cell {index} of {notebook.name} has outputs: strip them"
        assert cell.execution_count is None, f"cell {index} of {notebook.name} has a count"


# -- every notebook: runs, and a second run restores it ----------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_and_a_second_run_restores_every_checkpoint(
    notebook: Path, tmp_path: Path, home: Path, first_runs: dict[str, Any]
) -> None:
    copy = copy_notebook(notebook, tmp_path / "work")
    first = execute(copy)  # raises CellExecutionError if a cell fails
    first_runs[notebook.name] = first
    checkpoints = [i for i, cell in code_cells(first) if is_checkpoint(cell)]
    for index in checkpoints:
        assert "restored" not in note_kinds(first.cells[index].outputs), f"cell {index}"

    second = execute(copy)
    for index in checkpoints:  # restored: the body did not run again
        kinds = note_kinds(second.cells[index].outputs)
        assert "restored" in kinds, f"cell {index} of {notebook.name} ran again: notes {kinds}"
    for index, cell in code_cells(first):
        assert own_outputs(second.cells[index].outputs) == own_outputs(cell.outputs), (
            f"cell {index} of {notebook.name} shows other outputs on the second run"
        )
    nbformat.validate(second)


# -- the loops survive a SIGKILL of the kernel --------------------------------------------------------


class KillingClient(NotebookClient):  # type: ignore[misc]
    """Kills its kernel (SIGKILL) once the loop cell has printed ``kill_after`` lines."""

    def __init__(self, nb: Any, loop_index: int, kill_after: int, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.loop_index = loop_index
        self.kill_after = kill_after
        self.lines = 0
        self.killed_at: int | None = None

    def output(self, outs: Any, msg: dict[str, Any], display_id: Any, cell_index: int) -> Any:
        out = super().output(outs, msg, display_id, cell_index)
        content = msg["content"]
        if (
            cell_index == self.loop_index
            and msg["msg_type"] == "stream"
            and content.get("name") == "stdout"
        ):
            self.lines += content["text"].count("\n")
            if self.killed_at is None and self.lines >= self.kill_after:
                self.killed_at = self.lines
                os.kill(self.km.provisioner.pid, signal.SIGKILL)
        return out


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(LOOPS))
def test_notebook_killed_mid_loop_resumes_with_the_output_of_an_uninterrupted_run(
    name: str, tmp_path: Path, home: Path, first_runs: dict[str, Any]
) -> None:
    first_line, total = LOOPS[name]
    reference = uninterrupted(name, tmp_path / "reference", first_runs)
    copy = copy_notebook(REPO / "notebooks" / name, tmp_path / "work")
    nb = nbformat.read(copy, as_version=4)
    loop = find_cell(nb, first_line)
    assert stdout(reference.cells[loop]).count("\n") == total

    client = make_client(nb, copy.parent, KillingClient, loop_index=loop, kill_after=total // 2)
    with pytest.raises(DeadKernelError):
        client.execute(env=kernel_environ())
    assert client.killed_at is not None, "the kernel died before the loop was half-way"

    resumed = execute(copy)
    done = note(resumed.cells[loop], "resuming")["done"]
    # the items printed before the kill (but perhaps the last one) are not run again
    assert client.killed_at - 1 <= done < total, (client.killed_at, done)
    assert stdout(resumed.cells[loop]) == stdout(reference.cells[loop])
    for index, cell in code_cells(reference):
        assert stdout(resumed.cells[index]) == stdout(cell), f"cell {index}"


# -- headless: nbresume run ----------------------------------------------------------------------------


@pytest.mark.kernel
def test_nbresume_run_executes_the_training_notebook(
    tmp_path: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    first_runs: dict[str, Any],
) -> None:
    reference = uninterrupted("training.ipynb", tmp_path / "reference", first_runs)
    copy = copy_notebook(REPO / "notebooks" / "training.ipynb", tmp_path / "work")
    out = tmp_path / "work" / "done.ipynb"
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)  # `run` starts kernels with os.environ
    code = main(["run", str(copy), "-o", str(out), "--retries", "1"])
    printed, err = capsys.readouterr()
    assert code == 0, printed + err
    assert printed.splitlines()[-1].startswith("ran "), printed

    executed = nbformat.read(out, as_version=4)
    nbformat.validate(executed)
    for index, cell in code_cells(executed):
        assert cell.execution_count is not None, f"cell {index} did not run"
        assert not [o for o in cell.outputs if o["output_type"] == "error"], f"cell {index}"
        assert stdout(cell) == stdout(reference.cells[index]), f"cell {index}"
    curve = executed.cells[find_cell(executed, "%%checkpoint loss-curve")]
    assert any("image/png" in o.get("data", {}) for o in own_outputs(curve.outputs)), "no figure"
