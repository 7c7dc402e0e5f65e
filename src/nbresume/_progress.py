"""Pure phase and loop progress state, with an injectable clock. No IPython, no widgets.

The engines update these records at their own (throttled) pace; views (the widget, the text form,
the CLI, ``on_progress`` callbacks) read them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Clock", "LoopProgress", "PhaseProgress", "format_duration"]

Clock = Callable[[], float]

STATUSES = ("pending", "running", "done", "restored", "failed", "interrupted", "stale")


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

    def snapshot_age(self, now: float | None = None) -> float | None:
        if self.last_snapshot is None:
            return None
        return (self.clock() if now is None else now) - self.last_snapshot

    def text(self) -> str:
        """One line: ``train: 12/40 (resumed 10) 3.1 it/s, 4.0s elapsed, ETA 9.0s``."""
        total = "?" if self.total is None else str(self.total)
        parts = [f"{self.desc}: {self.done}/{total}"]
        if self.skipped:
            parts.append(f"(resumed {self.skipped})")
        rate = self.rate
        if rate is not None:
            parts.append(f"{rate:.3g} it/s")
        parts.append(f"{format_duration(self.elapsed)} elapsed")
        if self.status == "running" and self.eta is not None:
            parts.append(f"ETA {format_duration(self.eta)}")
        elif self.status != "running":
            parts.append(self.status)
        return " ".join(parts)


@dataclass
class PhaseProgress:
    """One checkpoint cell's phase in this kernel."""

    name: str
    status: str = "running"
    clock: Clock = time.monotonic
    started: float = 0.0
    finished: float | None = None
    loops: list[LoopProgress] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def finish(self, status: str) -> None:
        self.status = status
        self.finished = self.clock()
        for loop in self.loops:
            if loop.status == "running":
                loop.status = status if status in ("failed", "interrupted") else "done"
