"""``%%checkpoint`` in an in-process shell: hits, misses and their reasons, options, the store."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, runs
from nbresume import CheckpointError, CheckpointWarning, _serialize, _store

RunCell = Callable[..., CellRun]

NOTE_RE = re.compile(
    r"^restored '(?P<name>[\w.-]+)' from checkpoint of \d{4}-\d\d-\d\d \d\d:\d\d, ran \S+"
)


def notes_of(run: CellRun, kind: str) -> list[Any]:
    """nbresume's notes of one kind (the progress view is marked with the same metadata key)."""
    return [n for n in run.notes if n.metadata["nbresume"].get("kind") == kind]


def restored(run: CellRun) -> bool:
    return bool(notes_of(run, "restored"))


# -- hit: restore and replay ------------------------------------------------------------------

TRAIN = """%%checkpoint train
import math
tick()
grid = [1e-4, 3e-4, 1e-3]
scores = {lr: round(-math.log10(lr), 3) for lr in grid}
best = max(scores, key=scores.get)
def describe(lr):
    return f"lr={lr}"
class Result:
    def __init__(self, lr):
        self.lr = lr
result = Result(best)
print("best", describe(best))
scores[best]
"""


def test_first_run_executes_and_a_rerun_restores_variables_without_executing(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    first = run_cell(TRAIN)
    assert first.error is None
    assert runs() == 1
    assert first.value == 4.0
    expected = {n: shell.user_ns[n] for n in ("grid", "scores", "best")}
    for name in ("math", "grid", "scores", "best", "describe", "Result", "result"):
        del shell.user_ns[name]

    again = run_cell(TRAIN)

    assert again.error is None
    assert runs() == 1
    assert {n: shell.user_ns[n] for n in ("grid", "scores", "best")} == expected
    assert shell.user_ns["describe"](0.5) == "lr=0.5"
    assert shell.user_ns["result"].lr == 1e-4
    assert isinstance(shell.user_ns["result"], shell.user_ns["Result"])
    assert shell.user_ns["math"].sqrt(4) == 2
    assert again.value == first.value


def test_a_hit_replays_stdout_byte_identically(shell: InteractiveShell, run_cell: RunCell) -> None:
    cell = "%%checkpoint streams\ntick()\nprint(TRAIN_TEXT)\n"
    shell.user_ns["TRAIN_TEXT"] = "épochs: ✓\r\n\tloss=0.125  \x1b[1mbold\x1b[0m\n\nend"
    first = run_cell(cell)
    again = run_cell(cell)
    assert runs() == 1
    assert restored(again)
    assert again.stdout == first.stdout
    assert again.stdout.encode() == (shell.user_ns["TRAIN_TEXT"] + "\n").encode()


INTERLEAVED = """%%checkpoint outputs
import sys
import pandas as pd
from IPython.display import HTML, Markdown, display
tick()
print("one", end="")
sys.stderr.write("warn 1\\n")
print(" two")
display(HTML("<b>bold</b>"))
display(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
sys.stdout.write("partial")
sys.stderr.write("warn 2\\n")
display(Markdown("*md*"), metadata={"custom": {"k": 1}})
print()
"""


def test_a_hit_replays_streams_and_display_data_identically_and_in_order(
    run_cell: RunCell,
) -> None:
    first = run_cell(INTERLEAVED)
    assert first.error is None
    again = run_cell(INTERLEAVED)
    assert runs() == 1
    assert restored(again)
    assert again.outputs == first.outputs
    assert [kind for kind, _ in first.outputs] == [
        "stdout",
        "stderr",
        "stdout",
        "display",
        "display",
        "stdout",
        "stderr",
        "display",
        "stdout",
    ]
    html = [e.data for e in again.displays]
    assert html[0]["text/html"] == "<b>bold</b>"
    assert "<table" in html[1]["text/html"]
    assert again.displays[2].metadata == {"custom": {"k": 1}}


def test_the_note_is_marked_with_the_nbresume_metadata_key(run_cell: RunCell) -> None:
    run_cell("%%checkpoint noted\ntick()\nx = 1\n")
    again = run_cell("%%checkpoint noted\ntick()\nx = 1\n")
    (note,) = notes_of(again, "restored")
    assert note.data == {"text/plain": note.data["text/plain"]}
    match = NOTE_RE.match(note.data["text/plain"])
    assert match is not None, note.data
    assert match["name"] == "noted"
    assert "\n" not in note.data["text/plain"]
    assert note.metadata["nbresume"]["name"] == "noted"


def test_the_last_expression_is_returned_on_a_hit_and_sets_out(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint value\ntick()\nvalues = [3, 1, 2]\nsorted(values)\n"
    first = run_cell(cell, store_history=True)
    again = run_cell(cell, store_history=True)
    assert runs() == 1
    assert first.value == again.value == [1, 2, 3]
    assert shell.user_ns["Out"][again.result.execution_count] == [1, 2, 3]
    assert shell.user_ns["_"] == [1, 2, 3]


def test_a_trailing_semicolon_suppresses_the_result_on_a_hit_too(run_cell: RunCell) -> None:
    cell = "%%checkpoint quiet-result\ntick()\nv = 41\nv + 1;\n"
    first = run_cell(cell)
    again = run_cell(cell)
    assert runs() == 1
    assert first.value is None
    assert again.value is None
    assert "42" not in again.stdout


def test_an_unpicklable_result_is_shown_in_its_text_form_on_a_hit(run_cell: RunCell) -> None:
    cell = "%%checkpoint lock-result\nimport threading\ntick()\nthreading.Lock()\n"
    run_cell(cell)
    again = run_cell(cell)
    assert again.error is None
    assert runs() == 1
    assert "unlocked _thread.lock object" in again.stdout


def test_trailing_whitespace_edits_still_hit(run_cell: RunCell) -> None:
    run_cell("%%checkpoint ws\ntick()\nx = 1\n")
    again = run_cell("%%checkpoint ws\n\ntick()   \nx = 1\t\n\n\n")
    assert again.error is None
    assert runs() == 1


def test_a_phase_keeps_earlier_versions_so_switching_back_hits(run_cell: RunCell) -> None:
    first = "%%checkpoint versions\ntick()\nv = 1\n"
    second = "%%checkpoint versions\ntick()\nv = 2\n"
    run_cell(first)
    run_cell(second)
    back = run_cell(first)
    assert runs() == 2
    assert restored(back)


# -- miss: why, and errors --------------------------------------------------------------------


def test_an_edited_source_runs_again_and_the_note_says_source_changed(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    run_cell("%%checkpoint fit\ntick()\nmodel = 1\n")
    edited = run_cell("%%checkpoint fit\ntick()\nmodel = 2\n")
    assert runs() == 2
    assert shell.user_ns["model"] == 2
    assert "source changed" in edited.note_text
    assert not restored(edited)


def test_a_changed_input_runs_again_and_the_note_names_it(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint fit\ntick()\nmodel = lr * 10\n"
    shell.user_ns["lr"] = 0.1
    run_cell(cell)
    shell.user_ns["lr"] = 0.2
    changed = run_cell(cell)
    assert runs() == 2
    assert shell.user_ns["model"] == 2.0
    assert "input 'lr' changed" in changed.note_text
    shell.user_ns["lr"] = 0.1
    assert restored(run_cell(cell))
    assert shell.user_ns["model"] == 1.0
    assert runs() == 2


def test_a_changed_input_that_is_an_array_runs_again(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    import numpy as np

    cell = "%%checkpoint total\ntick()\ntotal = float(weights.sum())\n"
    shell.user_ns["weights"] = np.ones(1000)
    run_cell(cell)
    shell.user_ns["weights"][500] = 2.0
    changed = run_cell(cell)
    assert runs() == 2
    assert shell.user_ns["total"] == 1001.0
    assert "input 'weights' changed" in changed.note_text


def test_modules_read_by_a_cell_are_not_inputs(shell: InteractiveShell, run_cell: RunCell) -> None:
    import json

    cell = "%%checkpoint dumps\ntick()\ntext = json.dumps([1])\n"
    shell.user_ns["json"] = json
    run_cell(cell)
    shell.user_ns["json"] = __import__("json")
    assert restored(run_cell(cell))
    assert runs() == 1


def test_a_cell_that_raises_is_not_cached_and_the_error_propagates(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint fails\ntick()\npartial = 1\nresult = 1 / divisor\n"
    shell.user_ns["divisor"] = 0
    failed = run_cell(cell)
    assert isinstance(failed.result.error_in_exec, ZeroDivisionError)
    assert "ZeroDivisionError" in failed.stdout + failed.stderr
    assert "result = 1 / divisor" in failed.stdout + failed.stderr  # a normal traceback
    again = run_cell(cell)
    assert isinstance(again.result.error_in_exec, ZeroDivisionError)
    assert runs() == 2
    assert not restored(again)


def test_a_failed_phase_runs_again_and_is_cached_once_it_succeeds(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint flaky\ntick()\nok = Path('ready').read_text()\n"
    shell.user_ns["Path"] = Path
    assert isinstance(run_cell(cell).error, FileNotFoundError)
    Path("ready").write_text("yes")
    assert run_cell(cell).error is None
    assert restored(run_cell(cell))
    assert runs() == 2


# -- options ----------------------------------------------------------------------------------


def test_force_runs_again_and_overwrites(shell: InteractiveShell, run_cell: RunCell) -> None:
    shell.user_ns["Path"] = Path
    cell = "tick()\nstamp = Path('stamp').read_text()\n"
    Path("stamp").write_text("1")
    run_cell("%%checkpoint stamped\n" + cell)
    Path("stamp").write_text("2")
    forced = run_cell("%%checkpoint stamped --force\n" + cell)
    assert forced.error is None
    assert runs() == 2
    assert shell.user_ns["stamp"] == "2"
    del shell.user_ns["stamp"]
    assert restored(run_cell("%%checkpoint stamped\n" + cell))
    assert runs() == 2
    assert shell.user_ns["stamp"] == "2"


def test_no_deps_ignores_input_changes(shell: InteractiveShell, run_cell: RunCell) -> None:
    cell = "%%checkpoint nodeps --no-deps\ntick()\nmodel = lr * 10\n"
    shell.user_ns["lr"] = 0.1
    run_cell(cell)
    shell.user_ns["lr"] = 0.5
    again = run_cell(cell)
    assert restored(again)
    assert runs() == 1
    assert shell.user_ns["model"] == 1.0


def test_exclude_keeps_a_variable_out_of_the_checkpoint_and_the_key(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = (
        "%%checkpoint query --exclude conn\n"
        "import sqlite3\n"
        "tick()\n"
        "conn = sqlite3.connect(':memory:')\n"
        "rows = conn.execute('select 1 + 1').fetchall()\n"
        "conn.close()\n"
    )
    run_cell(cell)  # no warning: conn cannot be pickled but is excluded
    conn = shell.user_ns.pop("conn")
    del shell.user_ns["rows"]
    assert restored(run_cell(cell))
    assert runs() == 1
    assert shell.user_ns["rows"] == [(2,)]
    assert "conn" not in shell.user_ns
    assert conn is not None


def test_an_excluded_input_is_not_fingerprinted(shell: InteractiveShell, run_cell: RunCell) -> None:
    cell = "%%checkpoint use-db --exclude db\ntick()\nn = len(db)\n"
    shell.user_ns["db"] = [1, 2]
    run_cell(cell)
    shell.user_ns["db"] = [1, 2, 3]
    assert restored(run_cell(cell))
    assert runs() == 1


def test_quiet_shows_no_note(shell: InteractiveShell, run_cell: RunCell) -> None:
    cell = "%%checkpoint hush --quiet\ntick()\nm = lr\n"
    shell.user_ns["lr"] = 1
    run_cell(cell)
    again = run_cell(cell)
    shell.user_ns["lr"] = 2
    changed = run_cell(cell)
    assert runs() == 2
    assert again.notes == []
    assert changed.notes == []


def test_validate_saves_only_when_the_gate_passes(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint gated --validate 'score > 0.5'\ntick()\nscore = float(threshold)\n"
    shell.user_ns["threshold"] = 0.1
    failed = run_cell(cell)
    assert isinstance(failed.error, CheckpointError)
    message = str(failed.error)
    assert "score > 0.5" in message
    assert "score=0.1" in message
    run_cell(cell)
    assert runs() == 2  # not cached
    shell.user_ns["threshold"] = 0.9
    assert run_cell(cell).error is None
    assert restored(run_cell(cell))
    assert runs() == 3


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("lock", "import threading\nhandle = threading.Lock()"),
        ("file", "handle = open('data.txt', 'w')"),
    ],
)
def test_an_unpicklable_variable_warns_with_the_fix_and_the_rest_is_restored(
    shell: InteractiveShell, run_cell: RunCell, kind: str, make: str
) -> None:
    cell = f"%%checkpoint mixed\ntick()\n{make}\nrows = [1, 2, 3]\ntotal = sum(rows)\n"
    with pytest.warns(CheckpointWarning, match=r"'handle'.*--exclude handle") as caught:
        first = run_cell(cell)
    assert first.error is None
    assert len([w for w in caught if "'handle'" in str(w.message)]) == 1
    handle = shell.user_ns.pop("handle")
    if kind == "file":
        handle.close()
    del shell.user_ns["rows"], shell.user_ns["total"]
    with pytest.warns(CheckpointWarning, match=r"'handle' of the restored run could not be saved"):
        again = run_cell(cell)  # the name is not left to whatever held it before
    assert again.error is None
    assert restored(again)
    assert runs() == 1
    assert shell.user_ns["rows"] == [1, 2, 3]
    assert shell.user_ns["total"] == 6
    assert "handle" not in shell.user_ns


def test_a_dict_filled_by_a_later_cell_is_restored_after_a_restart(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    """`results['b'] = ...` changes `results`; a hit must not leave the empty dict behind."""
    make = "%%checkpoint make\ntick('make')\nresults = {}\n"
    fill = "%%checkpoint fill\ntick('fill')\nresults['b'] = 2\n"
    run_cell(make)
    run_cell(fill)
    assert shell.user_ns["results"] == {"b": 2}
    del shell.user_ns["results"]  # a kernel restart, then the notebook runs again
    run_cell(make)
    run_cell(fill)
    assert runs() == 2
    assert shell.user_ns["results"] == {"b": 2}


# -- await, figures ---------------------------------------------------------------------------

AWAIT = """%%checkpoint fetch
import asyncio
tick()
await asyncio.sleep(0)
payload = {"status": 200}
print("fetched")
payload["status"]
"""


def test_a_cell_with_top_level_await_runs_and_is_restored(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    first = run_cell(AWAIT)
    assert first.error is None
    assert first.value == 200
    del shell.user_ns["payload"]
    again = run_cell(AWAIT)
    assert again.error is None
    assert runs() == 1
    assert restored(again)
    assert shell.user_ns["payload"] == {"status": 200}
    assert again.value == 200
    assert again.outputs == first.outputs


def test_an_awaiting_cell_that_raises_is_not_cached(run_cell: RunCell) -> None:
    cell = "%%checkpoint afail\nimport asyncio\ntick()\nawait asyncio.sleep(0)\nraise ValueError('x')\n"
    assert isinstance(run_cell(cell).error, ValueError)
    assert isinstance(run_cell(cell).error, ValueError)
    assert runs() == 2


FIGURE = """%%checkpoint plot
import matplotlib.pyplot as plt
tick()
plt.plot([1, 3, 2])
plt.title("loss")
"""


def test_an_inline_matplotlib_figure_is_recorded_and_replayed_as_png(
    run_cell: RunCell,
) -> None:
    assert run_cell("%matplotlib inline").error is None
    first = run_cell(FIGURE + "x = 1;\n")
    assert first.error is None
    first_png = [e.data["image/png"] for e in first.displays if "image/png" in e.data]
    assert len(first_png) == 1
    again = run_cell(FIGURE + "x = 1;\n")
    assert runs() == 1
    assert restored(again)
    again_png = [e.data["image/png"] for e in again.displays if "image/png" in e.data]
    assert again_png == first_png


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "my name",
        "a/b",
        "'two words'",
        "ok --every 0",
        "ok --every -3",
        "ok --every x",
        "ok --exclude 1x",
        "ok --exclude a,b-c",
        "ok --bogus",
        "ok --every",
        "'unbalanced",
    ],
)
def test_bad_magic_arguments_are_a_one_line_usage_error(run_cell: RunCell, line: str) -> None:
    bad = run_cell(f"%%checkpoint {line}\ntick()\nx = 1\n")
    assert isinstance(bad.error, UsageError)
    message = str(bad.error)
    assert message
    assert "\n" not in message
    assert "Traceback" not in bad.stdout + bad.stderr
    assert runs() == 0


def test_the_default_name_is_cell_and_8_hex_digits(run_cell: RunCell) -> None:
    run_cell("%%checkpoint\ntick()\nunnamed = 1\n")
    again = run_cell("%%checkpoint\ntick()\nunnamed = 1\n")
    assert runs() == 1
    (note,) = notes_of(again, "restored")
    match = NOTE_RE.match(note.data["text/plain"])
    assert match is not None
    assert re.fullmatch(r"cell-[0-9a-f]{8}", match["name"])
    assert phase_status(shown_text(run_cell("%checkpoint list")), match["name"]) == "restored"


# -- line commands ----------------------------------------------------------------------------


def shown_text(run: CellRun) -> str:
    """Everything a line command showed as text: printed, or displayed (as a table view)."""
    return run.stdout + "\n".join(e.data.get("text/plain", "") for e in run.events if e.data)


def phase_status(text: str, name: str) -> str | None:
    match = re.search(rf"^{re.escape(name)}\s+(\w+)", text, re.MULTILINE)
    return match[1] if match else None


@pytest.mark.parametrize("command", ["status", "list"])
def test_status_and_list_show_every_phase(run_cell: RunCell, command: str) -> None:
    assert "no checkpoints yet" in shown_text(run_cell(f"%checkpoint {command}"))
    run_cell("%%checkpoint alpha\ntick()\na = 1\n")
    run_cell("%%checkpoint beta\ntick()\nb = 1 / 0\n")
    run_cell("%%checkpoint gamma\ntick()\nc = 1\n")
    run_cell("%%checkpoint gamma\ntick()\nc = 1\n")
    shown = run_cell(f"%checkpoint {command}")
    assert shown.error is None
    text = shown_text(shown)
    statuses = {name: phase_status(text, name) for name in ("alpha", "beta", "gamma")}
    assert statuses == {"alpha": "done", "beta": "failed", "gamma": "restored"}, text


def test_clear_name_forgets_one_phase(run_cell: RunCell) -> None:
    run_cell("%%checkpoint alpha\ntick('a')\na = 1\n")
    run_cell("%%checkpoint beta\ntick('b')\nb = 1\n")
    cleared = run_cell("%checkpoint clear alpha")
    assert cleared.error is None
    assert "alpha" in cleared.stdout
    run_cell("%%checkpoint alpha\ntick('a')\na = 1\n")
    run_cell("%%checkpoint beta\ntick('b')\nb = 1\n")
    assert (runs("a"), runs("b")) == (2, 1)


def test_clear_all_forgets_every_phase(run_cell: RunCell) -> None:
    run_cell("%%checkpoint alpha\ntick('a')\na = 1\n")
    run_cell("%%checkpoint beta\ntick('b')\nb = 1\n")
    assert run_cell("%checkpoint clear --all").error is None
    assert "no checkpoints yet" in shown_text(run_cell("%checkpoint list"))
    run_cell("%%checkpoint alpha\ntick('a')\na = 1\n")
    assert runs("a") == 2


@pytest.mark.parametrize("line", ["clear nothing-here", "clear", "clear a b", "frobnicate", ""])
def test_bad_line_commands_are_a_one_line_usage_error(run_cell: RunCell, line: str) -> None:
    bad = run_cell(f"%checkpoint {line}")
    assert isinstance(bad.error, UsageError)
    assert "\n" not in str(bad.error)


def test_dir_shows_and_moves_the_store(tmp_path: Path, run_cell: RunCell) -> None:
    assert run_cell("%checkpoint dir").stdout.strip() == str(tmp_path / ".nbresume")
    run_cell("%%checkpoint alpha\ntick()\na = 1\n")
    moved = run_cell(f"%checkpoint dir {tmp_path / 'elsewhere'}")
    assert moved.stdout.strip() == str(tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere").is_dir()
    assert (tmp_path / "elsewhere").stat().st_mode & 0o777 == 0o700
    run_cell("%%checkpoint alpha\ntick()\na = 1\n")
    assert runs() == 2  # a new, empty store
    assert restored(run_cell("%%checkpoint alpha\ntick()\na = 1\n"))


def test_nbresume_dir_moves_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cell: RunCell
) -> None:
    monkeypatch.setenv("NBRESUME_DIR", str(tmp_path / "custom"))
    run_cell("%%checkpoint alpha\ntick()\na = 1\n")
    assert (tmp_path / "custom").is_dir()
    assert not (tmp_path / ".nbresume").exists()


def test_the_first_checkpoint_of_a_kernel_says_where_the_store_is_once(
    tmp_path: Path, run_cell: RunCell
) -> None:
    first = run_cell("%%checkpoint alpha\ntick()\na = 1\n")  # a first run: no other note
    second = run_cell("%%checkpoint alpha\ntick()\na = 1\n")
    assert str(tmp_path / ".nbresume") in first.note_text
    kinds = [n.metadata["nbresume"].get("kind") for n in first.notes]
    assert {kind for kind in kinds if kind} == {"store"}  # the progress view has none
    assert str(tmp_path / ".nbresume") not in second.note_text


# -- a damaged or foreign store ---------------------------------------------------------------


def _entry_files() -> list[Path]:
    files = sorted(Path(".nbresume").rglob("*.val"))
    assert files, "no entry files in the store"
    return files


def _flip_middle(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "flipped-byte-in-the-middle": _flip_middle,
    "flipped-first-byte": lambda data: bytes([data[0] ^ 0x01]) + data[1:],
    "flipped-last-byte": lambda data: data[:-1] + bytes([data[-1] ^ 0x01]),
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "garbage": lambda data: b"\x80\x05garbage" * 10,
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_corrupted_entry_warns_and_is_a_clean_miss(
    shell: InteractiveShell, run_cell: RunCell, corruption: str
) -> None:
    cell = "%%checkpoint fragile\ntick()\nvalue = list(range(100))\nprint('computed')\n"
    run_cell(cell)
    for path in _entry_files():
        path.write_bytes(CORRUPTIONS[corruption](path.read_bytes()))
    shell.user_ns["value"] = "stale"
    with pytest.warns(CheckpointWarning, match=r"\.nbresume"):
        again = run_cell(cell)
    assert again.error is None
    assert runs() == 2
    assert shell.user_ns["value"] == list(range(100))
    assert again.stdout == "computed\n"
    assert restored(run_cell(cell))  # the re-run saved a good entry again
    assert runs() == 2


def test_a_large_entry_round_trips_and_a_flipped_byte_in_any_of_its_buffers_is_corrupt(
    tmp_path: Path,
) -> None:
    """An entry big enough to be preallocated, whose second buffer starts mid-chunk in the file."""
    np = pytest.importorskip("numpy")
    values = {"a": np.arange(1_500_000, dtype=np.float64), "b": np.arange(700_001, dtype=np.int32)}
    pickled, _ = _serialize.dumps_namespace(values, {})
    assert pickled.nbytes > _store._PREALLOCATE
    store = _store.Store(tmp_path / "store")
    store.put("big", pickled)
    got = store.get("big")["vars"]
    assert np.array_equal(got["a"], values["a"])
    assert np.array_equal(got["b"], values["b"])
    (path,) = (tmp_path / "store").rglob("*.val")
    intact = path.read_bytes()
    start_b = len(pickled.data) + values["a"].nbytes
    for offset in (len(pickled.data), start_b - 1, start_b, start_b + values["b"].nbytes - 1):
        path.write_bytes(intact[:offset] + bytes([intact[offset] ^ 0x01]) + intact[offset + 1 :])
        with pytest.raises(_store.StoreError, match="does not match its digest"):
            store.get("big")
    store.close()


def test_a_corrupted_entry_is_not_blamed_on_another_key(run_cell: RunCell) -> None:
    """`nbresume trust` would re-sign the damaged bytes and let them be unpickled next time."""
    cell = "%%checkpoint fragile\ntick()\nvalue = [0.5] * 100\n"
    run_cell(cell)
    for path in _entry_files():
        path.write_bytes(_flip_middle(path.read_bytes()))
    with pytest.warns(CheckpointWarning) as caught:
        run_cell(cell)
    assert runs() == 2
    messages = " ".join(str(w.message) for w in caught)
    assert "corrupt" in messages
    assert "nbresume trust" not in messages


def test_a_store_that_cannot_be_opened_warns_and_the_cell_still_runs(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    Path(".nbresume").write_text("not a directory")
    with pytest.warns(CheckpointWarning, match=r"\.nbresume"):
        ran = run_cell("%%checkpoint nostore\ntick()\nz = 7\nz * 6\n")
    assert runs() == 1
    assert shell.user_ns["z"] == 7
    assert ran.value == 42
    assert ran.error is None


CANARY = """%%checkpoint canary
tick()
class Canary:
    def __reduce__(self):
        return (__import__("pathlib").Path("unpickled.txt").touch, ())
canary = Canary()
"""


def test_an_entry_signed_with_another_key_is_never_unpickled(
    shell: InteractiveShell, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_cell(CANARY)
    assert restored(run_cell(CANARY))  # control: loading the entry runs the canary
    assert Path("unpickled.txt").exists()
    Path("unpickled.txt").unlink()
    # another user's store, opened by a new kernel
    for store in _store._stores.values():
        store.close()
    _store._stores.clear()
    monkeypatch.setenv("NBRESUME_KEY", "someone-else-entirely")
    with pytest.warns(CheckpointWarning, match="nbresume trust") as caught:
        again = run_cell(CANARY)
    assert again.error is None
    assert not Path("unpickled.txt").exists()
    assert runs() == 2
    assert any(str(Path(".nbresume").absolute()) in str(w.message) for w in caught)
