"""Pure phase and loop progress state with an injectable clock, and its text and HTML forms.

No IPython, no widgets: the engines update these records at their own (throttled) pace; views (the
widget, a terminal line, ``%checkpoint status``, ``on_progress`` callbacks) read and render them.
Every renderer takes ``now`` so that tests can pin the time.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "STATUSES",
    "Clock",
    "LoopList",
    "LoopProgress",
    "PhaseProgress",
    "Throttle",
    "format_duration",
    "format_rate",
    "format_size",
    "phase_header_html",
    "phase_html",
    "phase_line",
    "phase_text",
    "status_badge_html",
    "table_html",
    "table_status",
    "table_text",
    "visible_loops",
]

Clock = Callable[[], float]

STATUSES = ("pending", "running", "done", "restored", "failed", "interrupted", "stale")
ENDED = ("done", "restored", "failed", "interrupted")  # the statuses a phase can finish in
TOP_LOOPS = 3  # a phase view shows the last few top-level loops (with their inner loops)
STATUS_COLORS = {  # badge and bar colours; readable on light and dark JupyterLab themes
    "pending": "#757575",
    "running": "#1565c0",
    "done": "#2e7d32",
    "restored": "#00838f",
    "failed": "#c62828",
    "interrupted": "#ef6c00",
    "stale": "#6a1b9a",
}


def format_duration(seconds: float | None) -> str:
    """``4m12s``-style durations.

    Examples
    --------
    >>> format_duration(252.4)
    '4m12s'
    >>> format_duration(0.25)
    '0.25s'
    """
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.2f}s" if seconds < 1 else f"{seconds:.1f}s"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{sec:02d}s" if m else f"{sec}s"


def format_rate(rate: float | None) -> str:
    """Items per second, or seconds per item for slow loops (as tqdm does).

    Examples
    --------
    >>> format_rate(123456.7), format_rate(3.14159), format_rate(0.25)
    ('123,457 it/s', '3.14 it/s', '4.0 s/it')
    """
    if rate is None or rate <= 0:
        return "? it/s"
    if rate >= 100:
        return f"{rate:,.0f} it/s"
    if rate >= 1:
        return f"{rate:.3g} it/s"
    return f"{1 / rate:.1f} s/it"


def format_size(n: float) -> str:
    """Bytes for people.

    Examples
    --------
    >>> format_size(512), format_size(3 * 1024**2)
    ('512 B', '3.0 MB')
    """
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


def _count(n: int) -> str:
    return f"{n:,}"


@dataclass
class LoopProgress:
    """Progress of one `resumable` loop."""

    desc: str
    total: int | None = None
    done: int = 0  # items done, skipped ones included
    skipped: int = 0  # items found done in a saved state and not run again
    status: str = "running"
    clock: Clock = time.monotonic
    started: float = field(default=0.0)
    updated: float = field(default=0.0)
    last_snapshot: float | None = None
    snapshots: int = 0
    depth: int = 0  # how many loops it is nested in (set by `LoopList.append`)

    def __post_init__(self) -> None:
        self.started = self.updated = self.clock()

    def update(self, done: int) -> None:
        self.done = done
        self.updated = self.clock()

    @property
    def elapsed(self) -> float:
        return self.updated - self.started

    @property
    def rate(self) -> float | None:
        """Items run (not skipped) per second since the loop started."""
        ran = self.done - self.skipped
        if ran <= 0 or self.elapsed <= 0:
            return None
        return ran / self.elapsed

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if self.total is None or rate is None:
            return None
        return max(self.total - self.done, 0) / rate

    @property
    def fraction(self) -> float | None:
        """Share of the items done, 0..1; None when the total is unknown."""
        if not self.total:
            return None if self.total is None else 1.0
        return min(max(self.done / self.total, 0.0), 1.0)

    def snapshot_age(self, now: float | None = None) -> float | None:
        if self.last_snapshot is None:
            return None
        return (self.clock() if now is None else now) - self.last_snapshot

    def position(self) -> str:
        """``12/40``, the count of done items out of the total (``12/?`` when unknown)."""
        total = "?" if self.total is None else _count(self.total)
        return f"{_count(self.done)}/{total}"

    def stats(self, now: float | None = None) -> str:
        """Everything but the label: ``12/40 (resumed 10), 3.1 it/s, 4.0s elapsed, ETA 9.0s``."""
        if self.status in ("failed", "interrupted", "stopped"):
            # the item in flight is the one after the done ones: 1-based, it is done + 1
            total = "" if self.total is None else f"/{_count(self.total)}"
            parts = [f"{self.status} at item {_count(self.done + 1)}{total}"]
        else:
            parts = [self.position()]
        if self.skipped:
            parts[0] += f" (resumed {_count(self.skipped)})"
        if self.rate is not None:
            parts.append(format_rate(self.rate))
        if self.status == "running":
            # NB. until now, not the last tick: an outer loop's items can take hours
            running = (self.clock() if now is None else now) - self.started
            parts.append(f"{format_duration(max(running, self.elapsed))} elapsed")
            if self.eta is not None:
                parts.append(f"ETA {format_duration(self.eta)}")
            age = self.snapshot_age(now)
            if age is not None:
                parts.append(f"saved {format_duration(max(age, 0.0))} ago")
        else:
            parts.append(format_duration(self.elapsed))
            if self.status == "done":
                parts.append("done")
        return ", ".join(parts)

    def text(self, now: float | None = None) -> str:
        """One line: ``train: 12/40 (resumed 10), 3.1 it/s, 4.0s elapsed, ETA 9.0s``."""
        return f"{self.desc}: {self.stats(now)}"


class LoopList(list[LoopProgress]):
    """A phase's loops in start order; `append` records how deeply each one is nested."""

    def append(self, loop: LoopProgress) -> None:
        # NB. a loop that starts while others still run is nested in them (an inner loop starts
        # inside an item of its outer loop); a loop started after another finished is a sibling.
        loop.depth = sum(1 for other in self if other.status == "running")
        super().append(loop)


