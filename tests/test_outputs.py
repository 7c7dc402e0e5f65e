"""What a checkpoint cell records and replays: big outputs, the result, order, only its own output;
and how its body compiles (``__future__`` flags, empty cells, magics)."""

from __future__ import annotations

import gc
import hashlib
import sys
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, runs
from nbresume import _capture

RunCell = Callable[..., CellRun]
MB = 1 << 20


def restored(run: CellRun) -> bool:
    return any(n.metadata["nbresume"].get("kind") == "restored" for n in run.notes)


class _Sink:
    """A stream that keeps only the length and a hash of what was written (no memory)."""

    def __init__(self) -> None:
        self.size = 0
        self.hash = hashlib.sha256()

    def write(self, text: str) -> int:
        self.size += len(text)
        self.hash.update(text.encode("utf-8", "surrogatepass"))
        return len(text)

    def flush(self) -> None:
        pass


class _Publisher:
    def __init__(self) -> None:
        self.published: list[Any] = []

    def publish(self, data: Any, metadata: Any = None, **kwargs: Any) -> None:
        self.published.append((data, metadata))

    def clear_output(self, wait: bool = False) -> None:
        pass


# -- big outputs: linear, bounded memory --------------------------------------------------------


def test_recording_100_mb_of_output_holds_a_bounded_amount_of_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = _Sink()
    monkeypatch.setattr(sys, "stdout", sink)
    line = "x" * 1023 + "\n"
    chunk = line * 1024  # 1 MiB a write
    recorder = _capture.Recorder(_Publisher(), spill_dir=tmp_path)
    gc.collect()
    tracemalloc.start()
    try:
        with recorder:
            for _ in range(100):
                sys.stdout.write(chunk)
        outputs = _capture.merge_streams(_capture.strip_for_replay(recorder.outputs))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 * MB, f"recording 100 MB peaked at {peak / MB:.0f} MB"
    (output,) = outputs
    assert output["name"] == "stdout"
    assert len(output["text"]) == 100 * MB
    replayed = _Sink()
    monkeypatch.setattr(sys, "stdout", replayed)
    _capture.replay(outputs, _Publisher())
    assert replayed.size == 100 * MB
    assert replayed.hash.digest() == sink.hash.digest()


def test_many_small_writes_are_joined_a_bounded_number_of_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", _Sink())
    recorder = _capture.Recorder(_Publisher(), spill_dir=tmp_path)
    total = 0
    with recorder:
        for i in range(200_000):  # 4 MB in print-sized writes
            text = f"line {i:>12}\n"
            sys.stdout.write(text)
            total += len(text)
    (output,) = recorder.outputs
    assert len(output["text"]) == total
    # quadratic joining copies the text once per write (~2e11 characters here)
    assert recorder.joined_chars <= 3 * total


def test_streams_interleaved_with_marks_merge_in_linear_time_and_keep_their_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", _Sink())
    monkeypatch.setattr(sys, "stderr", _Sink())
    recorder = _capture.Recorder(_Publisher(), spill_dir=tmp_path)
    expected = []
    with recorder:
        for i in range(3000):
            recorder.mark()  # a loop item boundary: separate outputs
            text = f"item {i} " + "y" * (i % 7) * 1000 + "\n"
            sys.stdout.write(text)
            expected.append(text)
        sys.stderr.write("done\n")
    merged = _capture.merge_streams(recorder.outputs)
    assert [o["name"] for o in merged] == ["stdout", "stderr"]
    assert str(merged[0]["text"]) == "".join(expected)


