"""``%checkpoint status | list | clear | dir | history | rollback | mark | log | hints``: the line forms.

Messages of nbresume's own (tables, histories, logs, notes) are displayed marked with the
``nbresume`` metadata key, as the notes of ``%%checkpoint`` cells are: never part of a cell's output.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from . import _store
from ._host import writer_alive
from .errors import NbresumeError, StoreError

__all__ = [
    "Removal",
    "clear",
    "format_age",
    "format_rows",
    "gc_apply",
    "gc_plan",
    "key_phase",
    "phase_rows",
    "run_line",
]

USAGE = (
    "use %checkpoint status | list | clear NAME | clear --all | dir [PATH] | history [NAME] "
    "[--keep N] | rollback NAME [N] | mark NAME pending|done | log [NAME] | hints on|off"
)


def phase_rows(
    store: _store.Store, current: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """One row per phase of ``store``, newest first; JSON-ready.

    Statuses as this kernel sees them: a phase not run here yet is pending, unless its latest run
    failed or was interrupted; a run that was still running when its kernel died (a SIGKILL
    writes nothing) is interrupted, and re-running the cell resumes it; a run in another live
    kernel on this store is running. ``current`` maps phase names to the source hash of their
    cell in the notebook now (`notebook_sources`): a phase whose saved version has another source
    is stale.
    """
    from ._progress import table_status, visible_loops
    from .checkpoint import phases

    records: dict[str, dict[str, Any]] = {}
    snapshots: set[str] = set()
    progress: dict[str, dict[str, Any]] = {}
    for key in store.keys(""):
        kind, name = key.partition(":")[0], key_phase(key)
        if name is None:
            continue
        if kind == "phase":
            record = store.get_json(key, {})
            records[name] = record if isinstance(record, dict) else {}
        elif kind == "snap" and "cell:" + key[len("snap:") :] not in store:
            snapshots.add(name)  # a run that has not completed since
        elif kind == "progress":
            record = store.get_json(key, {})
            progress[name] = record if isinstance(record, dict) else {}
    sizes = _row_sizes(store)
    rows: list[dict[str, Any]] = []
    for name in records.keys() | snapshots | progress.keys():
        record = records.get(name, {})
        versions = record.get("versions") or []
        latest = versions[0] if versions else {}
        live = phases.get(name)
        status = _kernel_status(live, record, name in snapshots, progress.get(name, {}))
        saved = latest.get("source_hash")
        changed = bool(current and name in current and saved and current[name] != saved)
        changed = changed and record.get("mark") != "done"  # accepted as it is, by hand
        loops = ""
        if live is not None and live.loops:
            loops = ", ".join(
                f"{loop.desc} {loop.position()}" for loop in visible_loops(live.loops)
            )
        elif isinstance(progress.get(name, {}).get("done"), int):
            done, total = progress[name]["done"], progress[name].get("total")
            loops = f"{done:,}/{'?' if total is None else f'{total:,}'}"
        rows.append(
            {
                "name": name,
                "status": table_status(status, changed),
                "last_run": record.get("updated") or progress.get(name, {}).get("updated"),
                "duration": latest.get("duration"),
                "loops": loops,
                "size": sizes.get(("phase", name), 0) + sizes.get(("loop", name), 0),
                "versions": len(versions),
            }
        )
    rows.sort(key=lambda r: (-(r["last_run"] or 0), r["name"]))
    return rows


def _row_sizes(store: _store.Store) -> dict[tuple[str, str], int]:
    """`_sizes.row_sizes` of the store: the sizes the dashboard and ``nbresume status`` print."""
    from ._sizes import row_sizes
    from ._storeread import StoreReader

    with StoreReader(store.path) as reader:
        return row_sizes(reader.rows())


def _kernel_status(
    live: Any, record: dict[str, Any], snapshot: bool, progress: dict[str, Any]
) -> str:
    if live is not None:  # ran, was restored, rolled back or marked in this kernel
        return str(live.status)
    last = progress.get("status")  # the latest run's, whichever kernel ran it
    manual = _manual_status(record, progress)
    mine = progress.get("pid") == os.getpid()  # a previous kernel's, with a recycled pid
    if last == "running" and not mine and writer_alive(progress):
        status = "running"
    elif manual is not None:  # NB. also over a run a dead kernel left "running": marked since
        status = manual
    elif last == "running":
        status = "interrupted"
    elif last in ("failed", "interrupted"):
        status = str(last)
    elif last is None and snapshot:  # a store without progress records
        status = "interrupted"
    elif last is None and record.get("status") in ("failed", "interrupted"):
        status = str(record["status"])
    else:
        status = "pending"
    return status


def _manual_status(record: dict[str, Any], progress: dict[str, Any]) -> str | None:
    """A status set by hand since the last run: a mark, or a rollback."""
    if record.get("mark") in ("pending", "done"):  # it says what the next run does
        return str(record["mark"])
    if record.get("status") == "rolled back" and (record.get("updated") or 0) >= (
        progress.get("updated") or 0
    ):
        return "rolled back"
    return None


def format_rows(rows: list[dict[str, Any]]) -> str:
    """`phase_rows` as a text table."""
    from ._progress import table_text

    return table_text(rows)


def key_phase(key: str) -> str | None:
    """The phase (or standalone loop) a store key belongs to, or None.

    ``phase:NAME``, ``progress:NAME``, ``events:NAME``, ``cell:NAME:HASH``, ``snap:NAME:HASH``,
    ``loop:NAME`` and the ``resumable.map`` results of a cell ``map:cell:NAME:HASH:...``; other
    maps belong to none.

    Examples
    --------
    >>> key_phase("snap:sweep:0123abcd"), key_phase("map:cell:sweep:0123abcd:f00:1")
    ('sweep', 'sweep')
    """
    kind, _, rest = key.partition(":")
    if kind == "map":
        kind, _, rest = rest.partition(":")
        if kind != "cell":
            return None
    if kind in ("phase", "progress", "loop", "events"):
        return rest or None
    if kind in ("cell", "snap"):
        return rest.split(":", 1)[0] or None
    return None


def clear(store: _store.Store, name: str | None) -> int:
    """Delete a phase (or everything, ``name=None``): entries, snapshots, records. Returns count."""
    count = 0
    for key in store.keys(prefix=""):
        if name is None or key_phase(key) == name:
            count += store.delete(key)
    return count


# NB. diskcache writes a value file before it commits the row that refers to it: a file without a
# row may be a write in progress, which rewrites its mtime as it goes. None lasts this long.
LOOSE_FILE_AGE = 600.0  # seconds


@dataclass(frozen=True)
class Removal:
    """One entry `gc_plan` would remove, and why."""

    key: str  # for a file: its name in the store
    owner: str  # the phase (or loop) it belongs to
    what: str  # version | phase | progress | events | snapshot | map | loop | file
    reason: str
    when: float | None = None  # when it was created or last written
    size: int = 0  # bytes of its value file, if known


def gc_plan(
    reader: _store.StoreReader,
    *,
    older_than: float | None = None,
    keep_last: int | None = None,
    running: Collection[str] = (),
    now: float | None = None,
) -> list[Removal]:
    """What ``nbresume gc`` removes; nothing of the phases in ``running``.

    - versions older than ``older_than`` seconds and/or beyond the newest ``keep_last`` of each
      phase (with both rules, only versions that both select);
    - a phase with no version left and not run within ``older_than``: its records;
    - snapshots and ``resumable.map`` results left by runs that completed since;
    - with ``older_than``, unfinished progress saved longer ago than that: snapshots of
      interrupted loops, partial map results, loops outside checkpoint cells;
    - value files that no entry refers to, last written more than `LOOSE_FILE_AGE` ago: the
      partial files of writes that a kill interrupted.
    """
    now = _store.now() if now is None else now
    cutoff = None if older_than is None else now - older_than
    age = f"older than {format_age(older_than)}" if older_than is not None else ""
    infos = {info.key: info for info in reader.rows()}
    plan: list[Removal] = []
    for key in [k for k in infos if k.startswith("phase:")]:
        name = key[len("phase:") :]
        record = reader.get_json(key, {})
        if name in running or not isinstance(record, dict):
            continue
        kept = 0
        for index, version in enumerate(record.get("versions", [])):
            old = cutoff is not None and (version.get("created") or 0.0) < cutoff
            beyond = keep_last is not None and index >= keep_last
            both = cutoff is not None and keep_last is not None
            if not ((old and beyond) if both else (old or beyond)):
                kept += 1
                continue
            why = " and ".join(
                ([age] if old else []) + ([f"beyond the newest {keep_last}"] if beyond else [])
            )
            entry = infos.get(version["key"])  # NB. size 0: a small value kept in the database
            size = (entry.size if entry is not None else 0) or version.get("size") or 0
            plan.append(Removal(version["key"], name, "version", why, version.get("created"), size))
        updated = record.get("updated") or infos[key].stored
        if not kept and cutoff is not None and updated < cutoff:
            plan.append(Removal(key, name, "phase", "no version left", updated))
            for kind in ("progress", "events"):  # the phase's records go with it
                if f"{kind}:{name}" in infos:
                    plan.append(Removal(f"{kind}:{name}", name, kind, "no version left"))
    for info in infos.values():
        removal = _leftover(info, infos, cutoff, age)
        if removal is not None and removal.owner not in running:
            plan.append(removal)
    for loose in reader.unreferenced_files():
        if loose.modified < now - LOOSE_FILE_AGE:
            why = "no entry refers to it (a write that was killed)"
            plan.append(Removal(loose.name, "", "file", why, loose.modified, loose.size))
    return plan


def _leftover(
    info: _store.EntryInfo, infos: Mapping[str, Any], cutoff: float | None, age: str
) -> Removal | None:
    key = info.key
    owner = key_phase(key) or key.partition(":")[2].rpartition(":")[0]  # map:HOST:ID:N -> HOST:ID
    old = cutoff is not None and info.stored < cutoff
    if key.startswith(("snap:", "map:cell:")):
        what = "snapshot" if key.startswith("snap:") else "map"
        cell = (
            "cell:" + key[len("snap:") :] if what == "snapshot" else ":".join(key.split(":")[1:4])
        )
        if cell in infos:
            return Removal(key, owner, what, "its run completed", info.stored, info.size)
        if old:
            return Removal(key, owner, what, f"unfinished and {age}", info.stored, info.size)
    elif key.startswith(("loop:", "map:")) and old:
        what = "loop" if key.startswith("loop:") else "map"
        return Removal(key, owner, what, f"unfinished and {age}", info.stored, info.size)
    elif key.startswith(("progress:", "events:")) and old and f"phase:{owner}" not in infos:
        what = key.partition(":")[0]
        return Removal(key, owner, what, f"no phase and {age}", info.stored, info.size)
    return None


def gc_apply(store: _store.Store, plan: list[Removal]) -> int:
    """Carry out `gc_plan`: per phase, its record and its entries change in one transaction."""
    removed = 0
    by_owner: dict[str, set[str]] = {}
    for item in plan:
        if item.what == "file":
            removed += bool(_store.remove_loose_file(store.path, item.key, LOOSE_FILE_AGE))
            continue
        by_owner.setdefault(item.owner, set()).add(item.key)
    for name, gone in by_owner.items():
        with store.transact():
            record = store.get_json(f"phase:{name}")  # re-read: a kernel may have written since
            if isinstance(record, dict) and f"phase:{name}" not in gone:
                versions = record.get("versions", [])
                record["versions"] = [v for v in versions if v.get("key") not in gone]
                if record["versions"] != versions:
                    store.put_json(f"phase:{name}", record)
            for key in sorted(gone):
                removed += store.delete(key)
                if key.startswith("cell:"):  # resumable.map results of that run
                    for leftover in store.keys(f"map:{key}:"):
                        removed += store.delete(leftover)
    return removed


def format_age(seconds: float) -> str:
    """A coarse age: ``45s``, ``12m``, ``3h``, ``9d``.

    Examples
    --------
    >>> format_age(5400), format_age(86400 * 9)
    ('1h', '9d')
    """
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


# -- %checkpoint status: the table view ------------------------------------------------------


def notebook_path(shell: Any) -> Path | None:
    """The notebook this kernel runs, if its frontend said so and it is saved on disk.

    jupyter_server tells the kernel in ``JPY_SESSION_NAME`` (ipykernel copies it to
    ``__session__``), VS Code in ``__vsc_ipynb_file__``; nbclient says nothing.
    """
    ns = getattr(shell, "user_ns", None) or {}
    for candidate in (
        ns.get("__session__"),
        ns.get("__vsc_ipynb_file__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            path = Path(candidate)
            if path.is_file():
                return path
    return None


def notebook_sources(shell: Any, path: Path) -> dict[str, str]:
    """Phase name -> source hash, as the engine computes it, of each named checkpoint cell."""
    from ._keys import hash_text, normalize_source
    from ._magics import parse_cell_args

    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    hashes: dict[str, str] = {}
    for cell in notebook.get("cells", []) if isinstance(notebook, dict) else []:
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        first, _, body = source.lstrip("\n").partition("\n")
        if cell.get("cell_type") != "code" or first.split()[:1] != ["%%checkpoint"]:
            continue
        try:
            name = parse_cell_args(first.strip()[len("%%checkpoint") :]).name
        except UsageError:
            continue
        if name is not None:  # an unnamed cell's phase is named after its source: never stale
            hashes[name] = hash_text(normalize_source(shell.transform_cell(body)))
    return hashes


def status_rows(shell: Any, store: _store.Store) -> list[dict[str, Any]]:
    """`phase_rows`, stale cells included when the kernel knows its notebook file."""
    path = notebook_path(shell)
    return phase_rows(store, notebook_sources(shell, path) if path is not None else None)


def show_status(shell: Any, store: _store.Store) -> None:
    """``%checkpoint status``: the store's phases as an HTML table, with a text form."""
    from IPython.display import display

    from ._capture import NOTE_KEY
    from ._progress import format_size, table_html, table_text

    rows = status_rows(shell, store)
    where = f"store {store.path} ({format_size(store.volume())})"
    if notebook_path(shell) is None:
        where += "; stale cells cannot be told: the kernel does not know its notebook file"
    display(  # type: ignore[no-untyped-call]
        {"text/plain": f"{table_text(rows)}\n{where}", "text/html": table_html(rows, where)},
        raw=True,
        metadata={NOTE_KEY: {"view": "status"}},
    )


