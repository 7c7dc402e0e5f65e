"""The ``nbresume`` command: run notebooks that survive a dead kernel; look after checkpoint stores.

Each subcommand is a function ``cmd_NAME(args) -> exit code``. Heavy imports (nbclient, IPython,
the store) happen inside them, so ``nbresume --help`` starts fast. A failure is one line on stderr,
``nbresume: error: ...``: exit 1; a usage error exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from ._run import EXTENSION
from .errors import NbresumeError

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
KERNEL_CONFIG = "ipython_kernel_config.json"  # read by every IPython kernel; no .d directory exists
CREATED_MARKER = ".nbresume-created"  # next to a config file that `install` created
MAX_LISTED = 2000  # rows `nbresume list` prints at most, the newest (as the dashboard: MAX_ROWS)

DESCRIPTION = """\
Resumable Jupyter notebooks. `nbresume run` executes a notebook headless and, when the kernel
dies, starts a fresh one and runs it again: %%checkpoint cells restore, interrupted loops go on.
The other commands look after the checkpoint store (./.nbresume next to the notebook, or
$NBRESUME_DIR)."""

EPILOG = """\
examples:
  nbresume run train.ipynb                 run; on a kernel death restart and resume (3 times)
  nbresume run train.ipynb -o out.ipynb --timeout 3600 --retries 5
  nbresume list                            phases in ./.nbresume (or the stores found below)
  nbresume show sweep                      the versions of phase 'sweep' and their inputs
  nbresume history sweep                   its kept versions: when, how long, why each ran
  nbresume rollback sweep --to 2 --export sweep.pkl   version 2 current again; its variables
  nbresume log                             what happened: started, snapshots, restored, failed
  nbresume gc --older-than 7d --dry-run    what pruning would remove
  nbresume status --json | jq '.phases[] | {name, status}'
  nbresume install                         load nbresume in every kernel of this environment

exit status: 0 success, 1 failure (a cell raised, the kernel kept dying, a store problem),
2 usage error, 128+N stopped by signal N (130: Ctrl-C)."""

RUN_EPILOG = """\
The notebook runs in a fresh kernel whose working directory is --cwd (default: the notebook's
folder), so its checkpoints go to .nbresume there. If the kernel dies (killed, out of memory,
os._exit), nbresume starts a new kernel in the same directory and runs the notebook again from the
top, up to --retries times: finished %%checkpoint cells restore in a moment and an interrupted
resumable() loop continues after its last snapshot. A cell that raises stops the run (no retry).

The executed notebook is written to -o OUT, by default NAME.out.ipynb next to NAME.ipynb, also
when the run fails (with the error in it). On success it holds every cell's complete outputs.
nbresume is loaded in the kernel before the first cell, so %load_ext nbresume is optional.

examples:
  nbresume run sweep.ipynb                 writes sweep.out.ipynb
  nbresume run sweep.ipynb --cwd data/ --kernel python3 --timeout 600"""

GC_EPILOG = """\
AGE is a number and a unit: 90s, 30m, 12h, 7d, 2w. With both options, a version goes only if it
is older than AGE and not among the newest N. A phase left with no version and not run within AGE
goes too, and so does unfinished progress saved longer ago than AGE (the snapshot of a loop that
was interrupted, partial resumable.map results, loops outside checkpoint cells). Entries left
behind by runs that completed always go, and so do value files that no entry refers to (the
partial files of writes that a kill interrupted) once unchanged for 10 minutes: a younger one may
be a write in progress. Nothing of a phase running in a kernel is touched.

