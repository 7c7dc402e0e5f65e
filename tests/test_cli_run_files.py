"""``nbresume run`` with odd notebooks and odd ``-o`` places: refused in one line before any
kernel starts (the kernel run is replaced by a stub that counts calls), never overwriting the
notebook, never failing only after a long run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import cli
from nbresume._run import NotebookRun, RunResult


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nbresume: error: "), err
    return lines[0]


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The notebooks `NotebookRun.run` was called with; each "runs" and gets an output."""
    calls: list[Any] = []

    def run(self: NotebookRun) -> RunResult:
        calls.append(self.original)
        nb = self.original
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
        return RunResult(nb, ran=True, summary="ran")

    monkeypatch.setattr(NotebookRun, "run", run)
    return calls


def plain(folder: Path, name: str = "nb.ipynb") -> Path:
    path = folder / name
    nbformat.write(new_notebook(cells=[new_code_cell("print(1)")]), path)
    return path


BASE: dict[str, Any] = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}}
CELL: dict[str, Any] = {
    "id": "a",
    "cell_type": "code",
    "source": "print(1)",
    "metadata": {},
    "outputs": [],
    "execution_count": None,
}


@pytest.mark.parametrize(
    "content",
    [
        {"cells": "x"},  # nbformat's upgrade fails inside
        {**BASE, "cells": [{k: v for k, v in CELL.items() if k != "source"}]},
        {**BASE, "cells": [{**CELL, "cell_type": "bogus"}]},  # ran 0 cells, exit 0 before
        {"nbformat": 4, "nbformat_minor": 5, "cells": []},  # no metadata
        {**BASE, "metadata": {"kernelspec": "python3"}, "cells": []},
        {**BASE, "cells": [{**CELL, "outputs": "none"}]},
        [1, 2],
        {"nbformat": 5, "nbformat_minor": 0, "metadata": {}, "cells": []},
    ],
    ids=[
        "cells-str",
        "no-source",
        "bogus-type",
        "no-metadata",
        "kernelspec-str",
        "outputs-str",
        "list",
        "v5",
    ],
)
def test_an_invalid_notebook_is_refused_in_one_line_before_a_kernel_starts(
    content: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, runs: list[Any]
) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(content))
    code, out, err = cli(capsys, "run", str(path))
    assert (code, out, runs) == (1, "", [])
    line = one_error_line(err)
    assert "bad.ipynb" in line
    assert "unexpected" not in line, line
    assert "NBRESUME_DEBUG" not in line, line
    assert not (tmp_path / "bad.out.ipynb").exists()


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe\x00bad", b"print(1)\n", b"", b"\x00" * 10],
    ids=["bytes", "py", "empty", "nul"],
)
def test_a_file_that_is_not_a_notebook_is_refused_in_one_line(
    raw: bytes, capsys: pytest.CaptureFixture[str], tmp_path: Path, runs: list[Any]
) -> None:
    path = tmp_path / "x.ipynb"
    path.write_bytes(raw)
    code, out, err = cli(capsys, "run", str(path))
    assert (code, out, runs) == (1, "", [])
    assert "cannot read" in one_error_line(err)


def test_a_folder_is_not_a_notebook(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, runs: list[Any]
) -> None:
    (tmp_path / "d.ipynb").mkdir()
    code, _, err = cli(capsys, "run", str(tmp_path / "d.ipynb"))
    assert (code, runs) == (1, [])
    assert "is not a notebook file" in one_error_line(err)


def test_a_notebook_without_cell_ids_runs_without_warnings_and_gets_ids(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, runs: list[Any]
) -> None:
    """nbformat 4.5 without ids (hand-written, old tools): nbformat warns on read and on write;
    with filterwarnings=error here, a warning would fail the run."""
    path = tmp_path / "noid.ipynb"
    cell = {k: v for k, v in CELL.items() if k != "id"}
    path.write_text(json.dumps({**BASE, "cells": [cell, cell]}))
    code, out, err = cli(capsys, "run", str(path))
    assert (code, err) == (0, ""), out + err
    written = json.loads((tmp_path / "noid.out.ipynb").read_text())
    ids = [c["id"] for c in written["cells"]]
    assert len(set(ids)) == 2
    assert all(ids)
    nbformat.validate(nbformat.reads(json.dumps(written), as_version=4))


