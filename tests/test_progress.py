"""The pure progress state and its renderings, with a fake clock: no IPython, no widgets."""

from __future__ import annotations

import re
import sys

import pytest

from nbresume._progress import (
    LoopProgress,
    PhaseProgress,
    Throttle,
    format_duration,
    format_rate,
    format_size,
    phase_html,
    phase_line,
    phase_text,
    table_html,
    table_status,
    table_text,
    visible_loops,
)


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_progress_module_imports_no_ipython_or_widgets() -> None:
    import subprocess

    code = (
        "import sys, nbresume._progress; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('IPython', 'ipywidgets', 'ipykernel', 'traitlets')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- one loop -------------------------------------------------------------------------------


def test_rate_counts_only_items_run_not_resumed_ones(clock: FakeClock) -> None:
    loop = LoopProgress("sweep", total=50, done=10, skipped=10, clock=clock)
    clock.advance(10)
    loop.update(30)
    assert loop.elapsed == 10
    assert loop.rate == 2.0  # 20 items run in 10 s; the 10 resumed ones took no time
    assert loop.eta == 10.0  # 20 left at 2 it/s
    assert loop.fraction == 0.6


def test_rate_and_eta_unknown_before_the_first_item_and_without_a_total(clock: FakeClock) -> None:
    loop = LoopProgress("gen", clock=clock)
    assert loop.rate is None
    assert loop.eta is None
    clock.advance(2)
    loop.update(4)
    assert loop.rate == 2.0
    assert loop.eta is None  # no total: no ETA
    assert loop.fraction is None
    assert loop.position() == "4/?"


def test_snapshot_age_is_measured_from_the_last_snapshot(clock: FakeClock) -> None:
    loop = LoopProgress("sweep", total=10, clock=clock)
    assert loop.snapshot_age() is None
    loop.last_snapshot = clock.now
    clock.advance(3)
    assert loop.snapshot_age() == 3
    assert loop.snapshot_age(now=clock.now + 1) == 4


def test_running_loop_text_shows_counts_resumed_rate_elapsed_eta_and_snapshot_age(
    clock: FakeClock,
) -> None:
    loop = LoopProgress("sweep", total=40, done=10, skipped=10, clock=clock)
    clock.advance(4)
    loop.update(22)
    loop.last_snapshot = clock.now - 3
    assert loop.text() == (
        "sweep: 22/40 (resumed 10), 3 it/s, 4.0s elapsed, ETA 6.0s, saved 3.0s ago"
    )


def test_finished_loop_text_says_done_and_large_counts_are_grouped(clock: FakeClock) -> None:
    loop = LoopProgress("items", total=200_000, clock=clock)
    clock.advance(2)
    loop.update(200_000)
    loop.status = "done"
    assert loop.text() == "items: 200,000/200,000, 100,000 it/s, 2.0s, done"


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_stopped_loop_text_names_the_item_in_flight(clock: FakeClock, status: str) -> None:
    loop = LoopProgress("sweep", total=40, clock=clock)
    clock.advance(6)
    loop.update(12)  # items 1..12 done, the 13th raised
    loop.status = status
    assert loop.text() == f"sweep: {status} at item 13/40, 2 it/s, 6.0s"


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "?"), (0.25, "0.25s"), (4.0, "4.0s"), (42, "42s"), (252.4, "4m12s"), (7300, "2h01m")],
)
def test_format_duration(value: float | None, text: str) -> None:
    assert format_duration(value) == text


def test_format_rate_switches_to_seconds_per_item_for_slow_loops() -> None:
    assert format_rate(None) == "? it/s"
    assert format_rate(123_456.7) == "123,457 it/s"
    assert format_rate(12.34) == "12.3 it/s"
    assert format_rate(0.1) == "10.0 s/it"


def test_format_size() -> None:
    assert [format_size(n) for n in (0, 1023, 1536, 5 * 1024**3)] == [
        "0 B",
        "1023 B",
        "1.5 KB",
        "5.0 GB",
    ]


# -- phases and status transitions ----------------------------------------------------------


def test_a_phase_that_finishes_done_finishes_its_running_loops(clock: FakeClock) -> None:
    phase = PhaseProgress("train", clock=clock)
    outer = LoopProgress("outer", total=2, clock=clock)
    phase.loops.append(outer)
    clock.advance(5)
    phase.finish("done")
    assert (phase.status, outer.status) == ("done", "done")
    assert phase.elapsed() == 5
    clock.advance(100)
    assert phase.elapsed() == 5  # frozen at the end


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_a_failed_or_interrupted_phase_marks_its_running_loops_not_the_finished_ones(
    clock: FakeClock, status: str
) -> None:
    phase = PhaseProgress("train", clock=clock)
    first = LoopProgress("first", total=3, clock=clock)
    phase.loops.append(first)
    first.update(3)
    first.status = "done"
    second = LoopProgress("second", total=3, clock=clock)
    phase.loops.append(second)
    phase.finish(status)
    assert (phase.status, first.status, second.status) == (status, "done", status)