examples:
  nbresume gc --older-than 7d --dry-run
  nbresume gc --keep-last 1"""


ROLLBACK_EPILOG = """\
Version N (as nbresume history numbers them: #1 is the current one) becomes the phase's current
version again: first in its history, so pruning keeps it longest, and its status reads "rolled
back". In a notebook, %checkpoint rollback NAME [N] also puts its variables back in the kernel and
shows its outputs. --to 1 with --export only exports the current version.

--export FILE writes the version's variables to FILE as a pickle of a dict {name: value}, made
with cloudpickle, readable by you only. FILE must be new; --overwrite replaces a regular file (a
symlink, FIFO or device is always refused). Read it where nbresume (or cloudpickle) is installed:

  import pickle
  with open("sweep.pkl", "rb") as f:
      variables = pickle.load(f)      # {'results': [...], 'best': ...}

Unpickling can run code: load only files you made.

examples:
  nbresume history sweep
  nbresume rollback sweep                          make version 2 current again
  nbresume rollback sweep --to 3 --export old.pkl --outputs
  nbresume rollback sweep --to 1 --export sweep.pkl --overwrite"""


class CliError(Exception):
    """A failure reported as one line on stderr; exit status 1."""


class UsageError(Exception):
    """Bad arguments, reported as one line on stderr; exit status 2."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        # NB. argparse measures the command names without their extra indent: "uninstall" wraps.
        for sub in getattr(action, "_get_subactions", list)():
            width = len(sub.metavar or sub.dest) + self._current_indent + 2 * self._indent_increment
            self._action_max_length = max(self._action_max_length, width)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


# -- entry point --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the ``nbresume`` command line; returns the exit status."""
    try:
        return _main(argv)
    except Exception as exc:  # NB. nothing found in a store may print a traceback
        from ._text import debugging, unexpected

        if debugging():
            raise
        command = (sys.argv[1:] if argv is None else argv)[:1]
        _error(unexpected(exc, " ".join(["nbresume", *command])))
        return EXIT_FAILURE


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("missing COMMAND (see nbresume --help)")
        return int(args.func(args))
    except SystemExit as exc:  # --help and --version print and exit 0
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (CliError, NbresumeError) as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _error("interrupted")
        return 128 + 2
    except BrokenPipeError:  # `nbresume status --json | head`: the reader left, not an error
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _error(message: str) -> None:
    from ._text import printable  # a message may quote a name from a store

    print(f"nbresume: error: {printable(' '.join(message.split()))}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="nbresume",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"nbresume {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")

    def command(name: str, help: str, epilog: str | None = None) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog=epilog,
            formatter_class=_Formatter,
        )
        sub.set_defaults(func=globals()[f"cmd_{name}"])
        return sub

    def store_option(sub: argparse.ArgumentParser, search: bool = False) -> None:
        found = ", else the stores found under this folder" if search else ""
        sub.add_argument(
            "--dir",
            metavar="D",
            help="the store, or a folder holding .nbresume (default: $NBRESUME_DIR, else "
            f"./.nbresume{found})",
        )

    run = command(
        "run", "execute a notebook; if the kernel dies, restart it and resume", RUN_EPILOG
    )
    run.add_argument("notebook", metavar="NOTEBOOK.ipynb", help="the notebook to execute")
    run.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="where to write the executed notebook (default: NOTEBOOK.out.ipynb next to it)",
    )
    run.add_argument(
        "--retries",
        metavar="N",
        type=_non_negative_int,
        default=3,
        help="restarts after a kernel death (default: 3)",
    )
    run.add_argument(
        "--timeout", metavar="S", type=_seconds, help="fail a cell that runs longer than S seconds"
    )
    run.add_argument(
        "--cwd",
        metavar="DIR",
        help="the kernel's working directory (default: the notebook's folder)",
    )
    run.add_argument(
        "--kernel", metavar="NAME", help="kernel to use (default: the notebook's kernelspec)"
    )

    store_option(command("list", "list the phases in the store with status, age and size"), True)

    show = command("show", "show the versions of one phase, their inputs and sizes")
    show.add_argument("name", metavar="NAME")
    store_option(show, True)

    status = command("status", "show the whole state of the store, loop progress included")
    status.add_argument("--json", action="store_true", help="print it as a JSON document")
    store_option(status, True)

    history = command("history", "list the kept versions of a phase: when, how long, why")
    history.add_argument("name", metavar="NAME")
    store_option(history, True)

    rollback = command(
        "rollback",
        "make an earlier version of a phase current again; export its variables",
        ROLLBACK_EPILOG,
    )
    rollback.add_argument("name", metavar="NAME")
    rollback.add_argument(
        "--to",
        metavar="N",
        type=_positive_int,
        help="the version, as nbresume history numbers them (default: 2, the one before)",
    )
    rollback.add_argument(
        "--export", metavar="FILE", help="write its variables to FILE (a pickle of a dict)"
    )
    rollback.add_argument(
        "--overwrite", action="store_true", help="replace FILE if it exists (a regular file only)"
    )
    rollback.add_argument("--outputs", action="store_true", help="print its outputs' text")
    store_option(rollback)

    log = command("log", "show the events of every phase, or of one, with their times")
    log.add_argument("name", metavar="NAME", nargs="?", help="only this phase's events")
    store_option(log, True)

    clear = command("clear", "delete the checkpoints of one phase, or all of them")
    which = clear.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "name", metavar="NAME", nargs="?", help="the phase to delete (as nbresume list names it)"
    )
    which.add_argument("--all", action="store_true", help="delete everything in the store")
    store_option(clear)

    gc = command("gc", "prune old versions of phases and leftovers of completed runs", GC_EPILOG)
    gc.add_argument("--older-than", metavar="AGE", type=_age, help="remove versions older than AGE")
    gc.add_argument(
        "--keep-last", metavar="N", type=_positive_int, help="keep the newest N versions per phase"
    )
    gc.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    store_option(gc)

    trust = command(
        "trust",
        "accept a store made by another user: sign it with your key",
        "nbresume never loads an entry signed by another key. Trust only stores whose origin you\n"
        "trust: loading an entry unpickles it, which can run code.",
    )
    trust.add_argument("path", metavar="PATH", help="the store, or a folder holding .nbresume")

    for name, help in (
        ("install", "load nbresume in every new IPython kernel of this environment"),
        ("uninstall", "undo install: remove nbresume from the kernels' configuration"),
    ):
        sub = command(
            name,
            help,
            f"Edits sys.prefix/etc/ipython/{KERNEL_CONFIG} (with --user: the file in your IPython\n"
            "profile), adding or removing nbresume in InteractiveShellApp.extra_extensions and\n"
            "keeping everything else in the file. Running kernels need a restart.",
        )
        sub.add_argument("--user", action="store_true", help="your IPython profile instead")
        sub.add_argument("--prefix", help=argparse.SUPPRESS)  # tests: another environment
    return parser