def test_an_old_notebook_v4_0_and_v3_run_and_are_written_valid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, runs: list[Any]
) -> None:
    old = tmp_path / "old.ipynb"
    old.write_text(
        json.dumps(
            {**BASE, "nbformat_minor": 0, "cells": [{k: v for k, v in CELL.items() if k != "id"}]}
        )
    )
    v3 = tmp_path / "v3.ipynb"
    v3.write_text(
        json.dumps(
            {
                "nbformat": 3,
                "nbformat_minor": 0,
                "metadata": {},
                "worksheets": [
                    {
                        "cells": [
                            {
                                "cell_type": "code",
                                "input": "print(3)",
                                "language": "python",
                                "outputs": [],
                                "collapsed": False,
                                "metadata": {},
                            }
                        ]
                    }
                ],
            }
        )
    )
    for path in (old, v3):
        code, out, err = cli(capsys, "run", str(path))
        assert (code, err) == (0, ""), out + err
        written = nbformat.read(path.with_name(f"{path.stem}.out.ipynb"), as_version=4)
        nbformat.validate(written)
        assert written.cells[0].outputs[0]["text"] == "ran\n"
    assert len(runs) == 2


def test_an_output_that_is_the_notebook_by_another_path_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, runs: list[Any]
) -> None:
    nb = plain(tmp_path)
    before = nb.read_bytes()
    (tmp_path / "d").mkdir()
    (tmp_path / "link.ipynb").symlink_to(nb)
    os.link(nb, tmp_path / "hard.ipynb")
    for argv in (
        [str(nb), "-o", str(tmp_path / "d" / ".." / "nb.ipynb")],
        [str(tmp_path / "link.ipynb"), "-o", str(nb)],
        [str(nb), "-o", str(tmp_path / "link.ipynb")],
        [str(nb), "-o", str(tmp_path / "hard.ipynb")],
        [str(nb), "-o", str(nb)],
    ):
        code, out, err = cli(capsys, "run", *argv)
        assert (code, out) == (1, ""), argv
        assert "is the notebook itself" in one_error_line(err), argv
    assert runs == []
    assert nb.read_bytes() == before


def test_an_output_in_a_missing_folder_or_on_a_folder_fails_before_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, runs: list[Any]
) -> None:
    nb = plain(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "dangling.ipynb").symlink_to(tmp_path / "nowhere" / "x.ipynb")
    cases = {
        str(tmp_path / "missing" / "out.ipynb"): "does not exist",
        str(tmp_path / "d"): "is a folder",
        str(tmp_path / "dangling.ipynb"): "dangling link",
        "/dev/null": "not a regular file",
    }
    for output, message in cases.items():
        code, out, err = cli(capsys, "run", str(nb), "-o", output)
        assert (code, out) == (1, ""), output
        assert message in one_error_line(err), output
    assert runs == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_an_output_in_a_read_only_folder_fails_before_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, runs: list[Any]
) -> None:
    nb = plain(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = cli(capsys, "run", str(nb), "-o", str(ro / "out.ipynb"))
    finally:
        ro.chmod(0o700)
    assert (code, runs) == (1, [])
    assert "cannot write" in one_error_line(err)


def test_dash_o_dash_writes_the_notebook_to_stdout_and_the_lines_to_stderr(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    runs: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    nb = plain(tmp_path)
    code, out, err = cli(capsys, "run", str(nb), "-o", "-")
    assert code == 0, err
    assert out.endswith("}\n")
    assert not out.endswith("\n\n")
    written = nbformat.reads(out, as_version=4)
    assert written.cells[0].outputs[0]["text"] == "ran\n"
    assert not (tmp_path / "-").exists()
    assert err.splitlines()[-1] == "ran; wrote the notebook to stdout"


def test_a_path_with_spaces_and_unicode_runs_and_is_written_beside_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, runs: list[Any]
) -> None:
    nb = plain(tmp_path, "mon carnet é 🚀.ipynb")
    code, out, err = cli(capsys, "run", str(nb))
    assert (code, err) == (0, ""), out + err
    assert (tmp_path / "mon carnet é 🚀.out.ipynb").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--retries", "²"], "expected a whole number >= 0, got '²'"),
        (["--retries", "٣"], "expected a whole number >= 0, got '٣'"),
        (["--retries", "-1"], "expected a whole number >= 0, got '-1'"),
        (["--retries=-1"], "expected a whole number >= 0, got '-1'"),
    ],
)
def test_run_options_take_plain_ascii_numbers(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    runs: list[Any],
) -> None:
    code, out, err = cli(capsys, "run", str(plain(tmp_path)), *argv)
    assert (code, out, runs) == (2, "", [])
    assert message in one_error_line(err)


