"""Which row (phase, loop, map) a store key belongs to, and how big each row is on disk.

One answer for every view: ``%checkpoint status``, ``nbresume list|status``, the dashboard and
the API the JupyterLab sidebar reads all print `row_sizes`. A phase's size is the bytes of every
entry it owns: its kept versions (``cell:NAME:HASH``, the whole history, since all of it is on
disk), the snapshot of an unfinished run, the results of its ``resumable.map`` calls, and its
small records (``phase:``, ``progress:``, ``events:``); a value in a file counts the file, a small
value kept in the database row counts its bytes. sqlite's own pages are the store's, not a phase's
(``nbresume list`` prints the store's whole volume).

Keys and what owns them::

    phase:NAME  progress:NAME  events:NAME  cell:NAME:HASH  snap:NAME:HASH
    map:cell:NAME:HASH:...                     phase NAME
    loop:NAME                                  the saved done keys of a loop outside a cell
    map:HOST:ID:N                              results of a resumable.map outside a cell
"""

from __future__ import annotations

from collections.abc import Iterable

from ._storeread import EntryInfo

__all__ = ["owner", "row_sizes"]


def owner(key: str) -> tuple[str, str] | None:
    """``(kind, name)`` of the row a key belongs to (see the module docstring), or None.

    Examples
    --------
    >>> owner("snap:sweep:0123"), owner("map:cell:sweep:0123:f00:1"), owner("loop:dl")
    (('phase', 'sweep'), ('phase', 'sweep'), ('loop', 'dl'))
    """
    prefix, _, rest = key.partition(":")
    kind, name = "phase", ""
    if prefix in ("phase", "progress", "events"):  # events: the phase's log
        name = rest
    elif prefix in ("cell", "snap"):
        name = rest.rpartition(":")[0]
    elif prefix == "loop":
        kind, name = "loop", rest
    elif prefix == "map":
        series = rest.rpartition(":")[0]  # without the chunk number
        if series.startswith("cell:"):
            name = series[len("cell:") :].split(":")[0]
        else:
            kind, name = "map", series
    return (kind, name) if name else None


def row_sizes(rows: Iterable[EntryInfo]) -> dict[tuple[str, str], int]:
    """Bytes on disk of each row, by ``(kind, name)`` (see the module docstring)."""
    sizes: dict[tuple[str, str], int] = {}
    for info in rows:
        group = owner(info.key)
        if group is not None:
            sizes[group] = sizes.get(group, 0) + info.on_disk
    return sizes