def run_line(shell: Any, line: str) -> Any:
    """Run one ``%checkpoint COMMAND ...`` line; returns what the cell shows as its result."""
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
            return None
        if command == "hints":
            return _hints_command(rest)
        store = _store.open_store()
        if command in ("status", "list"):
            if rest:
                raise UsageError(f"%checkpoint {command} takes no arguments; got {rest!r}")
            if command == "status":
                show_status(shell, store)
            else:
                print(format_rows(status_rows(shell, store)))
        elif command == "clear":
            _clear_command(store, rest)
        elif command in _COMMANDS:
            return _COMMANDS[command](shell, store, rest)
        else:
            raise UsageError(f"%checkpoint: unknown command {command!r}; {USAGE}")
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    except NbresumeError as exc:  # rollback, mark: what went wrong and what to do, one line
        raise UsageError(str(exc)) from None
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        from ._text import debugging, unexpected

        if debugging():
            raise
        # NB. a record of the wrong shape in the store: one line, never a traceback
        raise UsageError(unexpected(exc, f"%checkpoint {command}")) from None
    return None


def _clear_command(store: _store.Store, rest: list[str]) -> None:
    if rest == ["--all"]:
        print(f"cleared {clear(store, None)} entries from {store.path}")
    elif len(rest) == 1 and not rest[0].startswith("-"):
        n = clear(store, rest[0])
        if not n:
            raise UsageError(f"%checkpoint clear: no phase named {rest[0]!r}; see %checkpoint list")
        print(f"cleared phase {rest[0]!r} ({n} entries)")
    else:
        raise UsageError(f"%checkpoint clear takes NAME or --all; got {rest!r}")


