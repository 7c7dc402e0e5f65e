"""The ``nbresume`` command: run notebooks that survive a dead kernel; look after checkpoint stores.

Each subcommand is a function ``cmd_NAME(args) -> exit code``, in the module ``COMMANDS`` names
(_cli_read, _cli_change, _cli_setup, _cli_run). Heavy imports (nbclient, IPython,
the store) happen inside them, so ``nbresume --help`` starts fast. A failure is one line on stderr,
``nbresume: error: ...``: exit 1; a usage error exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from types import ModuleType
from typing import NoReturn

from . import _cli_change, _cli_read, _cli_run, _cli_setup
from ._cli_common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CliError, UsageError, _error
from ._cli_setup import KERNEL_CONFIG
from .errors import NbresumeError

__all__ = ["main"]

COMMANDS: dict[str, ModuleType] = {  # where each ``cmd_NAME`` is
    **dict.fromkeys(("list", "show", "status", "history", "log"), _cli_read),
    **dict.fromkeys(("rollback", "clear", "gc", "trust"), _cli_change),
    **dict.fromkeys(("install", "uninstall"), _cli_setup),
    "run": _cli_run,
}

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
        sub.set_defaults(func=getattr(COMMANDS[name], f"cmd_{name}"))
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
