"""The live view of a running checkpoint cell: a small ipywidgets box over `_progress`.

`PhaseView` is the engine's ``watch`` callback, one per cell run:

- "start": ONE output whose bundle holds the widget view plus our own ``text/plain`` and
  ``text/html`` (what nbclient, saved notebooks and frontends without widgets show);
- "progress": the widget's traits change through a `Throttle` of comm messages (about 10 a second
  whatever the loop speed); an update the throttle holds back is sent a moment later from a timer,
  so the last state always shows, even when the cell does something else for an hour after it;
- "end": the output is replaced by the final text and HTML, and the widgets are closed. A saved
  or reopened notebook then shows the final state instead of "Error displaying widget: model not
  found" (the model lives only as long as the kernel);
- "restored": a compact line, no bar.

In a terminal IPython a text line takes the widget's place. Every display carries the metadata key
``nbresume``, so the engine's recorder never mistakes the view for the cell's own output.
"""

from __future__ import annotations

import contextvars
import html
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from ._capture import NOTE_KEY, WIDGET_MIME
from ._progress import (
    Clock,
    LoopProgress,
    PhaseProgress,
    Throttle,
    phase_header_html,
    phase_html,
    phase_line,
    phase_text,
    visible_loops,
)

try:
    import ipywidgets as widgets
except ImportError:  # pragma: no cover - a dependency; without it kernels get HTML updates
    widgets = None

__all__ = ["PhaseView", "frontend_mode"]

RATE = 10.0  # comm messages (or display updates) a second, on average, whatever the loop speed
BURST = 3.0  # ...and at most this many at once
METADATA = {NOTE_KEY: {"view": "progress"}}  # marks the view as nbresume's, never the cell's

BAR_STYLES = {"running": "", "done": "success", "failed": "danger", "interrupted": "warning"}

Schedule = Callable[[float, Callable[[], None]], Callable[[], None]]
"""``schedule(delay, fn)`` runs ``fn`` once after ``delay`` seconds; returns a cancel function."""


def _timer(delay: float, fn: Callable[[], None]) -> Callable[[], None]:
    # NB. ipykernel 7 keeps the parent message in context variables; a bare thread would send
    # the widget's messages without it.
    context = contextvars.copy_context()
    timer = threading.Timer(delay, context.run, args=(fn,))
    timer.daemon = True
    timer.start()
    return timer.cancel


def frontend_mode() -> str:
    """``"widget"`` in a Jupyter kernel, ``"html"`` there without ipywidgets, else ``"text"``.

    A kernel cannot know whether its frontend renders widgets (nbclient and some editors do
    not), which is why the widget's output always carries a text and an HTML form too.
    """
    from IPython import get_ipython

    zmqshell = sys.modules.get("ipykernel.zmqshell")
    if zmqshell is None or not isinstance(get_ipython(), zmqshell.ZMQInteractiveShell):
        return "text"
    return "html" if widgets is None else "widget"


def _display(data: dict[str, Any], display_id: bool = False) -> Any:
    from IPython.display import display

    return display(data, raw=True, metadata=METADATA, display_id=display_id or None)  # type: ignore[no-untyped-call]


def _write_unrecorded(stream: IO[str], text: str) -> None:
    # NB. the engine's recorder patches the stream instance's `write`; the class's is the real one.
    type(stream).write(stream, text)
    stream.flush()


class _Row:
    """One loop: label, bar, numbers."""

    def __init__(self) -> None:
        assert widgets is not None
        self.label = widgets.HTML(layout=widgets.Layout(min_width="8em"))
        self.bar = widgets.IntProgress(min=0, max=1, value=0, layout=widgets.Layout(width="14em"))
        self.stats = widgets.HTML()
        self.box = widgets.HBox(
            [self.label, self.bar, self.stats], layout=widgets.Layout(align_items="center")
        )

    def changes(self, loop: LoopProgress, now: float) -> list[tuple[Any, dict[str, Any]]]:
        indent = f"{1.5 * loop.depth:g}em"
        label = f'<span style="padding-left:{indent}">{html.escape(loop.desc)}</span>'
        if loop.total is None:  # unknown length: a full bar in another colour, the count beside
            high, value, style = max(loop.done, 1), max(loop.done, 1), "info"
        else:
            high, value = max(loop.total, 1), min(loop.done, max(loop.total, 1))
            style = BAR_STYLES.get(loop.status, "")
        wanted: list[tuple[Any, dict[str, Any]]] = [
            (self.label, {"value": label}),
            # max before value: IntProgress clamps value to max
            (self.bar, {"max": high, "value": value, "bar_style": style}),
            (self.stats, {"value": html.escape(loop.stats(now))}),
        ]
        return _diff(wanted)


def _diff(wanted: list[tuple[Any, dict[str, Any]]]) -> list[tuple[Any, dict[str, Any]]]:
    changes = []
    for widget, traits in wanted:
        changed = {k: v for k, v in traits.items() if getattr(widget, k) != v}
        if changed:
            changes.append((widget, changed))
    return changes


def _close(widget: Any) -> None:
    """Close a widget with its children, layout and style (each is a model in the kernel)."""
    for child in getattr(widget, "children", ()):
        _close(child)
    for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
        if part is not None:
            part.close()
    widget.close()