def test_loops_left_early_end_as_their_phase_says_why(clock: FakeClock) -> None:
    # a loop the cell leaves before its end reports "interrupted" (its generator was closed)
    for phase_status, loop_status in (
        ("failed", "failed"),  # left by the exception that failed the cell
        ("interrupted", "interrupted"),
        ("done", "stopped"),  # left by a `break`
    ):
        phase = PhaseProgress("p", clock=clock)
        loop = LoopProgress("items", total=5, done=2, clock=clock)
        phase.loops.append(loop)
        loop.status = "interrupted"
        phase.finish(phase_status)
        assert loop.status == loop_status
        assert f"items: {loop_status} at item 3/5" in phase_text(phase)


def test_a_phase_cannot_finish_running_or_in_an_unknown_status(clock: FakeClock) -> None:
    phase = PhaseProgress("train", clock=clock)
    for bad in ("running", "pending", "stale", "Done"):
        with pytest.raises(ValueError, match=repr(bad)):
            phase.finish(bad)
    assert phase.status == "running"


@pytest.mark.parametrize(
    ("status", "changed", "shown"),
    [
        ("pending", False, "pending"),
        ("pending", True, "stale"),
        ("done", True, "stale"),
        ("restored", True, "stale"),
        ("restored", False, "restored"),
        ("running", True, "running"),
        ("failed", True, "failed"),
        ("interrupted", True, "interrupted"),
    ],
)
def test_table_status_marks_changed_cells_stale_unless_running_failed_or_interrupted(
    status: str, changed: bool, shown: str
) -> None:
    assert table_status(status, changed) == shown


# -- nesting --------------------------------------------------------------------------------


def nested(clock: FakeClock) -> tuple[PhaseProgress, list[LoopProgress]]:
    """Epochs over batches: epoch 1 done with its batches, epoch 2 in its second batch loop."""
    phase = PhaseProgress("train", clock=clock)
    epochs = LoopProgress("epochs", total=10, clock=clock)
    phase.loops.append(epochs)
    batches_1 = LoopProgress("batches", total=100, clock=clock)
    phase.loops.append(batches_1)
    clock.advance(4)
    batches_1.update(100)
    batches_1.status = "done"
    epochs.update(1)
    batches_2 = LoopProgress("batches", total=100, clock=clock)
    phase.loops.append(batches_2)
    clock.advance(2)
    batches_2.update(40)
    return phase, [epochs, batches_1, batches_2]


def test_loops_started_inside_a_running_loop_are_nested_in_it(clock: FakeClock) -> None:
    phase, (epochs, _, batches_2) = nested(clock)
    assert [loop.depth for loop in phase.loops] == [0, 1, 1]
    epochs.status = batches_2.status = "done"
    after = LoopProgress("evaluate", total=5, clock=clock)
    phase.loops.append(after)
    assert after.depth == 0  # started after the others finished: a sibling
    assert visible_loops(phase.loops) == [epochs, batches_2, after]


def test_only_the_latest_inner_loop_and_the_last_top_level_loops_are_visible(
    clock: FakeClock,
) -> None:
    phase = PhaseProgress("many", clock=clock)
    tops = []
    for i in range(5):
        top = LoopProgress(f"top{i}", total=1, clock=clock)
        phase.loops.append(top)
        top.status = "done"
        tops.append(top)
    assert visible_loops(phase.loops) == tops[-3:]


def test_phase_text_indents_inner_loops_under_their_outer_loop(clock: FakeClock) -> None:
    phase, _ = nested(clock)
    assert phase_text(phase) == (
        "train: running, 6.0s\n"
        "  epochs: 1/10, 4.0 s/it, 6.0s elapsed, ETA 36s\n"
        "    batches: 40/100, 20 it/s, 2.0s elapsed, ETA 3.0s"
    )


def test_a_failed_phase_says_where_it_stopped_in_each_loop(clock: FakeClock) -> None:
    phase, _ = nested(clock)
    phase.finish("failed")
    header = phase_text(phase).splitlines()[0]
    assert header == "train: failed after 6.0s at epochs item 2/10, batches item 41/100"
    assert "batches: failed at item 41/100" in phase_text(phase)


