"""Every way of writing a ``resumable`` loop: exact on the first run and after interruptions, or
refused before any wrong value exists (SPEC section 3).

Loop bodies log each execution with ``tick`` and raise on purpose with ``check`` (see
test_resumable); scripts are killed with SIGKILL by their own loop body, so nothing of theirs runs
after the kill.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, isolated, tick
from kernel_helpers import KernelPool, read_runs, wait_until
from nbresume import CheckpointError, resumable
from test_resumable import Boom, arm, check, counts, ticks

RunCell = Callable[..., CellRun]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from isolated(tmp_path, monkeypatch)


@pytest.fixture
def cell(shell: InteractiveShell, run_cell: RunCell) -> RunCell:
    shell.user_ns["check"] = check
    return run_cell


# -- 1. each loop entered in a cell run is its own loop ---------------------------------------


def test_a_resumable_loop_under_a_plain_for_runs_on_every_pass(
    shell: InteractiveShell, cell: RunCell
) -> None:
    run = cell(
        "%%checkpoint epochs\n"
        "seen = []\n"
        "for epoch in range(3):\n"
        "    for b in resumable(range(4)):\n"
        "        tick((epoch, b))\n"
        "        seen.append((epoch, b))\n"
    )
    assert run.error is None
    assert shell.user_ns["seen"] == [(e, b) for e in range(3) for b in range(4)]
    assert run.note_text.count("will not resume mid-way") == 1, run.note_text


def test_a_helper_with_a_resumable_loop_called_twice_in_a_cell_gives_the_same_sum(
    shell: InteractiveShell, cell: RunCell
) -> None:
    run = cell(
        "def total(xs):\n    s = 0\n    for x in resumable(xs):\n        s += x\n    return s\n"
    )
    assert run.error is None
    run = cell("%%checkpoint twice\na = total(range(5))\nb = total(range(5))\n")
    assert run.error is None
    assert (shell.user_ns["a"], shell.user_ns["b"]) == (10, 10)


def test_two_resumable_loops_nested_in_a_cell_run_every_inner_item_once(
    shell: InteractiveShell, cell: RunCell
) -> None:
    run = cell(
        "%%checkpoint nested\n"
        "seen = []\n"
        "for epoch in resumable(range(3)):\n"
        "    for b in resumable(range(4)):\n"
        "        tick((epoch, b))\n"
        "        seen.append((epoch, b))\n"
    )
    assert run.error is None
    assert shell.user_ns["seen"] == [(e, b) for e in range(3) for b in range(4)]
    assert len(ticks()) == 12


SEQUENTIAL = """%%checkpoint seq --every 1
out = []
for e in resumable(range(3)):
    part = 0
    for a in resumable(range(3)):
        tick(("a", e, a))
        check()
        part += a
    for b in resumable(range(3)):
        tick(("b", e, b))
        check()
        part += 10 * b
    out.append(part)
"""


@pytest.mark.parametrize("at", [2, 5, 8, 11, 16])
def test_two_inner_loops_in_sequence_resume_exactly(
    shell: InteractiveShell, cell: RunCell, at: int
) -> None:
    arm(at, "KeyboardInterrupt")
    assert isinstance(cell(SEQUENTIAL).error, KeyboardInterrupt)
    shell.user_ns.pop("out")
    assert cell(SEQUENTIAL).error is None
    assert shell.user_ns["out"] == [33, 33, 33]
    every = Counter(str((w, e, i)) for e in range(3) for w in "ab" for i in range(3))
    assert counts() == every + Counter([ticks()[at - 1]])


PRE_INNER = """%%checkpoint pre --every 1
losses = []
for epoch in resumable(range(3)):
    epoch_loss = 0
    for b in resumable(range(4)):
        tick((epoch, b))
        check()
        epoch_loss += b + 1
    losses.append(epoch_loss)
