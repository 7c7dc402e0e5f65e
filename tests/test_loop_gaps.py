"""Third round of loop attacks (issue 14's neighbours): a changed source in the middle of the done
items, a `raise KeyboardInterrupt` the cell catches around a loop, `yield from resumable(...)` in
a generator consumed partly, and idioms testers try next.

Each case is exact, refused with a one-line CheckpointError, or plain with a note: never a wrong
value after a kill, an error or a Ctrl-C.
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, isolated, tick
from kernel_helpers import KernelPool, notes, own_outputs, read_runs, wait_until
from nbresume import resumable
from test_resumable import Boom, arm, check, counts, ticks

RunCell = Callable[..., CellRun]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from isolated(tmp_path, monkeypatch)


@pytest.fixture
def cell(shell: InteractiveShell, run_cell: RunCell) -> RunCell:
    shell.user_ns.update(check=check, tick=tick)
    return run_cell


# -- 1. items keyed by position: the whole done prefix is checked on resume -------------------


def _rows(names: str) -> list[dict[str, str]]:
    return [{"name": n} for n in names]


def _process(rows: Any, name: str) -> list[str]:
    seen = []
    for row in resumable(rows, name=name):
        tick(row["name"])
        check()
        seen.append(row["name"])
    return seen


def _gen(rows: list[dict[str, str]]) -> Iterator[dict[str, str]]:
    yield from rows


WRAPS: dict[str, Callable[[list[dict[str, str]]], Any]] = {
    "list": list,
    "tuple": tuple,
    "iterator": iter,
    "generator": _gen,
}


# after "abcdefgh" failed at f (a..e done): the new source and what must be processed
CHANGES = {
    # one row inserted and one removed before the resume position: the probe after the
    # position in flight sees the old items there
    "insert-and-remove": ("abXcefgh", "abXcefgh"),
    # a done row edited in place (same length, same items after it)
    "edited": ("abQdefgh", "abQdefgh"),
    # a done row removed and a row inserted at the resume position
    "remove-then-insert": ("acdeYfgh", "acdeYfgh"),
}


@pytest.mark.parametrize("kind", list(WRAPS))
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_in_the_middle_of_the_done_rows_starts_over_outside_cells(
    kind: str, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wrap = WRAPS[kind]
    arm(6)
    with pytest.raises(Boom):
        _process(wrap(_rows("abcdefgh")), f"rows-{kind}")
    new, expected = CHANGES[change]
    assert _process(wrap(_rows(new)), f"rows-{kind}") == list(expected)
    assert "changed since the interrupted run" in capsys.readouterr().err


@pytest.mark.parametrize("kind", list(WRAPS))
def test_a_row_inserted_at_the_resume_position_resumes_without_redoing_done_rows(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wrap = WRAPS[kind]
    arm(6)
    with pytest.raises(Boom):
        _process(wrap(_rows("abcdefgh")), f"at-{kind}")
    # a..e done and unchanged: the new row at the resume position is simply the next one
    assert _process(wrap(_rows("abcdeNfgh")), f"at-{kind}") == list("Nfgh")
    assert counts() == Counter("abcdef") + Counter("Nfgh")


@pytest.mark.parametrize("kind", list(WRAPS))
def test_rows_changed_in_place_by_the_body_are_not_a_change(kind: str) -> None:
    """The check prints an item before the body runs: filling a row is not a changed source."""

    def fill(rows: Any, name: str) -> list[str]:
        seen = []
        for row in resumable(rows, name=name):
            tick(row["name"])
            row["result"] = row["name"] * 2
            check()
            seen.append(row["name"])
        return seen

    arm(4)
    with pytest.raises(Boom):
        fill(WRAPS[kind](_rows("abcdef")), "f")
    assert fill(WRAPS[kind](_rows("abcdef")), "f") == list("def")


ROWS_CELL = """\
%%checkpoint rows --every 1
out = []
for row in resumable(load()):
    tick(row["name"])
    check()
    out.append(row["name"])