def visible_loops(loops: Sequence[LoopProgress], top: int = TOP_LOOPS) -> list[LoopProgress]:
    """The loops worth showing: the last ``top`` top-level loops, each with its latest inner loops.

    A finished inner loop stays shown under its outer loop until the next inner loop replaces it.
    """
    groups: list[list[LoopProgress]] = []
    for loop in loops:
        if loop.depth == 0 or not groups:
            groups.append([loop])
        else:
            chain = groups[-1]
            del chain[loop.depth :]
            chain.append(loop)
    return [loop for chain in groups[-top:] for loop in chain]


@dataclass
class PhaseProgress:
    """One checkpoint cell's phase in this kernel."""

    name: str
    status: str = "running"
    clock: Clock = time.monotonic
    started: float = 0.0
    finished: float | None = None
    loops: list[LoopProgress] = field(default_factory=LoopList)
    prior: float = 0.0  # seconds the run ran in earlier kernels, up to the snapshot it resumed
    resumes: int = 0  # how many kernels took the run over from a snapshot

    def __post_init__(self) -> None:
        self.started = self.clock()

    def finish(self, status: str) -> None:
        """End the phase: ``done``, ``failed``, ``interrupted`` (or ``restored``, for a hit).

        Its loops end with it: done when the phase is, failed or interrupted when it is. A loop
        left before its end reports interrupted; in a failed phase it failed, in a done one it
        was left by a ``break``: stopped.
        """
        if status not in ENDED:
            raise ValueError(f"a phase cannot finish as {status!r}; use one of {ENDED}")
        self.status = status
        self.finished = self.clock()
        for loop in self.loops:
            if status == "failed" and loop.status in ("running", "interrupted"):
                loop.status = "failed"  # left by the exception that failed the phase
            elif status == "interrupted" and loop.status == "running":
                loop.status = "interrupted"
            elif status == "done" and loop.status == "running":
                loop.status = "done"
            elif status == "done" and loop.status == "interrupted":
                loop.status = "stopped"  # left early by a `break`

    def elapsed(self, now: float | None = None) -> float:
        end = self.finished if self.finished is not None else self.clock() if now is None else now
        return self.prior + max(end - self.started, 0.0)

    def where(self) -> str:
        """Where a failed or interrupted phase stopped: ``outer item 4/10 > inner item 41/100``."""
        stopped = [
            loop
            for loop in visible_loops(self.loops)
            if loop.status in ("failed", "interrupted", "running")
        ]
        return ", ".join(
            f"{loop.desc} item {_count(loop.done + 1)}"
            + ("" if loop.total is None else f"/{_count(loop.total)}")
            for loop in stopped
        )

    def header(self, now: float | None = None) -> str:
        """``train: running, 4.0s`` / ``train: done in 12.9s`` / ``train: failed after 3.0s at ...``."""
        if self.status == "restored":
            return f"{self.name}: restored"
        took = format_duration(self.elapsed(now))
        if self.status == "running":
            return f"{self.name}: running, {took}"
        if self.status == "done":
            return f"{self.name}: done in {took}"
        where = self.where() if self.status in ("failed", "interrupted") else ""
        return f"{self.name}: {self.status} after {took}" + (f" at {where}" if where else "")


