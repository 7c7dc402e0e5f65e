"""The progress view of a running checkpoint cell: one display, throttled widget messages, a text form.

In-process tests drive the view through real ``%%checkpoint`` cells (the shell is not a kernel, so
they ask for the widget mode explicitly) or directly with a fake clock and timer. Kernel tests count
the comm messages a real kernel sends and read what nbclient saves.
"""

from __future__ import annotations

import copy
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets
import nbformat
import pytest
from ipywidgets.widgets import widget as widget_module
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

import nbresume.widget
from kernel_helpers import KERNEL_ARGS, Kernel, KernelPool, kernel_env, wait_until
from nbresume import _store
from nbresume._capture import NOTE_KEY, WIDGET_MIME
from nbresume._progress import LoopProgress, PhaseProgress
from nbresume.widget import BURST, RATE, PhaseView

SWEEP = """\
%%checkpoint sweep
import time
total = 0
for i in resumable(range(30)):
    time.sleep(0.005)
    total += i
print("total", total)
"""


class Published:
    """Every ``publish`` call of the shell's display publisher, with its update flag and id."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def views(self, view: str = "progress") -> list[dict[str, Any]]:
        return [c for c in self.calls if c["metadata"].get(NOTE_KEY, {}).get("view") == view]

    def shown(self) -> list[dict[str, Any]]:
        return [c for c in self.views() if not c["update"]]

    def updates(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["update"]]


@pytest.fixture
def published(shell: Any) -> Published:
    record = Published()
    pub = shell.display_pub
    original = pub.publish

    def publish(
        data: Any,
        metadata: Any = None,
        source: Any = None,
        *,
        transient: Any = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        record.calls.append(
            {
                "data": copy.deepcopy(dict(data)),
                "metadata": copy.deepcopy(dict(metadata or {})),
                "transient": dict(transient or {}),
                "update": update,
            }
        )
        original(data, metadata, source, transient=transient, update=update, **kwargs)

    pub.publish = publish  # an instance attribute: the engine's recorder wraps and restores it
    return record


@pytest.fixture
def widget_frontend(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the in-process shell count as a widget-capable kernel."""
    monkeypatch.setattr(nbresume.widget, "frontend_mode", lambda: "widget")


def saved_outputs(name: str) -> list[dict[str, Any]]:
    """The outputs recorded in the store for the (only) version of phase ``name``."""
    store = _store.open_store()
    (key,) = store.keys(f"cell:{name}:")
    entry = store.get(key)
    return list(entry["outputs"])


# -- in-process: the view of a real %%checkpoint cell ----------------------------------------


@pytest.mark.usefixtures("widget_frontend")
def test_a_checkpoint_cell_shows_one_marked_widget_display_and_records_none_of_it(
    run_cell: Callable[..., Any], published: Published
) -> None:
    first = run_cell(SWEEP)
    assert first.error is None
    (shown,) = published.shown()  # exactly one progress display
    assert shown["data"]["text/plain"].startswith("sweep: running")
    assert "running" in shown["data"]["text/html"]
    display_id = shown["transient"]["display_id"]
    updates = published.updates()
    for update in updates:  # every update of the view is marked as nbresume's too
        assert update["transient"]["display_id"] == display_id
        assert update["metadata"] == {NOTE_KEY: {"view": "progress"}}
    # the widget joins the output with the loop, with the text and HTML forms beside it
    assert {WIDGET_MIME, "text/plain", "text/html"} <= updates[0]["data"].keys()
    final = updates[-1]["data"]
    assert final["text/plain"].startswith("sweep: done in ")
    assert "30/30" in final["text/plain"]
    assert "30/30" in final["text/html"]
    assert WIDGET_MIME not in final  # a saved notebook shows the final HTML, not a dead widget

    own = [{"output_type": "stream", "name": "stdout", "text": "total 435\n"}]
    assert saved_outputs("sweep") == own  # nothing of the view is recorded
    second = run_cell(SWEEP)  # a hit replays what was recorded
    assert second.error is None
    assert second.outputs == first.outputs == [("stdout", "total 435\n")]
    assert not any(WIDGET_MIME in e.data for e in second.events if e.kind == "display")


