"""The seam between `resumable` loops and whatever persists them.

A loop asks the current `LoopHost` for its saved state when it starts, tells it when it is due for a
snapshot and when it ends. Inside a ``%%checkpoint`` cell the host is the running checkpoint (it
saves the cell's variables and outputs too); elsewhere a loop hosts itself under its name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["STALE_SECONDS", "LoopHost", "LoopState", "current_host", "set_host", "writer_alive"]

# a "running" progress record of another host, not rewritten for this long, is taken as dead
STALE_SECONDS = 60.0


@dataclass
class LoopState:
    """What is saved of one loop: the keys of its done items, in the order they were done.

    The keys come in chunks (lists, or ranges for ``range`` inputs) so a snapshot of a long loop
    neither rebuilds nor re-pickles one huge list.
    """

    chunks: list[Sequence[Any]] = field(default_factory=list)
    complete: bool = False
    outputs_end: int | None = None  # number of cell outputs when the loop completed
    outputs_start: int | None = None  # number of cell outputs when the item in flight started
    total: int | None = None
    # fingerprints of items at some done positions (the first, the last done) of a loop whose
    # items are keyed by position: a resume over other items at those positions is refused
    probes: tuple[tuple[int, str], ...] = ()
    # (count, digest) of the prints of the first ``count`` items as they were yielded, for a
    # loop keyed by position (`_prefix`): a resume over a changed prefix is refused
    prefix: tuple[int, str] | None = None

    @property
    def count(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


class LiveLoop(Protocol):
    loop_id: str  # set by the host in `attach`: its identity among the host's loops

    def state(self) -> LoopState: ...
    def done_so_far(self) -> int: ...


class LoopHost(Protocol):
    def attach(self, loop: LiveLoop) -> LoopState | None:
        """Register a starting loop; returns its saved state, if any."""

    def detach(self, loop: LiveLoop, complete: bool) -> None:
        """The loop ended (completed, or left by break/exception)."""

    def snapshot(self, reason: str, loop: Any = None) -> float:
        """Save the state of every attached loop now, at a boundary of ``loop`` (its items before
        the next one done, the next not started); returns the seconds it took."""

    def plain_reason(self, site: Any) -> str | None:
        """Why a loop written at ``site`` cannot resume mid-way here (it then runs plain), or
        None."""

    def note_plain(self, reason: str) -> None:
        """Tell the user once that a loop runs plain, and why."""

    def stopping(self) -> bool:
        """Whether a Ctrl-C asked the loops to stop at their next boundary."""

    def left_plain(self, loop: Any) -> None:
        """A loop running plain (`plain_reason`) was left unfinished by an exception."""

    def started_plain(self, loop: Any) -> None:
        """A loop running plain started (one still suspended when the cell ends is unfinished)."""


_host: LoopHost | None = None


def current_host() -> LoopHost | None:
    return _host


def set_host(host: LoopHost | None) -> LoopHost | None:
    """Install ``host`` (None to remove); returns the previous one so callers can restore it."""
    global _host
    previous, _host = _host, host
    return previous


def writer_alive(progress: Mapping[str, Any], now: float | None = None) -> bool:
    """Whether the process that writes a running ``progress:NAME`` record still runs.

    Its pid, when it ran on this host; else (another host sharing the store) whether the record
    was rewritten in the last `STALE_SECONDS` (a running loop rewrites it every second or so).
    """
    import socket

    pid, host = progress.get("pid"), progress.get("host")
    if isinstance(pid, int) and pid > 0 and host in (None, socket.gethostname()):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process: alive
            return True
        except OSError:
            pass
        else:
            return True
    updated = progress.get("updated")
    if not isinstance(updated, int | float):
        return False
    return (time.time() if now is None else now) - updated < STALE_SECONDS
