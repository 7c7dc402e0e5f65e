"""``%checkpoint status | list | clear NAME | clear --all | dir [PATH]``: the line forms."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from . import _store
from ._progress import format_duration
from .errors import StoreError

__all__ = ["phase_rows", "run_line"]

USAGE = "use %checkpoint status | list | clear NAME | clear --all | dir [PATH]"


def phase_rows(store: _store.Store) -> list[dict[str, Any]]:
    """One row per phase recorded in ``store``, newest first."""
    from .checkpoint import phases

    rows = []
    for key in store.keys("phase:"):
        record = store.get_json(key, {})
        if not isinstance(record, dict):
            continue
        name = record.get("name", key[len("phase:") :])
        versions = record.get("versions", [])
        latest = versions[0] if versions else {}
        live = phases.get(name)
        status = live.status if live is not None else "pending"
        if live is None and record.get("status") in ("failed", "interrupted"):
            status = record["status"]
        rows.append(
            {
                "name": name,
                "status": status,
                "last_run": record.get("updated"),
                "duration": latest.get("duration"),
                "size": latest.get("size", 0),
                "versions": len(versions),
            }
        )
    rows.sort(key=lambda r: -(r["last_run"] or 0))
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no checkpoints yet"
    import datetime as dt

    lines = [f"{'phase':<24} {'status':<12} {'last run':<17} {'duration':>9} {'size':>10}"]
    for row in rows:
        when = (
            dt.datetime.fromtimestamp(row["last_run"]).strftime("%Y-%m-%d %H:%M")
            if row["last_run"]
            else "-"
        )
        lines.append(
            f"{row['name']:<24} {row['status']:<12} {when:<17} "
            f"{format_duration(row['duration']):>9} {_size(row['size']):>10}"
        )
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def clear(store: _store.Store, name: str | None) -> int:
    """Delete a phase (or everything, ``name=None``): entries, snapshots, records. Returns count."""
    count = 0
    for key in store.keys(prefix=""):
        parts = key.split(":")
        if name is None or (len(parts) > 1 and parts[1] == name):
            count += store.delete(key)
    return count


def run_line(shell: Any, line: str) -> None:
    try:
        args = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%checkpoint: cannot parse {line!r}: {exc}") from None
    if not args:
        raise UsageError(f"%checkpoint needs a command; {USAGE} (or %%checkpoint NAME on a cell)")
    command, rest = args[0], args[1:]
    try:
        if command == "dir":
            if len(rest) > 1:
                raise UsageError(f"%checkpoint dir takes one PATH; got {rest!r}")
            if rest:
                path = Path(rest[0]).expanduser().absolute()
                os.environ[_store.DIR_ENV] = str(path)
                _store.open_store(path)
            print(_store.default_store_dir())
            return
        store = _store.open_store()
        if command in ("status", "list"):
            if rest:
                raise UsageError(f"%checkpoint {command} takes no arguments; got {rest!r}")
            print(format_rows(phase_rows(store)))
        elif command == "clear":
            if rest == ["--all"]:
                print(f"cleared {clear(store, None)} entries from {store.path}")
            elif len(rest) == 1 and not rest[0].startswith("-"):
                n = clear(store, rest[0])
                if not n:
                    raise UsageError(
                        f"%checkpoint clear: no phase named {rest[0]!r}; see %checkpoint list"
                    )
                print(f"cleared phase {rest[0]!r} ({n} entries)")
            else:
                raise UsageError(f"%checkpoint clear takes NAME or --all; got {rest!r}")
        else:
            raise UsageError(f"%checkpoint: unknown command {command!r}; {USAGE}")
    except StoreError as exc:
        raise UsageError(str(exc)) from None