def test_an_interrupted_phase_is_marked_interrupted(clock: FakeClock) -> None:
    phase, _ = nested(clock)
    phase.finish("interrupted")
    assert phase_text(phase).startswith("train: interrupted after 6.0s at epochs item 2/10")
    assert 'class="nbresume-status"' in phase_html(phase)
    assert ">interrupted</span>" in phase_html(phase)


def test_a_done_phase_header_gives_the_time(clock: FakeClock) -> None:
    phase, _ = nested(clock)
    phase.finish("done")
    assert phase_text(phase).splitlines()[0] == "train: done in 6.0s"


def test_phase_line_is_one_line_with_the_running_loops(clock: FakeClock) -> None:
    phase, _ = nested(clock)
    line = phase_line(phase)
    assert "\n" not in line
    assert line.startswith("train: running, 6.0s | epochs: 1/10")
    assert "batches: 40/100" in line


def test_phase_html_draws_each_loop_with_a_bar_of_its_fraction(clock: FakeClock) -> None:
    phase, _ = nested(clock)
    page = phase_html(phase)
    assert page.count('class="nbresume-loop"') == 2
    widths = re.findall(r"width:([\d.]+)%", page)
    assert widths == ["10.0", "40.0"]
    assert "padding-left:1.5em" in page  # the inner loop is indented


def test_phase_html_escapes_names_and_labels(clock: FakeClock) -> None:
    phase = PhaseProgress("<b>x</b>", clock=clock)
    phase.loops.append(LoopProgress("<script>alert(1)</script>", total=1, clock=clock))
    page = phase_html(phase)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_a_restored_phase_is_one_compact_line(clock: FakeClock) -> None:
    phase = PhaseProgress("load", status="restored", clock=clock)
    phase.finish("restored")
    assert phase_text(phase) == "load: restored"
    assert "nbresume-bar" not in phase_html(phase)


# -- the status table -----------------------------------------------------------------------

ROWS = [
    {
        "name": "sweep",
        "status": "stale",
        "last_run": 1_790_000_000.0,
        "duration": 252.4,
        "loops": "lr 20/20",
        "size": 3 * 1024**2,
    },
    {"name": "load", "status": "pending", "last_run": None, "duration": None, "size": 0},
]


def test_table_text_lines_up_columns() -> None:
    lines = table_text(ROWS).splitlines()
    assert lines[0].split() == ["phase", "status", "last", "run", "duration", "loops", "size"]
    assert lines[1].split()[:2] == ["sweep", "stale"]
    assert "4m12s" in lines[1]
    assert lines[1].endswith("3.0 MB")
    assert lines[2].split() == ["load", "pending", "-", "-", "-", "0", "B"]
    assert len({line.index("status") for line in lines[:1]}) == 1
    assert lines[1].index("stale") == lines[0].index("status")


def test_table_html_has_a_row_and_a_badge_per_phase() -> None:
    page = table_html(ROWS, caption="store /x (3 MB)")
    assert page.count("<tr>") == 3
    assert page.count('class="nbresume-status"') == 2
    assert "<caption" in page
    assert "store /x (3 MB)" in page


def test_empty_tables_say_so() -> None:
    assert table_text([]) == "no checkpoints yet"
    assert "no checkpoints yet" in table_html([])


# -- throttle -------------------------------------------------------------------------------


def test_throttle_holds_a_flood_to_its_rate_whatever_the_event_rate(clock: FakeClock) -> None:
    throttle = Throttle(rate=10, burst=3, clock=clock)
    sent = 0
    for _ in range(100_000):  # 10,000 events a second for 10 s, each asking for 2 messages
        clock.advance(1e-4)
        if throttle.take(2):
            sent += 2
    assert 10 * 10 - 4 <= sent <= 10 * 10 + 3


def test_throttle_lets_a_slow_stream_through_untouched(clock: FakeClock) -> None:
    throttle = Throttle(rate=10, burst=3, clock=clock)
    passed = 0
    for _ in range(50):
        clock.advance(0.5)
        passed += throttle.take(2)
    assert passed == 50


def test_throttle_wait_says_when_a_message_may_go(clock: FakeClock) -> None:
    throttle = Throttle(rate=10, burst=3, clock=clock)
    assert throttle.wait(1) == 0
    assert throttle.take(3)
    assert throttle.wait(1) == pytest.approx(0.1)
    assert throttle.wait(2) == pytest.approx(0.2)
    clock.advance(0.1)
    assert throttle.take(1)


def test_throttle_counts_forced_messages_so_the_rate_holds_after_them(clock: FakeClock) -> None:
    throttle = Throttle(rate=10, burst=3, clock=clock)
    throttle.spend(8)  # e.g. a phase ending sends everything at once
    assert not throttle.take(1)
    assert throttle.wait(1) == pytest.approx(0.6)
