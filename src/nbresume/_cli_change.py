"""The commands that change a store: ``rollback``, ``clear``, ``gc``, ``trust``; they write through
``Store``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from ._cli_common import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    UsageError,
    _find,
    _label,
    _local,
    _read,
    _size,
    _store_path,
)


def cmd_rollback(args: argparse.Namespace) -> int:
    from ._history import version_reason
    from ._progress import format_duration, format_when
    from ._store import open_store
    from ._text import printable
    from ._workflow import load_version, record_rollback
    from .checkpoint import RESULT

    path = _store_path(args.dir)
    row = _find(_read(path), args.name, path)
    if row["running"]:
        raise CliError(f"phase {args.name!r} is running in a kernel; let it finish first")
    target = Path(args.export).expanduser() if args.export else None
    if target is not None:  # refused before anything changes
        _check_export(target, args.overwrite)
    store = open_store(path)
    number = 2 if args.to is None else args.to
    version, entry = load_version(store, args.name, number)
    versions = (store.get_json(f"phase:{args.name}") or {}).get("versions", [])
    why = version_reason(versions, number - 1)
    variables = {k: v for k, v in entry["vars"].items() if k != RESULT}
    when = format_when(version.get("created") or time.time())
    if number == 1:
        print(
            f"version #1 of {args.name!r} ({when}) is its current one already; nothing to roll back"
        )
    else:
        record_rollback(store, args.name, number, version)
        print(
            f"rolled back {args.name!r} to version #{number} of {when} (ran "
            f"{format_duration(version.get('duration'))}; {printable(why)}): its variables are "
            f"{printable(', '.join(sorted(variables)) or 'none')}"
        )
    if args.outputs:
        for output in entry["outputs"]:
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            print(text, end="" if output.get("output_type") == "stream" else "\n")
    if target is not None:
        size = _export(variables, target, args.overwrite)
        print(
            f"wrote {len(variables)} variable{'s' * (len(variables) != 1)} to {target} "
            f"({_size(size)}); read them with pickle.load"
        )
    return EXIT_OK


def _check_export(target: Path, overwrite: bool) -> None:
    from ._files import UnsafeTarget, check_target

    try:
        check_target(target, overwrite=overwrite)
    except UnsafeTarget as exc:
        raise CliError(f"--export: {exc}") from exc


def _export(variables: dict[str, Any], target: Path, overwrite: bool) -> int:
    """Write ``variables`` to ``target`` as a cloudpickle'd dict, atomically; -> bytes written.

    A new private file (0600): the variables are the user's data. An existing path only with
    ``overwrite``, and only a regular file; never through a symlink, into a FIFO or a device.
    """
    import cloudpickle

    from ._files import UnsafeTarget, creating

    try:
        with creating(target, overwrite=overwrite) as f:
            cloudpickle.dump(variables, f, protocol=5)
    except UnsafeTarget as exc:
        raise CliError(f"--export: {exc}") from exc
    except OSError as exc:
        raise CliError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from exc
    return os.lstat(target).st_size


def cmd_clear(args: argparse.Namespace) -> int:
    from ._commands import clear
    from ._store import open_store
    from .server._dashboard import NotAStore, clear_group

    path = _store_path(args.dir)
    state = _read(path)
    if args.all:
        running = [_label(r) for r in state["phases"] if r["running"]]
        if running:
            raise CliError(
                f"phase {running[0]!r} is running in a kernel; interrupt it first, or clear the "
                "others by name"
            )
        print(f"cleared {clear(open_store(path), None)} entries from {path}")
        return EXIT_OK
    row = _find(state, args.name, path)
    try:
        count = clear_group(path, row["kind"], row["name"])
    except NotAStore:  # cleared by someone else meanwhile
        count = 0
    print(f"cleared {row['kind']} {row['name']!r} ({count} entries)")
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    from ._commands import gc_apply, gc_plan
    from ._progress import format_size
    from ._store import StoreReader, open_store

    if args.older_than is None and args.keep_last is None:
        raise UsageError(
            "gc needs --older-than AGE, --keep-last N, or both (see nbresume gc --help)"
        )
    path = _store_path(args.dir)
    running = {r["name"] for r in _read(path)["phases"] if r["running"]}
    with StoreReader(path) as reader:
        plan = gc_plan(
            reader, older_than=args.older_than, keep_last=args.keep_last, running=running
        )
    verb = "would remove" if args.dry_run else "remove"
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for item in plan:
        groups.setdefault((item.what, item.owner, item.reason), []).append(item)
    for (what, owner, reason), items in groups.items():
        size = format_size(sum(item.size for item in items))
        when = _local(max((item.when or 0.0) for item in items))
        if what == "version":
            for item in items:
                print(
                    f"{verb} {owner!r} version of {_local(item.when)} ({format_size(item.size)}): {reason}"
                )
        elif what == "phase":
            print(f"{verb} phase {owner!r} (last run {when}): {reason}")
        elif what == "snapshot":
            print(f"{verb} the loop snapshot of {owner!r} (saved {when}, {size}): {reason}")
        elif what in ("map", "loop"):
            noun = "loop" if what == "loop" else f"{len(items)} resumable.map results of"
            print(f"{verb} {noun} {owner!r} (saved {when}, {size}): {reason}")
        elif what == "file":
            files = "1 value file" if len(items) == 1 else f"{len(items)} value files"
            print(f"{verb} {files} (last written {when}, {size}): {reason}")
        elif reason != "no version left":  # a phase's records go with the phase
            record = "event log" if what == "events" else "progress record"
            print(f"{verb} the {record} of {owner!r}: {reason}")
    if running:
        print(f"left alone while running: {', '.join(repr(name) for name in sorted(running))}")
    if not plan:
        print(f"nothing to remove in {path}")
        return EXIT_OK
    if args.dry_run:
        known = format_size(sum(item.size for item in plan))
        print(f"would free about {known}; run again without --dry-run to remove them")
        return EXIT_OK
    store = open_store(path)
    before = store.volume()
    removed = gc_apply(store, plan)
    after = store.volume()
    # NB. the store's volume counts the files of its entries only
    loose = sum(p.size for p in plan if p.what == "file" and not (path / p.key).exists())
    print(
        f"removed {removed} entries, freed {format_size(max(before - after, 0) + loose)}; "
        f"{format_size(after)} left in {path}"
    )
    return EXIT_OK


def cmd_trust(args: argparse.Namespace) -> int:
    from ._store import open_store

    store = open_store(_store_path(args.path))
    count, damaged = store.resign()
    print(f"re-signed {count} entries in {store.path} with your key; nbresume will load them now")
    if damaged:
        print(
            f"nbresume: error: {len(damaged)} damaged entries were not re-signed "
            f"(e.g. {damaged[0]!r}); clear them with: nbresume clear NAME --dir {store.path}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK
