"""Loop idioms a careless user or a tester tries next (neighbours of issue 14's findings).

Each case is exact, refused with a one-line CheckpointError, or plain with a note: never a wrong
value after a kill, an error or a Ctrl-C.
"""

from __future__ import annotations

import itertools
import json
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, isolated, tick
from kernel_helpers import KernelPool, read_runs, stdout_of, wait_until
from nbresume import resumable
from test_resumable import Boom, arm, check, counts

RunCell = Callable[..., CellRun]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from isolated(tmp_path, monkeypatch)


def _interrupt(times: int) -> Callable[[], None]:
    def send() -> None:
        if Path("interrupted").exists():
            return
        Path("interrupted").touch()
        for _ in range(times):
            signal.raise_signal(signal.SIGINT)

    return send


@pytest.fixture
def cell(shell: InteractiveShell, run_cell: RunCell) -> RunCell:
    shell.user_ns["check"] = check
    return run_cell


# -- a loop left by an exception the cell catches is not a finished loop ----------------------

CAUGHT = """\
%%checkpoint caught --every 1
out = []
try:
    for x in resumable(range(5)):
        tick(x)
        check()
        out.append(x)
except {exc}:
    pass
"""


@pytest.mark.parametrize("exc", ["KeyboardInterrupt", "Exception"])
def test_a_loop_left_by_a_caught_exception_does_not_save_its_cell_as_done(
    shell: InteractiveShell, cell: RunCell, exc: str
) -> None:
    arm(3, "KeyboardInterrupt" if exc == "KeyboardInterrupt" else "Boom")
    source = CAUGHT.format(exc=exc)
    first = cell(source)
    assert first.error is None
    assert shell.user_ns["out"] == [0, 1]  # the cell's own run keeps what it did
    assert "not saved as done" in first.note_text, first.note_text
    second = cell(source)
    assert second.error is None
    assert shell.user_ns["out"] == [0, 1, 2, 3, 4]  # resumed, not a restore of the half
    assert "restored" not in second.note_text.split("resum")[0]
    assert counts() == Counter(str(x) for x in range(5)) + Counter(["2"])
    third = cell(source)
    assert "restored" in third.note_text
    assert shell.user_ns["out"] == [0, 1, 2, 3, 4]


def test_a_break_still_ends_the_loop_on_purpose(shell: InteractiveShell, cell: RunCell) -> None:
    source = (
        "%%checkpoint early\nout = []\nfor x in resumable(range(9)):\n"
        "    if x == 3:\n        break\n    out.append(x)\n"
    )
    assert cell(source).error is None
    hit = cell(source)
    assert "restored" in hit.note_text
    assert shell.user_ns["out"] == [0, 1, 2]


CTRL_C_CAUGHT = """\
%%checkpoint slow
out = []
try:
    for x in resumable(range(6)):
        out.append(x)
        tick(x)
        if x == 2:
            interrupt()
        time.sleep(0.01)
except KeyboardInterrupt:
    print("stopped by hand")
"""


@pytest.mark.parametrize("times", [1, 2])
def test_a_real_ctrl_c_caught_around_the_loop_resumes_instead_of_restoring_half(
    shell: InteractiveShell, cell: RunCell, times: int
) -> None:
    shell.user_ns.update(interrupt=_interrupt(times), time=__import__("time"))
    first = cell(CTRL_C_CAUGHT)
    assert first.error is None
    assert "not saved as done" in first.note_text
    assert shell.user_ns["out"] == [0, 1, 2]
    second = cell(CTRL_C_CAUGHT)
    assert second.error is None
    assert shell.user_ns["out"] == list(range(6))
    extra = Counter() if times == 1 else Counter(["2"])  # the first Ctrl-C saved item 2
    assert counts() == Counter(str(x) for x in range(6)) + extra
    assert "restored" in cell(CTRL_C_CAUGHT).note_text
    assert shell.user_ns["out"] == list(range(6))


