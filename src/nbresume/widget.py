"""The live view of a running checkpoint cell: a small ipywidgets box over `_progress`.

`PhaseView` is the engine's ``watch`` callback, one per cell run:

- "start": ONE output (``display_id``) with our own ``text/plain`` and ``text/html``: what
  nbclient, saved notebooks and frontends without widgets show. With the first loop the widget
  view joins that bundle (a cell without a loop never builds a widget);
- "progress": the widget's traits change through a `Throttle` of comm messages (at most 10 in any second
  whatever the loop speed); an update the throttle holds back is sent a moment later from a timer
  thread, so the last state always shows, even when the cell then does something else for an
  hour;
- "end": the output is replaced by the final text and HTML, and the widgets are closed. A saved
  or reopened notebook then shows the final state instead of "Error displaying widget: model not
  found" (the model lives only as long as the kernel);
- "restored": a compact line, no bar.

In a terminal IPython a text line takes the widget's place. Every display carries the metadata key
``nbresume``, so the engine's recorder never mistakes the view for the cell's own output.

Every bundle also carries `PHASE_MIME`: which phase, in which store. The JupyterLab extension
(labextension/) renders it from the server's store API instead of from the kernel, so the cell
tells the truth after a kernel death, a page reload or in a reopened notebook; frontends without
the extension pick the widget view or the text/HTML forms of the same bundle.
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

__all__ = ["PHASE_MIME", "PhaseView", "frontend_mode", "source_hash"]

PHASE_MIME = "application/vnd.nbresume.phase+json"

# A token bucket sends at most BURST + RATE * T messages in any T seconds: with these, at most 10
# in any second (SPEC: at most 10 updates a second), an update of one loop costing up to 3 messages
RATE = 7.0  # comm messages (or display updates) a second, on average, whatever the loop speed
BURST = 3.0  # ...and at most this many at once
METADATA = {NOTE_KEY: {"view": "progress"}}  # marks the view as nbresume's, never the cell's

BAR_STYLES = {"running": "", "done": "success", "failed": "danger", "interrupted": "warning"}

Schedule = Callable[[float, Callable[[], None]], Callable[[], None]]
"""``schedule(delay, fn)`` runs ``fn`` once after ``delay`` seconds (replacing what was scheduled
before); returns a cancel function."""


class _Ticker:
    """One daemon thread per view that runs a callback once a deadline passes.

    Starting a thread per held-back update would cost more than the update; this one starts on
    the first, waits on a condition, and ends with the view.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: float | None = None
        self._fn: Callable[[], None] | None = None
        self._stopped = False
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, fn: Callable[[], None]) -> Callable[[], None]:
        with self._cond:
            self._due, self._fn = time.monotonic() + delay, fn
            if self._thread is None and not self._stopped:
                # NB. ipykernel 7 keeps the parent message in context variables; a bare thread
                # would send the widget's messages without it.
                context = contextvars.copy_context()
                self._thread = threading.Thread(
                    target=context.run, args=(self._run,), name="nbresume-view", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return self.cancel

    def cancel(self) -> None:
        with self._cond:
            self._due = None
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (self._due is None or time.monotonic() < self._due):
                    timeout = None if self._due is None else self._due - time.monotonic()
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                fn, self._due = self._fn, None
            if fn is not None:
                fn()


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


def source_hash(source: str) -> str:
    """FNV-1a (32 bits, hex) of a cell body without trailing blanks: the extension hashes the
    cell's current body the same way to show a checkpoint cell edited since it ran as stale."""
    text = "\n".join(line.rstrip() for line in source.splitlines()).strip("\n")
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{value:08x}"


def _display(data: dict[str, Any], display_id: bool = False) -> Any:
    from IPython.display import display

    return display(data, raw=True, metadata=METADATA, display_id=display_id or None)  # type: ignore[no-untyped-call]


def _store_dir() -> str:
    """The store this kernel's checkpoints use now (``%checkpoint dir`` moves it)."""
    from ._store import default_store_dir

    return str(default_store_dir())


def _write_unrecorded(stream: IO[str], text: str) -> None:
    # NB. the engine's recorder patches the stream instance's `write`; the class's is the real one.
    type(stream).write(stream, text)
    stream.flush()


class _Row:
    """One loop: label, bar, numbers (built with their values: no message beyond the opening)."""

    def __init__(self, loop: LoopProgress, now: float) -> None:
        assert widgets is not None
        label, bar, stats = self.values(loop, now)
        self.label = widgets.HTML(**label, layout=widgets.Layout(min_width="8em"))
        self.bar = widgets.IntProgress(**bar, min=0, layout=widgets.Layout(width="14em"))
        self.stats = widgets.HTML(**stats)
        self.box = widgets.HBox(
            [self.label, self.bar, self.stats], layout=widgets.Layout(align_items="center")
        )

    @staticmethod
    def values(loop: LoopProgress, now: float) -> tuple[dict[str, Any], ...]:
        indent = f"{1.5 * loop.depth:g}em"
        label = f'<span style="padding-left:{indent}">{html.escape(loop.desc)}</span>'
        if loop.total is None:  # unknown length: a full bar in another colour, the count beside
            high, value, style = max(loop.done, 1), max(loop.done, 1), "info"
        else:
            high, value = max(loop.total, 1), min(loop.done, max(loop.total, 1))
            style = BAR_STYLES.get(loop.status, "")
        # max before value: IntProgress clamps value to max
        bar = {"max": high, "value": value, "bar_style": style}
        return {"value": label}, bar, {"value": html.escape(loop.stats(now))}

    def changes(self, loop: LoopProgress, now: float) -> list[tuple[Any, dict[str, Any]]]:
        label, bar, stats = self.values(loop, now)
        return _diff([(self.label, label), (self.bar, bar), (self.stats, stats)])


def _diff(wanted: list[tuple[Any, dict[str, Any]]]) -> list[tuple[Any, dict[str, Any]]]:
    changes = []
    for widget, traits in wanted:
        changed = {k: v for k, v in traits.items() if getattr(widget, k) != v}
        if changed:
            changes.append((widget, changed))
    return changes


def _close(widget: Any) -> None:
    """Close a widget with its children, layout and style (each is a model in the kernel).

    Not while the kernel shuts down (a restart from the Kernel menu): the page has dropped
    their comms already, and each comm_close would be a "Comm not found" error in its console.
    """
    if _shutting_down():
        return
    _close_models(widget)


def _shutting_down() -> bool:
    from IPython import get_ipython

    kernel = getattr(get_ipython(), "kernel", None)
    # NB. ipykernel sets it when it has answered a shutdown request (6.x and 7.x)
    return getattr(kernel, "_shutdown_message", None) is not None


def _close_models(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_models(child)
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
        ``schedule(delay, fn) -> cancel`` for the trailing update; default a daemon thread.
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
        source: str | None = None,
    ) -> None:
        self.mode = mode or frontend_mode()
        self._source = None if source is None else source_hash(source)
        self._store_dir = ""
        if self.mode == "widget" and widgets is None:  # pragma: no cover
            self.mode = "html"
        self.clock = clock
        self.throttle = Throttle(rate, BURST, clock)
        self.messages = 0  # comm messages or display updates sent (tests and benchmarks read it)
        self._ticker: _Ticker | None = None
        if schedule is None:
            self._ticker = _Ticker()
            schedule = self._ticker.schedule
        self._schedule = schedule
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
            try:
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
            except BaseException:
                self._stop()  # the engine drops a failing view: no end event will come
                raise

    # -- events -------------------------------------------------------------------------------

    def _start(self, phase: PhaseProgress) -> None:
        self._phase = phase
        if self.mode == "text":
            self._update(force=True)
            return
        self._store_dir = _store_dir()
        # NB. the widget comes with the first loop (`_build`): a cell without one, the common
        # case, costs one display and one update, not a dozen widget models
        bundle = self._bundle(phase, self.clock())
        self._handle = _display(bundle, display_id=True)
        self._shown = bundle["text/html"]

    def _bundle(self, phase: PhaseProgress, now: float, shown: str | None = None) -> dict[str, Any]:
        return {
            "text/plain": phase_text(phase, now),
            "text/html": phase_html(phase, now) if shown is None else shown,
            PHASE_MIME: self._phase_data(phase),
        }

    def _phase_data(self, phase: PhaseProgress) -> dict[str, Any]:
        """What the extension needs to find the phase in the store (its state comes from there)."""
        data = {"name": phase.name, "dir": self._store_dir, "status": phase.status}
        if self._source is not None:
            data["source"] = self._source
        return data

    def _build(self, phase: PhaseProgress, now: float) -> None:
        """Create the widget with its current values, and put it in the view's output."""
        assert widgets is not None
        self._header = widgets.HTML(phase_header_html(phase, now))
        self._rows = [_Row(loop, now) for loop in visible_loops(phase.loops)]
        self._box = widgets.VBox(
            [self._header, *(row.box for row in self._rows)], _dom_classes=["nbresume-progress"]
        )
        bundle = self._bundle(phase, now)
        bundle[WIDGET_MIME] = self._box._repr_mimebundle_()[WIDGET_MIME]
        self._handle.update(bundle, raw=True, metadata=METADATA)

    def _update(self, force: bool) -> None:
        phase = self._phase
        assert phase is not None
        now = self.clock()
        if not force and self.throttle.wait(1, now) > 0:
            self._defer(self.throttle.wait(1, now))
            return
        if self.mode == "widget" and self._box is None:
            if not phase.loops:
                return
            changes, cost = [], 1  # one display update brings in the whole widget
        elif self.mode == "widget":
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
        if self.mode == "widget" and self._box is None:
            self._build(phase, now)
        elif self.mode == "widget":
            for widget, traits in changes:
                with widget.hold_sync():
                    for name, value in traits.items():
                        setattr(widget, name, value)
        elif self.mode == "html":
            self._shown = shown
            self._handle.update(self._bundle(phase, now, shown), raw=True, metadata=METADATA)
        else:
            self._shown = shown
            self._write_line(shown)

    def _end(self) -> None:
        phase = self._phase
        assert phase is not None
        self._stop()
        now = self.clock()
        final = self._bundle(phase, now)
        if self.mode == "text":
            if self._live:
                self._write_line("")
            _display({"text/plain": final["text/plain"]})
        else:
            # NB. without the widget view: the output outlives the widget's model (see the top)
            self._handle.update(final, raw=True, metadata=METADATA)
            self.messages += 1
        if self._box is not None:  # rows not shown at the end are closed too
            for widget in (*(row.box for row in self._rows), self._box):
                _close(widget)
        self._phase = None

    def _stop(self) -> None:
        """No more updates: cancel a held-back one and let the ticker's thread end."""
        if self._cancel is not None:
            self._cancel()
            self._cancel = None
        if self._ticker is not None:
            self._ticker.stop()

    def _restored(self, phase: PhaseProgress) -> None:
        if self.mode == "text":  # the engine's note already says it, in the same words
            return
        self._store_dir = _store_dir()
        _display(
            {
                "text/plain": phase.header(),
                "text/html": phase_header_html(phase),
                PHASE_MIME: self._phase_data(phase),
            }
        )

    # -- helpers ------------------------------------------------------------------------------

    def _widget_changes(self, phase: PhaseProgress, now: float) -> list[tuple[Any, dict[str, Any]]]:
        loops = visible_loops(phase.loops)
        for loop in loops[len(self._rows) :]:  # rows are reused: new widgets only for new depths
            self._rows.append(_Row(loop, now))
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
                self._stop()

    def _write_line(self, line: str) -> None:
        stream = self._stream or sys.stderr
        if not stream.isatty():
            return
        _write_unrecorded(stream, "\r\x1b[K" + line)
        self._live = bool(line)