"""


@pytest.mark.parametrize("at", [3, 6, 11])
def test_state_set_before_an_inner_loop_is_the_snapshot_s_after_a_resume(
    shell: InteractiveShell, cell: RunCell, at: int
) -> None:
    arm(at, "KeyboardInterrupt")
    assert isinstance(cell(PRE_INNER).error, KeyboardInterrupt)
    assert cell(PRE_INNER).error is None
    assert shell.user_ns["losses"] == [10, 10, 10]


# -- 2. idioms whose state nbresume cannot save are refused -----------------------------------


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        ("squares = [x * x for x in resumable(range(3))]", "resumable.map"),
        ("for i, x in enumerate(resumable(range(3))):\n    pass", r"resumable\(enumerate\("),
        (
            "for a, b in zip(resumable(range(3)), resumable(range(3))):\n    pass",
            r"resumable\(zip\(",
        ),
        ("total = sum(resumable(range(3)))", "for x in resumable"),
    ],
)
@pytest.mark.parametrize("where", ["cell", "plain cell"])
def test_idioms_that_cannot_resume_exactly_are_refused_naming_the_line_and_the_fix(
    cell: RunCell, code: str, advice: str, where: str
) -> None:
    source = ("%%checkpoint idiom\n" if where == "cell" else "") + "xs = 1\n" + code + "\n"
    run = cell(source)
    assert isinstance(run.error, CheckpointError), run.error
    assert "line 2" in str(run.error)
    assert pytest.importorskip("re").search(advice, str(run.error)), str(run.error)


def test_a_refused_comprehension_never_marks_its_loop_complete(cell: RunCell) -> None:
    source = "%%checkpoint comp\nsquares = [x for x in resumable(range(3))]\n"
    assert isinstance(cell(source).error, CheckpointError)
    assert isinstance(cell(source).error, CheckpointError)


def test_a_resumable_in_a_helper_called_in_a_cell_runs_plain_with_a_note(
    shell: InteractiveShell, cell: RunCell
) -> None:
    cell("def work(xs):\n    for x in resumable(xs):\n        tick(x)\n        check()\n")
    arm(3)
    run = cell("%%checkpoint helper\nwork(range(5))\n")
    assert isinstance(run.error, Boom)
    assert "will not resume mid-way" in run.note_text
    assert cell("%%checkpoint helper\nwork(range(5))\n").error is None
    assert ticks() == ["0", "1", "2", "0", "1", "2", "3", "4"]


# -- 3. state is saved only at item boundaries ------------------------------------------------

APPEND_FIRST = """%%checkpoint appends{every}
out = []
for x in resumable(range(5)):
    out.append(x)
    tick(x)
    check()
"""


@pytest.mark.parametrize("every", ["", " --every 1"])
@pytest.mark.parametrize("exc", ["Boom", "KeyboardInterrupt"])
@pytest.mark.parametrize("at", [1, 3, 5])
def test_a_side_effect_before_the_raise_is_not_repeated_on_resume(
    shell: InteractiveShell, cell: RunCell, exc: str, at: int, every: str
) -> None:
    source = APPEND_FIRST.format(every=every)
    arm(at, exc)
    assert cell(source).error is not None
    assert cell(source).error is None
    assert shell.user_ns["out"] == [0, 1, 2, 3, 4]
    once = Counter(str(x) for x in range(5))
    if every:  # a snapshot at every boundary: only the interrupted item runs again
        assert counts() == once + Counter([str(at - 1)])
    else:  # instant items: the budget allows fewer snapshots; items redone, none lost
        assert all(1 <= counts()[str(x)] <= 2 for x in range(5)), counts()
        assert counts()[str(at - 1)] == 2


def test_a_sigterm_mid_item_keeps_the_last_boundary_snapshot(tmp_path: Path) -> None:
    """SIGTERM while an item is half done: the snapshot is the one before the item."""
    script = _write(
        tmp_path,
        "term.py",
        """
        import os, signal
        from nbresume import resumable
        out = []
        for x in resumable(range(6), name="term"):
            tick(x)
            if x == 3 and not os.path.exists("again"):
                open("again", "w").close()
                os.kill(os.getpid(), signal.SIGTERM)
        """,
    )
    assert _run(script).returncode == -signal.SIGTERM
    assert _run(script).returncode == 0
    assert ticks() == ["0", "1", "2", "3", "3", "4", "5"]


# -- 4. identity --------------------------------------------------------------------------------


def test_name_is_the_identity_wherever_the_loop_is_called_from() -> None:
    def first() -> None:
        for x in resumable(range(5), name="download"):
            tick(x)
            check()

    def second() -> None:
        for x in resumable(range(5), name="download"):
            tick(x)

    arm(3)
    with pytest.raises(Boom):
        first()
    second()
    assert ticks() == ["0", "1", "2", "2", "3", "4"]


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    prelude = "def tick(x):\n    with open('runs.txt', 'a') as f:\n        f.write(f'{x}\\n')\n"
    path.write_text(prelude + textwrap.dedent(body))
    return path


def _run(script: Path, seed: str = "0", *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NBRESUME_KEY": "nbresume-test-key",
        "XDG_CONFIG_HOME": str(script.parent / "cfg"),
        "PYTHONHASHSEED": seed,
        "NBRESUME_DIR": str(script.parent / "store"),
    }
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=script.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


KILLED_LOOP = """
import os, signal, sys
from nbresume import resumable
kill = int(sys.argv[1])
{above}for x in resumable(range(8), every=1):
    tick(x)
    if x == kill:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_unnamed_script_loop_keeps_its_progress_when_a_line_is_inserted_above(
    tmp_path: Path,
) -> None:
    script = tmp_path / "etl.py"
    _write(tmp_path, "etl.py", KILLED_LOOP.format(above=""))
    assert _run(script, "0", "4").returncode == -signal.SIGKILL
    _write(tmp_path, "etl.py", KILLED_LOOP.format(above="print('a new line')\n"))
    assert _run(script, "0", "-1").returncode == 0
    assert ticks() == [str(i) for i in range(5)] + [str(i) for i in range(4, 8)]


