"""What the JupyterLab extension asks about one notebook: the phases of the store its kernel uses.

The cell view, the badges and the Checkpoints sidebar read the store, never the kernel, so they
tell the truth after a kernel death, a page reload or in a reopened notebook. A notebook names its
store in one of two ways:

- the kernel's absolute store directory, carried by the phase view's output bundle (the
  ``dir`` of ``application/vnd.nbresume.phase+json``); it must lie inside the server root;
- else the store next to the notebook, ``DIR/.nbresume`` (where a kernel started for the notebook
  puts it by default).

No Jupyter here (handlers.py is the HTTP edge).
"""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath
from typing import Any

from .._store import DEFAULT_DIR, Store, StoreReader
from ._dashboard import NotAStore, PathRefused, PhaseRunning, _groups, _phase_row, read_store

__all__ = ["mark_group", "notebook_store", "read_notebook"]

ENDED_RUN = ("interrupted", "running", "failed")  # rows whose saved item count is worth reading


def notebook_store(root: Path, notebook: str, directory: str | None) -> str:
    """The store of ``notebook`` (a path relative to ``root``, as the contents API gives it), as a
    POSIX path relative to ``root``; ``directory``: the kernel's store directory, if known.

    Raises `PathRefused` for anything outside the root (the store of a kernel that used
    ``NBRESUME_DIR=/tmp/...``, say: the cell then shows the text form the kernel sent).
    """
    if directory:
        if "\x00" in directory:
            raise PathRefused(f"store path {directory!r} is not a path")
        path = Path(directory)
        if not path.is_absolute():
            return PurePosixPath(directory).as_posix()
        real_root = root.resolve()
        target = path.resolve()
        if not target.is_relative_to(real_root):
            raise PathRefused(f"store {directory!r} is outside the server root")
        relative = target.relative_to(real_root).as_posix()
        return "" if relative == "." else relative
    if "\x00" in notebook or PurePosixPath(notebook).is_absolute() or ".." in notebook.split("/"):
        raise PathRefused(f"notebook path {notebook!r} is not inside the server root")
    parent = PurePosixPath(notebook).parent.as_posix()
    return DEFAULT_DIR if parent in ("", ".") else f"{parent}/{DEFAULT_DIR}"


def _saved_items(reader: StoreReader, name: str) -> int | None:
    """Items of the phase's loops in its last snapshot of the current run (from its event log)."""
    events = reader.get_json(f"events:{name}")
    if not isinstance(events, list):
        return None
    saved = None
    for event in events:
        if not isinstance(event, dict):
            continue
        if event.get("event") == "started":
            saved = None  # a new run: what earlier runs saved is in this one's "resumed" event
        elif event.get("event") in ("snapshot", "resumed"):
            done = event.get("done")
            if isinstance(done, int) and not isinstance(done, bool) and done >= 0:
                saved = done
    return saved


def read_notebook(path: Path, now: float | None = None) -> dict[str, Any]:
    """`read_store` with, for each running, interrupted or failed phase, ``saved``: the items in
    its last snapshot (what a re-run resumes from), None when unknown. Raises `StoreError`."""
    view = read_store(path, now)
    wanted = [row for row in view["phases"] if row["status"] in ENDED_RUN]
    if wanted:
        with StoreReader(path) as reader:
            for row in wanted:
                row["saved"] = saved = _saved_items(reader, row["name"])
                _at_least(row["progress"], saved)
    return view


def _at_least(progress: dict[str, Any] | None, saved: int | None) -> None:
    """A snapshot of N items means N were done, even if the progress record (rewritten once a
    second) was last written before them: a loop killed right after a snapshot says so."""
    if progress is None or saved is None or progress["done"] is None or saved <= progress["done"]:
        return
    loops = progress["loops"]
    if len(loops) > 1:  # the snapshot counts items of every top-level loop: no one loop's count
        return
    progress["done"] = saved
    for loop in loops:
        loop["done"] = saved


def mark_group(path: Path, name: str, mark: str) -> str:
    """``%checkpoint mark NAME pending|done`` from the sidebar; -> the one-line result.

    Raises `NotAStore` if there is no such phase, `PhaseRunning` if its loop runs in a live
    kernel, `CheckpointError` if the mark cannot be given (done without a saved version).
    """
    from .._workflow import mark_phase

    now = time.time()
    with StoreReader(path) as reader:
        infos = _groups(reader.rows()).get(("phase", name))
        if not infos:
            raise NotAStore(f"no phase named {name!r} in this store")
        if _phase_row(name, infos, reader, now)["running"]:
            raise PhaseRunning(f"phase {name!r} is running in a kernel; interrupt it first")
    store = Store(path)
    try:
        return mark_phase(name, mark, store=store)
    finally:
        store.close()