def test_a_long_text_pickles_out_of_band_and_round_trips(tmp_path: Path) -> None:
    from nbresume import _serialize

    spill = _capture._SpillFile(tmp_path)
    text = "é✓ \udcff" * 300_000 + "end"
    data = text.encode("utf-8", "surrogatepass")
    long_text = _capture.LongText([(spill, spill.append(data), len(data))], len(text))
    pickled = _serialize.dumps({"outputs": [{"text": long_text}]})
    assert len(pickled.data) < 4096  # the text is in the buffers, not the pickle stream
    assert sum(b.nbytes for b in pickled.buffers) == len(data)
    buffers = [bytearray(b) for b in pickled.buffers]
    loaded = _serialize.loads(_serialize.Verified(pickled.data, buffers, {}))  # as if verified
    again = loaded["outputs"][0]["text"]
    assert isinstance(again, _capture.LongText)
    assert str(again) == text
    assert "".join(again.chunks(size=7)) == text  # chunks never split a character


def test_a_checkpoint_cell_printing_megabytes_replays_them_byte_identically(
    run_cell: RunCell,
) -> None:
    cell = (
        "%%checkpoint big\ntick()\n"
        "for i in range(30_000):\n    print(f'row {i:>6} ' + 'é' * 90)\n"
        "import sys\nsys.stderr.write('tail\\n')\n"
    )
    first = run_cell(cell)
    assert first.error is None
    assert len(first.stdout) > 2 * MB
    again = run_cell(cell)
    assert runs() == 1
    assert restored(again)
    assert again.stdout == first.stdout
    assert again.outputs == first.outputs


# -- the result and the order of outputs --------------------------------------------------------