"""


@pytest.mark.parametrize("shape", ["list", "generator"])
def test_a_change_in_the_middle_of_the_done_rows_is_refused_in_a_cell(
    shell: InteractiveShell, cell: RunCell, tmp_path: Path, shape: str
) -> None:
    source = tmp_path / "rows.json"
    source.write_text('["a", "b", "c", "d", "e", "f"]')
    wrap = "[" if shape == "list" else "("
    close = "]" if shape == "list" else ")"
    cell(
        "import json\nfrom pathlib import Path\n"
        "def load():\n"
        f"    return {wrap}{{'name': n}} for n in json.loads(Path('rows.json').read_text()){close}\n"
    )
    arm(5)
    assert cell(ROWS_CELL).error is not None
    source.write_text('["a", "X", "b", "d", "e", "f"]')  # X inserted, c removed: e, f in place
    run = cell(ROWS_CELL)
    assert run.error is not None, shell.user_ns["out"]
    assert "--force" in str(run.error)
    assert "\n" not in str(run.error)
    forced = cell(ROWS_CELL.replace("--every 1", "--every 1 --force"))
    assert forced.error is None
    assert shell.user_ns["out"] == list("aXbdef")


@pytest.mark.parametrize("shape", ["list", "generator"])
def test_unchanged_rows_resume_in_a_cell(
    shell: InteractiveShell, cell: RunCell, tmp_path: Path, shape: str
) -> None:
    source = tmp_path / "rows.json"
    source.write_text('["a", "b", "c", "d", "e", "f"]')
    wrap = "[" if shape == "list" else "("
    close = "]" if shape == "list" else ")"
    cell(
        "import json\nfrom pathlib import Path\n"
        "def load():\n"
        f"    return {wrap}{{'name': n}} for n in json.loads(Path('rows.json').read_text()){close}\n"
    )
    arm(5)
    assert cell(ROWS_CELL).error is not None
    assert cell(ROWS_CELL).error is None
    assert shell.user_ns["out"] == list("abcdef")
    assert counts() == Counter("abcdef") + Counter("e")


# -- 2. a KeyboardInterrupt raised by the cell's own code and caught around the loop ----------

RAISED = """\
%%checkpoint raised --every 1
out = []
try:
    for x in resumable(range(6)):
        tick(x)
        if x == 3 and not Path("raised").exists():
            Path("raised").touch()
            raise {exc}
        out.append(x)
except {exc}:
    pass
