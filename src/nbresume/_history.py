"""A phase's history (its kept versions), manual marks and the event log; pure records over JSON.

Two small JSON records per phase, beside its signed entries::

    phase:NAME   {"name", "status", "updated", "source_hash", "versions": [VERSION, ...],
                  "mark": "pending" | "done" (optional), "rolled_back": {...} (optional)}
    events:NAME  [{"t": epoch seconds, "event": "started", "text": "..."}, ...]  oldest first

``versions`` are the completed runs kept, most recently *current* first: a run that saves, a hit
that restores and a rollback all move their version to the front. Pruning drops the versions at
the end, the ones least recently used, and keeps exactly `history_limit` of them.

Nothing here displays or unpickles; the engine (`checkpoint`) and the line commands do.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ._keys import describe_change
from ._progress import LoopProgress, format_duration, format_size, format_when
from ._text import printable
from .errors import CheckpointWarning

if TYPE_CHECKING:
    from ._store import Store

__all__ = [
    "DEFAULT_HISTORY",
    "EVENTS_KEPT",
    "FIRST_RUN",
    "HISTORY_ENV",
    "Version",
    "append_event",
    "format_events",
    "history_limit",
    "history_text",
    "log_event",
    "loop_summary",
    "merge_events",
    "promote",
    "push_version",
    "restored_loops",
    "resumed_text",
    "run_reason",
    "version_reason",
]

HISTORY_ENV = "NBRESUME_HISTORY"  # completed versions kept per phase; `%checkpoint history --keep`
DEFAULT_HISTORY = 3
EVENTS_KEPT = 200  # events kept per phase, the newest; a long loop's snapshots count as one
FIRST_RUN = "first run"

_warned_env: set[str] = set()


def history_limit() -> int:
    """How many completed versions each phase keeps: ``$NBRESUME_HISTORY``, default 3.

    Examples
    --------
    >>> import os; os.environ.pop("NBRESUME_HISTORY", None) and None
    >>> history_limit()
    3
    """
    text = os.environ.get(HISTORY_ENV, "").strip()
    if not text:
        return DEFAULT_HISTORY
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if text not in _warned_env:
        _warned_env.add(text)
        warnings.warn(
            f"{HISTORY_ENV}={text!r} is not a whole number >= 1; keeping {DEFAULT_HISTORY} "
            f"versions per phase; set it to e.g. 5, or use %checkpoint history --keep 5",
            CheckpointWarning,
            stacklevel=3,
        )
    return DEFAULT_HISTORY


@dataclass
class Version:
    """One completed run of a phase, as its ``phase:NAME`` record lists it."""

    key: str  # the signed entry cell:NAME:HASH holding its variables and outputs
    source_hash: str
    inputs: dict[str, str]
    created: float  # when the run started (epoch seconds)
    duration: float
    size: int = 0
    reason: str | None = None  # why it was run: "first run", "input 'lr' changed", ...
    # its top-level loops as they ended ({"desc", "done", "total"}): a restore shows them again
    loops: list[dict[str, Any]] | None = None
    resumes: int = 0  # kernels that took the run over from a snapshot (duration adds them up)
    finished: float | None = None  # when it completed (epoch seconds)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Version:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resumed_text(resumes: int) -> str:
    """``resumed once``, ``resumed 3 times``.

    Examples
    --------
    >>> resumed_text(1), resumed_text(2)
    ('resumed once', 'resumed 2 times')
    """
    return "resumed once" if resumes == 1 else f"resumed {resumes} times"


def run_reason(why: str, resumes: int) -> str:
    """Why a run ran, and how often it resumed: never "first run" for a resumed run.

    Examples
    --------
    >>> run_reason(FIRST_RUN, 0), run_reason(FIRST_RUN, 1), run_reason("forced", 2)
    ('first run', 'resumed once', 'forced, resumed 2 times')
    """
    if not resumes:
        return why
    return resumed_text(resumes) if why == FIRST_RUN else f"{why}, {resumed_text(resumes)}"


def loop_summary(loops: Iterable[Any], keep: int = 3) -> list[dict[str, Any]]:
    """The last ``keep`` top-level loops of a phase (`LoopProgress`), as a version keeps them."""
    top = [loop for loop in loops if loop.depth == 0][-keep:]
    return [{"desc": loop.desc, "done": loop.done, "total": loop.total} for loop in top]


def restored_loops(version: Mapping[str, Any]) -> list[LoopProgress]:
    """The loops a version kept (`loop_summary`), finished, for the phase a restore shows;
    a field of another shape is left out (records come from a store)."""
    loops = []
    for loop in version.get("loops") or []:
        if not isinstance(loop, dict):
            continue
        desc, done, total = loop.get("desc"), loop.get("done"), loop.get("total")
        if not isinstance(desc, str) or type(done) is not int or done < 0:
            continue
        if total is not None and (type(total) is not int or total < 0):
            continue
        progress = LoopProgress(desc, total=total, status="done")
        progress.done = done
        loops.append(progress)
    return loops


def version_reason(versions: list[dict[str, Any]], index: int) -> str:
    """Why version ``index`` was run; records written before reasons were kept compare with the
    next older version."""
    version = versions[index]
    reason = version.get("reason")
    if isinstance(reason, str):
        return reason
    if index + 1 >= len(versions):
        return "the oldest kept"
    older = versions[index + 1]
    return describe_change(
        older.get("source_hash"),
        older.get("inputs") or {},
        str(version.get("source_hash", "")),
        version.get("inputs") or {},
    )


def push_version(record: dict[str, Any], version: Version, keep: int) -> list[str]:
    """Put ``version`` first in ``record``'s versions, keeping ``keep``; -> the keys pruned.

    A version with the same key (a forced re-run) is replaced, not kept twice.

    Examples
    --------
    >>> record = {}
    >>> [push_version(record, Version(f"cell:a:{i}", "s", {}, i, 1.0), 2) for i in range(3)]
    [[], [], ['cell:a:0']]
    >>> [v["key"] for v in record["versions"]]
    ['cell:a:2', 'cell:a:1']
    """
    versions = [v for v in record.get("versions", []) if v.get("key") != version.key]
    versions.insert(0, version.to_json())
    record["versions"] = versions[:keep]
    return [str(v["key"]) for v in versions[keep:]]


def promote(record: dict[str, Any], key: str) -> int | None:
    """Move the version ``key`` to the front (it is current now); -> its former index, or None."""
    versions = record.get("versions", [])
    for index, version in enumerate(versions):
        if version.get("key") == key:
            versions.insert(0, versions.pop(index))
            return index
    return None


def append_event(
    events: list[dict[str, Any]], event: dict[str, Any], keep: int = EVENTS_KEPT
) -> list[dict[str, Any]]:
    """``events`` with ``event`` added, the oldest dropped beyond ``keep``.

    An event with a ``fold`` value that repeats the last one (same event, same ``fold``) replaces
    it, counting: the snapshots of one run, the hits of one version. A six-hour loop saving every
    10 s, or a notebook re-run all day, must not push the phase's other events out of the log.

    Examples
    --------
    >>> log = []
    >>> for t in (1, 2, 3):
    ...     log = append_event(log, {"t": t, "event": "snapshot", "fold": "run-1"})
    >>> [(e["t"], e["count"], e["since"]) for e in log]
    [(3, 3, 1)]
    """
    last = events[-1] if events else None
    if (
        event.get("fold") is not None
        and last is not None
        and last.get("event") == event["event"]
        and last.get("fold") == event["fold"]
    ):
        event = {
            **event,
            "count": int(last.get("count", 1)) + 1,
            "since": last.get("since", last.get("t")),
        }
        events = events[:-1]
    return [*events, event][-keep:]


# -- text forms ---------------------------------------------------------------------------------


def history_text(name: str, record: Mapping[str, Any], keep: int | None = None) -> str:
    """``%checkpoint history NAME`` / ``nbresume history NAME``: one line per kept version.

    ``#1`` is the current version (the one the last run, hit or rollback used), ``#2`` the one
    current before it, and so on; `rollback` takes these numbers.
    """
    versions = [v for v in record.get("versions", []) if isinstance(v, dict)]
    keep = history_limit() if keep is None else keep
    if not versions:
        return f"phase {name!r}: no completed version (keeps the newest {keep})"
    count = f"{len(versions)} version{'s' * (len(versions) != 1)}"
    lines = [f"phase {name!r}: {count}, #1 is current (keeps {keep}; set with {HISTORY_ENV})"]
    rows = [
        (
            f"#{number}",
            format_when(version.get("created")),
            f"ran {format_duration(version.get('duration'))}",
            format_size(version.get("size") or 0),
            version_reason(versions, number - 1),
        )
        for number, version in enumerate(versions, 1)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:4])]
        cells[3] = row[3].rjust(widths[3])
        lines.append("  " + "  ".join([*cells, printable(row[4])]))
    return "\n".join(lines)


def format_events(events: Iterable[Mapping[str, Any]], names: bool = True) -> str:
    """Event lines, oldest first: ``2026-11-22 10:31:05  train  started: source changed``."""
    lines = []
    for event in events:
        when = format_when(event.get("t"), seconds=True)
        text = str(event.get("text") or event.get("event"))
        if event.get("count", 1) > 1:
            since = format_when(event.get("since"), seconds=True)
            text += f" ({event['count']} times since {since})"
        text = printable(text)  # names and texts come from a store, which may come from anyone
        name = printable(event.get("name", ""))
        lines.append(f"{when}  {name}  {text}" if names else f"{when}  {text}")
    return "\n".join(lines) if lines else "no events yet"


def merge_events(
    keys: Iterable[str], read: Callable[[str], Any], name: str | None = None
) -> list[dict[str, Any]]:
    """The events of one phase, or of every phase (by time), from ``events:NAME`` records."""
    wanted = (
        [f"events:{name}"] if name is not None else [k for k in keys if k.startswith("events:")]
    )
    merged: list[dict[str, Any]] = []
    for key in wanted:
        events = read(key)
        phase = key[len("events:") :]
        if isinstance(events, list):
            merged += [{**e, "name": phase} for e in events if isinstance(e, dict)]
    merged.sort(key=lambda e: e.get("t") or 0.0)
    return merged


def log_event(store: Store, name: str, event: str, text: str, **data: Any) -> None:
    """Append an event to ``events:NAME`` (read, add, write in one transaction: two kernels on
    one store never lose each other's events). Raises `StoreError`."""
    entry = {"t": time.time(), "event": event, "text": text, **data}
    key = f"events:{name}"
    with store.transact():
        events = store.get_json(key, [])
        store.put_json(key, append_event(events if isinstance(events, list) else [], entry))
