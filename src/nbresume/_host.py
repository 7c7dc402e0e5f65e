"""The seam between `resumable` loops and whatever persists them.

A loop asks the current `LoopHost` for its saved state when it starts, tells it when it is due for a
snapshot and when it ends. Inside a ``%%checkpoint`` cell the host is the running checkpoint (it
saves the cell's variables and outputs too); elsewhere a loop hosts itself under its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["LoopHost", "LoopState", "current_host", "set_host"]


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

    @property
    def count(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


class LiveLoop(Protocol):
    loop_id: str

    def state(self) -> LoopState: ...
    def done_so_far(self) -> int: ...


class LoopHost(Protocol):
    def attach(self, loop: LiveLoop) -> LoopState | None:
        """Register a starting loop; returns its saved state, if any."""

    def detach(self, loop: LiveLoop, complete: bool) -> None:
        """The loop ended (completed, or left by break/exception)."""

    def snapshot(self, reason: str) -> float:
        """Save the state of every attached loop now; returns the seconds it took."""

    def parent_key(self) -> str:
        """An id of the enclosing loops' in-flight items, to tell nested loops apart."""


_host: LoopHost | None = None


def current_host() -> LoopHost | None:
    return _host


def set_host(host: LoopHost | None) -> LoopHost | None:
    """Install ``host`` (None to remove); returns the previous one so callers can restore it."""
    global _host
    previous, _host = _host, host
    return previous