# -- text and HTML forms ---------------------------------------------------------------------


def phase_text(phase: PhaseProgress, now: float | None = None) -> str:
    """The text form of a phase: a header line, then one indented line per visible loop."""
    lines = [phase.header(now)]
    lines += ["  " * (loop.depth + 1) + loop.text(now) for loop in visible_loops(phase.loops)]
    return "\n".join(lines)


def phase_line(phase: PhaseProgress, now: float | None = None) -> str:
    """One line for a terminal: the header and the innermost running loops."""
    loops = visible_loops(phase.loops)
    if phase.status == "running":
        loops = [loop for loop in loops if loop.status == "running"] or loops[-1:]
    return " | ".join([phase.header(now), *(loop.text(now) for loop in loops[-3:])])


def status_badge_html(status: str) -> str:
    color = STATUS_COLORS.get(status, STATUS_COLORS["pending"])
    return (
        f'<span class="nbresume-status" style="background:{color};color:#fff;'
        f'border-radius:3px;padding:0 6px;font-size:0.85em">{html.escape(status)}</span>'
    )


def phase_header_html(phase: PhaseProgress, now: float | None = None) -> str:
    """The phase name, a status badge, and once it ended, the time (and where it stopped)."""
    parts = [f"<b>{html.escape(phase.name)}</b>", status_badge_html(phase.status)]
    if phase.status not in ("running", "restored"):  # while running, the loops show the time
        parts.append(f'<span style="opacity:0.7">{format_duration(phase.elapsed(now))}</span>')
    if phase.status in ("failed", "interrupted"):
        where = phase.where()
        if where:
            parts.append(f"<span>at {html.escape(where)}</span>")
    return " ".join(parts)


def bar_html(loop: LoopProgress) -> str:
    fraction = loop.fraction
    width = 100.0 if fraction is None else 100 * fraction
    color = STATUS_COLORS.get(loop.status, STATUS_COLORS["pending"])
    return (
        f'<span class="nbresume-bar" style="display:inline-block;width:14em;height:0.8em;'
        f'background:#e0e0e0;border-radius:2px;vertical-align:middle;overflow:hidden">'
        f'<span style="display:block;height:100%;width:{width:.1f}%;background:{color}">'
        "</span></span>"
    )


def loop_html(loop: LoopProgress, now: float | None = None) -> str:
    indent = f"{1.5 * loop.depth:g}em"
    return (
        f'<div class="nbresume-loop" style="padding-left:{indent};white-space:nowrap">'
        f'<span style="display:inline-block;min-width:8em">{html.escape(loop.desc)}</span> '
        f"{bar_html(loop)} <span>{html.escape(loop.stats(now))}</span></div>"
    )