def _whole(text: str, least: int) -> int:
    # NB. str.isdigit() is true of "²" (int() fails) and of "٣" (int() reads 3): ASCII only
    if not (text.isascii() and text.isdigit()) or int(text) < least:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {least}, got {text!r}")
    return int(text)


def _non_negative_int(text: str) -> int:
    return _whole(text, 0)


def _positive_int(text: str) -> int:
    return _whole(text, 1)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _age(text: str) -> float:
    """``7d`` -> seconds."""
    number, unit = text.strip()[:-1], text.strip()[-1:].lower()
    try:
        value = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected an age such as 90s, 30m, 12h, 7d or 2w, got {text!r}"
        ) from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"an age must be 0 or more, got {text!r}")
    return value


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


def cmd_list(args: argparse.Namespace) -> int:
    paths = _reading_stores(args.dir, several=True)
    for number, path in enumerate(paths):
        _heading(paths, number)
        _list_store(path, _read(path, MAX_LISTED))
    return EXIT_OK


def _heading(paths: list[Path], number: int) -> None:
    """With several stores: a blank line between them, and each one's path (relative) first."""
    if len(paths) > 1:
        print(f"{chr(10) if number else ''}{_relative(paths[number])}:")


def _relative(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


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


def _size(n: int) -> str:
    from ._progress import format_size

    return format_size(n)


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


# -- install / uninstall ------------------------------------------------------------------------


def _config_path(args: argparse.Namespace) -> Path:
    if args.prefix:
        return Path(args.prefix).absolute() / "etc" / "ipython" / KERNEL_CONFIG
    if args.user:
        from IPython.paths import get_ipython_dir

        return Path(get_ipython_dir()) / "profile_default" / KERNEL_CONFIG
    return Path(sys.prefix) / "etc" / "ipython" / KERNEL_CONFIG


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise CliError(f"{str(path)!r} is not valid JSON ({exc}); fix or remove it first") from exc
    if not isinstance(config, dict):
        raise CliError(f"{str(path)!r} does not hold a JSON object; fix or remove it first")
    return config


def _extensions(config: dict[str, Any], path: Path) -> tuple[dict[str, Any], list[Any]]:
    """The ``InteractiveShellApp`` section and its ``extra_extensions`` list (created if absent)."""
    section = config.setdefault("InteractiveShellApp", {})
    if not isinstance(section, dict):
        raise CliError(f"InteractiveShellApp in {str(path)!r} is not an object; fix it first")
    extra = section.setdefault("extra_extensions", [])
    if not isinstance(extra, list):
        raise CliError(
            f"InteractiveShellApp.extra_extensions in {str(path)!r} is not a list; fix it first"
        )
    return section, extra


def _write_config(path: Path, config: dict[str, Any], *, user: bool) -> None:
    """Replace the file atomically: a kernel starting meanwhile reads the old or the new one."""
    from ._files import replacing

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n")
    except OSError as exc:
        hint = "" if user else "; try --user to change only your own profile"
        raise CliError(f"cannot write {str(path)!r}: {exc.strerror or exc}{hint}") from exc


def cmd_install(args: argparse.Namespace) -> int:
    path = _config_path(args)
    config = _read_config(path)
    section, extra = _extensions(config, path)
    if EXTENSION in section.get("extensions", []):
        print(f"nbresume is already loaded by InteractiveShellApp.extensions in {path}")
        return EXIT_OK
    if EXTENSION in extra:
        print(f"nbresume is already installed in {path}")
        return EXIT_OK
    created = not path.exists()
    extra.append(EXTENSION)
    _write_config(path, config, user=args.user)
    if created:
        with contextlib.suppress(OSError):
            (path.parent / CREATED_MARKER).write_text(path.name + "\n")
    print(
        f"added nbresume to InteractiveShellApp.extra_extensions in {path}: new IPython kernels "
        "load it (restart running ones); undo with nbresume uninstall"
        + (" --user" if args.user else "")
    )
    return EXIT_OK


def cmd_uninstall(args: argparse.Namespace) -> int:
    path = _config_path(args)
    config = _read_config(path)
    section = config.get("InteractiveShellApp")
    extra = section.get("extra_extensions") if isinstance(section, dict) else None
    if not isinstance(extra, list) or EXTENSION not in extra:
        print(f"nbresume is not installed in {path}; nothing to do")
        return EXIT_OK
    assert isinstance(section, dict)
    extra[:] = [name for name in extra if name != EXTENSION]
    if not extra:
        del section["extra_extensions"]
    if not section:
        del config["InteractiveShellApp"]
    marker = path.parent / CREATED_MARKER
    try:
        if not config and marker.is_file():  # the file is ours and holds nothing else
            path.unlink()
            print(f"removed {path} (nbresume had created it)")
        else:
            _write_config(path, config, user=args.user)
            print(f"removed nbresume from InteractiveShellApp.extra_extensions in {path}")
        marker.unlink(missing_ok=True)
    except OSError as exc:
        raise CliError(f"cannot change {str(path)!r}: {exc.strerror or exc}") from exc
    return EXIT_OK


# -- run ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from ._runfiles import STDOUT, RunFileError, check_output, lock_notebook, read_notebook

    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as exc:
        raise CliError(f"nbresume run needs nbclient ({exc}); pip install nbclient") from exc

    path = Path(args.notebook).expanduser()
    output: Path | str = (
        STDOUT
        if args.output == STDOUT
        else Path(args.output).expanduser()
        if args.output
        else path.with_name(f"{path.stem}.out.ipynb")
    )
    try:
        nb = read_notebook(path)
        check_output(output, path)
        lock = lock_notebook(path)
    except RunFileError as exc:
        raise CliError(str(exc)) from exc
    try:
        return _run_locked(args, path, nb, output)
    finally:
        os.close(lock)


def _run_locked(args: argparse.Namespace, path: Path, nb: Any, output: Path | str) -> int:
    from ._run import NotebookRun, Report, signal_name
    from ._runfiles import STDOUT, save_elsewhere, write_output

    cwd = Path(args.cwd).expanduser() if args.cwd else path.parent
    if not cwd.is_dir():
        raise CliError(f"--cwd {str(cwd)!r} is not a directory")
    # NB. with -o - stdout carries the notebook alone
    report = Report(sys.stderr if output == STDOUT else sys.stdout)
    runner = NotebookRun(
        nb,
        cwd=cwd.absolute(),
        kernel=args.kernel,
        timeout=args.timeout,
        retries=args.retries,
        report=report,
    )
    result = runner.run()
    if result.ran:  # a kernel ran cells: the notebook holds outputs, also when the run failed
        try:
            write_output(result.nb, output)
        except OSError as exc:
            raise CliError(
                f"cannot write {str(output)!r}: {exc.strerror or exc}; "
                + save_elsewhere(result.nb, output)
            ) from exc
    written = "the notebook to stdout" if output == STDOUT else str(output)
    if result.error is not None:
        where = f"; the executed notebook is in {output}" if result.ran and output != STDOUT else ""
        raise CliError(result.error + where)
    if result.signal:
        _error(
            f"stopped by {signal_name(result.signal)}; checkpoints are kept: run again to resume"
        )
        return 128 + result.signal
    runner.report.line(result.summary + f"; wrote {written}")
    return EXIT_OK
