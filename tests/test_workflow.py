"""Workflow controls: the --validate gate, history and rollback, marks, the event log, hints, the
store's path note and ``nbresume status --json`` against its committed schema.

In-process cells count their executions with ``tick()`` (conftest); real-kernel loops append
their item to ``runs.txt``, so a test sees exactly which items ran after a SIGKILL.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, runs
from kernel_helpers import (
    KernelPool,
    note_kinds,
    notes,
    own_outputs,
    read_runs,
    stdout_of,
    wait_until,
)
from nbresume import CheckpointError, _hints, _store, _tempdirs, checkpoint
from nbresume._history import HISTORY_ENV
from nbresume.cli import main

RunCell = Callable[..., CellRun]

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "docs" / "status.schema.json"
TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def shown(run: CellRun) -> str:
    """Everything a cell showed as text: printed, or displayed (nbresume's notes included)."""
    return run.stdout + "\n".join(e.data.get("text/plain", "") for e in run.events if e.data)


def notes_of(run: CellRun, kind: str) -> list[Any]:
    return [n for n in run.notes if n.metadata["nbresume"].get("kind") == kind]


def restored(run: CellRun) -> bool:
    return bool(notes_of(run, "restored"))


def phase_status(run_cell: RunCell, name: str) -> str | None:
    """The status ``%checkpoint list`` shows for phase ``name``."""
    text = shown(run_cell("%checkpoint list"))
    match = re.search(rf"^{re.escape(name)}\s+(\w+(?: back)?)", text, re.MULTILINE)
    return match[1] if match else None


def store() -> _store.Store:
    return _store.open_store()


def entry_keys(name: str) -> list[str]:
    """The completed versions of phase ``name`` held in the store (``cell:NAME:HASH``)."""
    return sorted(store().keys(f"cell:{name}:"))


def versions(name: str) -> list[dict[str, Any]]:
    record = store().get_json(f"phase:{name}", {})
    return list(record.get("versions", []))


def printed(run: CellRun) -> str:
    """A cell's stdout without the ``Out[n]:`` the displayhook writes there in the test shell."""
    return "".join(line for line in run.stdout.splitlines(True) if not line.startswith("Out["))


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``nbresume ARGV`` in-process -> (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_usage_error(run: CellRun) -> str:
    assert isinstance(run.error, UsageError), run.error
    message = str(run.error)
    assert message
    assert "\n" not in message
    assert "Traceback" not in run.stdout + run.stderr
    return message


# -- 1. the --validate gate -------------------------------------------------------------------

GATED = """%%checkpoint clean --validate "len(rows) > 0 and max(rows) < 10"
tick()
rows = [x * 3 for x in data]
"""


def test_a_failing_gate_fails_the_phase_caches_nothing_and_quotes_what_it_saw(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    shell.user_ns["data"] = [1, 4]
    failed = run_cell(GATED)
    assert isinstance(failed.error, CheckpointError)
    message = str(failed.error)
    assert "--validate 'len(rows) > 0 and max(rows) < 10'" in message
    assert "max(rows) < 10 is false" in message
    assert "max(rows)=12" in message
    assert "rows=[3, 12]" in message
    assert "%checkpoint mark clean done" in message
    assert shell.user_ns["rows"] == [3, 12]  # the live result stays in the kernel
    assert entry_keys("clean") == []
    assert phase_status(run_cell, "clean") == "failed"

    again = run_cell(GATED)
    assert isinstance(again.error, CheckpointError)
    assert not restored(again)
    assert runs() == 2


def test_a_passing_gate_saves_the_phase(shell: InteractiveShell, run_cell: RunCell) -> None:
    shell.user_ns["data"] = [1, 2]
    assert run_cell(GATED).error is None
    assert len(entry_keys("clean")) == 1
    del shell.user_ns["rows"]
    again = run_cell(GATED)
    assert again.error is None
    assert restored(again)
    assert shell.user_ns["rows"] == [3, 6]
    assert runs() == 1


def test_a_gate_that_raises_fails_the_phase_and_names_the_error(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint pick --validate 'rows[5] > 0'\ntick()\nrows = list(range(n))\n"
    shell.user_ns["n"] = 3
    failed = run_cell(cell)
    assert isinstance(failed.error, CheckpointError)
    assert "--validate 'rows[5] > 0' raised IndexError" in str(failed.error)
    assert entry_keys("pick") == []
    assert isinstance(run_cell(cell).error, CheckpointError)
    assert runs() == 2
    shell.user_ns["n"] = 6
    assert run_cell(cell).error is None
    assert restored(run_cell(cell))
    assert runs() == 3


@pytest.mark.parametrize("expr", ["x = 1", "len(", "import os", ""])
def test_a_gate_that_is_not_an_expression_is_a_one_line_error_before_the_cell_runs(
    run_cell: RunCell, expr: str
) -> None:
    bad = run_cell(f"%%checkpoint gate --validate '{expr}'\ntick()\nx = 1\n")
    message = one_line_usage_error(bad)
    assert "--validate" in message
    assert "is not a Python expression" in message
    assert runs() == 0


# -- 2. history -------------------------------------------------------------------------------

FIT = """%%checkpoint fit
tick()
model = lr * 10
print(f"model {model}")
model
"""


def run_versions(shell: InteractiveShell, run_cell: RunCell, lrs: list[int]) -> None:
    for lr in lrs:
        shell.user_ns["lr"] = lr
        assert run_cell(FIT).error is None


def test_each_completed_run_pushes_a_version_and_pruning_deletes_the_oldest_entries(
    shell: InteractiveShell, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(HISTORY_ENV, raising=False)  # the default: 3
    shell.user_ns["lr"] = 1
    run_cell(FIT)
    assert len(versions("fit")) == 1
    shell.user_ns["lr"] = 2
    run_cell(FIT)
    assert len(versions("fit")) == 2
    run_versions(shell, run_cell, [3, 4, 5])
    assert runs() == 5
    kept = versions("fit")
    assert len(kept) == 3
    assert entry_keys("fit") == sorted(v["key"] for v in kept)

    for lr in (5, 4, 3):  # the kept versions hit
        shell.user_ns["lr"] = lr
        assert restored(run_cell(FIT))
    assert runs() == 5
    shell.user_ns["lr"] = 1  # pruned: runs again
    assert not restored(run_cell(FIT))
    assert runs() == 6


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_pruning_keeps_exactly_the_configured_number_of_versions(
    shell: InteractiveShell, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch, keep: int
) -> None:
    monkeypatch.setenv(HISTORY_ENV, str(keep))
    run_versions(shell, run_cell, [1, 2, 3, 4, 5])
    assert len(versions("fit")) == keep
    assert len(entry_keys("fit")) == keep
    newest = [5, 4, 3, 2, 1][:keep]
    for lr in newest:
        shell.user_ns["lr"] = lr
        assert restored(run_cell(FIT)), lr
    assert runs() == 5
    shell.user_ns["lr"] = 5 - keep  # the newest one pruned
    assert not restored(run_cell(FIT))
    assert runs() == 6


def test_history_lists_each_version_with_when_how_long_and_why_it_differs(
    shell: InteractiveShell, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(HISTORY_ENV, raising=False)
    run_versions(shell, run_cell, [1, 2])
    shell.user_ns["lr"] = 2
    assert run_cell(FIT.replace("lr * 10", "lr * 100")).error is None

    shown_history = run_cell("%checkpoint history fit")
    assert shown_history.error is None
    lines = shown(shown_history).splitlines()
    assert lines[0].startswith("phase 'fit': 3 versions, #1 is current (keeps 3")
    rows = lines[1:]
    assert len(rows) == 3
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    assert re.match(rf"^  #1  {when}  ran \S+ +\S+ \S+  source changed$", rows[0]), rows[0]
    assert re.match(rf"^  #2  {when}  ran \S+ +\S+ \S+  input 'lr' changed$", rows[1]), rows[1]
    assert re.match(rf"^  #3  {when}  ran \S+ +\S+ \S+  first run$", rows[2]), rows[2]
    assert runs() == 3
    run_cell("%%checkpoint other\ntick()\no = 1\n")
    every = shown(run_cell("%checkpoint history"))
    assert "phase 'fit': 3 versions" in every
    assert "phase 'other': 1 version, #1 is current" in every


def test_history_keep_sets_how_many_versions_later_saves_keep(
    shell: InteractiveShell, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HISTORY_ENV, "3")  # restored after the test: --keep sets it
    set_keep = run_cell("%checkpoint history --keep 2")
    assert set_keep.error is None
    assert "keep their 2 newest versions" in shown(set_keep)
    run_versions(shell, run_cell, [1, 2, 3, 4])
    assert len(versions("fit")) == 2
    assert len(entry_keys("fit")) == 2
    listed = shown(run_cell("%checkpoint history fit --keep 1"))
    assert "phase 'fit': 2 versions" in listed
    shell.user_ns["lr"] = 5
    run_cell(FIT)
    assert len(entry_keys("fit")) == 1


@pytest.mark.parametrize(
    "line",
    [
        "history nothing-here",
        "history a b",
        "history --keep",
        "history --keep 0",
        "history fit --bogus",
    ],
)
def test_bad_history_arguments_are_a_one_line_usage_error(run_cell: RunCell, line: str) -> None:
    one_line_usage_error(run_cell(f"%checkpoint {line}"))


# -- 3. rollback ------------------------------------------------------------------------------


def test_rollback_brings_back_the_previous_versions_variables_outputs_and_result(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    run_versions(shell, run_cell, [1, 2])
    assert shell.user_ns["model"] == 20

    back = run_cell("%checkpoint rollback fit", store_history=True)
    assert back.error is None
    assert runs() == 2
    assert shell.user_ns["model"] == 10
    assert printed(back) == "model 10\n"
    assert back.value == 10
    assert shell.user_ns["Out"][back.result.execution_count] == 10
    (note,) = notes_of(back, "rolled back")
    assert "rolled back 'fit' to version #2 of " in note.data["text/plain"]
    assert note.metadata["nbresume"]["variables"] == ["model"]
    assert phase_status(run_cell, "fit") == "rolled back"

    # the rolled-back version is current now: rolling back again returns to lr=2
    run_cell("%checkpoint rollback fit")
    assert shell.user_ns["model"] == 20
    assert runs() == 2


def test_rollback_n_brings_back_version_n(shell: InteractiveShell, run_cell: RunCell) -> None:
    run_versions(shell, run_cell, [1, 2, 3])
    back = run_cell("%checkpoint rollback fit 3")
    assert back.error is None
    assert shell.user_ns["model"] == 10
    assert printed(back) == "model 10\n"
    shell.user_ns["lr"] = 1  # it is current: the cell with lr=1 hits
    assert restored(run_cell(FIT))
    assert runs() == 3


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("rollback nothing-here", "no phase named 'nothing-here'"),
        ("rollback once", "one version only"),
        ("rollback fit 3", "give a number from 1 to 2"),
        ("rollback fit 0", "a whole number >= 1"),
        ("rollback fit x", "a whole number >= 1"),
        ("rollback", "takes NAME [N]"),
        ("rollback fit 1 2", "takes NAME [N]"),
    ],
)
def test_bad_rollbacks_are_a_one_line_usage_error(
    shell: InteractiveShell, run_cell: RunCell, line: str, says: str
) -> None:
    run_versions(shell, run_cell, [1, 2])
    run_cell("%%checkpoint once\ntick()\nonce = 1\n")
    model = shell.user_ns["model"]
    message = one_line_usage_error(run_cell(f"%checkpoint {line}"))
    assert says in message
    assert shell.user_ns["model"] == model


# -- 5. marks ---------------------------------------------------------------------------------


def test_mark_pending_runs_the_cell_again_and_keeps_its_history(
    shell: InteractiveShell, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    run_versions(shell, run_cell, [1, 2])
    marked = run_cell("%checkpoint mark fit pending")
    assert marked.error is None
    assert "marked 'fit' pending: its next run runs the cell again; its 2 saved versions stay" in (
        shown(marked)
    )
    assert phase_status(run_cell, "fit") == "pending"
    code, out, _ = cli(capsys, "list")  # as a terminal sees it
    assert code == 0
    assert re.search(r"^fit\s+pending\b", out, re.MULTILINE), out

    again = run_cell(FIT)
    assert again.error is None
    assert not restored(again)
    assert runs() == 3
    assert "marked pending" in again.note_text
    assert len(versions("fit")) == 2
    assert phase_status(run_cell, "fit") == "done"
    assert restored(run_cell(FIT))  # the mark is settled by the run
    assert runs() == 3


def test_mark_done_accepts_a_run_that_failed_its_gate(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    shell.user_ns["data"] = [1, 4]
    assert isinstance(run_cell(GATED).error, CheckpointError)
    assert phase_status(run_cell, "clean") == "failed"
    shell.user_ns["rows"] = [3, 9]  # fixed by hand

    accepted = run_cell("%checkpoint mark clean done")
    assert accepted.error is None
    assert "saved the run that failed its gate" in shown(accepted)
    assert phase_status(run_cell, "clean") == "done"
    del shell.user_ns["rows"]
    hit = run_cell(GATED)
    assert hit.error is None
    assert restored(hit)
    assert shell.user_ns["rows"] == [3, 9]
    assert runs() == 1


def test_mark_done_lifts_a_pending_mark(shell: InteractiveShell, run_cell: RunCell) -> None:
    run_versions(shell, run_cell, [1])
    run_cell("%checkpoint mark fit pending")
    done = run_cell("%checkpoint mark fit done")
    assert done.error is None
    assert "is its current result" in shown(done)
    assert phase_status(run_cell, "fit") == "done"
    checkpoint.phases.clear()
    assert phase_status(run_cell, "fit") == "done"
    assert restored(run_cell(FIT))
    assert runs() == 1


def test_status_shows_a_mark_in_its_text_form(shell: InteractiveShell, run_cell: RunCell) -> None:
    run_versions(shell, run_cell, [1])
    run_cell("%checkpoint mark fit pending")
    status = run_cell("%checkpoint status")
    (view,) = [e for e in status.notes if e.metadata["nbresume"].get("view") == "status"]
    assert re.search(r"^fit\s+pending\b", view.data["text/plain"], re.MULTILINE)
    assert "pending" in view.data["text/html"]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("mark fit", "takes NAME pending|done"),
        ("mark fit maybe", "takes NAME pending|done"),
        ("mark fit done now", "takes NAME pending|done"),
        ("mark nothing-here pending", "no phase named 'nothing-here'"),
        ("mark never-done done", "no saved version to accept"),
    ],
)
def test_bad_marks_are_a_one_line_usage_error(
    shell: InteractiveShell, run_cell: RunCell, line: str, says: str
) -> None:
    run_versions(shell, run_cell, [1])
    run_cell("%%checkpoint never-done\ntick()\nz = 1 / 0\n")
    message = one_line_usage_error(run_cell(f"%checkpoint {line}"))
    assert says in message
    assert restored(run_cell(FIT))


# -- 6. the event log -------------------------------------------------------------------------

ETL = """%%checkpoint etl --every 1
tick()
out = []
for i in resumable(range(6)):
    tick(f"item {i}")
    if i == 3 and Path("stop").exists():
        raise RuntimeError("disk full")
    out.append(i * i)
"""


def log_lines(run_cell: RunCell, name: str | None = None) -> list[str]:
    run = run_cell("%checkpoint log" + (f" {name}" if name else ""))
    assert run.error is None
    lines = shown(run).splitlines()
    for line in lines:
        assert re.match(rf"^{TIMESTAMP}  ", line), line
    return lines


def test_the_log_lists_the_events_of_a_phase_with_timestamps(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    shell.user_ns["Path"] = Path
    Path("stop").touch()
    assert isinstance(run_cell(ETL).error, RuntimeError)
    Path("stop").unlink()
    assert run_cell(ETL).error is None
    assert runs("item 0") == 1  # resumed: the done items did not run again
    assert shell.user_ns["out"] == [0, 1, 4, 9, 16, 25]
    assert restored(run_cell(ETL))
    run_cell("%checkpoint mark etl pending")

    lines = log_lines(run_cell, "etl")
    events = [line.split("  ", 1)[1] for line in lines]
    expected = [
        "started: first run",
        "snapshot saved",
        "failed: RuntimeError: disk full",
        "started: ",
        "resumed at item 4 from a snapshot",
        "snapshot saved",
        "done in ",
        "restored the version of ",
        "marked pending",
    ]
    assert len(events) == len(expected), lines
    for event, start in zip(events, expected, strict=True):
        assert event.startswith(start), (event, start)
    # the snapshots of one run are one line
    assert re.search(r"\((\d+) times since " + TIMESTAMP + r"\)$", events[1]), events[1]


def test_the_log_shows_rollbacks_and_marks_and_every_phase_by_name(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    run_versions(shell, run_cell, [1, 2])
    run_cell("%checkpoint rollback fit")
    run_cell("%checkpoint mark fit done")
    run_cell("%%checkpoint other\ntick()\no = 1\n")

    own = log_lines(run_cell, "fit")
    assert re.search(r"  rolled back to version #2 of \d{4}-", own[-2]), own
    assert re.search(r"  marked done: version #1 of \d{4}-\d\d-\d\d \d\d:\d\d is current$", own[-1])
    every = log_lines(run_cell)
    assert [line.split()[2] for line in every] == ["fit"] * len(own) + ["other"] * 2
    assert one_line_usage_error(run_cell("%checkpoint log nothing-here"))


# -- 7. hints ---------------------------------------------------------------------------------


class Clock:
    """A monotonic clock that cells move forward, so a cell "runs" for as long as a test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(_hints, "time", clock)
    monkeypatch.setitem(_hints._state, "enabled", True)
    monkeypatch.setitem(_hints._state, "hinted", set())
    monkeypatch.delenv(_hints.HINTS_ENV, raising=False)
    shell.user_ns["clock"] = clock
    return clock


def hints(run: CellRun) -> list[str]:
    return [n.data["text/plain"] for n in run.notes if n.metadata["nbresume"].get("kind") == "hint"]


def test_a_long_cell_without_checkpoint_gets_one_hint_line(clock: Clock, run_cell: RunCell) -> None:
    (hint,) = hints(run_cell("clock.advance(432)\nx = 1"))
    assert hint.startswith("nbresume: this cell ran 7m12s; put %%checkpoint NAME on its first line")
    assert "\n" not in hint
    assert hints(run_cell("clock.advance(299)\ny = 1")) == []


def test_no_hint_after_a_checkpoint_cell(clock: Clock, run_cell: RunCell) -> None:
    ran = run_cell("%%checkpoint long\nclock.advance(600)\nz = 1\n")
    assert ran.error is None
    assert hints(ran) == []
    assert len(hints(run_cell("clock.advance(600)\nz = 1\n"))) == 1  # the same, unmarked


def test_a_cell_is_hinted_once(clock: Clock, run_cell: RunCell) -> None:
    assert len(hints(run_cell("clock.advance(400)\nx = 1"))) == 1
    assert hints(run_cell("clock.advance(400)\nx = 1")) == []
    assert len(hints(run_cell("clock.advance(400)\nx = 2"))) == 1


def test_hints_off_silences_the_hint_and_on_brings_it_back(clock: Clock, run_cell: RunCell) -> None:
    assert run_cell("%checkpoint hints off").error is None
    assert hints(run_cell("clock.advance(400)\nx = 1")) == []
    assert run_cell("%checkpoint hints on").error is None
    assert len(hints(run_cell("clock.advance(400)\nx = 2"))) == 1
    one_line_usage_error(run_cell("%checkpoint hints maybe"))


def test_the_hint_threshold_is_hint_seconds(
    clock: Clock, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_hints, "HINT_SECONDS", 2.0)
    assert len(hints(run_cell("clock.advance(3)\nx = 1"))) == 1
    assert hints(run_cell("clock.advance(1)\nx = 2")) == []


# -- 8. where the store is --------------------------------------------------------------------


def test_the_store_path_is_told_once_per_kernel_with_a_temporary_directory_warning(
    tmp_path: Path, run_cell: RunCell
) -> None:
    where = str(tmp_path / ".nbresume")
    first = run_cell("%%checkpoint alpha\ntick()\na = 1\n")
    assert where in first.note_text
    assert "will not survive a reboot" in first.note_text
    assert "%checkpoint dir PATH" in first.note_text
    second = run_cell("%%checkpoint beta\ntick()\nb = 1\n")
    assert where not in second.note_text
    assert "reboot" not in second.note_text

    checkpoint._told_store.clear()  # a new kernel: its first checkpoint, a hit, names the store
    hit = run_cell("%%checkpoint alpha\ntick()\na = 1\n")
    (note,) = notes_of(hit, "restored")
    assert where not in note.data["text/plain"]  # told apart, in notes of its own
    assert "reboot" not in note.data["text/plain"]
    told = "\n".join(n.data["text/plain"] for n in notes_of(hit, "store"))
    assert where in told
    assert "will not survive a reboot" in told
    assert where not in run_cell("%%checkpoint beta\ntick()\nb = 1\n").note_text


def test_notes_fit_one_line_of_a_cell_and_the_store_is_told_in_notes_of_its_own(
    tmp_path: Path, run_cell: RunCell
) -> None:
    long = tmp_path / ("a-rather-long-project-folder-name-" * 3) / ".nbresume"
    assert run_cell(f"%checkpoint dir {long}").error is None
    loop = "%%checkpoint sweep --every 1\nfor i in resumable(range(4)):\n    tick(i)\n"
    runs = [run_cell("%%checkpoint prep\ntick()\nx = 1\n"), run_cell(loop)]
    checkpoint._told_store.clear()  # a new kernel
    runs += [run_cell("%%checkpoint prep\ntick()\nx = 1\n"), run_cell("x = 2")]
    runs.append(run_cell("%%checkpoint prep\ntick()\ny = x\n"))  # an input changed
    checkpoint._told_store.clear()
    runs.append(run_cell("%%checkpoint prep\ntick()\ny = x + 1\n"))  # its source changed
    kinds = [notes_of(r, "store") for r in runs]
    assert [len(k) for k in kinds] == [2, 0, 2, 0, 0, 2]  # where, then the /tmp warning
    for run in runs:
        for note in (n for n in run.notes if "kind" in n.metadata["nbresume"]):  # not views
            text = note.data["text/plain"]
            assert "\n" not in text
            if note.metadata["nbresume"].get("kind") != "store":
                assert str(long) not in text, text
                assert "reboot" not in text, text
                assert len(text) <= 100, text


def test_a_store_outside_temporary_directories_gets_no_warning(tmp_path: Path) -> None:
    assert _tempdirs.temporary_reason(tmp_path / ".nbresume") is not None  # pytest's is in /tmp
    outside = REPO / "src" / ".nbresume"  # never created
    if _tempdirs.temporary_reason(REPO) is not None:
        pytest.skip(f"the repository itself is in a temporary directory: {REPO}")
    assert _tempdirs.temporary_reason(outside) is None
    assert _tempdirs.temporary_warning(outside) == ""
    assert "will not survive a reboot" in _tempdirs.temporary_warning(tmp_path)


# -- 9. the command line: status --json, history, rollback, log -------------------------------


INTERRUPTED = """%%checkpoint stopped --every 1
acc = []
for k in resumable(range(5)):
    if k == 2:
        raise KeyboardInterrupt
    acc.append(k)
"""


def make_store(shell: InteractiveShell, run_cell: RunCell) -> None:
    """Phases in the states the document describes: done with history, failed mid-loop, failed
    at its gate, interrupted mid-loop, marked, rolled back, and a loop outside checkpoint cells."""
    run_versions(shell, run_cell, [1, 2, 3])
    shell.user_ns["Path"] = Path
    Path("stop").touch()
    assert isinstance(run_cell(ETL).error, RuntimeError)
    shell.user_ns["data"] = [5]
    assert isinstance(run_cell(GATED).error, CheckpointError)
    assert isinstance(run_cell(INTERRUPTED).error, KeyboardInterrupt)
    run_cell("%%checkpoint marked\ntick()\nm = 1\n")
    run_cell("%checkpoint mark marked pending")
    run_cell("%%checkpoint back\ntick()\nb = 1\n")
    run_cell("%%checkpoint back\ntick()\nb = 2\n")
    run_cell("%checkpoint rollback back")
    loose = (
        "for j in resumable(range(5), name='loose'):\n    if j == 2:\n        raise KeyError(j)\n"
    )
    assert isinstance(run_cell(loose).error, KeyError)


def test_status_json_validates_against_the_committed_schema(
    shell: InteractiveShell, run_cell: RunCell, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    make_store(shell, run_cell)
    code, out, err = cli(capsys, "status", "--json", "--dir", str(tmp_path / ".nbresume"))
    assert code == 0, err
    document = json.loads(out)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)

    by_name = {row["name"]: row for row in document["phases"]}
    assert document["store"] == str(tmp_path / ".nbresume")
    assert by_name["fit"]["status"] == "done"
    assert [v["number"] for v in by_name["fit"]["history"]] == [1, 2, 3]
    assert by_name["fit"]["history"][0]["reason"] == "input 'lr' changed"
    assert by_name["etl"]["status"] == "failed"
    assert by_name["etl"]["progress"]["done"] == 3
    assert by_name["clean"]["status"] == "failed"
    stopped = by_name["stopped"]
    assert (stopped["status"], stopped["resumable"], stopped["progress"]["done"]) == (
        "interrupted",
        True,
        2,
    )
    assert stopped["started"] is not None
    assert stopped["completed"] is None
    assert stopped["progress"]["loops"][0]["total"] == 5
    assert by_name["marked"]["mark"] == "pending"
    assert by_name["back"]["status"] == "rolled back"
    assert by_name["loose"]["kind"] == "loop"


@pytest.mark.parametrize(
    "breakage",
    [
        lambda doc: doc.pop("phases"),
        lambda doc: doc["phases"][0].update(status=3),
        lambda doc: doc["phases"][0].update(started="yesterday"),
        lambda doc: doc["phases"][0]["history"].append({"number": 0}),
        lambda doc: doc["phases"][0].update(kind="folder"),
        lambda doc: doc.update(size=-1),
    ],
)
def test_a_broken_status_document_does_not_validate(
    shell: InteractiveShell,
    run_cell: RunCell,
    capsys: pytest.CaptureFixture[str],
    breakage: Callable[[dict[str, Any]], Any],
) -> None:
    run_versions(shell, run_cell, [1, 2])
    code, out, _ = cli(capsys, "status", "--json")
    assert code == 0
    document = json.loads(out)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    breakage(document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)


def test_cli_history_lists_the_kept_versions(
    shell: InteractiveShell, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    run_versions(shell, run_cell, [1, 2])
    code, out, err = cli(capsys, "history", "fit")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("phase 'fit': 2 versions, #1 is current")
    assert lines[1].endswith("input 'lr' changed")
    assert lines[2].endswith("first run")
    code, _, err = cli(capsys, "history", "nothing-here")
    assert code == 1
    assert "no phase named 'nothing-here'" in err


def test_cli_rollback_exports_the_versions_variables_and_makes_it_current(
    shell: InteractiveShell,
    run_cell: RunCell,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    run_versions(shell, run_cell, [1, 2, 3])
    target = tmp_path / "fit.pkl"
    code, out, err = cli(
        capsys, "rollback", "fit", "--to", "2", "--export", str(target), "--outputs"
    )
    assert code == 0, err
    assert "rolled back 'fit' to version #2 of " in out
    assert "model 20\n" in out  # --outputs
    with target.open("rb") as f:
        assert pickle.load(f) == {"model": 20}
    checkpoint.phases.clear()  # this kernel ran lr=3 itself; a new kernel sees the rollback
    assert phase_status(run_cell, "fit") == "rolled back"
    shell.user_ns["lr"] = 2  # the rolled-back version is first in the history now
    assert restored(run_cell(FIT))
    assert runs() == 3
    code, _, err = cli(capsys, "rollback", "fit", "--to", "9")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert "give a number from 1 to 3" in err


def test_cli_log_prints_every_phases_events(
    shell: InteractiveShell, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    run_versions(shell, run_cell, [1])
    run_cell("%checkpoint mark fit pending")
    code, out, err = cli(capsys, "log")
    assert code == 0, err
    lines = out.splitlines()
    assert re.match(rf"^{TIMESTAMP}  fit  started: first run$", lines[0]), lines
    assert re.match(rf"^{TIMESTAMP}  fit  marked pending$", lines[-1]), lines
    code, out, _ = cli(capsys, "log", "fit")
    assert code == 0
    assert re.match(rf"^{TIMESTAMP}  started: first run$", out.splitlines()[0])


# -- real kernels: rollback after a restart, a gate failing after a resumed loop ---------------

SETUP = """\
%load_ext nbresume
import time

def mark(i):
    with open("runs.txt", "a") as f:
        f.write(f"{i}\\n")
"""

KERNEL_FIT = """\
%%checkpoint fit
mark(lr)
model = {"lr": lr, "weights": [lr * 10] * 3}
print(f"model for lr={lr}")
"""


@pytest.mark.kernel
def test_rollback_after_a_sigkill_brings_back_the_older_values(kernels: KernelPool) -> None:
    kernel = kernels.start("work")
    runs_file = kernel.workdir / "runs.txt"
    kernel.run(SETUP)
    kernel.run("lr = 1")
    kernel.run(KERNEL_FIT)
    kernel.run("lr = 2")
    kernel.run(KERNEL_FIT)
    assert kernel.eval("model['lr']") == "2"
    kernel.kill()

    kernel = kernels.start("work")  # a new kernel on the same working directory
    kernel.run(SETUP)
    back = kernel.run("%checkpoint rollback fit")
    assert kernel.eval("model") == repr({"lr": 1, "weights": [10, 10, 10]})
    assert stdout_of(own_outputs(back)) == "model for lr=1\n"
    assert "rolled back" in note_kinds(back)
    assert read_runs(runs_file) == [1, 2]


GATED_LOOP = """\
%%checkpoint ingest --every 1 --validate "len(bad) == 0"
rows = []
bad = []
for i in resumable(range(12)):
    mark(i)
    time.sleep(0.1)
    rows.append(i)
    if i % 4 == 3:
        bad.append(i)
print(f"{len(rows)} rows")
"""


@pytest.mark.kernel
def test_a_gate_failing_after_a_resumed_loop_caches_nothing_until_marked_done(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start("work")
    runs_file = kernel.workdir / "runs.txt"
    kernel.run(SETUP)
    kernel.submit(GATED_LOOP)
    assert wait_until(lambda: 6 in read_runs(runs_file), 60), "item 6 never started"
    kernel.kill()
    before = read_runs(runs_file)

    kernel = kernels.start("work")
    kernel.run(SETUP)
    reply, outputs = kernel.execute(GATED_LOOP)
    after = read_runs(runs_file)
    resumed = after[len(before) :]
    assert after[: len(before)] == before
    assert resumed in (list(range(before[-1], 12)), list(range(before[-1] + 1, 12))), resumed
    assert "resuming" in note_kinds(outputs)
    assert reply["status"] == "error"
    assert reply["ename"] == "CheckpointError"
    assert "--validate 'len(bad) == 0'" in reply["evalue"]
    assert "bad=[3, 7, 11]" in reply["evalue"]
    assert kernel.eval("rows") == repr(list(range(12)))
    assert (
        kernel.eval(
            "sorted(__import__('nbresume._store', fromlist=['_']).open_store().keys('cell:ingest:'))"
        )
        == "[]"
    )

    accepted = kernel.run("%checkpoint mark ingest done")
    assert "saved the run that failed its gate" in "".join(
        n["data"]["text/plain"] for n in notes(accepted)
    )
    kernel.run("del rows, bad")
    hit = kernel.run(GATED_LOOP)
    assert "restored" in note_kinds(hit)
    assert read_runs(runs_file) == after
    assert kernel.eval("rows") == repr(list(range(12)))
    assert kernel.eval("bad") == "[3, 7, 11]"
    assert stdout_of(own_outputs(hit)) == "12 rows\n"


# -- 10. durations add up across kernels ------------------------------------------------------

RESUMED = """%%checkpoint sweep --every 1 --exclude clock,crash
for i in resumable(range(6)):
    clock.advance(5)
    crash(i)
"""


def new_kernel() -> None:
    """What a kernel death and a new kernel do to nbresume's in-memory state."""
    checkpoint.phases.clear()
    checkpoint._told_store.clear()


@pytest.mark.parametrize(("deaths", "said"), [([2], "resumed once"), ([2, 4], "resumed 2 times")])
def test_a_resumed_run_reports_its_time_in_every_kernel_and_how_often_it_resumed(
    *,
    clock: Clock,
    run_cell: RunCell,
    shell: InteractiveShell,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    deaths: list[int],
    said: str,
) -> None:
    from nbresume.server._dashboard import read_store

    monkeypatch.setattr(checkpoint, "wall_clock", lambda: 1.7e9 + clock.now)
    pending = list(deaths)

    def crash(i: int) -> None:  # the kernel dies in item i: what it did in it is lost
        if pending and i == pending[0]:
            pending.pop(0)
            raise KeyboardInterrupt

    shell.user_ns["crash"] = crash
    for died in range(len(deaths)):
        assert isinstance(run_cell(RESUMED).error, KeyboardInterrupt)
        (dead,) = read_store(Path(".nbresume").absolute())["phases"]
        assert dead["status"] == "interrupted"
        # the API's figures for the unfinished run: its resumes, its time in every kernel
        assert dead["progress"]["resumes"] == died
        assert dead["progress"]["elapsed"] >= 10 * died  # 2 items of 5 s per earlier kernel
        new_kernel()
    last = run_cell(RESUMED)
    assert last.error is None, last.error
    assert "resuming" in [n.metadata["nbresume"].get("kind") for n in last.notes], last.note_text
    # each kernel's time up to its last snapshot, then the last one's: 6 items of 5 s
    (version,) = versions("sweep")
    assert version["duration"] == pytest.approx(30.0)
    assert version["resumes"] == len(deaths)
    new_kernel()
    (note,) = notes_of(run_cell(RESUMED), "restored")
    assert note.data["text/plain"].endswith(f"ran 30s, {said}"), note.data["text/plain"]
    history = shown(run_cell("%checkpoint history sweep"))
    assert said in history, history
    assert "first run" not in history, history
    status_text = shown(run_cell("%checkpoint status"))
    assert re.search(r"^sweep\s+restored\s+\S+ \S+\s+30s\s", status_text, re.MULTILINE), status_text
    (row,) = read_store(Path(".nbresume").absolute())["phases"]
    assert (row["duration"], row["resumes"]) == (pytest.approx(30.0), len(deaths))
    code, out, _ = cli(capsys, "status", "--json")
    assert code == 0
    (phase,) = json.loads(out)["phases"]
    assert (phase["duration"], phase["resumes"]) == (pytest.approx(30.0), len(deaths))
    assert phase["history"][0]["reason"] == said
