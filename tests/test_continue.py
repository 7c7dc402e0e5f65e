"""Fix and continue: a loop that failed at item k, edited and re-run, starts over with a note, or
goes on from its k finished items with ``--continue``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun

RunCell = Callable[..., CellRun]

BUGGY = """%%checkpoint{opts}
out = []
for i in resumable(range(12)):
    tick(i)
    if i == 5:
        raise ValueError("bug at 5")
    out.append(i * 10)
"""

FIXED = """%%checkpoint{opts}
out = []
for i in resumable(range(12)):
    tick(i)
    if i == 5 and os.path.exists("stop"):
        raise KeyboardInterrupt
    out.append(i * 10)
"""


def ticks(label: int) -> int:
    try:
        lines = Path("runs.txt").read_text().splitlines()
    except FileNotFoundError:
        return 0
    return lines.count(str(label))


def shown(run: CellRun) -> str:
    return run.stdout + "".join(str(e.data.get("text/plain", "")) for e in run.events)


def fail_at_5(shell: InteractiveShell, run_cell: RunCell) -> None:
    shell.run_cell("import os")
    failed = run_cell(BUGGY.format(opts=" sweep --every 1"))
    assert isinstance(failed.error, ValueError)
    assert [ticks(i) for i in range(6)] == [1] * 6


def test_an_edited_cell_says_it_starts_over_and_how_many_items_continue_keeps(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    fail_at_5(shell, run_cell)
    fixed = run_cell(FIXED.format(opts=" sweep --every 1"))
    assert fixed.error is None
    assert (
        "source changed since the interrupted run (5/12 items done): starting over; "
        "--continue keeps them"
    ) in fixed.note_text
    assert [ticks(i) for i in range(5)] == [2] * 5  # it did start over
    assert shell.user_ns["out"] == [i * 10 for i in range(12)]


def test_continue_keeps_the_finished_items_and_says_so_everywhere(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    fail_at_5(shell, run_cell)
    fixed = run_cell(FIXED.format(opts=" sweep --every 1 --continue"))
    assert fixed.error is None
    assert "continued after an edit: 5 items from the earlier version" in fixed.note_text
    assert [ticks(i) for i in range(12)] == [1] * 5 + [2] + [1] * 6
    assert shell.user_ns["out"] == [i * 10 for i in range(12)]
    history = run_cell("%checkpoint history sweep")
    assert "continued after an edit: 5 items from the earlier version" in shown(history)
    log = run_cell("%checkpoint log sweep")
    assert "continued after an edit: 5 items from the earlier version" in shown(log)
    again = run_cell(
        FIXED.format(opts=" sweep --every 1")
    )  # a plain re-run of the fixed cell: a hit
    assert any(n.metadata["nbresume"].get("kind") == "restored" for n in again.notes)


def test_continue_still_works_after_a_fresh_start_was_stopped(
    shell: InteractiveShell, run_cell: RunCell, tmp_path: Path
) -> None:
    fail_at_5(shell, run_cell)
    (tmp_path / "stop").touch()
    shell.run_cell("import os")
    stopped = run_cell(FIXED.format(opts=" sweep --every 1").replace("i == 5 and", "i == 0 and"))
    assert isinstance(stopped.error, KeyboardInterrupt)
    (tmp_path / "stop").unlink()
    fixed = run_cell(FIXED.format(opts=" sweep --every 1 --continue"))
    assert fixed.error is None
    assert "5 items from the earlier version" in fixed.note_text
    assert shell.user_ns["out"] == [i * 10 for i in range(12)]


def test_a_completed_run_drops_the_interrupted_snapshot(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    fail_at_5(shell, run_cell)
    assert run_cell(FIXED.format(opts=" sweep --every 1")).error is None
    other = FIXED.format(opts=" sweep --every 1 --continue").replace("i * 10", "i * 100")
    later = run_cell(other)
    assert later.error is None
    assert "nothing to continue" in later.note_text
    assert shell.user_ns["out"] == [i * 100 for i in range(12)]


def test_the_same_source_resumes_without_continue(
    shell: InteractiveShell, run_cell: RunCell, tmp_path: Path
) -> None:
    shell.run_cell("import os")
    (tmp_path / "stop").touch()
    assert isinstance(run_cell(FIXED.format(opts=" sweep --every 1")).error, KeyboardInterrupt)
    (tmp_path / "stop").unlink()
    resumed = run_cell(FIXED.format(opts=" sweep --every 1"))
    assert resumed.error is None
    assert "starting over" not in resumed.note_text
    assert [ticks(i) for i in range(5)] == [1] * 5
    assert shell.user_ns["out"] == [i * 10 for i in range(12)]


def test_continue_follows_a_loop_that_moved_to_another_line(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    fail_at_5(shell, run_cell)
    moved = FIXED.format(opts=" sweep --every 1 --continue").replace(
        "out = []\n", "out = []\nscale = 10\n"
    )
    fixed = run_cell(moved)
    assert fixed.error is None
    assert [ticks(i) for i in range(12)] == [1] * 5 + [2] + [1] * 6
    assert shell.user_ns["out"] == [i * 10 for i in range(12)]