"""


@pytest.mark.parametrize("exc", ["KeyboardInterrupt", "ValueError", "SystemExit"])
def test_a_raise_in_the_cell_caught_around_the_loop_does_not_save_its_cell_as_done(
    shell: InteractiveShell, cell: RunCell, exc: str
) -> None:
    shell.user_ns["Path"] = Path
    source = RAISED.format(exc=exc)
    first = cell(source)
    assert first.error is None
    assert shell.user_ns["out"] == [0, 1, 2]
    assert "not saved as done" in first.note_text, first.note_text
    second = cell(source)
    assert second.error is None
    assert shell.user_ns["out"] == list(range(6))
    assert counts() == Counter(str(x) for x in range(6)) + Counter(["3"])
    assert "restored" in cell(source).note_text


def test_a_raise_in_a_nested_with_block_caught_around_the_loop_is_not_done(
    shell: InteractiveShell, cell: RunCell
) -> None:
    shell.user_ns["Path"] = Path
    source = (
        "%%checkpoint nested-raise --every 1\n"
        "import contextlib\n"
        "out = []\n"
        "try:\n"
        "    for x in resumable(range(5)):\n"
        "        with contextlib.nullcontext():\n"
        "            if x == 2 and not Path('raised').exists():\n"
        "                Path('raised').touch()\n"
        "                raise KeyboardInterrupt\n"
        "        out.append(x)\n"
        "except KeyboardInterrupt:\n"
        "    pass\n"
    )
    first = cell(source)
    assert "not saved as done" in first.note_text, first.note_text
    assert cell(source).error is None
    assert shell.user_ns["out"] == list(range(5))


@pytest.mark.parametrize("kind", ["list", "generator"])
def test_batches_of_rows_changed_in_the_middle_start_over_outside_cells(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(rows: Any) -> list[str]:
        seen = []
        for chunk in resumable(rows, name="chunks", batch=2):
            tick(chunk[0]["name"])
            check()
            seen.extend(row["name"] for row in chunk)
        return seen

    wrap = WRAPS[kind]
    arm(3)
    with pytest.raises(Boom):
        run(wrap(_rows("abcdefgh")))  # a-d done
    assert run(wrap(_rows("aXcdefgh"))) == list("aXcdefgh")
    assert "changed since the interrupted run" in capsys.readouterr().err
    arm(len(ticks()) + 3)
    with pytest.raises(Boom):
        run(wrap(_rows("abcdefgh")))
    assert run(wrap(_rows("abcdefgh"))) == list("efgh")


def test_fewer_rows_than_were_done_start_over_outside_cells(
    capsys: pytest.CaptureFixture[str],
) -> None:
    arm(6)
    with pytest.raises(Boom):
        _process(_gen(_rows("abcdefgh")), "fewer")
    assert _process(_gen(_rows("abc")), "fewer") == list("abc")
    assert "changed since the interrupted run" in capsys.readouterr().err


def test_a_generator_changed_after_more_rows_than_are_kept_is_an_error_then_starts_over(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbresume import CheckpointError, _loopruns

    monkeypatch.setattr(_loopruns._Replay, "LIMIT", 3)
    arm(6)
    with pytest.raises(Boom):
        _process(_gen(_rows("abcdefgh")), "many")
    with pytest.raises(CheckpointError, match="run the loop again to start over"):
        _process(_gen(_rows("abXdefgh")), "many")
    assert _process(_gen(_rows("abXdefgh")), "many") == list("abXdefgh")


RAISE_AT_2 = (
    "        if x == 2 and not Path('raised').exists():\n"
    "            Path('raised').touch()\n"
    "            raise KeyboardInterrupt\n"
)

# loops that run plain in a cell, left by an exception the cell catches
PLAIN_LEFT = {
    "assigned-first": (
        "it = resumable(range(5))\ntry:\n    for x in it:\n        tick(x)\n"
        + RAISE_AT_2
        + "        out.append(x)\nexcept KeyboardInterrupt:\n    pass\n"
    ),
    "under-a-plain-for": (
        "try:\n    for e in range(1):\n      for x in resumable(range(5)):\n        tick(x)\n"
        + RAISE_AT_2
        + "        out.append(x)\nexcept KeyboardInterrupt:\n    pass\n"
    ),
    "in-a-helper": (
        "def helper():\n    try:\n      for x in resumable(range(5)):\n        tick(x)\n"
        + RAISE_AT_2
        + "        out.append(x)\n    except KeyboardInterrupt:\n        pass\nhelper()\n"
    ),
}


@pytest.mark.parametrize("shape", list(PLAIN_LEFT))
def test_a_plain_loop_left_by_a_caught_exception_does_not_save_its_cell_as_done(
    shell: InteractiveShell, cell: RunCell, shape: str
) -> None:
    shell.user_ns["Path"] = Path
    source = f"%%checkpoint plain-left --every 1 --exclude it\nout = []\n{PLAIN_LEFT[shape]}"
    first = cell(source)
    assert first.error is None
    assert shell.user_ns["out"] == [0, 1]
    assert "not saved as done" in first.note_text, first.note_text
    assert "run the loop again" in first.note_text
    second = cell(source)
    assert second.error is None
    assert shell.user_ns["out"] == list(range(5))
    third = cell(source)
    assert "restored" in third.note_text
    assert shell.user_ns["out"] == list(range(5))


@pytest.mark.parametrize(
    "loop",
    [
        "for x in tqdm(resumable(range(5))):",
        "for x in map(int, resumable(range(5))):",
        "it = resumable(range(5))\nfor x in it:",
        "for e in range(1):\n for x in resumable(range(5)):",
    ],
    ids=["tqdm", "map", "assigned", "under-plain"],
)
def test_a_break_out_of_a_plain_loop_is_on_purpose(
    shell: InteractiveShell, cell: RunCell, loop: str
) -> None:
    from tqdm.auto import tqdm

    shell.user_ns["tqdm"] = tqdm
    indent = " " * (len(loop.splitlines()[-1]) - len(loop.splitlines()[-1].lstrip()) + 4)
    source = (
        "%%checkpoint plain-break --exclude it\nout = []\n"
        f"{loop}\n{indent}if x == 2:\n{indent}    break\n{indent}out.append(x)\n"
    )
    first = cell(source)
    assert first.error is None
    assert "not saved" not in first.note_text, first.note_text
    assert "restored" in cell(source).note_text
    assert shell.user_ns["out"] == [0, 1]


def _raising_wrapper(items: Any) -> Iterator[Any]:
    for x in items:
        if x == 2 and not Path("raised").exists():
            Path("raised").touch()
            raise KeyError(x)
        yield x


def _taking_wrapper(items: Any) -> Iterator[Any]:
    for x in items:
        if x == 2:
            break  # on purpose: this generator ends here
        yield x


@pytest.mark.parametrize(
    ("wrapper", "caught"),
    [(_raising_wrapper, True), (_taking_wrapper, False)],
    ids=["raises-inside", "breaks-inside"],
)
def test_a_wrapping_generator_that_raises_or_breaks_is_told_apart(
    shell: InteractiveShell, cell: RunCell, wrapper: Any, caught: bool
) -> None:
    shell.user_ns["wrap"] = wrapper
    source = (
        "%%checkpoint wrapped\nout = []\ntry:\n"
        "    for x in wrap(resumable(range(5))):\n        out.append(x)\n"
        "except KeyError:\n    pass\n"
    )
    first = cell(source)
    assert first.error is None
    assert shell.user_ns["out"] == [0, 1]
    assert ("not saved as done" in first.note_text) is caught, first.note_text
    second = cell(source)
    assert ("restored" in second.note_text) is not caught
    assert shell.user_ns["out"] == ([0, 1, 2, 3, 4] if caught else [0, 1])


def test_tqdm_auto_around_resumable_runs_outside_cells() -> None:
    """`tqdm.auto` in a script is tqdm's asyncio class: it calls `iter()` once in `__init__`
    and again to loop; an iterator that never ran is not a second loop."""
    from tqdm.auto import tqdm

    with open(Path("bar.txt"), "w") as bar:
        assert list(tqdm(resumable(range(4), name="bar"), file=bar)) == [0, 1, 2, 3]
    it = resumable([1, 2], name="twice")
    assert list(it) == [1, 2]
    with pytest.raises(Exception, match="already iterated"):
        iter(it)


# -- 3. `yield from resumable(...)` in a generator outside cells ---------------------------------


def _delegating(items: Any, name: str) -> Iterator[Any]:
    yield from resumable(items, name=name, every=1)


def _looping(items: Any, name: str) -> Iterator[Any]:
    for x in resumable(items, name=name, every=1):  # noqa: UP028 (the for form is the case)
        yield x


GENERATORS = {"yield-from": _delegating, "for-yield": _looping}


@pytest.mark.parametrize("make", list(GENERATORS))
@pytest.mark.parametrize("items", ["range", "generator", "dicts"])
@pytest.mark.parametrize("how", ["close", "del", "break"])
def test_a_generator_consumed_partly_then_dropped_keeps_only_the_items_it_asked_past(
    make: str, items: str, how: str
) -> None:
    def source() -> Any:
        if items == "range":
            return range(6)
        if items == "generator":
            return (x for x in range(6))
        return [{"i": x} for x in range(6)]

    def value(x: Any) -> int:
        return x["i"] if isinstance(x, dict) else int(x)

    gen = GENERATORS[make](source(), f"gen-{make}-{items}-{how}")
    if how == "break":
        for x in gen:
            if value(x) == 2:
                break  # item 2 in flight: 0 and 1 are done
    else:
        assert [value(next(gen)) for _ in range(3)] == [0, 1, 2]  # 2 in flight
        if how == "close":
            gen.close()
        else:
            del gen
            gc.collect()
    again = [value(x) for x in GENERATORS[make](source(), f"gen-{make}-{items}-{how}")]
    assert again == [2, 3, 4, 5]
    # a loop that completes forgets its progress: the next run starts fresh
    fresh = [value(x) for x in GENERATORS[make](source(), f"gen-{make}-{items}-{how}")]
    assert fresh == list(range(6))


@pytest.mark.parametrize("make", list(GENERATORS))
def test_a_generator_never_started_or_only_created_marks_nothing_done(make: str) -> None:
    gen = GENERATORS[make](range(4), f"unstarted-{make}")
    del gen
    gc.collect()
    first = GENERATORS[make](range(4), f"unstarted-{make}")
    assert next(first) == 0
    first.close()  # item 0 was in flight: not done
    assert list(GENERATORS[make](range(4), f"unstarted-{make}")) == [0, 1, 2, 3]


def test_a_suspended_generator_does_not_adopt_a_loop_started_elsewhere() -> None:
    gen = _delegating(range(6), "suspended")
    assert [next(gen), next(gen)] == [0, 1]

    def other() -> None:
        for x in resumable(range(5), name="other", every=1):
            if x == 2:
                raise Boom("at 2")

    with pytest.raises(Boom):
        other()
    gen.close()  # the generator's loop ends: the other loop's progress is its own
    seen = []
    for x in resumable(range(5), name="other"):
        seen.append(x)
    assert seen == [2, 3, 4]
    assert list(_delegating(range(6), "suspended")) == [1, 2, 3, 4, 5]


def test_loops_nested_through_a_helper_in_the_body_still_nest_outside_cells() -> None:
    def inner(e: int) -> None:
        for b in resumable(range(3), name="inner", every=1):
            tick(f"{e}-{b}")
            check()

    def outer() -> None:
        for e in resumable(range(2), name="outer", every=1):
            inner(e)

    arm(5)  # 1-1 raises
    with pytest.raises(Boom):
        outer()
    outer()
    assert counts() == Counter(f"{e}-{b}" for e in range(2) for b in range(3)) + Counter(["1-1"])


# -- neighbours: global random generators drawn from in the loop body -------------------------

RNG_CELLS = {
    "numpy-global": ("import numpy as np\nnp.random.seed(0)\n", "np.random.rand()"),
    "random": ("import random\nrandom.seed(0)\n", "random.random()"),
    "numpy-generator": ("import numpy as np\nrng = np.random.default_rng(0)\n", "rng.random()"),
    "numpy-global-unseeded-above": ("import numpy as np\n", "np.random.rand()"),
}


@pytest.mark.parametrize("case", list(RNG_CELLS))
def test_random_draws_in_the_loop_body_come_back_as_in_an_uninterrupted_run(
    shell: InteractiveShell, cell: RunCell, case: str
) -> None:
    setup, draw = RNG_CELLS[case]
    if case == "numpy-global-unseeded-above":
        cell("import numpy as np\nnp.random.seed(1)\n")  # seeded in an earlier cell
    source = (
        f"%%checkpoint draws --every 1\n{setup}out = []\n"
        f"for i in resumable(range(6)):\n    tick(i)\n    check()\n    out.append({draw})\n"
        "after = " + draw + "\n"
    )
    clean = cell(source.replace("draws", "clean"))
    assert clean.error is None
    expected = (list(shell.user_ns["out"]), shell.user_ns["after"])
    if case == "numpy-global-unseeded-above":
        cell("np.random.seed(1)\n")
    arm(len(Path("runs.txt").read_text().splitlines()) + 4)  # item 3 raises
    assert cell(source).error is not None
    if case == "numpy-global-unseeded-above":
        cell("np.random.seed(1)\n")
    second = cell(source)
    assert second.error is None, second.error
    assert (shell.user_ns["out"], shell.user_ns["after"]) == expected


# -- real kernels, SIGKILL ---------------------------------------------------------------------

KERNEL_SETUP = """\
%load_ext nbresume
import json, time
from pathlib import Path
import numpy as np
from IPython.display import HTML, clear_output, display