def phase_html(phase: PhaseProgress, now: float | None = None) -> str:
    """The HTML form of a phase: what the widget shows, as static HTML (bars are CSS)."""
    rows = "".join(loop_html(loop, now) for loop in visible_loops(phase.loops))
    return (
        '<div class="nbresume-phase" style="line-height:1.6">'
        f"<div>{phase_header_html(phase, now)}</div>{rows}</div>"
    )


# -- the status table ------------------------------------------------------------------------


def table_status(status: str, source_changed: bool) -> str:
    """The status ``%checkpoint status`` shows once the notebook's current cell is known.

    A phase that is done, restored or pending but whose cell now differs from the source of its
    saved version is stale (a re-run computes it again); a running, failed or interrupted phase
    keeps its status, which says more.

    Examples
    --------
    >>> table_status("done", source_changed=True), table_status("failed", source_changed=True)
    ('stale', 'failed')
    """
    if source_changed and status in ("done", "restored", "pending"):
        return "stale"
    return status


def format_when(timestamp: float | None, seconds: bool = False) -> str:
    """Local time to the minute (or second): ``2026-11-22 10:31``; ``-`` for none."""
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M" + (":%S" * seconds))


TABLE_COLUMNS = ("phase", "status", "last run", "duration", "loops", "size")


def _cells(row: Mapping[str, Any]) -> list[str]:
    from ._text import printable  # names come from a store, which may come from anyone

    return [
        printable(row["name"]),
        printable(row["status"]),
        format_when(row.get("last_run")),
        format_duration(row["duration"]) if row.get("duration") is not None else "-",
        printable(row.get("loops") or "-"),
        format_size(row.get("size") or 0),
    ]


def table_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """The phases as a fixed-width text table."""
    if not rows:
        return "no checkpoints yet"
    table = [list(TABLE_COLUMNS), *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(TABLE_COLUMNS))]
    right = {3, 5}  # durations and sizes line up on the right
    return "\n".join(
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in table
    )


def table_html(rows: Sequence[Mapping[str, Any]], caption: str = "") -> str:
    """The phases as an HTML table with status badges."""
    if not rows:
        return f"<p>no checkpoints yet{' in ' + html.escape(caption) if caption else ''}</p>"
    head = "".join(f"<th style='text-align:left'>{c}</th>" for c in TABLE_COLUMNS)
    body = []
    for row in rows:
        cells = [html.escape(c) for c in _cells(row)]
        cells[1] = status_badge_html(str(row["status"]))
        body.append(
            "<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells) + "</tr>"
        )
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="nbresume-status-table">{cap}<tr>{head}</tr>{"".join(body)}</table>'


# -- throttling ------------------------------------------------------------------------------


class Throttle:
    """A token bucket: on average at most ``rate`` messages a second, in bursts of ``burst``.

    A view asks `take` for the number of messages an update would send; the update goes out only
    if the bucket holds them. Forced updates (a phase ending) `spend` tokens all the same, so the
    long-run rate stays bounded: over any T seconds at most ``burst + rate * T`` plus one update.
    """

    def __init__(self, rate: float = 10.0, burst: float = 3.0, clock: Clock = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self._stamp = clock()

    def _refill(self, now: float | None) -> None:
        now = self.clock() if now is None else now
        self.tokens = min(self.burst, self.tokens + max(now - self._stamp, 0.0) * self.rate)
        self._stamp = now

    def take(self, cost: float = 1, now: float | None = None) -> bool:
        """Spend ``cost`` tokens if the bucket holds them (or is full, for a cost above ``burst``)."""
        self._refill(now)
        if self.tokens + 1e-9 < min(cost, self.burst):  # a timer set by `wait` fires just in time
            return False
        self.tokens -= cost
        return True

    def spend(self, cost: float, now: float | None = None) -> None:
        self._refill(now)
        self.tokens -= cost

    def wait(self, cost: float = 1, now: float | None = None) -> float:
        """Seconds until `take` of ``cost`` would succeed."""
        self._refill(now)
        return max(min(cost, self.burst) - self.tokens, 0.0) / self.rate