@pytest.mark.usefixtures("widget_frontend")
def test_the_widgets_are_closed_when_the_phase_ends(
    run_cell: Callable[..., Any], published: Published
) -> None:
    before = set(widget_module._instances)
    assert run_cell(SWEEP).error is None
    (with_widget,) = [u for u in published.updates() if WIDGET_MIME in u["data"]]
    assert with_widget["data"][WIDGET_MIME]["model_id"] not in widget_module._instances
    assert set(widget_module._instances) <= before  # no model left behind in the kernel


@pytest.mark.usefixtures("widget_frontend")
def test_a_cell_without_a_loop_gets_its_text_and_html_but_no_widget(
    run_cell: Callable[..., Any], published: Published
) -> None:
    before = set(widget_module._instances)
    assert run_cell("%%checkpoint plain\nx = 1").error is None
    assert len(published.shown()) == 1
    (final,) = published.updates()
    assert final["data"]["text/plain"].startswith("plain: done in ")
    assert not any(WIDGET_MIME in call["data"] for call in published.calls)
    assert set(widget_module._instances) == before


@pytest.mark.usefixtures("widget_frontend")
def test_a_restored_cell_shows_a_compact_restored_line_without_a_bar(
    run_cell: Callable[..., Any], published: Published
) -> None:
    assert run_cell(SWEEP).error is None
    published.calls.clear()
    assert run_cell(SWEEP).error is None
    (shown,) = published.shown()
    assert shown["data"]["text/plain"] == "sweep: restored"
    assert WIDGET_MIME not in shown["data"]
    assert "restored" in shown["data"]["text/html"]
    assert "nbresume-bar" not in shown["data"]["text/html"]
    assert not published.updates()


@pytest.mark.usefixtures("widget_frontend")
def test_a_failing_cell_leaves_the_view_marked_failed_at_the_failing_item(
    run_cell: Callable[..., Any], published: Published
) -> None:
    cell = """\
%%checkpoint flaky
import time
for i in resumable(range(20), desc="items"):
    time.sleep(0.03)
    if i == 12:
        raise ValueError("bad item")
"""
    run = run_cell(cell)
    assert isinstance(run.error, ValueError)
    final = published.updates()[-1]["data"]
    assert final["text/plain"].startswith("flaky: failed after ")
    assert "at items item 13/20" in final["text/plain"]
    assert "items: failed at item 13/20" in final["text/plain"]
    assert ">failed</span>" in final["text/html"]


@pytest.mark.usefixtures("widget_frontend")
def test_an_interrupted_cell_leaves_the_view_marked_interrupted(
    run_cell: Callable[..., Any], published: Published
) -> None:
    cell = """\
%%checkpoint stopped
import time
for i in resumable(range(20)):
    time.sleep(0.03)
    if i == 5:
        raise KeyboardInterrupt
"""
    run = run_cell(cell)
    assert isinstance(run.error, KeyboardInterrupt)
    final = published.updates()[-1]["data"]["text/plain"]
    assert final.startswith("stopped: interrupted after ")
    assert "interrupted at item 6/20" in final


@pytest.mark.usefixtures("widget_frontend")
def test_nested_loops_show_the_inner_loop_indented_under_the_outer(
    run_cell: Callable[..., Any], published: Published
) -> None:
    cell = """\
%%checkpoint nested
for epoch in resumable(range(3), desc="epochs"):
    for batch in resumable(range(4), desc="batches"):
        pass
"""
    assert run_cell(cell).error is None
    text = published.updates()[-1]["data"]["text/plain"].splitlines()
    assert text[1].startswith("  epochs: 3/3")
    assert text[2].startswith("    batches: 4/4")


@pytest.mark.usefixtures("widget_frontend")
def test_a_loop_left_by_break_shows_stopped_and_the_next_loop_is_its_sibling(
    run_cell: Callable[..., Any], published: Published
) -> None:
    cell = """\
%%checkpoint early
import time
for i in resumable(range(5), desc="first"):
    time.sleep(0.03)  # slow items: the loop's count is exact at every item
    if i == 2:
        break
for j in resumable(range(3), desc="second"):
    pass
"""
    assert run_cell(cell).error is None
    text = published.updates()[-1]["data"]["text/plain"].splitlines()
    assert text[0].startswith("early: done in ")
    assert text[1].startswith("  first: stopped at item 3/5")
    assert text[2].startswith("  second: 3/3")  # not indented: not nested in the first


