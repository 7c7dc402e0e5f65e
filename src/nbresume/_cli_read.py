"""The commands that read a store: ``list``, ``show``, ``status`` (``--json``), ``history``, ``log``.

They go through the dashboard's read-only view (sqlite read-only mode: looking at the store of a
running loop never blocks or writes to it) and show what it shows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ._cli_common import (
    EXIT_OK,
    TIME_FIELDS,
    CliError,
    _ago,
    _find,
    _heading,
    _iso,
    _items,
    _label,
    _local,
    _read,
    _reading_stores,
)

MAX_LISTED = 2000  # rows `nbresume list` prints at most, the newest (as the dashboard: MAX_ROWS)


def cmd_list(args: argparse.Namespace) -> int:
    paths = _reading_stores(args.dir, several=True)
    for number, path in enumerate(paths):
        _heading(paths, number)
        _list_store(path, _read(path, MAX_LISTED))
    return EXIT_OK


def _list_store(path: Path, state: dict[str, Any]) -> None:
    from collections import Counter

    from ._progress import format_size, table_text

    rows = [
        {
            "name": _label(row),
            "status": row["status"],
            "last_run": row["updated"],
            "duration": row["duration"],
            "loops": _items(row["progress"]),
            "size": row["size"],
        }
        for row in state["phases"]
    ]
    print(table_text(rows))
    kinds = Counter(row["kind"] for row in state["phases"])
    count = ", ".join(f"{n} {kind}{'s' * (n != 1)}" for kind, n in kinds.items()) or "nothing"
    if state["running"]:
        count += f" ({state['running']} running)"
    print(f"{count}, {format_size(state['size'])} in {path}; last change {_ago(state['updated'])}")
    if state["more"]:
        print(
            f"and {state['more']} more rows, not listed (at most {MAX_LISTED}, the newest): "
            "name one with `nbresume show NAME`, or clear old ones with `nbresume gc`"
        )


def cmd_show(args: argparse.Namespace) -> int:
    from ._keys import describe_change
    from ._progress import format_duration, format_size
    from ._store import StoreReader
    from ._text import printable

    (path,) = _reading_stores(args.dir)
    row = _find(_read(path), args.name, path)
    with StoreReader(path) as reader:
        record = reader.get_json(f"phase:{row['name']}") if row["kind"] == "phase" else None
    versions = record.get("versions", []) if isinstance(record, dict) else []
    count = f", {len(versions)} version{'s' * (len(versions) != 1)}" if record else ""
    print(
        f"{row['kind']} {row['name']!r}: {row['status']}, last change {_local(row['updated'])} "
        f"({_ago(row['updated'])}){count}, {format_size(row['size'])} in {path}"
    )
    for number, version in enumerate(versions, 1):
        older = versions[number] if number < len(versions) else None
        change = "the oldest kept"
        if older is not None:
            change = describe_change(
                older.get("source_hash"),
                older.get("inputs", {}),
                version.get("source_hash", ""),
                version.get("inputs", {}),
            )
        print(
            f"  #{number} {_local(version.get('created'))}  ran "
            f"{format_duration(version.get('duration'))}, {format_size(version.get('size') or 0)}, "
            f"{printable(change)}  [{printable(version.get('key'))}]"
        )
        inputs = version.get("inputs") or {}
        fingerprints = " ".join(f"{name}={fp[:12]}" for name, fp in sorted(inputs.items()))
        print(f"      inputs: {printable(fingerprints or 'none')}")
    line = _progress_line(row)
    if line:
        print(f"  {printable(line)}")
    return EXIT_OK


def _progress_line(row: dict[str, Any]) -> str | None:
    """What a running or resumable row's loop has done: ``running: 12/40 items, 3.1 it/s...``."""
    from ._progress import format_duration, format_rate

    if not (row["running"] or row["resumable"]):
        return None
    progress = row["progress"] or {}
    parts = [f"{_items(progress) or '?'} items" if progress else "progress saved"]
    if row["running"]:
        parts.append(format_rate(progress.get("rate")))
        if progress.get("eta") is not None:
            parts.append(f"ETA {format_duration(progress['eta'])}")
    if row["last_snapshot"]:
        parts.append(f"last snapshot {_ago(row['last_snapshot'])}")
    if row["resumable"]:
        parts.append("re-run the cell to resume" if row["kind"] == "phase" else "re-run to resume")
    return f"{'running' if row['running'] else row['status']}: {', '.join(parts)}"


