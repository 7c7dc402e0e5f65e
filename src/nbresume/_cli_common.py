"""What the ``nbresume`` commands share: their errors and exit codes, finding the store a command
reads, and the formats of times, sizes and row names."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A failure reported as one line on stderr; exit status 1."""


class UsageError(Exception):
    """Bad arguments, reported as one line on stderr; exit status 2."""


# -- the store commands -------------------------------------------------------------------------
#
# Reading commands go through the dashboard's read-only view (sqlite read-only mode: looking at
# the store of a running loop never blocks or writes to it) and show what it shows; clear, gc and
# trust write through `Store`.

TIME_FIELDS = ("updated", "started", "last_snapshot")  # epoch seconds in rows; ISO 8601 in JSON


def _store_path(directory: str | None) -> Path:
    """An existing store: ``directory`` itself or its ``.nbresume``; never creates one."""
    from ._store import DB_FILE, DEFAULT_DIR, default_store_dir

    path = Path(directory).expanduser().absolute() if directory else default_store_dir()
    for candidate in (path, path / DEFAULT_DIR):
        if (candidate / DB_FILE).is_file():
            return candidate
    what = "no checkpoint store at" if not path.exists() else "not a checkpoint store:"
    found = _found_stores() if _may_search(directory) else []
    if len(found) == 1:
        folder = str(PurePosixPath(found[0]).parent)
        hint = f"found {found[0]}: pass --dir {folder}"
    elif found:
        hint = f"found {len(found)} stores under this folder ({', '.join(found)}): pass --dir"
    else:
        hint = (
            "pass --dir PATH (or set NBRESUME_DIR), or run a notebook with %%checkpoint cells first"
        )
    raise CliError(f"{what} {str(path)!r}; {hint}")


def _may_search(directory: str | None) -> bool:
    """No store was named (no --dir, no NBRESUME_DIR): one under the folder may be meant."""
    from ._store import DIR_ENV

    return directory is None and not os.environ.get(DIR_ENV)


def _found_stores() -> list[str]:
    """The stores under the working directory, as the dashboard finds them under its root."""
    from .server._dashboard import find_stores

    return find_stores(Path.cwd())


def _reading_stores(directory: str | None, *, several: bool = False) -> list[Path]:
    """The store(s) a reading command shows: the one named or ./.nbresume; else the stores found
    under this folder (all of them if ``several``, else the only one), said on stderr."""
    try:
        return [_store_path(directory)]
    except CliError:
        found = _found_stores() if _may_search(directory) else []
        if not found or (len(found) > 1 and not several):
            if len(found) > 1:
                raise CliError(
                    f"several checkpoint stores under this folder: {', '.join(found)}; pass "
                    "--dir FOLDER to choose one"
                ) from None
            raise
    if len(found) == 1:
        _note(f"reading {found[0]}, the only store under this folder (--dir chooses another)")
    else:
        _note(f"{len(found)} stores under this folder (--dir chooses one)")
    return [Path.cwd() / relative for relative in found]


def _note(message: str) -> None:
    """A remark on stderr, so that stdout stays the command's output (``status --json``)."""
    from ._text import printable

    print(f"nbresume: {printable(message)}", file=sys.stderr)


def _read(path: Path, limit: int | None = None) -> dict[str, Any]:
    """The store as the dashboard sees it: ``{"size", "running", "updated", "phases": rows,
    "more"}``; at most ``limit`` rows (the newest), every row by default."""
    from .server._dashboard import read_store

    state: dict[str, Any] = read_store(path, limit=limit)
    return state


def _label(row: dict[str, Any]) -> str:
    """How a row is named on the command line: ``sweep``, ``download`` (a loop outside cells, by
    the name its own messages use), ``map:NAME``."""
    return str(row["name"]) if row["kind"] in ("phase", "loop") else f"{row['kind']}:{row['name']}"


def _find(state: dict[str, Any], label: str, path: Path) -> dict[str, Any]:
    rows = state["phases"]
    row: dict[str, Any] | None = next((r for r in rows if _label(r) == label), None)
    if row is None and label.startswith("loop:"):  # the name earlier versions printed
        row = next((r for r in rows if r["kind"] == "loop" and r["name"] == label[5:]), None)
    if row is None:
        raise CliError(f"no phase named {label!r} in {str(path)!r}; see nbresume list")
    return row


def _items(progress: dict[str, Any] | None) -> str | None:
    """``12/40`` from a row's progress, if a loop reported any."""
    done = (progress or {}).get("done")
    if done is None:
        return None
    total = (progress or {}).get("total")
    return f"{int(done):,}/{'?' if total is None else f'{int(total):,}'}"


def _local(t: float | None) -> str:
    from ._progress import format_when

    return format_when(t)


def _ago(t: float | None) -> str:
    from ._commands import format_age

    return f"{format_age(time.time() - t)} ago" if t else "never"


def _iso(t: float | None) -> str | None:
    import datetime as dt

    if t is None:
        return None
    return dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def _heading(paths: list[Path], number: int) -> None:
    """With several stores: a blank line between them, and each one's path (relative) first."""
    if len(paths) > 1:
        print(f"{chr(10) if number else ''}{_relative(paths[number])}:")


def _relative(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _size(n: int) -> str:
    from ._progress import format_size

    return format_size(n)


def _error(message: str) -> None:
    from ._text import printable  # a message may quote a name from a store

    print(f"nbresume: error: {printable(' '.join(message.split()))}", file=sys.stderr)
