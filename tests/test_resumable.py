"""``resumable`` loops: skipping done items, keys, batches, progress, interrupts inside a checkpoint.

Loop bodies call ``tick(item)`` (logs an execution to ./runs.txt) and ``check()`` (raises once, at
the N-th logged execution, when ``arm(N)`` asked for it): both are functions whose fingerprints
never change, so a checkpoint cell keeps its key between the interrupted run and the re-run.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, isolated, tick
from nbresume import CheckpointError, resumable

RunCell = Callable[..., CellRun]
FAIL_FILE = "fail-at"


class Boom(Exception):
    """The error a loop body raises on purpose."""


def arm(n: int, exc: str = "Boom") -> None:
    """Make `check` raise ``exc`` (Boom or KeyboardInterrupt) at the ``n``-th execution (1-based)."""
    Path(FAIL_FILE).write_text(f"{n} {exc}")


def ticks() -> list[str]:
    """Every logged execution, in order."""
    try:
        return Path("runs.txt").read_text().splitlines()
    except FileNotFoundError:
        return []


def check() -> None:
    """Raise once if armed and the armed execution has just been logged."""
    path = Path(FAIL_FILE)
    if not path.exists():
        return
    n, exc = path.read_text().split()
    if len(ticks()) == int(n):
        path.unlink()
        raise KeyboardInterrupt if exc == "KeyboardInterrupt" else Boom(f"execution {n}")


def counts() -> Counter[str]:
    return Counter(ticks())


PROGRESS_FILE = "progress.jsonl"


def record_progress(completed: int, total: int | None, skipped: int) -> None:
    """An ``on_progress`` callback that keeps its calls in a file (its fingerprint never changes)."""
    with open(PROGRESS_FILE, "a") as f:
        f.write(json.dumps([completed, total, skipped]) + "\n")


def progress_calls() -> list[tuple[Any, ...]]:
    return [tuple(json.loads(line)) for line in Path(PROGRESS_FILE).read_text().splitlines()]


HELPERS = {"tick": tick, "check": check, "record_progress": record_progress}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from isolated(tmp_path, monkeypatch)


# -- running the same loop in plain Python or in a checkpoint cell ----------------------------

Runner = Callable[[str], BaseException | None]


@pytest.fixture(params=["python", "checkpoint"])
def run_loop(request: pytest.FixtureRequest) -> Runner:
    """``run_loop(code)`` -> the exception it raised: the code runs in one namespace that lives on
    between runs (a kernel's, without IPython), or as the body of the same ``%%checkpoint`` cell.
    """
    if request.param == "python":
        ns: dict[str, Any] = {"resumable": resumable, **HELPERS}

        def run_python(code: str) -> BaseException | None:
            try:
                exec(compile(code, "<cell>", "exec"), ns)
            except BaseException as exc:
                return exc
            return None

        return run_python
    shell: InteractiveShell = request.getfixturevalue("shell")
    run_cell: RunCell = request.getfixturevalue("run_cell")
    shell.user_ns.update(HELPERS)

    def run_checkpoint(code: str) -> BaseException | None:
        # NB. a snapshot at every boundary: an error loses exactly the item in flight (by
        # default the 2% budget spaces the snapshots of instant items further apart)
        return run_cell("%%checkpoint work --every 1\n" + code).error

    return run_checkpoint


LOOP = """
for item in resumable({items}, name="work"{options}):
    tick(item)
    check()
"""


def loop(items: str, options: str = "") -> str:
    return LOOP.format(items=items, options=options)


@pytest.mark.parametrize("k", [1, 2, 6, 30])
def test_a_loop_that_raised_at_item_k_runs_only_from_k_on_a_rerun(run_loop: Runner, k: int) -> None:
    code = loop("list(range(30))")
    arm(k)
    assert isinstance(run_loop(code), Boom)
    assert run_loop(code) is None
    done_before = [str(i) for i in range(k)]
    assert ticks() == done_before + [str(i) for i in range(k - 1, 30)]


def test_a_completed_loop_starts_fresh_next_time(run_loop: Runner) -> None:
    code = "for item in resumable(range(5), name='fresh'):\n    tick(item)\n"
    assert run_loop(code) is None
    assert run_loop(code.replace("range(5)", "range(0, 5)")) is None  # a new cell, same loop name
    assert counts() == Counter({str(i): 2 for i in range(5)})


def test_break_leaves_the_item_it_broke_after_undone() -> None:
    ns: dict[str, Any] = {"resumable": resumable, "tick": tick}
    code = "for item in resumable(range(10), name='brk'):\n    tick(item)\n    if item == {}:\n"
    exec(code.format(3) + "        break\n", ns)
    exec(code.format(-1) + "        break\n", ns)
    assert ticks() == ["0", "1", "2", "3", "3", "4", "5", "6", "7", "8", "9"]


def test_an_earlier_failed_loop_does_not_capture_a_later_unrelated_one() -> None:
    """A loop abandoned by an exception must not become the parent of the next loop."""
    ns: dict[str, Any] = {"resumable": resumable, "tick": tick, "check": check}
    arm(2)
    with pytest.raises(Boom):
        exec(loop("['a1', 'a2', 'a3']").replace('"work"', '"first"'), ns)
    arm(4)
    with pytest.raises(Boom):
        exec(loop("['b1', 'b2', 'b3']").replace('"work"', '"second"'), ns)
    exec(loop("['b1', 'b2', 'b3']").replace('"work"', '"second"'), ns)
    assert ticks() == ["a1", "a2", "b1", "b2", "b2", "b3"]


def test_a_generator_with_total_resumes_and_reports_its_total(run_loop: Runner) -> None:
    code = loop("(n * n for n in range(8))", ", total=8")
    arm(4)
    assert isinstance(run_loop(code), Boom)
    assert run_loop(code) is None
    assert ticks() == ["0", "1", "4", "9", "9", "16", "25", "36", "49"]
    it = resumable((n for n in range(3)), total=3, name="sized")
    assert it.total == 3
    assert list(it) == [0, 1, 2]


def test_repeated_keys_are_counted_by_occurrence(run_loop: Runner) -> None:
    code = loop("[1, 1, 2]")
    arm(2)  # the second 1
    assert isinstance(run_loop(code), Boom)
    assert run_loop(code) is None
    assert ticks() == ["1", "1", "1", "2"]


def test_repeated_keys_resume_after_the_occurrences_that_were_done(run_loop: Runner) -> None:
    code = loop("['a', 'b', 'a', 'b', 'a', 'c']")
    arm(5)  # the third 'a'
    assert isinstance(run_loop(code), Boom)
    assert run_loop(code) is None
    assert ticks() == ["a", "b", "a", "b", "a", "a", "c"]


KEYED = """
for item in resumable({items}, key=lambda d: d["id"], name="keyed"):
    tick(item["id"])
    check()
"""


def test_a_key_function_identifies_items(run_loop: Runner) -> None:
    items = "[{'id': 'x', 'v': [1]}, {'id': 'y', 'v': [2]}, {'id': 'z', 'v': [3]}]"
    arm(2)
    assert isinstance(run_loop(KEYED.format(items=items)), Boom)
    assert run_loop(KEYED.format(items=items)) is None
    assert ticks() == ["x", "y", "y", "z"]


def test_a_key_function_skips_done_items_wherever_they_are_now() -> None:
    ns: dict[str, Any] = {"resumable": resumable, "tick": tick, "check": check}
    arm(3)
    with pytest.raises(Boom):
        exec(KEYED.format(items="[{'id': c} for c in 'abcde']"), ns)
    exec(KEYED.format(items="[{'id': c} for c in 'edcba']"), ns)
    assert ticks() == ["a", "b", "c", "e", "d", "c"]


def test_a_key_function_that_raises_is_a_checkpoint_error_naming_the_item() -> None:
    def key(item: dict[str, Any]) -> Any:
        return item["id"]

    items = [{"id": 1}, {"id": 2}, {"name": "bad"}]
    with pytest.raises(CheckpointError, match=r"item 2 .*'bad'") as info:
        for _ in resumable(items, key=key, name="badkey"):
            pass
    assert isinstance(info.value.__cause__, KeyError)


def test_an_unhashable_key_is_a_checkpoint_error() -> None:
    with pytest.raises(CheckpointError, match=r"hashable"):
        for _ in resumable([1, 2], key=lambda x: [x], name="unhashable"):
            pass


@pytest.mark.parametrize("items", [5, None, 3.5, object()])
def test_a_non_iterable_is_a_checkpoint_error(items: Any) -> None:
    with pytest.raises(CheckpointError, match="iterable"):
        resumable(items)


@pytest.mark.parametrize("every", [0, -1, "x", "0s", "-5s", True, "", "10 items"])
def test_a_bad_every_is_a_checkpoint_error(every: Any) -> None:
    with pytest.raises(CheckpointError, match=r"every="):
        resumable([1, 2], every=every)


@pytest.mark.parametrize("every", [1, 5, "5", "30s", "0.5s", 2.5])
def test_good_every_values_are_accepted(every: Any) -> None:
    seen = []
    for x in resumable([1, 2, 3], every=every, name="ok"):
        seen.append(x)
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("batch", [0, -2, 1.5, "3", True])
def test_a_bad_batch_is_a_checkpoint_error(batch: Any) -> None:
    with pytest.raises(CheckpointError, match=r"batch="):
        resumable([1, 2], batch=batch)


def test_a_resumable_can_be_iterated_once_only() -> None:
    it = resumable([1, 2], name="once")
    assert list(it) == [1, 2]
    with pytest.raises(CheckpointError):
        iter(it)


# -- batches ----------------------------------------------------------------------------------


def test_batch_yields_lists_of_n_items_and_a_short_last_one() -> None:
    it = resumable(range(7), batch=3, name="batches")
    assert it.total == 3
    assert list(it) == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_batch_is_done_as_a_whole(run_loop: Runner) -> None:
    code = """
for chunk in resumable(list(range(7)), batch=3, name="chunks"):
    for item in chunk:
        tick(item)
        check()
"""
    arm(5)  # item 4, in the middle of the second batch
    assert isinstance(run_loop(code), Boom)
    assert run_loop(code) is None
    assert ticks() == ["0", "1", "2", "3", "4", "3", "4", "5", "6"]


# -- progress ---------------------------------------------------------------------------------


def test_on_progress_receives_completed_total_and_skipped() -> None:
    calls: list[tuple[Any, ...]] = []
    for _ in resumable(range(10), name="progress", on_progress=lambda *a: calls.append(a)):
        pass
    assert calls
    assert calls[-1] == (10, 10, 0)
    assert all(len(call) == 3 and call[1] == 10 and call[2] == 0 for call in calls)
    completed = [call[0] for call in calls]
    assert completed == sorted(completed)


def test_on_progress_counts_skipped_items_of_a_resumed_loop(run_loop: Runner) -> None:
    code = loop("list(range(6))", ", on_progress=record_progress")
    arm(4)
    assert isinstance(run_loop(code), Boom)
    Path(PROGRESS_FILE).unlink()
    assert run_loop(code) is None
    assert progress_calls()[-1] == (6, 6, 3)


def test_a_generator_without_total_reports_none() -> None:
    calls: list[tuple[Any, ...]] = []
    for _ in resumable(
        (i for i in range(3)), name="unsized", on_progress=lambda *a: calls.append(a)
    ):
        pass
    assert calls[-1] == (3, None, 0)


# -- scripts ----------------------------------------------------------------------------------

SCRIPT = """
import sys
from nbresume import resumable
fail = int(sys.argv[1])
for item in resumable(range(20), name="etl"):
    with open("runs.txt", "a") as f:
        f.write(f"{item}\\n")
    if item == fail:
        raise ValueError(item)
"""


def _script(tmp_path: Path, fail: int) -> subprocess.CompletedProcess[str]:
    (tmp_path / "etl.py").write_text(SCRIPT)
    env = {
        **os.environ,
        "NBRESUME_KEY": "nbresume-test-key",
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
    }
    env.pop("NBRESUME_DIR", None)
    return subprocess.run(
        [sys.executable, "etl.py", str(fail)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_script_that_died_at_item_k_resumes_there(tmp_path: Path) -> None:
    assert _script(tmp_path, 12).returncode == 1
    assert _script(tmp_path, -1).returncode == 0
    assert ticks() == [str(i) for i in range(13)] + [str(i) for i in range(12, 20)]
    assert _script(tmp_path, -1).returncode == 0  # completed: the next run starts fresh
    assert len(ticks()) == 41


def test_a_script_that_dies_in_a_loop_prints_only_its_own_traceback(tmp_path: Path) -> None:
    died = _script(tmp_path, 5)
    assert died.returncode == 1
    assert died.stderr.rstrip().endswith("ValueError: 5"), died.stderr
    assert "Exception ignored" not in died.stderr


# -- interrupts inside a checkpoint cell ------------------------------------------------------

SWEEP = """%%checkpoint sweep --every 1
results = []
for lr in resumable(GRID):
    tick(lr)
    check()
    print(f"lr={lr}")
    results.append(lr * 2)
best = max(results)
print("best", best)
"""


def _use_store(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("NBRESUME_DIR", str(folder))
    Path("runs.txt").unlink(missing_ok=True)


def _uninterrupted(
    shell: InteractiveShell,
    run_cell: RunCell,
    monkeypatch: pytest.MonkeyPatch,
    cell: str,
    names: tuple[str, ...],
) -> tuple[CellRun, dict[str, Any]]:
    """Run ``cell`` once, in a store of its own; returns the run and the values of ``names``."""
    _use_store(monkeypatch, Path("reference-store").absolute())
    reference = run_cell(cell)
    assert reference.error is None
    values = {n: shell.user_ns.pop(n) for n in names}
    _use_store(monkeypatch, Path("store").absolute())
    return reference, values


@pytest.mark.parametrize("at", [1, 3, 6])
def test_keyboard_interrupt_mid_loop_then_rerun_resumes_with_results_intact(
    shell: InteractiveShell,
    run_cell: RunCell,
    monkeypatch: pytest.MonkeyPatch,
    at: int,
) -> None:
    shell.user_ns.update(GRID=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], check=check)
    reference, expected = _uninterrupted(shell, run_cell, monkeypatch, SWEEP, ("results", "best"))

    arm(at, "KeyboardInterrupt")
    interrupted = run_cell(SWEEP)
    assert isinstance(interrupted.error, KeyboardInterrupt)
    assert shell.user_ns["results"] == expected["results"][: at - 1]
    del shell.user_ns["results"]  # the snapshot must bring it back
    resumed = run_cell(SWEEP)

    assert resumed.error is None
    assert {n: shell.user_ns[n] for n in expected} == expected
    assert resumed.outputs == reference.outputs
    grid = [str(lr) for lr in shell.user_ns["GRID"]]
    assert counts() == Counter(grid) + Counter([grid[at - 1]])


def test_a_resumed_cell_is_then_cached_like_any_other(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    shell.user_ns.update(GRID=[1, 2, 3], check=check)
    arm(2, "KeyboardInterrupt")
    run_cell(SWEEP)
    run_cell(SWEEP)
    n = len(ticks())
    del shell.user_ns["results"], shell.user_ns["best"]
    hit = run_cell(SWEEP)
    assert hit.error is None
    assert len(ticks()) == n
    assert shell.user_ns["results"] == [2, 4, 6]
    assert shell.user_ns["best"] == 6


EPOCHS = """%%checkpoint epochs --every 1
history = []
for epoch in resumable(range(3)):
    for batch in resumable(range(4)):
        tick((epoch, batch))
        check()
        history.append((epoch, batch))
    print("epoch", epoch, len(history))
summary = {"steps": len(history), "last": history[-1]}
"""


@pytest.mark.parametrize(("epoch", "batch"), [(0, 0), (0, 3), (1, 0), (1, 2), (2, 3)])
def test_nested_loops_interrupted_at_epoch_and_batch_resume_there(
    shell: InteractiveShell,
    run_cell: RunCell,
    monkeypatch: pytest.MonkeyPatch,
    epoch: int,
    batch: int,
) -> None:
    shell.user_ns["check"] = check
    reference, expected = _uninterrupted(
        shell, run_cell, monkeypatch, EPOCHS, ("history", "summary", "epoch", "batch")
    )

    arm(epoch * 4 + batch + 1, "KeyboardInterrupt")
    assert isinstance(run_cell(EPOCHS).error, KeyboardInterrupt)
    del shell.user_ns["history"]
    resumed = run_cell(EPOCHS)

    assert resumed.error is None
    assert {n: shell.user_ns[n] for n in expected} == expected
    assert resumed.outputs == reference.outputs
    every = Counter(str((e, b)) for e in range(3) for b in range(4))
    assert counts() == every + Counter([str((epoch, batch))])


def test_an_interrupted_cell_leaves_no_sigterm_handler_behind(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    shell.user_ns.update(GRID=[1, 2, 3], check=check)
    arm(2, "KeyboardInterrupt")
    assert isinstance(run_cell(SWEEP).error, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_error_mid_loop_also_saves_progress(shell: InteractiveShell, run_cell: RunCell) -> None:
    shell.user_ns.update(GRID=[1, 2, 3, 4], check=check)
    arm(3)
    assert isinstance(run_cell(SWEEP).error, Boom)
    assert run_cell(SWEEP).error is None
    assert ticks() == ["1", "2", "3", "3", "4"]
    assert shell.user_ns["results"] == [2, 4, 6, 8]


ANYWHERE = """%%checkpoint anywhere{options}
results = []
for x in resumable(ITEMS):
    tick(x)
    check()
    print(x)
    results.append(x * 10 + 1)
total = sum(results)
"""

_examples = itertools.count()


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    items=st.lists(st.integers(0, 5), min_size=1, max_size=12),
    data=st.data(),
    every=st.sampled_from(["", " --every 1", " --every 3"]),
)
def test_interrupt_anywhere_then_rerun_equals_an_uninterrupted_run(
    shell: InteractiveShell,
    run_cell: RunCell,
    monkeypatch: pytest.MonkeyPatch,
    *,
    items: list[int],
    data: st.DataObject,
    every: str,
) -> None:
    position = data.draw(st.integers(0, len(items) - 1), label="interrupted at")
    _use_store(monkeypatch, Path(f"store-{next(_examples)}").absolute())
    Path(FAIL_FILE).unlink(missing_ok=True)
    shell.user_ns.update(ITEMS=items, check=check)
    for name in ("results", "total", "x"):
        shell.user_ns.pop(name, None)
    cell = ANYWHERE.format(options=every)

    arm(position + 1, "KeyboardInterrupt")
    assert isinstance(run_cell(cell).error, KeyboardInterrupt)
    shell.user_ns.pop("results")
    resumed = run_cell(cell)

    assert resumed.error is None
    assert shell.user_ns["results"] == [x * 10 + 1 for x in items]
    assert shell.user_ns["total"] == sum(x * 10 + 1 for x in items)
    assert resumed.stdout == "".join(f"{x}\n" for x in items)
    once = Counter(str(x) for x in items)
    if every == " --every 1":  # a snapshot at every boundary: only the item in flight again
        assert counts() == once + Counter([str(items[position])])
    else:  # the items after the last boundary snapshot run again; none is lost
        assert counts() - once <= Counter(str(x) for x in items[: position + 1])
        assert counts()[str(items[position])] >= 2


def test_a_loop_in_a_checkpoint_cell_restores_a_snapshot_only_for_the_same_key(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    shell.user_ns.update(GRID=[1, 2, 3], check=check)
    arm(2, "KeyboardInterrupt")
    run_cell(SWEEP)
    shell.user_ns["GRID"] = [1, 2, 3, 4]  # another input: another phase version, from scratch
    assert run_cell(SWEEP).error is None
    assert ticks() == ["1", "2", "1", "2", "3", "4"]