def show_text(text: str, view: str, **meta: Any) -> None:
    """Display nbresume's own text (a history, a log, a one-line message), marked as such."""
    from IPython.display import display

    from ._capture import NOTE_KEY

    display(  # type: ignore[no-untyped-call]
        {"text/plain": text}, raw=True, metadata={NOTE_KEY: {"view": view, **meta}}
    )


def _number(text: str, what: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"%checkpoint {what}: expected a whole number >= 1, got {text!r}")
    return int(text)


def _phase_record(store: _store.Store, name: str, command: str) -> dict[str, Any]:
    record = store.get_json(f"phase:{name}")
    if not isinstance(record, dict):
        raise UsageError(f"%checkpoint {command}: no phase named {name!r}; see %checkpoint list")
    return record


def _history_command(shell: Any, store: _store.Store, rest: list[str]) -> None:
    """``history [NAME] [--keep N]``: the kept versions; ``--keep`` sets how many are kept."""
    from ._history import HISTORY_ENV, history_text

    names = [a for a in rest if not a.startswith("-")]
    options = [a for a in rest if a.startswith("-")]
    keep = None
    if options:
        if options != ["--keep"] or rest[-2:-1] != ["--keep"]:
            raise UsageError(f"%checkpoint history takes [NAME] [--keep N]; got {rest!r}")
        keep = _number(names.pop(), "history --keep")
        os.environ[HISTORY_ENV] = str(keep)
    if len(names) > 1:
        raise UsageError(f"%checkpoint history takes one NAME; got {names!r}")
    if keep is not None and not names:
        show_text(
            f"phases keep their {keep} newest versions, from their next save on (in this kernel; "
            f"set {HISTORY_ENV}={keep} for every kernel); nbresume gc --keep-last {keep} prunes "
            "now",
            "history",
        )
        return
    if names:
        texts = [history_text(names[0], _phase_record(store, names[0], "history"))]
    else:
        keys = store.keys("phase:")
        texts = [history_text(k[len("phase:") :], store.get_json(k, {})) for k in keys]
    show_text("\n".join(texts) or "no checkpoints yet", "history")