class PhaseView:
    """Show a running phase: ``view(phase, event)`` with the engine's watch events.

    Parameters
    ----------
    mode : {"widget", "html", "text"}, optional
        Default: `frontend_mode`.
    clock : callable, optional
        Seconds, monotonic; tests pass a fake.
    rate : float
        Comm messages (widget) or display updates (html, text) a second, on average.
    schedule : callable, optional
        ``schedule(delay, fn) -> cancel`` for the trailing update; default a daemon timer thread.
    stream : file, optional
        Where the text mode writes its live line; default ``sys.stderr`` (only if a terminal).
    """

    def __init__(
        self,
        *,
        mode: str | None = None,
        clock: Clock = time.monotonic,
        rate: float = RATE,
        schedule: Schedule | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.mode = mode or frontend_mode()
        if self.mode == "widget" and widgets is None:  # pragma: no cover
            self.mode = "html"
        self.clock = clock
        self.throttle = Throttle(rate, BURST, clock)
        self.messages = 0  # comm messages or display updates sent (tests and benchmarks read it)
        self._schedule = schedule or _timer
        self._cancel: Callable[[], None] | None = None
        self._lock = threading.RLock()
        self._stream = stream
        self._phase: PhaseProgress | None = None
        self._handle: Any = None
        self._shown = ""  # the last text or HTML sent (html and text modes)
        self._live = False  # a terminal line is showing
        self._header: Any = None
        self._box: Any = None
        self._rows: list[_Row] = []

    def __call__(self, phase: PhaseProgress, event: str) -> None:
        with self._lock:
            if event == "start":
                self._start(phase)
            elif event == "progress":
                if self._phase is phase:
                    self._update(force=False)
            elif event == "end":
                if self._phase is phase:
                    self._end()
            elif event == "restored":
                self._restored(phase)

    # -- events -------------------------------------------------------------------------------

    def _start(self, phase: PhaseProgress) -> None:
        self._phase = phase
        now = self.clock()
        bundle = {"text/plain": phase_text(phase, now), "text/html": phase_html(phase, now)}
        if self.mode == "widget":
            assert widgets is not None
            self._header = widgets.HTML(phase_header_html(phase, now))
            self._box = widgets.VBox([self._header])
            self._box.add_class("nbresume-progress")
            bundle[WIDGET_MIME] = self._box._repr_mimebundle_()[WIDGET_MIME]
        if self.mode == "text":
            self._update(force=True)
        else:
            self._handle = _display(bundle, display_id=True)
            self._shown = bundle["text/html"]

    def _update(self, force: bool) -> None:
        phase = self._phase
        assert phase is not None
        now = self.clock()
        if not force and self.throttle.wait(1, now) > 0:
            self._defer(self.throttle.wait(1, now))
            return
        if self.mode == "widget":
            changes = self._widget_changes(phase, now)
            cost = len(changes)
        else:
            shown = phase_html(phase, now) if self.mode == "html" else phase_line(phase, now)
            cost = int(shown != self._shown)
        if not cost:
            return
        if force:
            self.throttle.spend(cost, now)
        elif not self.throttle.take(cost, now):
            self._defer(self.throttle.wait(cost, now))
            return
        self.messages += cost
        if self.mode == "widget":
            for widget, traits in changes:
                with widget.hold_sync():
                    for name, value in traits.items():
                        setattr(widget, name, value)
        elif self.mode == "html":
            self._shown = shown
            self._handle.update(
                {"text/plain": phase_text(phase, now), "text/html": shown},
                raw=True,
                metadata=METADATA,
            )
        else:
            self._shown = shown
            self._write_line(shown)

    def _end(self) -> None:
        phase = self._phase
        assert phase is not None
        if self._cancel is not None:
            self._cancel()
            self._cancel = None
        now = self.clock()
        final = {"text/plain": phase_text(phase, now), "text/html": phase_html(phase, now)}
        if self.mode == "text":
            if self._live:
                self._write_line("")
            _display({"text/plain": final["text/plain"]})
        else:
            # NB. without the widget view: the output outlives the widget's model (see the top)
            self._handle.update(final, raw=True, metadata=METADATA)
            self.messages += 1
        if self._box is not None:
            _close(self._box)
        self._phase = None

    def _restored(self, phase: PhaseProgress) -> None:
        _display({"text/plain": phase.header(), "text/html": phase_header_html(phase)})

    # -- helpers ------------------------------------------------------------------------------

    def _widget_changes(self, phase: PhaseProgress, now: float) -> list[tuple[Any, dict[str, Any]]]:
        loops = visible_loops(phase.loops)
        while len(self._rows) < len(loops):  # rows are reused: new widgets only for new depths
            self._rows.append(_Row())
        children = (self._header, *(row.box for row in self._rows[: len(loops)]))
        changes = _diff(
            [
                (self._header, {"value": phase_header_html(phase, now)}),
                (self._box, {"children": children}),
            ]
        )
        for row, loop in zip(self._rows, loops, strict=False):
            changes += row.changes(loop, now)
        return changes

    def _defer(self, delay: float) -> None:
        """Send the update held back by the throttle as soon as it allows (once)."""
        if self._cancel is None:
            self._cancel = self._schedule(delay, self._trailing)

    def _trailing(self) -> None:
        with self._lock:
            self._cancel = None
            if self._phase is None:
                return
            try:
                self._update(force=False)
            except Exception:  # a timer thread has no one to tell; the end event shows the rest
                self._phase = None

    def _write_line(self, line: str) -> None:
        stream = self._stream or sys.stderr
        if not stream.isatty():
            return
        _write_unrecorded(stream, "\r\x1b[K" + line)
        self._live = bool(line)