@pytest.mark.parametrize("to", ["-1", "0", "²"])
def test_rollback_to_says_the_numbers_start_at_1(
    to: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = cli(capsys, "rollback", "a", f"--to={to}", "--dir", str(tmp_path))
    assert code == 2
    assert f"expected a whole number >= 1, got {to!r}" in one_error_line(err)


def test_a_kernel_name_given_with_dash_dash_kernel_and_not_installed_is_named_as_such(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = cli(capsys, "run", str(plain(tmp_path)), "--kernel", "nosuch")
    assert code == 1
    line = one_error_line(err)
    assert "--kernel 'nosuch' is not installed; see jupyter kernelspec list" in line
    assert "the notebook needs" not in line


def test_an_output_that_cannot_be_written_after_the_run_is_saved_elsewhere_and_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder of -o vanished during a long run: the executed notebook is not lost."""
    nb = plain(tmp_path)
    (tmp_path / "out").mkdir()

    def run(self: NotebookRun) -> RunResult:
        (tmp_path / "out").rmdir()
        return RunResult(self.original, ran=True, summary="ran")

    monkeypatch.setattr(NotebookRun, "run", run)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    code, _, err = cli(capsys, "run", str(nb), "-o", str(tmp_path / "out" / "done.ipynb"))
    assert code == 1
    line = one_error_line(err)
    assert f"cannot write {str(tmp_path / 'out' / 'done.ipynb')!r}: No such file" in line
    saved = [p for p in tmp_path.glob("*.ipynb") if p.name.startswith("done.")]
    assert len(saved) == 1, line
    assert f"saved it to {str(saved[0])!r} instead" in line
    assert nbformat.read(saved[0], as_version=4).cells[0].source == "print(1)"


@pytest.mark.parametrize(
    ("retries", "says"),
    [
        (0, "the kernel died in code cell 1 (print(1)) (exit code 3); no retry (--retries 0)"),
        (
            1,
            "the kernel died 2 times, last in code cell 1 (print(1)) (exit code 3); gave up after "
            "1 retry;",
        ),
        (
            2,
            "the kernel died 3 times, last in code cell 1 (print(1)) (exit code 3); gave up after "
            "2 retries;",
        ),
    ],
)
def test_giving_up_after_kernel_deaths_is_said_in_plain_words(
    retries: int, says: str, tmp_path: Path
) -> None:
    import io
    import subprocess
    import sys

    from nbclient.exceptions import DeadKernelError

    from nbresume._run import Report, _Attempt

    nb = nbformat.read(plain(tmp_path), as_version=4)
    runner = NotebookRun(
        nb, cwd=tmp_path, kernel=None, timeout=None, retries=retries, report=Report(io.StringIO())
    )
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    deaths: list[str] = []
    result = None
    for _ in range(retries + 1):
        attempt = _Attempt(nb, process=dead, cell=0, started=True)
        result = runner._stopped(attempt, DeadKernelError("died"), deaths)
    assert result is not None
    assert result.error is not None
    assert result.error.startswith(says), result.error
    assert result.error.endswith("checkpoints are kept: run again to resume")


class _Gone:
    """A stdout whose reader left (``nbresume run nb.ipynb | head -1``)."""

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_progress_lines_to_a_reader_that_left_do_not_stop_the_run() -> None:
    from nbresume._run import Report

    report = Report(_Gone())  # type: ignore[arg-type]
    report.start("[1/2] x = 1")
    report.progress("sweep: 1/2")
    report.end("done in 1s")
    report.line("ran 2 cells")


@pytest.mark.parametrize(("timeout", "says"), [(0.4, "1s"), (2.0, "2s"), (2.5, "3s")])
def test_a_timeout_is_reported_as_the_whole_seconds_nbclient_enforced(
    timeout: float, says: str, tmp_path: Path
) -> None:
    import io

    from nbclient.exceptions import CellTimeoutError

    from nbresume._run import Report, _Attempt

    nb = nbformat.read(plain(tmp_path), as_version=4)
    runner = NotebookRun(
        nb, cwd=tmp_path, kernel=None, timeout=timeout, retries=0, report=Report(io.StringIO())
    )
    why = runner._failure(_Attempt(nb, cell=0, started=True), CellTimeoutError("late"))
    assert why is not None
    assert why.startswith(f"timed out after {says} (--timeout)"), why