def test_an_inner_loop_left_by_an_error_caught_in_the_outer_body_is_retried(
    shell: InteractiveShell, cell: RunCell
) -> None:
    source = (
        "%%checkpoint nested --every 1\n"
        "out = []\n"
        "for e in resumable(range(3)):\n"
        "    try:\n"
        "        for b in resumable(range(3)):\n"
        "            tick((e, b))\n"
        "            check()\n"
        "            out.append((e, b))\n"
        "    except Exception:\n"
        "        pass\n"
    )
    arm(4)  # (1, 0) raises once
    first = cell(source)
    assert first.error is None
    assert "not saved as done" in first.note_text
    assert cell(source).error is None
    assert shell.user_ns["out"] == [(e, b) for e in range(3) for b in range(3)]
    assert "restored" in cell(source).note_text


def test_a_batch_loop_left_by_a_caught_error_is_not_saved_as_done(
    shell: InteractiveShell, cell: RunCell
) -> None:
    source = (
        "%%checkpoint batches --every 1\n"
        "out = []\n"
        "try:\n"
        "    for chunk in resumable(range(6), batch=2):\n"
        "        tick(chunk[0])\n"
        "        check()\n"
        "        out.extend(chunk)\n"
        "except Exception:\n"
        "    pass\n"
    )
    arm(2)
    assert "not saved as done" in cell(source).note_text
    assert shell.user_ns["out"] == [0, 1]
    assert cell(source).error is None
    assert shell.user_ns["out"] == list(range(6))


def test_a_break_inside_a_with_block_or_after_continue_is_on_purpose(
    shell: InteractiveShell, cell: RunCell
) -> None:
    source = (
        "%%checkpoint early2\nimport contextlib\nout = []\n"
        "for x in resumable(range(9)):\n"
        "    if x % 2:\n        continue\n"
        "    with contextlib.nullcontext():\n"
        "        if x == 4:\n            break\n"
        "    out.append(x)\n"
    )
    assert "not saved" not in cell(source).note_text
    assert "restored" in cell(source).note_text
    assert shell.user_ns["out"] == [0, 2]


# -- the same cell interrupted again and again in one kernel -----------------------------------

REPEAT = """\
%%checkpoint again --every 1
out = []
for x in resumable(range(8)):
    out.append(x)
    tick(x)
    if x in STOP_AT and not Path(f"stopped-{x}").exists():
        Path(f"stopped-{x}").touch()
        for _ in range(TIMES):
            signal.raise_signal(signal.SIGINT)
    time.sleep(0.005)
"""


@pytest.mark.parametrize("times", [1, 2])
def test_ctrl_c_rerun_ctrl_c_rerun_counts_every_item_exactly(
    shell: InteractiveShell, cell: RunCell, times: int
) -> None:
    shell.user_ns.update(
        STOP_AT={2, 5}, TIMES=times, Path=Path, signal=signal, time=__import__("time")
    )
    assert isinstance(cell(REPEAT).error, KeyboardInterrupt)
    assert isinstance(cell(REPEAT).error, KeyboardInterrupt)
    assert cell(REPEAT).error is None
    assert shell.user_ns["out"] == list(range(8))
    extra = Counter() if times == 1 else Counter(["2", "5"])  # a second Ctrl-C stops mid-item
    assert counts() == Counter(str(x) for x in range(8)) + extra
    assert "restored" in cell(REPEAT).note_text


@pytest.mark.parametrize("every", ["0", "0s", "-1", "1.5", "abc"])
def test_an_invalid_every_is_refused_in_one_line_before_any_item(cell: RunCell, every: str) -> None:
    run = cell(f"%%checkpoint bad --every {every}\nfor x in resumable(range(3)):\n    tick(x)\n")
    assert run.error is not None
    assert "every" in str(run.error)
    assert "\n" not in str(run.error)
    assert counts() == Counter()


# -- outside cells: a consumer other than a for statement keeps the items ----------------------


def _checked(x: int) -> int:
    tick(x)
    check()
    return x


def test_a_call_that_keeps_the_items_runs_plain_outside_cells_with_a_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    arm(3)
    with pytest.raises(Boom):
        list(map(_checked, resumable(range(5), name="kept")))
    again = list(map(_checked, resumable(range(5), name="kept")))
    assert again == [0, 1, 2, 3, 4]  # not [2, 3, 4]: the first run's list is gone
    assert "keeps the items" in capsys.readouterr().err