def test_two_scripts_with_the_same_loop_line_do_not_share_progress(tmp_path: Path) -> None:
    one = _write(tmp_path, "one.py", KILLED_LOOP.format(above=""))
    two = _write(tmp_path, "two.py", KILLED_LOOP.format(above=""))
    assert _run(one, "0", "3").returncode == -signal.SIGKILL
    assert _run(two, "0", "-1").returncode == 0
    assert ticks() == [str(i) for i in range(4)] + [str(i) for i in range(8)]


SET_LOOP = """
import os, signal, sys
from dataclasses import dataclass
from nbresume import resumable

@dataclass(frozen=True)
class Job:
    name: str

kill = sys.argv[1]
jobs = {Job(c) for c in "abcdefghij"}
for job in resumable(jobs, name="jobs", every=1):
    tick(job.name)
    if job.name == kill:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_items_of_a_set_are_keyed_by_value_across_hash_seeds(tmp_path: Path) -> None:
    script = _write(tmp_path, "jobs.py", SET_LOOP)
    first = _run(script, "1", "e")
    assert first.returncode == -signal.SIGKILL
    assert _run(script, "2", "-").returncode == 0
    done = ticks()
    assert Counter(done) == Counter("abcdefghij") + Counter(["e"]), done


def square_box(box: dict[str, int]) -> int:
    tick(box["v"])
    if box["v"] == 3 and not Path("fixed").exists():
        raise ValueError(box)
    return box["v"] ** 2


def test_map_keys_results_by_item_so_changed_items_are_computed_again() -> None:
    items = [{"v": 1}, {"v": 2}, {"v": 3}]
    with pytest.raises(CheckpointError):
        resumable.map(square_box, items, name="boxes")
    Path("fixed").touch()
    changed = [{"v": 10}, {"v": 2}, {"v": 3}]
    assert resumable.map(square_box, changed, name="boxes") == [100, 4, 9]
    assert ticks() == ["1", "2", "3", "10", "3"]


# -- 5. a resumed loop keeps saving after a saved key vanished --------------------------------

REMOVED = """
import os, signal, sys
from nbresume import resumable
items = sys.argv[2].split(",")
kill = sys.argv[1]
for x in resumable(items, name="rm", every=1):
    tick(x)
    if x == kill:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_resumed_loop_keeps_saving_when_a_finished_item_was_removed(tmp_path: Path) -> None:
    script = _write(tmp_path, "rm.py", REMOVED)
    assert _run(script, "0", "d", "a,b,c,d,e,f,g").returncode == -signal.SIGKILL
    assert _run(script, "0", "f", "b,c,d,e,f,g").returncode == -signal.SIGKILL
    assert _run(script, "0", "-", "b,c,d,e,f,g").returncode == 0
    assert ticks() == list("abcd") + list("def") + list("fg")


# -- 6. loss window ------------------------------------------------------------------------------