def test_in_a_terminal_the_view_is_one_final_text_display(
    run_cell: Callable[..., Any], published: Published
) -> None:
    run = run_cell(SWEEP)  # the test shell is not a kernel: the terminal's text mode
    assert run.error is None
    (shown,) = published.shown()
    assert shown["data"].keys() == {"text/plain"}
    assert shown["data"]["text/plain"].startswith("sweep: done in ")
    assert "30/30" in shown["data"]["text/plain"]
    assert not published.updates()
    assert saved_outputs("sweep") == [
        {"output_type": "stream", "name": "stdout", "text": "total 435\n"}
    ]


def test_in_a_terminal_a_restored_cell_adds_nothing_to_the_engines_note(
    run_cell: Callable[..., Any], published: Published
) -> None:
    assert run_cell(SWEEP).error is None
    published.calls.clear()
    run = run_cell(SWEEP)
    assert "restored 'sweep'" in run.note_text
    assert not published.views()


@pytest.mark.usefixtures("shell")
def test_without_ipywidgets_a_kernel_gets_throttled_html_updates(published: Published) -> None:
    clock = FakeClock()
    timers = FakeTimers(clock)
    view = PhaseView(mode="html", clock=clock, schedule=timers)
    phase = PhaseProgress("html", clock=clock)
    view(phase, "start")
    loop = LoopProgress("items", total=10_000, clock=clock)
    phase.loops.append(loop)
    for n in range(1, 10_001):  # 1,000 events a second for 10 s
        clock.now += 0.001
        loop.update(n)
        view(phase, "progress")
        timers.run_due()
    phase.finish("done")
    view(phase, "end")
    (shown,) = published.shown()
    updates = published.updates()
    assert RATE * 10 - 5 <= len(updates) <= RATE * 10 + BURST + 2
    assert all(WIDGET_MIME not in u["data"] for u in [shown, *updates])
    assert "10,000/10,000" in updates[-1]["data"]["text/plain"]
    assert "nbresume-bar" in updates[-1]["data"]["text/html"]


def test_quiet_cells_show_no_view(run_cell: Callable[..., Any], published: Published) -> None:
    assert run_cell(SWEEP.replace("sweep", "sweep --quiet", 1)).error is None
    assert not published.views()


# -- the view driven directly: throttling, trailing update, terminal line --------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTimers:
    """`PhaseView`'s ``schedule``: callbacks run when the test says time has come."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, Callable[[], None], list[bool]]] = []

    def __call__(self, delay: float, fn: Callable[[], None]) -> Callable[[], None]:
        cancelled = [False]
        self.pending.append((self.clock.now + delay, fn, cancelled))
        return lambda: cancelled.__setitem__(0, True)

    def run_due(self) -> int:
        due = [p for p in self.pending if p[0] <= self.clock.now]
        self.pending = [p for p in self.pending if p[0] > self.clock.now]
        ran = 0
        for _, fn, cancelled in due:
            if not cancelled[0]:
                fn()
                ran += 1
        return ran

    def live(self) -> int:
        return sum(1 for p in self.pending if not p[2][0])


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The widget messages the kernel would send (trait updates), counted at the comm boundary."""
    messages: list[dict[str, Any]] = []
    original = ipywidgets.Widget._send

    def send(self: Any, msg: dict[str, Any], buffers: Any = None) -> None:
        messages.append(msg)
        original(self, msg, buffers)

    monkeypatch.setattr(ipywidgets.Widget, "_send", send)
    return messages


@pytest.mark.usefixtures("shell")
def test_widget_messages_stay_at_most_ten_a_second_whatever_the_loop_speed(
    sent: list[dict[str, Any]],
) -> None:
    clock = FakeClock()
    timers = FakeTimers(clock)
    view = PhaseView(mode="widget", clock=clock, schedule=timers)
    phase = PhaseProgress("flood", clock=clock)
    view(phase, "start")
    loop = LoopProgress("items", total=1_000_000, clock=clock)
    phase.loops.append(loop)
    sent.clear()
    seconds = 20
    stamps: list[float] = []  # when each update message was sent
    for n in range(1, 20_001):  # 1,000 progress events a second (the engine sends <= 10/s/loop)
        clock.now += 0.001
        loop.update(n * 50)
        view(phase, "progress")
        timers.run_due()
        count = sum(1 for m in sent if m.get("method") == "update")
        stamps += [clock.now] * (count - len(stamps))
    updates = [m for m in sent if m.get("method") == "update"]
    assert len(updates) <= RATE * seconds + BURST
    assert len(updates) >= RATE * seconds - 10  # and it keeps updating at that rate
    assert view.messages == len(updates) + 1  # and the display update that brought the widget
    busiest = max(sum(1 for t in stamps if start <= t < start + 1) for start in stamps)
    assert busiest <= 10  # in any one second, not only on average (SPEC section 4)


