"""The command line and the line magics against careless paths and hostile stores: ``rollback
--export`` writes only a new regular file, names from a store are printed escaped, and nothing a
store holds makes a command print a traceback.
"""

from __future__ import annotations

import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, cli
from nbresume.cli import main

RunCell = Callable[..., CellRun]

FIT = "%%checkpoint fit\nmodel = lr * 10\nprint(f'model {model}')\n"

# records of the wrong shape are ignored with a CheckpointWarning (expected here, not an error;
# tests/test_store_trust.py checks the warning itself)
pytestmark = pytest.mark.filterwarnings("ignore::nbresume.errors.CheckpointWarning")


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nbresume: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def two_versions(shell: InteractiveShell, run_cell: RunCell) -> None:
    for lr in (1, 2):
        shell.user_ns["lr"] = lr
        assert run_cell(FIT).error is None


def export(capsys: pytest.CaptureFixture[str], target: Path, *more: str) -> tuple[int, str, str]:
    return cli(capsys, "rollback", "fit", "--to", "2", "--export", str(target), *more)


def history_head(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = cli(capsys, "history", "fit")
    assert code == 0, err
    return out


# -- rollback --export --------------------------------------------------------------------------


@pytest.mark.usefixtures("two_versions")
def test_export_writes_a_new_private_regular_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "fit.pkl"
    code, _, err = export(capsys, target)
    assert code == 0, err
    assert stat.S_ISREG(os.lstat(target).st_mode)
    assert stat.S_IMODE(target.stat().st_mode) & 0o077 == 0  # variables are the user's data
    with target.open("rb") as f:
        assert pickle.load(f) == {"model": 10}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fit.pkl")]  # no temp left


@pytest.mark.usefixtures("two_versions")
def test_export_to_an_existing_file_needs_overwrite_and_rolls_nothing_back_without_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "fit.pkl"
    target.write_text("precious")
    before = history_head(capsys)
    code, out, err = export(capsys, target)
    assert code == 1
    line = one_error_line(err)
    assert repr(str(target)) in line
    assert "--overwrite" in line
    assert target.read_text() == "precious"
    assert "rolled back" not in out
    assert history_head(capsys) == before  # refused before anything changed
    code, _, err = export(capsys, target, "--overwrite")
    assert code == 0, err
    with target.open("rb") as f:
        assert pickle.load(f) == {"model": 10}


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def symlink_to_victim(path: Path) -> Path:
    victim = path.with_name("victim.txt")
    victim.write_text("victim")
    path.symlink_to(victim)
    return path


def dangling_symlink(path: Path) -> Path:
    path.symlink_to(path.with_name("not-there-yet"))
    return path


def device(path: Path) -> Path:
    """A character device like /dev/null, made in the test's folder (never the real one: a bug
    here must not replace a device of the machine)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


def folder(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.usefixtures("two_versions")
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize(
    ("make", "what"),
    [
        (symlink_to_victim, "symbolic link"),
        (dangling_symlink, "symbolic link"),
        (fifo, "FIFO"),
        (folder, "folder"),
        (device, "device"),
    ],
)
def test_export_refuses_a_symlink_fifo_device_or_folder_even_with_overwrite(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    make: Callable[[Path], Path],
    what: str,
    overwrite: bool,
) -> None:
    target = make(tmp_path / "fit.pkl")
    kind = os.lstat(target).st_mode
    code, out, err = export(capsys, target, *(["--overwrite"] if overwrite else []))
    assert code == 1
    line = one_error_line(err)
    assert what in line, line
    assert "rolled back" not in out
    assert os.lstat(target).st_mode == kind  # still what it was
    victim = tmp_path / "victim.txt"
    if victim.exists():
        assert victim.read_text() == "victim"
    assert not (tmp_path / "not-there-yet").exists()


# -- names from a store are printed escaped -----------------------------------------------------

# A name as a store may hold it: a newline that would start a forged line, an ANSI escape that
# would recolour or erase the terminal, a right-to-left override that reorders what is shown.
EVIL = "ok\n\x1b[2K\x1b[31mFORGED\u202e\rdone"
ESCAPED = r"ok\n\x1b[2K\x1b[31mFORGED\u202e\rdone"


def hostile_records() -> None:
    """A phase, its events and a version whose names and texts carry control characters."""
    import time

    from nbresume import _store

    store = _store.open_store()
    now = time.time()
    version = {
        "key": f"cell:{EVIL}:0123abcd",
        "created": now,
        "duration": 1.5,
        "size": 10,
        "source_hash": "0123abcd",
        "inputs": {EVIL: "f" * 16},
        "reason": f"input {EVIL} changed",
    }
    store.put_json(f"phase:{EVIL}", {"versions": [version, {**version, "reason": None}]})
    store.put_json(f"events:{EVIL}", [{"t": now, "event": "started", "text": f"started: {EVIL}"}])


def assert_escaped(text: str) -> None:
    assert "\x1b" not in text, text
    assert "\u202e" not in text, text
    assert "\r" not in text, text
    assert not [line for line in text.splitlines() if line.lstrip().startswith("\x1b[31mFORGED")]
    assert "\nFORGED" not in text, text
    assert "\n\x1b" not in text, text
    assert ESCAPED in text, text


@pytest.mark.usefixtures("shell")
@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["status"],
        ["show", EVIL],
        ["history", EVIL],
        ["log"],
        ["log", EVIL],
    ],
)
def test_the_cli_prints_names_and_texts_from_a_store_escaped(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    hostile_records()
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    assert_escaped(out)


@pytest.mark.usefixtures("shell")
def test_an_error_naming_a_hostile_name_is_one_escaped_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hostile_records()
    code, _, err = cli(capsys, "show", EVIL + "x")
    assert code == 1
    line = one_error_line(err)
    assert "\x1b" not in line
    assert "\u202e" not in line


def shown(run: CellRun) -> str:
    return run.stdout + "\n".join(e.data.get("text/plain", "") for e in run.events if e.data)


@pytest.mark.parametrize(
    "line",
    ["%checkpoint list", "%checkpoint status", "%checkpoint history", "%checkpoint log"],
)
def test_the_magics_show_names_and_texts_from_a_store_escaped(run_cell: RunCell, line: str) -> None:
    hostile_records()
    run = run_cell(line)
    assert run.error is None, run.error
    assert_escaped(shown(run))


# -- no traceback for anything a store holds ----------------------------------------------------

MALFORMED: list[object] = [
    [],  # JSON that is not an object
    "phase",
    {"versions": "oops"},
    {"versions": [1, "two", None]},
    {
        "versions": [
            {
                "key": 5,
                "created": "yesterday",
                "duration": "long",
                "size": "big",
                "inputs": [1],
                "source_hash": 7,
            },
            {"created": None, "inputs": "x", "reason": 3},
        ],
        "updated": "now",
        "mark": ["done"],
        "status": 4,
    },
]


def malformed_records(record: object) -> None:
    from nbresume import _store

    store = _store.open_store()
    store.put_json("phase:bad", record)
    store.put_json("progress:bad", record)
    store.put_json("events:bad", record)
    store.put_json("loop:bad", record)


@pytest.mark.usefixtures("shell")
@pytest.mark.parametrize("record", MALFORMED)
@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["status"],
        ["status", "--json"],
        ["show", "bad"],
        ["history", "bad"],
        ["log"],
        ["log", "bad"],
        ["rollback", "bad"],
        ["gc", "--older-than", "0s", "--dry-run"],
        ["clear", "bad"],
    ],
)
def test_no_cli_command_prints_a_traceback_for_a_malformed_record(
    capsys: pytest.CaptureFixture[str], record: object, argv: list[str]
) -> None:
    malformed_records(record)
    code, out, err = cli(capsys, *argv)
    assert code in (0, 1), err
    assert "Traceback" not in out + err
    if code:
        one_error_line(err)


@pytest.mark.parametrize("record", MALFORMED)
@pytest.mark.parametrize(
    "line",
    [
        "%checkpoint list",
        "%checkpoint status",
        "%checkpoint history",
        "%checkpoint history bad",
        "%checkpoint log",
        "%checkpoint log bad",
    ],
)
def test_no_magic_raises_for_a_malformed_record(
    run_cell: RunCell, record: object, line: str
) -> None:
    malformed_records(record)
    run = run_cell(line)
    assert run.error is None or "\n" not in str(run.error), run.error
    assert "Traceback" not in shown(run)


@pytest.mark.usefixtures("shell")
def test_nbresume_debug_shows_the_traceback_of_an_unexpected_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nbresume._cli_read.cmd_list", lambda args: 1 / 0)
    malformed_records({})
    code, _, err = cli(capsys, "list")
    line = one_error_line(err)
    assert code == 1
    assert "nbresume list failed: unexpected ZeroDivisionError" in line
    assert "NBRESUME_DEBUG=1" in line
    monkeypatch.setenv("NBRESUME_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["list"])