def mark(i):
    with open("runs.txt", "a") as f:
        f.write(f"{i}\\n")

def load():
    return ({"i": i} for i in json.loads(Path("rows.json").read_text()))
"""

DRAWS = """\
%%checkpoint NAME --every 1
np.random.seed(0)
out = []
shown = display(HTML("<b>start</b>"), display_id=True)
for i in resumable(range(8)):
    v = np.random.rand()
    print(f"item {i}: {v:.6f}")
    shown.update(HTML(f"<b>{i}</b>"))
    mark(i)
    time.sleep(0.1)
    out.append(v)
print("total", round(sum(out), 6))
"""

BAR = """\
%%checkpoint NAME --every 1
seen = []
for i in resumable(range(8)):
    clear_output(wait=True)
    print(f"{i + 1}/8 " + "#" * (i + 1))
    mark(100 + i)
    time.sleep(0.1)
    seen.append(i)
print("done", len(seen))
"""

ROWS = """\
%%checkpoint rows --every 1
got = []
for row in resumable(load()):
    mark(200 + row["i"])
    time.sleep(0.1)
    got.append(row["i"])
"""


def _kill_when(kernel: Any, code: str, mark_at: int) -> None:
    (kernel.workdir / "runs.txt").unlink(missing_ok=True)  # marks of the clean runs
    kernel.submit(code)
    assert wait_until(lambda: mark_at in read_runs(kernel.workdir / "runs.txt"), 60)
    kernel.kill()
    kernel.restart()
    kernel.run(KERNEL_SETUP)


def _own(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in o.items() if k != "execution_count"} for o in own_outputs(outputs)]


def test_sigkill_then_resume_gives_the_uninterrupted_draws_outputs_and_checks_rows(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    (kernel.workdir / "rows.json").write_text(json.dumps(list(range(8))))
    kernel.run(KERNEL_SETUP)
    clean_draws = _own(kernel.run(DRAWS.replace("NAME", "clean-draws")))
    clean_out = kernel.eval("out")
    clean_bar = _own(kernel.run(BAR.replace("NAME", "clean-bar")))
    # a seeded global generator drawn from per item; prints and a display updated in place
    _kill_when(kernel, DRAWS.replace("NAME", "draws"), 4)
    outputs = kernel.run(DRAWS.replace("NAME", "draws"))
    assert "from a snapshot" in json.dumps(notes(outputs))
    assert kernel.eval("out") == clean_out
    assert _own(outputs) == clean_draws
    # a progress line redrawn with clear_output(wait=True)
    _kill_when(kernel, BAR.replace("NAME", "bar"), 104)
    outputs = kernel.run(BAR.replace("NAME", "bar"))
    assert read_runs(kernel.workdir / "runs.txt").count(100) == 1  # resumed, not run again
    assert _own(outputs) == clean_bar
    # rows of an untracked file keyed by position, read by a generator: a row inserted in the
    # middle of the done ones is refused, not mixed
    _kill_when(kernel, ROWS, 204)
    (kernel.workdir / "rows.json").write_text(json.dumps([0, 1, 50, 2, 3, 4, 5, 6, 7]))
    reply, outputs = kernel.execute(ROWS)
    assert reply["status"] == "error", (outputs, kernel.eval("got"))
    assert "--force" in reply["evalue"]
    kernel.run(ROWS.replace("--every 1", "--every 1 --force"))
    assert kernel.eval("got") == str([0, 1, 50, 2, 3, 4, 5, 6, 7])


# -- neighbours: idioms that must resume exactly (an error at one item, then a re-run) -------

SETUP_FRAMES = (
    "import numpy as np\n"
    "import pandas as pd\n"
    "df = pd.DataFrame({'a': range(6), 'b': list('uvwxyz')})\n"
)

IDIOMS = {
    "iterrows": (
        "out = []\n"
        "for i, row in resumable(df.iterrows()):\n"
        "    tick(i)\n"
        "    check()\n"
        "    out.append((i, row['b']))\n"
    ),
    "itertuples": (
        "out = []\n"
        "for t in resumable(df.itertuples()):\n"
        "    tick(t.a)\n"
        "    check()\n"
        "    out.append(t.b)\n"
    ),
    "np-arange": (
        "out = []\n"
        "for x in resumable(np.arange(6)):\n"
        "    tick(x)\n"
        "    check()\n"
        "    out.append(int(x) * 2)\n"
    ),
    "dict": (
        "d = {'p': 1, 'q': 2, 'r': 3, 's': 4}\n"
        "out = []\n"
        "for k in resumable(d):\n"
        "    tick(k)\n"
        "    check()\n"
        "    out.append(d[k])\n"
    ),
    "zip": (
        "out = []\n"
        "for a, b in resumable(zip(range(5), 'abcde')):\n"
        "    tick(a)\n"
        "    check()\n"
        "    out.append(b * a)\n"
    ),
    "product": (
        "import itertools\n"
        "out = []\n"
        "for a, b in resumable(itertools.product(range(2), 'xyz')):\n"
        "    tick(f'{a}{b}')\n"
        "    check()\n"
        "    out.append(f'{a}{b}')\n"
    ),
    "two-loops": (
        "sq = []\n"
        "for x in resumable(range(4)):\n"
        "    tick(f's{x}')\n"
        "    check()\n"
        "    sq.append(x * x)\n"
        "total = []\n"
        "for s in resumable(sq):\n"
        "    tick(f't{s}')\n"
        "    check()\n"
        "    total.append(s + sum(sq))\n"
    ),
    "after-plain-loop": (
        "acc = []\n"
        "for x in range(3):\n"
        "    acc.append(-x)\n"
        "for x in resumable(range(4)):\n"
        "    tick(x)\n"
        "    check()\n"
        "    acc.append(x)\n"
    ),
    "for-else": (
        "out = []\n"
        "for x in resumable(range(4)):\n"
        "    tick(x)\n"
        "    check()\n"
        "    out.append(x)\n"
        "else:\n"
        "    out.append('end')\n"
    ),
    "in-if": (
        "out = []\n"
        "if True:\n"
        "    for x in resumable(range(4)):\n"
        "        tick(x)\n"
        "        check()\n"
        "        out.append(x)\n"
    ),
    "in-with": (
        "import contextlib\n"
        "out = []\n"
        "with contextlib.nullcontext():\n"
        "    for x in resumable(range(4)):\n"
        "        tick(x)\n"
        "        check()\n"
        "        out.append(x)\n"
    ),
    "in-try-finally": (
        "out = []\n"
        "try:\n"
        "    for x in resumable(range(4)):\n"
        "        tick(x)\n"
        "        check()\n"
        "        out.append(x)\n"
        "finally:\n"
        "    out.append('f')\n"
    ),
    "batch": (
        "out = []\n"
        "for chunk in resumable(list('abcdefg'), batch=3):\n"
        "    tick(chunk[0])\n"
        "    check()\n"
        "    out.append(''.join(chunk))\n"
    ),
}

VARS = ("out", "sq", "total", "acc")


@pytest.mark.parametrize("idiom", list(IDIOMS))
def test_an_idiom_interrupted_by_an_error_resumes_to_the_uninterrupted_result(
    shell: InteractiveShell, cell: RunCell, idiom: str
) -> None:
    cell(SETUP_FRAMES)
    body = IDIOMS[idiom]
    clean = cell(f"%%checkpoint clean\n{body}")
    assert clean.error is None, clean.error
    items = len(ticks())
    expected = {n: shell.user_ns[n] for n in VARS if n in shell.user_ns}
    for name in VARS:
        shell.user_ns.pop(name, None)
    arm(len(ticks()) + 3)  # the third item raises
    assert isinstance(cell(f"%%checkpoint work --every 1\n{body}").error, Boom)
    before = len(ticks())
    second = cell(f"%%checkpoint work --every 1\n{body}")
    assert second.error is None, second.error
    assert {n: shell.user_ns[n] for n in expected} == expected
    # the two items done before the error did not run again: the failed one and the rest did
    assert len(ticks()) - before == items - 2


def test_arrays_keyed_by_position_are_printed_by_their_buffer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import numpy as np

    def run(arrays: list[Any]) -> list[int]:
        seen = []
        for a in resumable(arrays, name="arrays"):
            tick(int(a[0]))
            check()
            seen.append(int(a[0]))
        return seen

    arrays = [np.full(1000, i) for i in range(6)]
    arm(4)
    with pytest.raises(Boom):
        run(arrays)
    changed = [a.copy() for a in arrays]
    changed[1][500] = -1  # a done array edited in the middle of its buffer
    assert run(changed) == list(range(6))
    assert "changed since the interrupted run" in capsys.readouterr().err
    arm(len(ticks()) + 4)
    with pytest.raises(Boom):
        run(arrays)
    assert run([a.copy() for a in arrays]) == [3, 4, 5]


def test_a_print_too_slow_turns_the_check_off_without_refusing_a_resume(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbresume import _prefix

    class Job:
        def __init__(self, n: int) -> None:
            self.n = n

    def run(jobs: list[Job]) -> list[int]:
        seen = []
        for job in resumable(jobs, name="jobs"):
            tick(job.n)
            check()
            seen.append(job.n)
        return seen

    arm(3)
    with pytest.raises(Boom):
        run([Job(i) for i in range(5)])
    monkeypatch.setattr(_prefix, "SLOW_PRINT_SECONDS", -1.0)  # every pickled print is "slow"
    assert run([Job(i) for i in range(5)]) == [2, 3, 4]
    assert "changed" not in capsys.readouterr().err


def test_a_resumable_iterator_the_cell_left_suspended_is_not_saved_as_done(
    shell: InteractiveShell, cell: RunCell
) -> None:
    shell.user_ns["Path"] = Path
    source = (
        "%%checkpoint suspended --exclude it\n"
        "it = iter(resumable(range(5)))\n"
        "out = []\n"
        "try:\n"
        "    while True:\n"
        "        x = next(it)\n"
        "        if x == 2 and not Path('raised').exists():\n"
        "            Path('raised').touch()\n"
        "            raise KeyboardInterrupt\n"
        "        out.append(x)\n"
        "except (KeyboardInterrupt, StopIteration):\n"
        "    pass\n"
    )
    first = cell(source)
    assert first.error is None
    assert shell.user_ns["out"] == [0, 1]
    assert "had not finished when the cell ended" in first.note_text, first.note_text
    assert cell(source).error is None
    assert shell.user_ns["out"] == [0, 1, 2, 3, 4]
    assert "restored" in cell(source).note_text


def _failing_str(x: int) -> str:
    if x == 2 and not Path("raised").exists():
        Path("raised").touch()
        raise ValueError(x)
    return str(x)


@pytest.mark.parametrize(
    "loop",
    ["itertools.islice(resumable(range(9)), 3)", "map(failing_str, resumable(range(5)))"],
    ids=["islice-at-its-end", "map-whose-function-raised"],
)
def test_a_c_iterator_that_drops_the_loop_is_not_taken_for_a_finished_loop(
    shell: InteractiveShell, cell: RunCell, loop: str
) -> None:
    """islice at its end and map whose function raised close the loop the same way: neither
    is saved as done (the second would be a half result), and the note gives the form that
    works."""
    shell.user_ns["failing_str"] = _failing_str
    source = (
        "%%checkpoint wrapped-c\nimport itertools\nout = []\ntry:\n"
        f"    for x in {loop}:\n        out.append(x)\nexcept ValueError:\n    pass\n"
    )
    first = cell(source)
    assert first.error is None
    assert "put the call inside" in first.note_text, first.note_text
    assert "restored" not in cell(source).note_text
    good = "%%checkpoint wrapped-ok\nimport itertools\nout = []\n"
    good += "for x in resumable(itertools.islice(range(9), 3)):\n    out.append(x)\n"
    assert cell(good).error is None
    assert "restored" in cell(good).note_text
    assert shell.user_ns["out"] == [0, 1, 2]


def test_loops_nested_under_a_tqdm_wrapped_outer_loop_resume_exactly_outside_cells() -> None:
    from tqdm import tqdm

    def outer() -> None:
        with open("bar.txt", "w") as bar:
            for e in tqdm(resumable(range(3), name="outer-bar", every=1), file=bar):
                for b in resumable(range(3), name="inner-bar", every=1):
                    tick(f"{e}-{b}")
                    check()

    arm(5)  # 1-1 raises
    with pytest.raises(Boom):
        outer()
    outer()
    assert counts() == Counter(f"{e}-{b}" for e in range(3) for b in range(3)) + Counter(["1-1"])