@pytest.mark.usefixtures("shell")
def test_an_update_held_back_by_the_throttle_is_sent_by_a_timer(
    sent: list[dict[str, Any]],
) -> None:
    clock = FakeClock()
    timers = FakeTimers(clock)
    view = PhaseView(mode="widget", clock=clock, schedule=timers)
    phase = PhaseProgress("burst", clock=clock)
    view(phase, "start")
    loop = LoopProgress("items", total=100, clock=clock)
    phase.loops.append(loop)
    for n in range(1, 101):  # a burst, then the cell goes quiet (e.g. trains for an hour)
        clock.now += 0.0001
        loop.update(n)
        view(phase, "progress")
    loop.status = "done"
    view(phase, "progress")
    bar = view._rows[0].bar
    assert bar.value < 100  # held back
    assert timers.live() == 1  # one pending trailing update, however many were held back
    clock.now += 1
    assert timers.run_due() == 1
    assert (bar.value, bar.bar_style) == (100, "success")
    assert "100/100" in view._rows[0].stats.value


@pytest.mark.usefixtures("shell")
def test_the_end_event_cancels_a_pending_trailing_update() -> None:
    clock = FakeClock()
    timers = FakeTimers(clock)
    view = PhaseView(mode="widget", clock=clock, schedule=timers)
    phase = PhaseProgress("quick", clock=clock)
    view(phase, "start")
    loop = LoopProgress("items", total=10, clock=clock)
    phase.loops.append(loop)
    for n in range(1, 11):
        loop.update(n)
        view(phase, "progress")
    assert timers.live() == 1
    phase.finish("done")
    view(phase, "end")
    assert timers.live() == 0


def test_the_ticker_runs_the_latest_callback_once_in_one_thread_and_stops() -> None:
    from nbresume.widget import _Ticker

    ticker = _Ticker()
    ran: list[str] = []
    threads = threading.active_count()
    ticker.schedule(0.05, lambda: ran.append("first"))
    ticker.schedule(0.05, lambda: ran.append("second"))  # replaces the first
    assert wait_until(lambda: ran, 10)
    time.sleep(0.1)
    assert ran == ["second"]
    cancel = ticker.schedule(0.05, lambda: ran.append("cancelled"))
    cancel()
    time.sleep(0.15)
    assert ran == ["second"]
    assert threading.active_count() == threads + 1  # one thread for all of it
    ticker.stop()
    assert ticker._thread is not None
    ticker._thread.join(5)
    assert not ticker._thread.is_alive()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.usefixtures("shell")
def test_in_a_terminal_a_live_line_is_rewritten_in_place_then_cleared(
    published: Published,
) -> None:
    clock = FakeClock()
    tty = FakeTTY()
    view = PhaseView(mode="text", clock=clock, schedule=FakeTimers(clock), stream=tty)
    phase = PhaseProgress("term", clock=clock)
    view(phase, "start")
    loop = LoopProgress("items", total=10, clock=clock)
    phase.loops.append(loop)
    for n in range(1, 11):
        clock.now += 0.5
        loop.update(n)
        view(phase, "progress")
    phase.finish("done")
    view(phase, "end")
    writes = tty.getvalue().split("\r\x1b[K")
    assert writes[0] == ""
    assert writes[-1] == ""  # the line is cleared before the final text is shown
    assert "items: 10/10" in writes[-2]
    assert all("\n" not in w for w in writes)
    (final,) = published.shown()
    assert final["data"]["text/plain"].startswith("term: done in 5.0s")