def test_a_script_killed_mid_loop_loses_about_one_item_when_saving_is_cheap(
    tmp_path: Path,
) -> None:
    """Saving done keys costs ~2 ms: the 2% budget allows a save after every 0.3 s item (the
    bound leaves room for a loaded machine; before the fix nothing was saved for 10 s)."""
    script = _write(
        tmp_path,
        "fetch.py",
        """
        import os, signal, sys, time
        from nbresume import resumable
        kill = int(sys.argv[1])
        for x in resumable(range(16), name="fetch"):
            tick(x)
            time.sleep(0.3)
            if x == kill:
                os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    assert _run(script, "0", "12").returncode == -signal.SIGKILL
    again = _run(script, "0", "-1")
    assert again.returncode == 0
    done = int(re.search(r"resuming 'fetch': (\d+) of 16 items done", again.stderr)[1])  # type: ignore[index]
    assert 6 <= done <= 12, again.stderr  # NB. a loaded machine makes saves dearer: fewer
    assert ticks() == [str(i) for i in range(13)] + [str(i) for i in range(done, 16)]


# -- 7. items are the restored objects -------------------------------------------------------

MODELS = """%%checkpoint models{every}
models = [[] for _ in range(6)]
for k, m in resumable(enumerate(models)):
    m.append(k)
    tick(k)
    check()
"""


@pytest.mark.parametrize("every", ["", " --every 1"])
@pytest.mark.parametrize("at", [2, 4, 6])
def test_in_place_work_on_items_survives_a_resume(
    shell: InteractiveShell, cell: RunCell, at: int, every: str
) -> None:
    source = MODELS.format(every=every)
    arm(at, "KeyboardInterrupt")
    assert isinstance(cell(source).error, KeyboardInterrupt)
    assert cell(source).error is None
    assert shell.user_ns["models"] == [[k] for k in range(6)]


def test_in_place_work_on_a_plain_list_of_items_survives_a_resume(
    shell: InteractiveShell, cell: RunCell
) -> None:
    source = (
        "%%checkpoint boxes --every 1\n"
        "boxes = [{'k': k} for k in range(5)]\n"
        "for box in resumable(boxes):\n"
        "    box['done'] = True\n"
        "    tick(box['k'])\n"
        "    check()\n"
    )
    arm(3, "KeyboardInterrupt")
    assert isinstance(cell(source).error, KeyboardInterrupt)
    assert cell(source).error is None
    assert shell.user_ns["boxes"] == [{"k": k, "done": True} for k in range(5)]


NESTED_MODELS = """%%checkpoint nested-models --every 1
models = [[] for _ in range(4)]
for k, m in resumable(enumerate(models)):
    for b in resumable(range(3)):
        m.append(b)
        tick((k, b))
        check()
"""


@pytest.mark.parametrize("at", [2, 5, 7, 12])
def test_enclosing_loops_continue_on_the_restored_items_after_a_resume(
    shell: InteractiveShell, cell: RunCell, at: int
) -> None:
    arm(at, "KeyboardInterrupt")
    assert isinstance(cell(NESTED_MODELS).error, KeyboardInterrupt)
    assert cell(NESTED_MODELS).error is None
    assert shell.user_ns["models"] == [[0, 1, 2]] * 4
    assert counts() == Counter(str((k, b)) for k in range(4) for b in range(3)) + Counter(
        [ticks()[at - 1]]
    )


def test_a_generator_over_a_restored_list_yields_the_restored_objects(
    shell: InteractiveShell, cell: RunCell
) -> None:
    source = (
        "%%checkpoint gen --every 1\n"
        "rows = [{'k': k} for k in range(5)]\n"
        "for row in resumable((r for r in rows), total=5):\n"
        "    row['seen'] = True\n"
        "    tick(row['k'])\n"
        "    check()\n"
    )
    arm(4, "KeyboardInterrupt")
    assert isinstance(cell(source).error, KeyboardInterrupt)
    assert cell(source).error is None
    assert shell.user_ns["rows"] == [{"k": k, "seen": True} for k in range(5)]


SLOW_ITEMS = """%%checkpoint slow
out = []
for x in resumable(range(6)):
    out.append(x)
    tick(x)
    if x == 2:
        interrupt_twice() if TWICE else interrupt_once()
    time.sleep(0.01)
"""


def _interrupt(times: int) -> Callable[[], None]:
    def send() -> None:
        if Path("interrupted").exists():
            return
        Path("interrupted").touch()
        for _ in range(times):
            signal.raise_signal(signal.SIGINT)

    return send


@pytest.mark.parametrize("twice", [False, True])
def test_a_first_ctrl_c_finishes_the_item_and_saves_it_a_second_stops_at_once(
    shell: InteractiveShell, cell: RunCell, twice: bool
) -> None:
    shell.user_ns.update(
        interrupt_once=_interrupt(1),
        interrupt_twice=_interrupt(2),
        TWICE=twice,
        time=__import__("time"),
    )
    stopped = cell(SLOW_ITEMS)
    assert isinstance(stopped.error, KeyboardInterrupt)
    assert shell.user_ns["out"] == [0, 1, 2]  # the item finished (or stopped after its append)
    if not twice:
        assert "finishing item 3" in stopped.note_text
    assert cell(SLOW_ITEMS).error is None
    assert shell.user_ns["out"] == list(range(6))
    if not twice:  # stopped at a boundary, saved: nothing runs twice
        assert counts() == Counter(str(x) for x in range(6))
    else:
        assert counts()["2"] == 2


# -- 8. one name for a loop ---------------------------------------------------------------------


def test_list_show_and_clear_name_a_loop_as_its_messages_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbresume.cli import main

    script = _write(tmp_path, "dl.py", REMOVED.replace('name="rm"', 'name="download"'))
    died = _run(script, "0", "c", "a,b,c,d")
    assert died.returncode == -signal.SIGKILL
    assert "'download'" in died.stderr
    store = str(tmp_path / "store")
    capsys.readouterr()
    assert main(["list", "--dir", store]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"^download\s", listed, re.MULTILINE), listed
    assert "loop:download" not in listed
    assert main(["show", "download", "--dir", store]) == 0
    assert main(["clear", "download", "--dir", store]) == 0
    assert "cleared loop 'download'" in capsys.readouterr().out
    assert _run(script, "0", "-", "a,b,c,d").returncode == 0
    assert ticks() == ["a", "b", "c", "a", "b", "c", "d"]


# -- real kernels: SIGKILL and the Stop button -------------------------------------------------

KERNEL_SETUP = """\
%load_ext nbresume
import time

def mark(i):
    with open("runs.txt", "a") as f:
        f.write(f"{i}\\n")
"""

KERNEL_MODELS = """\
%%checkpoint forest
models = [[] for _ in range(12)]
for k, m in resumable(enumerate(models)):
    mark(k)
    time.sleep(0.1)
    m.append(k)
fitted = sum(len(m) for m in models)
"""


@pytest.mark.kernel
def test_sigkill_mid_loop_keeps_in_place_work_on_the_items(kernels: KernelPool) -> None:
    kernel = kernels.start()
    runs = kernel.workdir / "runs.txt"
    kernel.run(KERNEL_SETUP)
    kernel.submit(KERNEL_MODELS)
    assert wait_until(lambda: 6 in read_runs(runs), 60), "item 6 never started"
    kernel.kill()
    kernel.restart()
    kernel.run(KERNEL_SETUP)
    kernel.run(KERNEL_MODELS)
    assert kernel.eval("models") == repr([[k] for k in range(12)])
    assert kernel.eval("fitted") == "12"
    done = read_runs(runs)
    assert sorted(set(done)) == list(range(12))
    assert max(Counter(done).values()) <= 2, done


def _past_the_abort(kernel: Any) -> None:
    """ipykernel 7 aborts requests that reach it just after an error, before its "stop aborting"
    message does (a race of its shell channel thread): wait until a request runs again."""
    assert wait_until(lambda: kernel.execute("pass")[0]["status"] == "ok", 10, interval=0.1)


KERNEL_APPENDS = """\
%%checkpoint appends
out = []
for i in resumable(range(8)):
    out.append(i)
    mark(i)
    time.sleep(0.4)
"""


@pytest.mark.kernel
def test_the_stop_button_during_a_sleep_after_the_append_repeats_nothing(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    runs = kernel.workdir / "runs.txt"
    kernel.run(KERNEL_SETUP)
    request = kernel.submit(KERNEL_APPENDS)
    assert wait_until(lambda: 3 in read_runs(runs), 60), "item 3 never started"
    kernel.km.interrupt_kernel()  # item 3 appended and sleeps: it finishes, is saved, then stops
    assert kernel.wait_reply(request)["ename"] == "KeyboardInterrupt"
    _past_the_abort(kernel)
    stopped = kernel.eval("out")
    kernel.run(KERNEL_APPENDS)
    assert kernel.eval("out") == repr(list(range(8)))
    assert read_runs(runs) == list(range(8)), f"stopped with out={stopped}"


KERNEL_EPOCHS = """\
%%checkpoint epochs
history = []
for epoch in resumable(range(3)):
    loss = 0
    for b in resumable(range(5)):
        mark(epoch * 5 + b)
        time.sleep(0.1)
        loss += b
    history.append(loss)
"""


@pytest.mark.kernel
def test_sigkill_in_nested_loops_resumes_with_the_epoch_state_intact(kernels: KernelPool) -> None:
    kernel = kernels.start()
    runs = kernel.workdir / "runs.txt"
    kernel.run(KERNEL_SETUP)
    kernel.submit(KERNEL_EPOCHS)
    assert wait_until(lambda: 8 in read_runs(runs), 60), "item 8 never started"
    kernel.kill()
    before = read_runs(runs)
    kernel.restart()
    kernel.run(KERNEL_SETUP)
    kernel.run(KERNEL_EPOCHS)
    assert kernel.eval("history") == repr([10, 10, 10])
    after = read_runs(runs)
    assert sorted(set(after)) == list(range(15))
    redone = after[len(before) :]
    assert redone[0] >= before[-1] - 2, (before, redone)  # about one item lost, not the epoch


def test_a_loop_with_a_long_body_is_a_for_statement_not_a_comprehension(
    shell: InteractiveShell, cell: RunCell
) -> None:
    """A body past 255 instructions puts EXTENDED_ARG between GET_ITER and FOR_ITER."""
    body = "".join(f"    v{i} = x + {i}\n" for i in range(120))
    run = cell("%%checkpoint long\nfor x in resumable(range(3)):\n" + body + "    tick(x)\n")
    assert run.error is None, run.error
    assert ticks() == ["0", "1", "2"]
    assert "plain" not in run.note_text


def test_two_notebooks_with_the_same_loop_line_do_not_share_progress(
    shell: InteractiveShell, cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = "for x in resumable(range(5)):\n    tick(x)\n    check()\n"
    monkeypatch.setenv("JPY_SESSION_NAME", "a.ipynb")
    arm(3)
    assert isinstance(cell(loop).error, Boom)  # a.ipynb: 0, 1 done
    monkeypatch.setenv("JPY_SESSION_NAME", "b.ipynb")
    assert cell(loop).error is None  # b.ipynb: all five
    monkeypatch.setenv("JPY_SESSION_NAME", "a.ipynb")
    assert cell(loop).error is None  # a.ipynb: from 2
    assert ticks() == ["0", "1", "2", "0", "1", "2", "3", "4", "2", "3", "4"]


TWO_LOOPS = """%%checkpoint two --every 1
a = []
for x in resumable(range(3)):
    a.append(x)
    tick(("a", x))
    check()
s = sum(a)
print("sum", s)
b = []
for y in resumable(range(3)):
    b.append(y + s)
    print("b", y + s)
    tick(("b", y))
    check()
"""


@pytest.mark.parametrize("at", [2, 4, 6])
def test_code_between_two_loops_gives_the_uninterrupted_values_and_record(
    shell: InteractiveShell, cell: RunCell, at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBRESUME_DIR", str(Path("reference").absolute()))
    reference = cell(TWO_LOOPS)
    monkeypatch.setenv("NBRESUME_DIR", str(Path("store").absolute()))
    Path("runs.txt").unlink()
    arm(at, "KeyboardInterrupt")
    assert isinstance(cell(TWO_LOOPS).error, KeyboardInterrupt)
    assert cell(TWO_LOOPS).error is None
    assert (shell.user_ns["s"], shell.user_ns["b"]) == (3, [3, 4, 5])
    hit = cell(TWO_LOOPS)
    assert "restored" in hit.note_text
    assert hit.outputs == reference.outputs


@pytest.mark.parametrize(
    "code",
    [
        "n = 0\nwhile n < 2:\n    n += 1\n    for x in resumable(range(2)):\n        tick(x)\n",
        "it = resumable(range(2))\nfor x in it:\n    tick(x)\n",
    ],
    ids=["under-while", "assigned-first"],
)
def test_other_shapes_in_a_cell_run_plain_with_a_note(cell: RunCell, code: str) -> None:
    run = cell("%%checkpoint shapes --exclude it\n" + code)
    assert run.error is None
    assert "will not resume mid-way" in run.note_text
    assert ticks()[:2] == ["0", "1"]


def test_a_set_in_a_cell_resumes_by_value(shell: InteractiveShell, cell: RunCell) -> None:
    source = (
        "%%checkpoint jobs --every 1\n"
        "done = []\n"
        "for job in resumable({frozenset([i]) for i in range(6)}):\n"
        "    done.append(min(job))\n"
        "    tick(min(job))\n"
        "    check()\n"
    )
    arm(4, "KeyboardInterrupt")
    assert isinstance(cell(source).error, KeyboardInterrupt)
    assert cell(source).error is None
    assert sorted(shell.user_ns["done"]) == list(range(6))
    assert sum(counts().values()) == 7