def cmd_status(args: argparse.Namespace) -> int:
    from ._text import printable

    if not args.json:
        paths = _reading_stores(args.dir, several=True)
        for number, path in enumerate(paths):
            _heading(paths, number)
            state = _read(path, MAX_LISTED)
            _list_store(path, state)
            for row in state["phases"]:
                line = _progress_line(row)
                if line:
                    print(printable(f"{_label(row)}: {line}"))
        return EXIT_OK
    from ._store import StoreReader

    (path,) = _reading_stores(args.dir)
    state = _read(path)

    with StoreReader(path) as reader:
        phases = [_json_row(row, reader) for row in state["phases"]]
    document = {
        "store": str(path),
        "size": state["size"],
        "running": state["running"],
        "updated": _iso(state["updated"]),
        "phases": phases,
    }
    print(json.dumps(document, indent=2))
    return EXIT_OK


def _json_row(row: dict[str, Any], reader: Any) -> dict[str, Any]:
    """A dashboard row for people: ISO 8601 times; ``started``/``completed`` of the last run."""
    progress = row.get("progress")
    record = reader.get_json(f"phase:{row['name']}") if row["kind"] == "phase" else None
    versions = record.get("versions", []) if isinstance(record, dict) else []
    latest = versions[0] if versions else {}
    started, duration = latest.get("created"), latest.get("duration")
    completed = latest.get("finished")  # NB. not started + duration: a resumed run had gaps
    if completed is None and started is not None and duration is not None:
        completed = started + duration
    if row["running"] or row["status"] in ("interrupted", "failed"):
        # the run under way, or the one that died or raised: its start, and no completion
        started, completed = (progress or {}).get("started") or started, None
    from ._history import version_reason

    out = {
        "name": row["name"],
        "kind": row["kind"],
        "status": row["status"],
        "started": _iso(started),
        "completed": _iso(completed),
        **_iso_fields(row),
        "mark": record.get("mark") if isinstance(record, dict) else None,
        "history": [
            {
                "number": number,
                "key": version.get("key"),
                "created": _iso(version.get("created")),
                "duration": version.get("duration"),
                "size": version.get("size"),
                "reason": version_reason(versions, number - 1),
            }
            for number, version in enumerate(versions, 1)
        ],
    }
    if isinstance(progress, dict):
        out["progress"] = _iso_fields(progress)
        out["progress"]["loops"] = [_iso_fields(loop) for loop in progress.get("loops", [])]
    return out


def _iso_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) if k in TIME_FIELDS else v for k, v in fields.items()}


def cmd_history(args: argparse.Namespace) -> int:
    from ._history import history_text
    from ._store import StoreReader

    (path,) = _reading_stores(args.dir)
    with StoreReader(path) as reader:
        record = reader.get_json(f"phase:{args.name}")
    if not isinstance(record, dict):
        raise CliError(f"no phase named {args.name!r} in {str(path)!r}; see nbresume list")
    print(history_text(args.name, record))
    return EXIT_OK


def cmd_log(args: argparse.Namespace) -> int:
    from ._history import format_events, merge_events
    from ._store import StoreReader

    (path,) = _reading_stores(args.dir)
    with StoreReader(path) as reader:
        keys = [row.key for row in reader.rows()]
        if args.name is not None and not {f"events:{args.name}", f"phase:{args.name}"} & set(keys):
            raise CliError(f"no phase named {args.name!r} in {str(path)!r}; see nbresume list")
        events = merge_events(keys, reader.get_json, args.name)
    print(format_events(events, names=args.name is None))
    return EXIT_OK
