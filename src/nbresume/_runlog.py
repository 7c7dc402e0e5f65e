"""What a checkpoint run tells: its ``phase:NAME`` record and ``events:NAME`` log, its
``progress:NAME`` record for other processes, the notes shown in the cell and the progress views.

A store failure here is a warning, once a run, never the cell's error.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._history import log_event
from ._progress import PhaseProgress
from ._store import Store
from ._tempdirs import temporary_warning
from .errors import CheckpointWarning, StoreError, StoreReadOnlyError

if TYPE_CHECKING:
    from .checkpoint import CheckpointOptions

__all__ = ["Note", "Notify", "RunLog", "Watch", "phases", "progress_record"]

PROGRESS_RECORD_SECONDS = 1.0  # how often a running phase rewrites its progress:NAME record
phases: dict[str, PhaseProgress] = {}  # the phases run in this kernel, by name
told_store: set[str] = set()  # the stores a note of this kernel has named


@dataclass(frozen=True)
class Note:
    """A one-line message about a checkpoint (shown marked with the ``nbresume`` metadata key)."""

    kind: str  # restored | running | resuming | store | rolled back | marked
    name: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


Notify = Callable[[Note], None]
Watch = Callable[[PhaseProgress, str], None]
"""A view of a running phase, called with events "start", "progress" (at most 10/s per loop),
"end" (status done/failed/interrupted) and "restored"."""


class RunLog:
    """The records, notes and views of a `CheckpointRun` (its base class)."""

    store: Store
    name: str
    source_hash: str
    options: CheckpointOptions
    notify: Notify
    watch: Watch | None
    _warned_store: bool
    _progress_written: float

    def _phase_record(self) -> dict[str, Any]:
        try:
            record = self.store.get_json(f"phase:{self.name}", {})
        except StoreError as exc:
            self._warn_store(exc)
            return {}
        return record if isinstance(record, dict) else {}

    def _warn_store(self, exc: StoreError) -> None:
        if self._warned_store or isinstance(exc, StoreReadOnlyError):  # told when it opened
            return
        self._warned_store = True
        warnings.warn(
            f"{exc} (the cell's live result is kept; only the checkpoint is affected)",
            CheckpointWarning,
            stacklevel=2,
        )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Group record writes in one transaction; a failure is a warning, never the cell's."""
        try:
            with self.store.transact():
                yield
        except StoreError as exc:
            self._warn_store(exc)
        except Exception as exc:  # sqlite errors and diskcache.Timeout of the transaction
            self._warn_store(StoreError(f"could not write to {str(self.store.path)!r}: {exc}"))

    def _set_record(self, record: dict[str, Any], status: str) -> None:
        record.update(
            name=self.name, status=status, updated=time.time(), source_hash=self.source_hash
        )
        try:
            self.store.put_json(f"phase:{self.name}", record)
        except StoreError as exc:
            self._warn_store(exc)

    def _log(self, event: str, text: str, **data: Any) -> None:
        """Add an event to ``events:NAME`` (never per item: at most once per snapshot)."""
        try:
            log_event(self.store, self.name, event, text, **data)
        except StoreError as exc:
            self._warn_store(exc)

    def _on_progress(self, phase: PhaseProgress) -> None:
        self._watch(phase, "progress")
        if time.monotonic() - self._progress_written >= PROGRESS_RECORD_SECONDS:
            self._write_progress(phase)

    def _write_progress(self, phase: PhaseProgress) -> None:
        """``progress:NAME``: a small JSON record that other processes (the dashboard) can read."""
        self._progress_written = time.monotonic()
        try:
            self.store.put_json(f"progress:{self.name}", progress_record(phase))
        except StoreError as exc:
            self._warn_store(exc)

    def _watch(self, phase: PhaseProgress, event: str) -> None:
        if event in ("start", "end", "restored"):
            self._write_progress(phase)
        if self.watch is None or self.options.quiet:
            return
        try:
            self.watch(phase, event)
        except Exception as exc:  # a broken view must never break the cell
            warnings.warn(f"progress display failed: {exc!r}", CheckpointWarning, stacklevel=2)
            self.watch = None

    def _notify(self, kind: str, text: str, data: dict[str, Any]) -> None:
        if self.options.quiet:
            return
        self.notify(Note(kind, self.name, text, data))
        self._tell_store()

    def _tell_store(self) -> None:
        """The first checkpoint of a kernel says where the store is, also when nothing else is
        said (a first run); in notes of its own, so that the others fit one line of a cell."""
        where = str(self.store.path)
        if self.options.quiet or where in told_store:
            return
        told_store.add(where)
        self.notify(Note("store", self.name, f"checkpoints go to {where}", {"store": where}))
        warning = temporary_warning(self.store.path)
        if warning:
            self.notify(Note("store", self.name, warning, {"store": where, "temporary": True}))


def progress_record(phase: PhaseProgress) -> dict[str, Any]:
    """The JSON form of a phase's progress (wall-clock times as epoch seconds)."""
    offset = time.time() - phase.clock()
    loops = [
        {
            "desc": loop.desc,
            "status": loop.status,
            "done": loop.done,
            "total": loop.total,
            "skipped": loop.skipped,
            "rate": loop.rate,
            "eta": loop.eta,
            "elapsed": loop.elapsed,
            "last_snapshot": None if loop.last_snapshot is None else loop.last_snapshot + offset,
        }
        for loop in phase.loops
    ]
    active = next(
        (loop for loop in loops if loop["status"] == "running"), loops[0] if loops else {}
    )
    return {
        "name": phase.name,
        "status": phase.status,
        "started": phase.started + offset,
        "finished": None if phase.finished is None else phase.finished + offset,
        "updated": time.time(),
        "elapsed": phase.elapsed(),  # earlier kernels' time included
        "resumes": phase.resumes,
        "pid": os.getpid(),
        "host": socket.gethostname(),  # a pid means nothing on another machine
        "notebook": os.environ.get("JPY_SESSION_NAME"),  # set by jupyter_server for kernels
        **{k: active.get(k) for k in ("done", "total", "skipped", "rate", "eta", "last_snapshot")},
        "loops": loops,
    }