@pytest.mark.parametrize(
    "consume",
    [
        lambda r: list(filter(None, r)),
        lambda r: sum(itertools.chain(r, [])),
        lambda r: ",".join(map(str, r)),
        lambda r: list(itertools.islice(r, 9)),
    ],
    ids=["filter", "chain", "join-map", "islice"],
)
def test_other_wrappers_that_keep_the_items_run_plain_outside_cells(
    consume: Callable[[Any], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    def fail_at_two() -> Iterator[int]:
        yield 1
        yield 2
        raise Boom("the source failed")

    with pytest.raises(Boom):
        consume(resumable(fail_at_two(), name="wrapped"))
    assert consume(resumable(iter([1, 2, 3, 4, 5]), name="wrapped")) == consume(
        iter([1, 2, 3, 4, 5])
    )


def test_for_over_a_wrapper_and_a_loop_assigned_first_still_resume_outside_cells() -> None:
    def wrapped_for() -> None:
        for x in map(int, resumable(range(5), name="wrapped-for")):
            _checked(x)

    arm(3)
    with pytest.raises(Boom):
        wrapped_for()
    loop = resumable(range(5), name="assigned")
    for x in loop:
        tick(f"a{x}")
    wrapped_for()
    assert counts() == Counter(str(x) for x in range(5)) + Counter(["2"]) + Counter(
        f"a{x}" for x in range(5)
    )


# -- items keyed by position from a source nbresume does not track -----------------------------


def _rows(names: str) -> list[dict[str, str]]:
    return [{"name": n} for n in names]


def _process(rows: Any, name: str) -> list[str]:
    seen = []
    for row in resumable(rows, name=name):
        tick(row["name"])
        check()
        seen.append(row["name"])
    return seen


@pytest.mark.parametrize("kind", ["list", "iterator"])
def test_a_row_inserted_at_the_top_after_an_error_starts_over_outside_cells(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wrap: Callable[[Any], Any] = list if kind == "list" else iter
    arm(3)
    with pytest.raises(Boom):
        _process(wrap(_rows("abcde")), "rows")
    assert _process(wrap(_rows("Zabcde")), "rows") == list("Zabcde")  # Z is never skipped
    assert "changed since the interrupted run" in capsys.readouterr().err


def test_a_done_row_removed_from_a_list_starts_over_outside_cells(
    capsys: pytest.CaptureFixture[str],
) -> None:
    arm(4)
    with pytest.raises(Boom):
        _process(_rows("abcde"), "rows2")
    # b was done: by position, c would now be taken as done and never processed
    assert _process(_rows("acde"), "rows2") == list("acde")
    assert "changed since the interrupted run" in capsys.readouterr().err


def test_unchanged_rows_resume_outside_cells_without_running_done_ones_again() -> None:
    arm(3)
    with pytest.raises(Boom):
        _process(_rows("abcde"), "rows3")
    assert _process(_rows("abcde"), "rows3") == list("cde")
    assert counts() == Counter("abcde") + Counter("c")


ROWS_CELL = """\
%%checkpoint rows --every 1
out = []
for row in resumable(load()):
    tick(row["name"])
    check()
    out.append(row["name"])
"""


def test_rows_of_an_untracked_source_changed_before_a_resume_are_refused_in_a_cell(
    shell: InteractiveShell, cell: RunCell, tmp_path: Path
) -> None:
    source = tmp_path / "rows.json"
    source.write_text('["a", "b", "c", "d"]')
    cell(
        "import json\nfrom pathlib import Path\n"
        "def load():\n"
        "    return [{'name': n} for n in json.loads(Path('rows.json').read_text())]\n"
    )
    arm(3)
    assert cell(ROWS_CELL).error is not None
    source.write_text('["Z", "a", "b", "c", "d"]')
    run = cell(ROWS_CELL)
    assert run.error is not None, shell.user_ns["out"]
    assert "--force" in str(run.error)
    assert "\n" not in str(run.error)
    forced = cell(ROWS_CELL.replace("--every 1", "--every 1 --force"))
    assert forced.error is None
    assert shell.user_ns["out"] == list("Zabcd")


# -- real kernels ---------------------------------------------------------------------------------

KERNEL_SETUP = """\
%load_ext nbresume
import json, time
from pathlib import Path

def mark(i):
    with open("runs.txt", "a") as f:
        f.write(f"{i}\\n")

def load():
    return [{"i": i} for i in json.loads(Path("rows.json").read_text())]
"""

KERNEL_ROWS = """\
%%checkpoint rows
out = []
for row in resumable(load()):
    mark(row["i"])
    time.sleep(0.1)
    out.append(row["i"])
"""


def test_sigkill_then_rows_inserted_at_the_top_is_refused_not_mixed(kernels: KernelPool) -> None:
    kernel = kernels.start()
    rows = kernel.workdir / "rows.json"
    rows.write_text(json.dumps(list(range(10))))
    kernel.run(KERNEL_SETUP)
    kernel.submit(KERNEL_ROWS)
    assert wait_until(lambda: 5 in read_runs(kernel.workdir / "runs.txt"), 60)
    kernel.kill()
    kernel.restart()
    kernel.run(KERNEL_SETUP)
    rows.write_text(json.dumps([100, 101, *range(10)]))
    reply, _ = kernel.execute(KERNEL_ROWS)
    assert reply["status"] == "error"
    assert "--force" in reply["evalue"]
    kernel.run(KERNEL_ROWS.replace("%%checkpoint rows", "%%checkpoint rows --force"))
    assert kernel.eval("out") == repr([100, 101, *range(10)])


KERNEL_CAUGHT = """\
%%checkpoint caught
out = []
try:
    for x in resumable(range(30)):
        mark(x)
        time.sleep(0.1)
        out.append(x)
except KeyboardInterrupt:
    print("stopped by hand")
"""


def test_the_stop_button_caught_around_the_loop_resumes_on_the_next_run(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    runs = kernel.workdir / "runs.txt"
    kernel.run(KERNEL_SETUP)
    msg_id = kernel.submit(KERNEL_CAUGHT)
    assert wait_until(lambda: 5 in read_runs(runs), 60)
    kernel.km.interrupt_kernel()
    assert kernel.wait_reply(msg_id)["status"] == "ok"
    stopped = int(kernel.eval("len(out)"))
    assert 5 <= stopped < 30
    outputs = kernel.run(KERNEL_CAUGHT)
    assert kernel.eval("out") == repr(list(range(30)))
    assert "stopped by hand" not in stdout_of(outputs)
    done = read_runs(runs)
    assert sorted(set(done)) == list(range(30))
    assert max(Counter(done).values()) == 1, done  # the first Ctrl-C saved the item it finished


# -- more shapes in a cell: exact after an error ----------------------------------------------

SHAPES = {
    "for-else": (
        "out = []\nfor x in resumable(range(5)):\n    tick(x)\n    check()\n    out.append(x)\n"
        "else:\n    out.append('end')\n"
    ),
    "growing-list": (
        "xs = [0, 1, 2]\nout = []\nfor x in resumable(xs):\n    tick(x)\n    check()\n"
        "    if x < 4:\n        xs.append(x + 3)\n    out.append(x)\n"
    ),
    "with-inside": (
        "import contextlib\nout = []\nfor x in resumable(range(5)):\n"
        "    with contextlib.suppress(KeyError):\n        tick(x)\n        check()\n"
        "        out.append(x)\n"
    ),
    "duplicate-keys": (
        "rows = [('a', 1), ('a', 1), ('b', 2), ('a', 1)]\nout = []\n"
        "for r in resumable(rows, key=lambda r: r[0]):\n    tick(r[0])\n    check()\n"
        "    out.append(r)\n"
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("at", [1, 3])
def test_more_loop_shapes_in_a_cell_give_the_uninterrupted_values(
    shell: InteractiveShell, cell: RunCell, shape: str, at: int
) -> None:
    source = f"%%checkpoint {shape} --every 1\n" + SHAPES[shape]
    plain = cell(SHAPES[shape])
    assert plain.error is None
    expected = shell.user_ns["out"]
    shell.user_ns.pop("out")
    arm(at + sum(counts().values()))
    assert cell(source).error is not None
    assert cell(source).error is None
    assert shell.user_ns["out"] == expected
    assert "restored" in cell(source).note_text
    assert shell.user_ns["out"] == expected


AWAIT_BODY = """\
%%checkpoint awaits --every 1
import asyncio
out = []
for x in resumable(range(5)):
    await asyncio.sleep(0)
    tick(x)
    check()
    out.append(x)
"""


def test_a_loop_whose_body_awaits_resumes_exactly_or_runs_plain(
    shell: InteractiveShell, cell: RunCell
) -> None:
    arm(3)
    first = cell(AWAIT_BODY)
    assert first.error is not None
    second = cell(AWAIT_BODY)
    assert second.error is None, second.error
    assert shell.user_ns["out"] == [0, 1, 2, 3, 4]
    if "will not resume mid-way" not in first.note_text:  # it resumed: every item once more
        assert counts() == Counter(str(x) for x in range(5)) + Counter(["2"])


# -- a Ctrl-C the cell swallows, with or without a resumable loop ------------------------------

SWALLOWED = {
    "plain-loop": (
        "out = []\ntry:\n    for x in range(6):\n        tick(x)\n        if x == 2:\n"
        "            interrupt()\n            time.sleep(0.05)\n        out.append(x)\n"
        "except KeyboardInterrupt:\n    pass\n"
    ),
    "break-in-body": (
        "out = []\nfor x in resumable(range(6)):\n    try:\n        tick(x)\n"
        "        if x == 2:\n            interrupt()\n            time.sleep(0.05)\n"
        "        out.append(x)\n    except KeyboardInterrupt:\n        break\n"
    ),
    "continue-in-body": (
        "out = []\nfor x in resumable(range(6)):\n    try:\n        tick(x)\n"
        "        if x == 2:\n            interrupt()\n            time.sleep(0.05)\n"
        "        out.append(x)\n    except KeyboardInterrupt:\n        continue\n"
    ),
}


@pytest.mark.parametrize("shape", sorted(SWALLOWED))
def test_a_ctrl_c_swallowed_by_the_cell_never_saves_the_run_as_done(
    shell: InteractiveShell, cell: RunCell, shape: str
) -> None:
    shell.user_ns.update(interrupt=_interrupt(2), time=__import__("time"))
    source = f"%%checkpoint {shape} --every 1\n" + SWALLOWED[shape]
    first = cell(source)
    if shape == "continue-in-body":  # the first Ctrl-C still stops the loop at the boundary
        assert isinstance(first.error, KeyboardInterrupt)
    else:
        assert first.error is None
        assert "not saved as done" in first.note_text, first.note_text
    assert shell.user_ns["out"] != list(range(6))
    assert cell(source).error is None
    assert shell.user_ns["out"] == list(range(6))
    assert "restored" in cell(source).note_text


NEXT_LOOP = (
    "out = []\nit = iter(resumable(range(5), name='manual'))\nwhile True:\n"
    "    x = next(it, None)\n    if x is None:\n        break\n    tick(x)\n    check()\n"
    "    out.append(x)\n"
)


def test_a_loop_written_with_next_runs_plain_with_a_note_in_a_cell(
    shell: InteractiveShell, cell: RunCell
) -> None:
    source = "%%checkpoint manual --exclude it\n" + NEXT_LOOP
    arm(3)
    first = cell(source)
    assert first.error is not None
    assert "will not resume mid-way" in first.note_text
    assert cell(source).error is None
    assert shell.user_ns["out"] == [0, 1, 2, 3, 4]


def test_next_on_a_resumable_itself_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not an iterator"):
        next(resumable(range(3), name="next"))  # type: ignore[call-overload]


def test_a_batch_loop_over_rows_inserted_at_the_top_starts_over_outside_cells(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def run(names: str) -> list[str]:
        seen = []
        for chunk in resumable(_rows(names), name="batched-rows", batch=2):
            tick(chunk[0]["name"])
            check()
            seen.extend(row["name"] for row in chunk)
        return seen

    arm(2)
    with pytest.raises(Boom):
        run("abcdef")
    assert run("Zabcdef") == list("Zabcdef")
    assert "changed since the interrupted run" in capsys.readouterr().err
