"""When a `resumable` loop snapshots, and how it was left.

Snapshots are taken at boundaries only (an item done, the next not started): every ``every``
items or seconds when asked, else as often as a 2% time budget allows.
"""

from __future__ import annotations

import dis
import functools
import inspect
import re
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

from ._host import LoopHost
from ._ownhost import OwnHost
from .errors import CheckpointError

if TYPE_CHECKING:
    from .resumable import resumable

__all__ = [
    "SNAPSHOT_BUDGET",
    "WRAPPER_CLOSED",
    "SnapshotPolicy",
    "closed_by_exception",
    "parse_every",
]

# by default a snapshot at a boundary as soon as the loop ran 50 times the last one's cost: a
# cheap save (2 ms) after every item of 0.1 s or more, an expensive one (1 s) every 50 s
SNAPSHOT_BUDGET = 0.02
LAST_SNAPSHOT_SECONDS = 1.0  # the boundary after the last item is saved only when cheaper

_EVERY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s\s*$")


def parse_every(every: int | float | str | None) -> tuple[int | None, float | None]:
    """``5`` -> every 5 items; ``"30s"`` -> every 30 seconds; None -> adaptive."""
    if every is None:
        return None, None
    if isinstance(every, bool):
        raise CheckpointError(f"every={every!r} is not valid; give a number of items or '30s'")
    if isinstance(every, int):
        if every < 1:
            raise CheckpointError(
                f"every={every!r} is not valid; give a number of items >= 1 or seconds like '30s'"
            )
        return every, None
    if isinstance(every, float):
        seconds = every
    else:
        text = str(every)
        if text.strip().isdigit():
            return parse_every(int(text))
        match = _EVERY_RE.match(text)
        if match is None:
            raise CheckpointError(
                f"every={every!r} is not valid; give a number of items (5) or seconds ('30s')"
            )
        seconds = float(match.group(1))
    if seconds <= 0:
        raise CheckpointError(f"every={every!r} is not valid; the interval must be positive")
    return None, seconds


class SnapshotPolicy:
    """When a loop snapshots, at its boundaries: every ``every`` items or seconds when given; else
    as often as the 2% budget allows (a cheap save after every item), so a kill loses about one
    item when saving is cheap, and an expensive save waits until the loop earned its cost."""

    def __init__(self, loop: resumable[Any], host: LoopHost, now: float) -> None:
        self.loop = loop
        self.host = host
        self.last = now
        self.cost = 0.0
        self.saved = 0
        self.every_items = loop._every_items
        self.every_seconds = loop._every_seconds
        self.final = not isinstance(host, OwnHost)  # its completed loops keep no progress

    def boundary(self, now: float, done: int, last: bool = False) -> float:
        """Item ``done`` just finished and the next has not started; -> the clock after it."""
        if not last and self.host.stopping():
            self.host.snapshot("interrupt", self.loop)
            raise KeyboardInterrupt
        every_items = self.loop._every_items  # NB. the cell's --every is set in attach
        self.every_items = every_items
        if every_items is not None:
            due = last or done % every_items == 0
        elif self.loop._every_seconds is not None:
            due = now - self.last >= self.loop._every_seconds
        else:
            due = now - self.last >= self.cost / SNAPSHOT_BUDGET
            due = due and (not last or self.cost < LAST_SNAPSHOT_SECONDS)
        if not due or (last and not self.final):
            return now
        cost = self.host.snapshot("periodic", self.loop)
        # NB. the first save pays for opening the store: not what the next ones will cost
        self.cost = cost if self.saved else 0.0
        self.saved += 1
        progress = self.loop.progress
        self.last = progress.last_snapshot = progress.clock()
        progress.snapshots += 1
        return self.last


# the instructions that drop a for statement's iterator on purpose (break, return, continue to
# an outer loop); anything else closing the loop is an exception unwinding the caller's frame
_DROPS_ITERATOR = frozenset({"POP_TOP", "POP_ITER"})
WRAPPER_CLOSED = "the call around it"  # `left_by` when a C iterator (islice, map) dropped it
_GENERATOR = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR | inspect.CO_COROUTINE


def closed_by_exception(closer: FrameType | None) -> str | None:
    """-> "an exception" when the frame that closed the loop's generator is unwinding one.

    NB. Python hides the exception being propagated from the generator it closes; the caller's
    instruction tells them apart: a break pops the iterator, an exception is raised elsewhere.
    """
    walked = False
    while closer is not None:
        opname = _opname_at(closer.f_code, closer.f_lasti)
        if opname in _DROPS_ITERATOR:
            return None
        if opname == "FOR_ITER" and not walked:
            # NB. a C iterator around the loop dropped it while the for statement advanced it:
            # `islice` at its end, or `map` whose function raised; Python does not tell which
            return WRAPPER_CLOSED
        if not closer.f_code.co_flags & _GENERATOR or closer.f_back is None:
            return "an exception"
        # NB. a wrapping generator (tqdm's `__iter__`) closed by its own consumer, or raising
        # in its own code: the frame that closed it, or that it raised into, decides
        closer = closer.f_back
        walked = True
    return None


@functools.lru_cache(maxsize=256)
def _opnames(code: CodeType) -> dict[int, str]:
    return {i.offset: i.opname for i in dis.get_instructions(code)}


def _opname_at(code: CodeType, offset: int) -> str:
    names = _opnames(code)
    while offset >= 0 and offset not in names:  # NB. inside an instruction's inline caches
        offset -= 2
    return names.get(offset, "")