@pytest.mark.usefixtures("shell")
def test_the_live_terminal_line_is_not_recorded_as_the_cells_output(
    run_cell: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import conftest

    monkeypatch.setattr(conftest._Stream, "isatty", lambda self: True, raising=False)
    run = run_cell(SWEEP)  # the fixture's stderr now claims to be a terminal
    assert run.error is None
    assert "\r\x1b[K" in run.stderr  # the live line was shown...
    assert saved_outputs("sweep") == [  # ...but never recorded
        {"output_type": "stream", "name": "stdout", "text": "total 435\n"}
    ]


# -- real kernels ----------------------------------------------------------------------------

FLOOD = """\
%%checkpoint flood
import time
start = time.perf_counter()
total = 0
for i in resumable(range(200_000)):
    busy = time.perf_counter() + 1e-5  # >= 10 us an item: the loop takes >= 2 s
    while time.perf_counter() < busy:
        total += 1
loop_seconds = time.perf_counter() - start
"""


def run_collecting(kernel: Kernel, code: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Run ``code``; -> every IOPub message until the kernel is idle again, whatever its parent."""
    msg_id = kernel.submit(code)
    messages: list[dict[str, Any]] = []
    end = time.monotonic() + timeout
    while True:
        msg = kernel.kc.get_iopub_msg(timeout=max(end - time.monotonic(), 0.1))
        messages.append(msg)
        if (
            msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
            and msg["parent_header"].get("msg_id") == msg_id
        ):
            break
    reply = kernel.wait_reply(msg_id, timeout)
    assert reply["status"] == "ok", messages
    for msg in messages:  # frontends route a message to its cell by its parent: all must have it
        assert msg["parent_header"].get("msg_id") == msg_id, msg
    return messages


@pytest.mark.kernel
def test_a_200000_item_loop_sends_at_most_ten_widget_messages_a_second(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    kernel.run("%load_ext nbresume")
    messages = run_collecting(kernel, FLOOD)
    seconds = float(kernel.eval("loop_seconds"))
    opened = {m["content"]["comm_id"] for m in messages if m["msg_type"] == "comm_open"}
    updates = [
        m
        for m in messages
        if m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] in opened
        and m["content"]["data"].get("method") == "update"
    ]
    views = [
        m
        for m in messages
        if m["msg_type"] in ("display_data", "update_display_data")
        and m["content"]["metadata"].get(NOTE_KEY, {}).get("view") == "progress"  # not a note
    ]
    print(f"{len(updates)} widget updates in {seconds:.2f} s: {len(updates) / seconds:.1f}/s")
    assert seconds > 2.0
    assert len(updates) <= RATE * seconds + BURST + 2
    assert len(updates) >= 2 * seconds  # the bar did move while the loop ran
    # the display (text and HTML), the widget joining it with the loop, the final text
    assert [m["msg_type"] for m in views] == ["display_data", *["update_display_data"] * 2]
    assert WIDGET_MIME in views[1]["content"]["data"]
    assert "200,000/200,000" in views[-1]["content"]["data"]["text/plain"]


@pytest.mark.kernel
def test_nbclient_saves_the_final_text_of_the_progress_view(tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext nbresume"),
            new_code_cell(
                "%%checkpoint loop\nimport time\nfor i in resumable(range(200)):\n"
                "    time.sleep(0.002)\nprint('finished')"
            ),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    client = NotebookClient(
        nb,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
        timeout=120,
        startup_timeout=60,
        iopub_timeout=10,
        extra_arguments=list(KERNEL_ARGS),
    )
    executed = client.execute(env=kernel_env(home))
    path = work / "executed.ipynb"
    nbformat.write(executed, path)
    outputs = nbformat.read(path, as_version=4).cells[1].outputs
    views = [o for o in outputs if NOTE_KEY in o.get("metadata", {})]
    (view,) = [v for v in views if v["metadata"][NOTE_KEY].get("view") == "progress"]
    assert view["data"]["text/plain"].startswith("loop: done in ")
    assert "200/200" in view["data"]["text/plain"]
    assert "200/200" in view["data"]["text/html"]
    assert WIDGET_MIME not in view["data"]  # reopened, the notebook shows text, not a dead widget
    own = [o for o in outputs if NOTE_KEY not in o.get("metadata", {})]
    assert [(o["output_type"], o.get("text")) for o in own] == [("stream", "finished\n")]