def test_a_hit_shows_the_recorded_result_not_a_re_render(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    import numpy as np

    cell = "%%checkpoint arr\nimport numpy as np\ntick()\na = np.array([0.123456789])\na\n"
    formatter = shell.display_formatter.formatters["text/plain"]
    try:
        first = run_cell(cell, store_history=True)
        assert "0.12345679" in first.stdout
        # the value would render differently now (NB. not np.set_printoptions: numpy's print
        # options are an input of a cell that shows something, it would run again)
        formatter.for_type(np.ndarray, lambda arr, p, cycle: p.text("re-rendered"))
        again = run_cell(cell, store_history=True)
    finally:
        formatter.pop(np.ndarray, None)
    assert runs() == 1
    assert restored(again)
    assert "0.12345679" in again.stdout, again.stdout
    out = shell.user_ns["Out"][again.result.execution_count]
    assert isinstance(out, np.ndarray)
    assert out.tolist() == [0.123456789]
    assert again.value is out
    assert shell.user_ns["_"] is out


FIGURE_AND_RESULT = """import matplotlib.pyplot as plt
tick()
plt.plot([1, 3, 2])
print("plotted")
"shown"
"""


def _kinds(run: CellRun) -> list[str]:
    kinds = []
    for kind, payload in run.outputs:
        if kind == "display":
            kinds.append("image" if "image/png" in payload[0] else "display")
        else:
            kinds.append(kind)
    return kinds


def test_a_figure_and_the_result_keep_the_order_of_a_plain_cell(run_cell: RunCell) -> None:
    assert run_cell("%matplotlib inline").error is None
    plain = run_cell(FIGURE_AND_RESULT)
    assert plain.error is None
    first = run_cell("%%checkpoint fig\n" + FIGURE_AND_RESULT)
    again = run_cell("%%checkpoint fig\n" + FIGURE_AND_RESULT)
    assert runs() == 2
    assert restored(again)
    # the displayhook prints "Out[n]: 'shown'" to stdout after "plotted", then the figure
    assert _kinds(plain) == ["stdout", "image"]
    assert "'shown'" in plain.stdout
    assert _kinds(first) == _kinds(plain)
    assert _kinds(again) == _kinds(plain)
    assert first.value == again.value == "shown"


def test_an_unpicklable_result_is_replayed_from_its_recorded_form(run_cell: RunCell) -> None:
    cell = "%%checkpoint lock\nimport threading\ntick()\nthreading.Lock()\n"
    first = run_cell(cell)
    again = run_cell(cell)
    assert runs() == 1
    assert restored(again)
    assert "unlocked _thread.lock object" in again.stdout
    assert again.stdout.split(": ", 1)[1] == first.stdout.split(": ", 1)[1]


def test_a_failed_gate_shows_no_result(run_cell: RunCell) -> None:
    gate = run_cell("%%checkpoint gate --validate 'v > 100'\ntick()\nv = 1\nv + 41\n")
    assert gate.error is not None
    assert "42" not in gate.stdout


# -- compiling the body -------------------------------------------------------------------------


def test_future_annotations_of_an_earlier_cell_apply_inside_a_checkpoint_cell(
    run_cell: RunCell,
) -> None:
    assert run_cell("from __future__ import annotations").error is None
    cell = (
        "%%checkpoint tree\nfrom dataclasses import dataclass\ntick()\n"
        "@dataclass\nclass Node:\n    value: int\n    child: Node | None = None\n"
        "root = Node(1, Node(2))\nroot.child.value\n"
    )
    first = run_cell(cell)
    assert first.error is None, first.error
    assert first.value == 2


def test_a_future_import_in_a_checkpoint_cell_applies_to_later_cells_after_a_hit(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint fut\nfrom __future__ import annotations\ntick()\nx = 1\n"
    assert run_cell(cell).error is None
    later = "def f(a: Undefined) -> None: pass\nf.__annotations__['a']"
    assert run_cell(later).value == "Undefined"
    shell.compile.reset_compiler_flags()  # a new kernel
    again = run_cell(cell)
    assert restored(again)
    assert runs() == 1
    assert run_cell(later).value == "Undefined"


@pytest.mark.parametrize("body", ["", "\n", "   \n\n", "# only a comment\n"])
def test_an_empty_checkpoint_cell_is_a_no_op_with_a_note(run_cell: RunCell, body: str) -> None:
    run = run_cell("%%checkpoint empty\n" + body)
    assert run.error is None, run.error
    (note,) = run.notes
    assert note.metadata["nbresume"]["kind"] == "empty"
    assert "empty" in note.data["text/plain"]
    assert run_cell("%%checkpoint\n" + body).error is None


def test_an_empty_checkpoint_cell_with_bad_options_is_still_a_usage_error(
    run_cell: RunCell,
) -> None:
    from IPython.core.error import UsageError

    run = run_cell("%%checkpoint bad/name\n")
    assert isinstance(run.error, UsageError)


# -- only the cell's own output -----------------------------------------------------------------


def test_output_of_another_thread_is_shown_but_not_recorded(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    stop = threading.Event()
    started = threading.Event()

    def chatter() -> None:
        started.set()
        while not stop.is_set():
            sys.stderr.write("background noise\n")
            stop.wait(0.001)

    shell.user_ns["start_noise"] = lambda: threading.Thread(target=chatter, daemon=True).start()
    shell.user_ns["noise_started"] = started
    cell = (
        "%%checkpoint threads --exclude start_noise,noise_started\n"
        "tick()\nstart_noise()\nnoise_started.wait(5)\nimport time\n"
        "for i in range(3):\n    print('own', i)\n    time.sleep(0.02)\n"
    )
    try:
        first = run_cell(cell)
    finally:
        stop.set()
    assert first.error is None
    assert "background noise" in first.stderr  # shown live
    again = run_cell(cell)
    assert runs() == 1
    assert restored(again)
    assert again.stdout == "own 0\nown 1\nown 2\n"
    assert "background noise" not in again.stderr


def test_a_write_under_another_request_is_not_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    class KernelStream(_Sink):
        parent_header: dict[str, Any] = {"msg_id": "cell"}

    stream = KernelStream()
    monkeypatch.setattr(sys, "stdout", stream)
    recorder = _capture.Recorder(_Publisher())
    with recorder:
        sys.stdout.write("mine\n")
        stream.parent_header = {"msg_id": "comm"}  # the kernel handles a comm message
        sys.stdout.write("No such comm: 1234\n")
        stream.parent_header = {"msg_id": "cell"}
        sys.stdout.write("mine again\n")
    assert [str(o["text"]) for o in recorder.outputs] == ["mine\nmine again\n"]


# -- magics in a checkpoint cell ---------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "%time y = x + 1",
        "!echo shell-says-hi",
        "%matplotlib inline",
        "%config Completer.jedi_compute_type_timeout = 400",
    ],
)
def test_a_cell_with_a_line_magic_runs_and_replays_its_outputs(
    shell: InteractiveShell, run_cell: RunCell, line: str
) -> None:
    shell.user_ns["x"] = 1
    # NB. --exclude get_ipython: whether a magic makes `get_ipython` an input is _keys.py's affair
    cell = f"%%checkpoint magic --exclude get_ipython\ntick()\n{line}\nprint('after', x)\n"
    first = run_cell(cell)
    assert first.error is None, first.error
    again = run_cell(cell)
    assert restored(again), again.note_text
    assert runs() == 1
    assert again.outputs == first.outputs


def test_a_future_import_after_a_line_magic_compiles_as_in_a_plain_cell(
    run_cell: RunCell,
) -> None:
    cell = (
        "%%checkpoint late-future --exclude get_ipython\n%matplotlib inline\n"
        "from __future__ import annotations\ntick()\n"
        "def f(a: Undefined) -> None: pass\nf.__annotations__['a']\n"
    )
    first = run_cell(cell)
    assert first.error is None, first.error
    assert first.value == "Undefined"


def test_a_resumed_loop_with_spilled_output_replays_the_text_of_an_uninterrupted_run(
    shell: InteractiveShell, run_cell: RunCell, tmp_path: Path
) -> None:
    fail = tmp_path / "fail-at-3"
    fail.touch()
    shell.user_ns["fail"] = fail
    cell = (
        "%%checkpoint spilled --every 1 --exclude fail\n"
        "for i in resumable(range(6)):\n"
        "    tick(i)\n"
        "    if i == 3 and fail.exists():\n"
        "        raise RuntimeError('boom')\n"
        "    print(f'item {i} ' + 'z' * 1_500_000)\n"
    )
    expected = "".join(f"item {i} " + "z" * 1_500_000 + "\n" for i in range(6))
    first = run_cell(cell)
    assert isinstance(first.error, RuntimeError)
    fail.unlink()
    second = run_cell(cell)
    assert second.error is None, second.error
    assert second.stdout == expected
    assert runs("0") == 1  # resumed: item 0 did not run again
    third = run_cell(cell)
    assert restored(third)
    assert third.stdout == expected


def test_a_run_that_failed_its_gate_keeps_its_figure_for_mark_done(run_cell: RunCell) -> None:
    assert run_cell("%matplotlib inline").error is None
    cell = (
        "%%checkpoint gated-fig --validate 'ok'\nimport matplotlib.pyplot as plt\ntick()\n"
        "plt.plot([1, 2])\nok = False\n"
    )
    failed = run_cell(cell)
    assert failed.error is not None
    assert run_cell("%checkpoint mark gated-fig done").error is None
    again = run_cell(cell)
    assert restored(again)
    assert runs() == 1
    assert [e for e in again.displays if "image/png" in e.data]


def test_a_hit_runs_the_cells_session_magics_again(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint session --exclude get_ipython\n%precision 2\ntick()\nx = 1\n"
    assert run_cell(cell).error is None
    assert run_cell("3.14159").value == 3.14159
    assert "3.14\n" in run_cell("3.14159").stdout
    assert run_cell("%precision").error is None  # a new kernel: the default again
    assert "3.14159" in run_cell("3.14159").stdout
    again = run_cell(cell)
    assert restored(again)
    assert runs() == 1
    assert "3.14\n" in run_cell("3.14159").stdout
    assert run_cell("%precision").error is None