def _rollback_command(shell: Any, store: _store.Store, rest: list[str]) -> Any:
    """``rollback NAME [N]``: version N (default 2, the one current before) back in place."""
    from ._magics import show_note
    from ._workflow import rollback_phase

    if len(rest) not in (1, 2) or rest[0].startswith("-"):
        raise UsageError(f"%checkpoint rollback takes NAME [N]; got {rest!r}")
    number = _number(rest[1], "rollback") if len(rest) == 2 else None
    return rollback_phase(shell, rest[0], number, show_note, store=store)


def _mark_command(shell: Any, store: _store.Store, rest: list[str]) -> None:
    from ._workflow import MARKS, mark_phase

    if len(rest) != 2 or rest[1] not in MARKS:
        raise UsageError(f"%checkpoint mark takes NAME pending|done; got {rest!r}")
    text = mark_phase(rest[0], rest[1], store=store)
    show_text(text, "mark", kind="marked", name=rest[0], mark=rest[1])


def _log_command(shell: Any, store: _store.Store, rest: list[str]) -> None:
    """``log [NAME]``: the events of one phase, or of every phase, oldest first."""
    from ._history import format_events, merge_events

    if len(rest) > 1 or (rest and rest[0].startswith("-")):
        raise UsageError(f"%checkpoint log takes [NAME]; got {rest!r}")
    name = rest[0] if rest else None
    keys = store.keys("events:")
    if name is not None and f"events:{name}" not in keys:
        _phase_record(store, name, "log")
    events = merge_events(keys, store.get_json, name)
    show_text(format_events(events, names=name is None), "log")


def _hints_command(rest: list[str]) -> None:
    from . import _hints

    if rest not in (["on"], ["off"]):
        raise UsageError(f"%checkpoint hints takes on or off; got {rest!r}")
    _hints.set_enabled(rest == ["on"])
    state = "on" if rest == ["on"] else "off"
    show_text(f"hints to add %%checkpoint to long cells are {state} in this kernel", "hints")


_COMMANDS = {
    "history": _history_command,
    "rollback": _rollback_command,
    "mark": _mark_command,
    "log": _log_command,
}
