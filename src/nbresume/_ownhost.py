"""The host of ``resumable`` loops outside a checkpoint cell: done keys under ``loop:IDENTITY``.

Only the keys of done items persist here (no variables), so a snapshot at any moment is
consistent: the item in flight is never among them. That is why this host, unlike a checkpoint
cell's, also saves on SIGTERM and at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import warnings
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import _host
from ._host import LoopHost, LoopState
from .errors import CheckpointWarning, StoreError, StoreReadOnlyError

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["Guard", "OwnHost", "loop_store_key", "note_plain"]

LOOP_PREFIX = "loop:"  # store key of a loop's progress outside cells; `nbresume list` drops it


def loop_store_key(identity: str) -> str:
    return LOOP_PREFIX + identity


_noted: set[str] = set()


def note_plain(reason: str) -> None:
    """Say once per process, on stderr as the resume line, that a loop runs plain."""
    if reason not in _noted:
        _noted.add(reason)
        print(f"nbresume: {reason}", file=sys.stderr)


class OwnHost:
    """Hosts a top-level loop outside a checkpoint cell and the loops nested in it."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.key = loop_store_key(identity)
        self.loops: list[Any] = []
        self.saved: dict[str, LoopState] = {}
        self.store: Store | None = None
        # diskcache loads on first use, not with nbresume
        from ._serialize import dumps
        from ._store import open_store

        self._dumps = dumps
        self._previous: LoopHost | None = None
        self._warned = False
        self._told = False
        try:
            self.store = open_store()
            notice = self.store.read_only_notice()
            if notice is not None:
                warnings.warn(notice, CheckpointWarning, stacklevel=4)
            saved = self.store.get(self.key)
        except StoreError as exc:
            self._warn(exc)
            self.store = None
        else:
            if isinstance(saved, dict):
                self.saved = saved

    def enter(self) -> None:
        """Become the host of loops nested in this one."""
        self._previous = _host.set_host(self)

    def encloses(self) -> bool:
        """Whether a loop starting now is nested in this host's innermost loop: entered while
        the frame that iterates it runs (its body, or a function the body calls). A generator
        suspended mid-loop (`yield from resumable(xs)`, consumed partly) encloses nothing."""
        if not self.loops:
            return False
        consumer = self.loops[-1]._consumer
        if consumer is None:
            return True
        frame_id, code = consumer
        frame: FrameType | None = sys._getframe(2)
        while frame is not None:
            if id(frame) == frame_id and frame.f_code is code:
                return True
            frame = frame.f_back
        return False

    def _warn(self, exc: Exception) -> None:
        if not self._warned and not isinstance(exc, StoreReadOnlyError):  # told when it opened
            self._warned = True
            warnings.warn(
                f"{exc}; the loop goes on, but its progress is not saved",
                CheckpointWarning,
                stacklevel=4,
            )

    def plain_reason(self, site: Any) -> str | None:
        from ._loopsite import kept_reason

        return kept_reason(site)  # else every idiom that is not refused keeps its done keys

    def note_plain(self, reason: str) -> None:
        note_plain(reason)

    def stopping(self) -> bool:
        return False  # Ctrl-C stops at once: the done keys are saved on the way out

    def left_plain(self, loop: Any) -> None:
        pass  # nothing is saved as done outside cells

    def started_plain(self, loop: Any) -> None:
        pass

    def attach(self, loop: Any) -> LoopState | None:
        parent = self.loops[-1] if self.loops else None
        if parent is None:
            loop.loop_id = self.identity
        else:
            loop.loop_id = f"{parent.loop_id}/{parent.in_flight_key!r}/{loop.identity}"
        self.loops.append(loop)
        state = self.saved.get(loop.loop_id)
        if state is not None and parent is None and state.count:
            self._told = True
            total = "?" if loop.total is None else f"{loop.total:,}"
            print(
                f"nbresume: resuming {self.identity!r}: {state.count:,} of {total} items done",
                file=sys.stderr,
            )
        return state

    def detach(self, loop: Any, complete: bool) -> None:
        if sys.meta_path is None:
            return  # a generator finalised at interpreter exit: the atexit flush saved it
        if complete:
            self.saved.pop(loop.loop_id, None)
        else:
            self.saved[loop.loop_id] = loop.state()
        if loop in self.loops:
            self.loops.remove(loop)
        if self.loops:
            return
        if complete and not self.saved:
            self._write(delete=True)
        else:
            self.snapshot("exit")

    def snapshot(self, reason: str, loop: Any = None) -> float:
        start = time.perf_counter()
        for active in self.loops:
            self.saved[active.loop_id] = active.state()
        self._write()
        return time.perf_counter() - start

    def _write(self, delete: bool = False) -> None:
        if self.store is None:
            return
        try:
            if delete:
                self.store.delete(self.key)
            else:
                self.store.put(self.key, self._dumps(self.saved))
        except StoreError as exc:
            self._warn(exc)
            return
        if not delete and not self._told:
            self._told = True
            top = self.saved.get(self.identity)
            done = top.count if top is not None else 0
            print(
                f"nbresume: progress of {self.identity!r} is saved in {str(self.store.path)!r} "
                f"({done:,} done so far); a re-run skips the done items",
                file=sys.stderr,
            )

    def close(self) -> None:
        # NB. loops of generators end in any order: only the host in place steps down
        if not self.loops and _host.current_host() is self:
            _host.set_host(self._previous)


class Guard:
    """Flush done keys on SIGTERM and at interpreter exit while a top-level loop runs.

    ipykernel installs no SIGTERM handler, and a JupyterLab restart sends SIGINT, then SIGTERM, then
    SIGKILL; SIGKILL flushes nothing, which is why boundary snapshots exist at all.
    """

    active: Guard | None = None

    def __init__(self, host: LoopHost) -> None:
        self.host = host
        self._previous: Any = None
        self._main = threading.current_thread() is threading.main_thread()

    def install(self) -> None:
        Guard.active = self
        atexit.register(self._flush, "atexit")
        if self._main:
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def remove(self) -> None:
        if Guard.active is self:
            Guard.active = None
        atexit.unregister(self._flush)
        if self._main and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)

    def _flush(self, reason: str) -> None:
        try:
            self.host.snapshot(reason)
        except Exception as exc:
            print(f"nbresume: could not save progress at {reason}: {exc}", file=sys.stderr)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._flush("sigterm")
        self.remove()
        os.kill(os.getpid(), signum)  # die as SIGTERM would have made us
