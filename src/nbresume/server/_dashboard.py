"""What the dashboard shows: the stores under a root directory, their phases and live progress.

No Jupyter here (handlers.py is the HTTP edge). Stores are read through `StoreReader`, sqlite's
read-only mode, so looking at the store of a running loop never blocks, waits for or writes to it;
signed entries are listed from their database rows and never read. Clearing a phase is the one
write, through `Store.delete`, as ``%checkpoint clear`` does. Which row a key belongs to, and
a row's size, are `_sizes`'s (one answer for every view).
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .._history import version_reason
from .._host import writer_alive
from .._sizes import owner, row_sizes
from .._store import DB_FILE, DEFAULT_DIR, EntryInfo, Store, StoreReader
from ..errors import NbresumeError

__all__ = [
    "MAX_ROWS",
    "NotAStore",
    "PathRefused",
    "PhaseRunning",
    "StoreIndex",
    "clear_group",
    "find_stores",
    "read_store",
    "resolve_store",
]

MAX_DEPTH = 6  # directory levels searched below the root for .nbresume stores
MAX_DIRS = 20_000  # directories visited per search at most: a huge root must not stall the server
# rows (phases, loops, maps) read per store at most, the newest: each costs a few queries and
# signature checks, and a shipped store may hold millions (200k rows took 33 s and 280 MB)
MAX_ROWS = 2000
SCAN_SECONDS = 60.0  # a full search at least this often (changes are seen at once: `StoreIndex`)
# never hold notebooks
SKIP_DIRS = frozenset(
    {"node_modules", "__pycache__", "site-packages", ".git", ".ipynb_checkpoints"}
)
KINDS = ("phase", "loop", "map")


class PathRefused(NbresumeError):
    """A store path that is absolute or resolves outside the root (HTTP 403)."""


class NotAStore(NbresumeError):
    """A path inside the root that holds no store, or a phase that is not in it (HTTP 404)."""


class PhaseRunning(NbresumeError):
    """Clearing a phase whose loop is running in a live kernel (HTTP 409)."""


# -- finding and naming stores --------------------------------------------------------------------


def find_stores(
    root: Path, max_depth: int = MAX_DEPTH, max_dirs: int = MAX_DIRS, *, hidden: bool = False
) -> list[str]:
    """The ``.nbresume`` stores under ``root``, as sorted POSIX paths relative to it.

    Breadth first, so that shallow stores are found when the budget of ``max_dirs`` runs out.
    Hidden directories (unless ``hidden``: Jupyter's ``allow_hidden``), ``node_modules`` and
    symbolic links are not entered; ``.git`` never.
    """
    return _search(root, max_depth, max_dirs, hidden)[0]


def _search(
    root: Path, max_depth: int, max_dirs: int, hidden: bool
) -> tuple[list[str], dict[str, int]]:
    """`find_stores`, and the directories whose change could change its answer, with their
    modification times: the folders searched and every ``.nbresume`` folder seen."""
    found: list[str] = []
    watched: dict[str, int] = {}
    queue: deque[tuple[str, int]] = deque([(str(root), 0)])
    visited = 0
    while queue and visited < max_dirs:
        directory, depth = queue.popleft()
        visited += 1
        try:
            with os.scandir(directory) as entries:
                subdirs = [e for e in entries if e.is_dir(follow_symlinks=False)]
            watched[directory] = os.stat(directory).st_mtime_ns
        except OSError:  # unreadable or vanished: not ours to report
            continue
        for entry in sorted(subdirs, key=lambda e: e.name):
            if entry.name == DEFAULT_DIR:
                with contextlib.suppress(OSError):
                    watched[entry.path] = entry.stat(follow_symlinks=False).st_mtime_ns
                if os.path.isfile(os.path.join(entry.path, DB_FILE)):
                    found.append(Path(entry.path).relative_to(root).as_posix())
            elif (
                depth < max_depth
                and (hidden or entry.name[0] != ".")
                and entry.name not in SKIP_DIRS
            ):
                queue.append((entry.path, depth + 1))
    return sorted(found), watched


def _changed(watched: dict[str, int]) -> bool:
    """Whether a directory of a search got or lost an entry since (its mtime moved): a new
    notebook folder, a new ``.nbresume``, its database created or deleted."""
    for directory, mtime in watched.items():
        try:
            if os.stat(directory).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def resolve_store(root: Path, relative: str) -> Path:
    """The store directory at ``relative`` (a POSIX path from `find_stores`) under ``root``.

    Raises `PathRefused` for absolute paths, ``..`` and anything (symbolic links included) that
    resolves outside ``root``; `NotAStore` if the directory holds no store.
    """
    if not relative or "\x00" in relative:
        raise NotAStore(f"no store path given ({relative!r})")
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or relative.startswith("~"):
        raise PathRefused(f"store path {relative!r} is not inside the server root")
    try:
        real_root = root.resolve()
        target = (real_root / path).resolve()
        if not target.is_relative_to(real_root):
            raise PathRefused(f"store path {relative!r} resolves outside the server root")
        if not (target / DB_FILE).is_file():
            raise NotAStore(f"no checkpoint store at {relative!r}")
    except OSError as exc:  # a name too long, a symlink loop, no permission
        raise NotAStore(f"no checkpoint store at {relative[:200]!r} ({exc.strerror})") from None
    return target


@dataclass
class StoreIndex:
    """`find_stores` under one root, searched again as soon as one of the directories it looked
    at changes (one ``stat`` each per request), and every `SCAN_SECONDS` whatever happens.

    NB. a new store makes its parent folder's mtime move (a new ``.nbresume`` entry), then its
    own (the database file): the next request after either lists it, with no waiting period.
    """

    root: Path
    hidden: bool = False  # search hidden folders too (Jupyter's ContentsManager.allow_hidden)
    ttl: float = SCAN_SECONDS
    clock: Callable[[], float] = time.monotonic
    _found: list[str] = field(default_factory=list)
    _watched: dict[str, int] = field(default_factory=dict)
    _when: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stores(self) -> list[str]:
        with self._lock:
            now = self.clock()
            if self._when is None or now - self._when >= self.ttl or _changed(self._watched):
                self._found, self._watched = _search(self.root, MAX_DEPTH, MAX_DIRS, self.hidden)
                self._when = now
            return list(self._found)

    def invalidate(self) -> None:
        with self._lock:
            self._when = None


# -- reading one store ----------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite number from a record, else None (records are written by other processes)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _count(value: Any) -> int:
    """A count from a record (``resumes``), 0 if it has none or a wrong one."""
    return value if type(value) is int and value > 0 else 0


PROGRESS_FIELDS = ("done", "total", "skipped", "rate", "eta", "elapsed", "last_snapshot")


def _progress_view(progress: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {k: _number(progress.get(k)) for k in PROGRESS_FIELDS}
    view["updated"] = _number(progress.get("updated"))
    view["resumes"] = _count(progress.get("resumes"))  # of the run under way or interrupted
    view["started"] = _number(progress.get("started"))
    loops = progress.get("loops")
    view["loops"] = [
        {
            "desc": str(loop.get("desc") or ""),
            "status": str(loop.get("status") or ""),
            **{k: _number(loop.get(k)) for k in PROGRESS_FIELDS},
        }
        for loop in (loops if isinstance(loops, list) else [])
        if isinstance(loop, dict)
    ]
    if view["elapsed"] is None and view["loops"]:  # the active loop's, like the other fields
        running = [loop for loop in view["loops"] if loop["status"] == "running"]
        view["elapsed"] = (running or view["loops"])[0]["elapsed"]
    return view


def _phase_row(
    name: str, infos: list[EntryInfo], reader: StoreReader, now: float
) -> dict[str, Any]:
    keys = {info.key for info in infos}
    record = reader.get_json(f"phase:{name}") if f"phase:{name}" in keys else None
    record = record if isinstance(record, dict) else {}
    progress = reader.get_json(f"progress:{name}") if f"progress:{name}" in keys else None
    progress = progress if isinstance(progress, dict) else {}
    snaps = [info for info in infos if info.key.startswith("snap:")]
    entries = [info for info in infos if info.key.startswith("cell:")]
    snapshot = max(snaps, key=lambda info: info.stored, default=None)

    running = progress.get("status") == "running" and writer_alive(progress, now)
    if running:
        status = "running"
    elif record.get("mark") in ("pending", "done"):
        # set by hand since the last run started (a run drops it): says what the next run does
        status = str(record["mark"])
    elif progress.get("status") == "running":
        status = "interrupted"  # the kernel died in the middle (SIGKILL, OOM): nothing said so
    elif isinstance(record.get("status"), str):
        status = record["status"]
    elif isinstance(progress.get("status"), str):
        status = progress["status"]
    else:
        status = "interrupted" if snapshot else "done" if entries else "unknown"

    versions = record.get("versions")
    versions = [v for v in versions if isinstance(v, dict)] if isinstance(versions, list) else []
    last_snapshot = max(
        (t for t in (_number(progress.get("last_snapshot")), snapshot and snapshot.stored) if t),
        default=None,
    )
    notebook = progress.get("notebook") or record.get("notebook")  # the kernel's JPY_SESSION_NAME
    return {
        "kind": "phase",
        "name": name,
        "notebook": notebook if isinstance(notebook, str) else None,
        "status": status,
        "running": running,
        "resumable": snapshot is not None and not running,
        "updated": max(
            (t for t in (_number(record.get("updated")), _number(progress.get("updated"))) if t),
            default=max(info.stored for info in infos),
        ),
        "duration": _number(versions[0].get("duration")) if versions else None,
        "resumes": _count(versions[0].get("resumes")) if versions else 0,
        "versions": len(versions),
        "history": history_rows(name, versions),
        "size": row_sizes(infos).get(("phase", name), 0),
        "last_snapshot": last_snapshot if (running or snapshot) else None,
        "snapshot_size": snapshot.size if snapshot else None,
        "progress": _progress_view(progress) if progress else None,
    }


def history_rows(name: str, versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A phase's kept versions as ``%checkpoint history NAME`` lists them, #1 the current one,
    each with the exact command that makes it current again (None for #1)."""
    return [
        {
            "number": number,
            "current": number == 1,
            "created": _number(version.get("created")),
            "duration": _number(version.get("duration")),
            "size": _count(version.get("size")),
            "reason": version_reason(versions, number - 1),
            "resumes": _count(version.get("resumes")),
            "rollback": None
            if number == 1
            else f"%checkpoint rollback {shlex.quote(name)} {number}",
        }
        for number, version in enumerate(versions, 1)
    ]


def _other_row(kind: str, name: str, infos: list[EntryInfo]) -> dict[str, Any]:
    """A loop or map outside a checkpoint cell: only its saved, unfinished progress is stored."""
    last = max(info.stored for info in infos)
    return {
        "kind": kind,
        "name": name,
        "notebook": None,
        "status": "incomplete",
        "running": False,
        "resumable": True,
        "updated": last,
        "duration": None,
        "resumes": 0,
        "versions": 0,
        "history": [],
        "size": row_sizes(infos).get((kind, name), 0),
        "last_snapshot": last,
        "snapshot_size": None,
        "progress": None,
    }


def _groups(rows: list[EntryInfo]) -> dict[tuple[str, str], list[EntryInfo]]:
    groups: dict[tuple[str, str], list[EntryInfo]] = {}
    for info in rows:
        group = owner(info.key)
        if group is not None:
            groups.setdefault(group, []).append(info)
    return groups


def read_store(
    path: Path, now: float | None = None, limit: int | None = MAX_ROWS
) -> dict[str, Any]:
    """Everything the dashboard shows of one store: its rows (phases first), size and counts.

    At most ``limit`` rows, those written last; ``more``: how many were left out.
    Raises `StoreError` if sqlite cannot read it.
    """
    now = time.time() if now is None else now
    with StoreReader(path) as reader:
        groups = _groups(reader.rows())
        more = 0
        if limit is not None and len(groups) > limit:
            more = len(groups) - limit
            newest = sorted(groups.items(), key=lambda g: -max(info.stored for info in g[1]))
            groups = dict(newest[:limit])
        rows = [
            _phase_row(name, infos, reader, now)
            if kind == "phase"
            else _other_row(kind, name, infos)
            for (kind, name), infos in groups.items()
        ]
        volume = reader.volume()
    order = {status: i for i, status in enumerate(("running", "interrupted", "failed"))}
    rows.sort(key=lambda r: (KINDS.index(r["kind"]), order.get(r["status"], 9), -r["updated"]))
    return {
        "size": volume,
        "phases": rows,
        "running": sum(r["running"] for r in rows),
        "updated": max((r["updated"] for r in rows), default=None),
        "more": more,
    }


def clear_group(path: Path, kind: str, name: str) -> int:
    """Delete every entry of one row (as listed by `read_store`); returns how many.

    Raises `NotAStore` if there is no such row, `PhaseRunning` if its loop runs in a live kernel
    (its next progress write would bring the row back), `StoreError` if the store cannot be written.
    """
    now = time.time()
    with StoreReader(path) as reader:
        infos = _groups(reader.rows()).get((kind, name))
        if not infos:
            raise NotAStore(f"no {kind} named {name!r} in this store")
        if kind == "phase" and _phase_row(name, infos, reader, now)["running"]:
            raise PhaseRunning(
                f"phase {name!r} is running in a kernel; interrupt it first, then clear it"
            )
    store = Store(path)
    try:
        return sum(store.delete(info.key) for info in infos)
    finally:
        store.close()
