"""The IPython layer: argument parsing and display. The work happens in `checkpoint`."""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import keyword
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from . import checkpoint
from ._capture import NOTE_KEY
from ._keys import validate_name
from .errors import CheckpointError, NbresumeError

__all__ = ["CheckpointMagics", "load", "parse_cell_args"]

CHECKPOINT_DOC = """Cache a cell's variables and outputs; re-running it restores them instantly.

    %%checkpoint [NAME] [--force] [--no-deps] [--exclude a,b] [--every N|Ns] [--quiet]
                 [--validate EXPR] [--continue]

The first run runs the cell as usual and records it. A re-run (also after a kernel restart)
restores the variables the cell assigns and replays its outputs without running it, unless the
cell's source or an input it reads changed: then it runs again and a note says why.

A `for x in resumable(items):` loop inside the cell is snapshotted as it runs: if the kernel
dies, re-running the cell restores the variables it had assigned (results = [] above the loop
gets the saved list back), replays its outputs and continues at the first unfinished item.

Options:
  NAME           names the phase (letters, digits, -_.); default: cell-<hash>
  --force        run even if a checkpoint matches, and overwrite it
  --no-deps      key on the source and NAME only (ignore input values)
  --exclude a,b  neither save nor fingerprint these variables (e.g. a DB connection)
  --every N|Ns   snapshot loops every N items or N seconds (default: as often as 2% of the
                 loop's time allows: after every item when saving is cheap)
  --quiet        no notes
  --validate EX  the phase is done only if EX is true after the cell ran
  --continue     after fixing a cell whose loop was interrupted (error, Ctrl-C, dead kernel):
                 keep the items that run finished and go on with the edited code

Line forms:
  %checkpoint status | list | clear NAME | clear --all | dir [PATH]
  %checkpoint history [NAME] [--keep N]   kept versions: when, how long, why (NBRESUME_HISTORY=3)
  %checkpoint rollback NAME [N]           version N (default 2, the previous) back, outputs shown
  %checkpoint mark NAME pending|done      run it again next time | accept it as it is
  %checkpoint log [NAME]                  events: started, snapshots, resumed, failed, ...
  %checkpoint hints on|off                the hint after a long cell without %%checkpoint
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel
        raise UsageError(f"%%checkpoint: {message}; see %%checkpoint? for the options")


@functools.cache
def _cell_parser() -> _Parser:  # built once: building it costs more than a whole cache hit
    parser = _Parser(prog="%%checkpoint", add_help=False, exit_on_error=False)
    parser.add_argument("name", nargs="?")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--no-deps", action="store_true")
    parser.add_argument("--exclude", default="")
    parser.add_argument("--every")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--validate")
    parser.add_argument("--continue", dest="continue_run", action="store_true")
    return parser


@functools.lru_cache(maxsize=256)  # NB. options are frozen: a re-run parses nothing
def parse_cell_args(line: str) -> checkpoint.CheckpointOptions:
    """``%%checkpoint`` arguments -> options; `UsageError` (one line) on anything wrong."""
    try:
        args = _cell_parser().parse_args(shlex.split(line))
    except ValueError as exc:  # shlex: unbalanced quotes
        raise UsageError(f"%%checkpoint: cannot parse {line!r}: {exc}") from None
    except argparse.ArgumentError as exc:
        raise UsageError(f"%%checkpoint: {exc}; see %%checkpoint? for the options") from None
    try:
        if args.name is not None:
            validate_name(args.name)
        exclude = frozenset(n.strip() for n in args.exclude.split(",") if n.strip())
        for name in exclude:
            if not name.isidentifier() or keyword.iskeyword(name):
                raise CheckpointError(
                    f"--exclude {name!r} is not a variable name; give names like --exclude conn,f"
                )
        if args.validate is not None:  # before the cell runs: a one-line UsageError
            from ._gate import check_expression

            check_expression(args.validate)
        every: int | str | None = args.every
        if every is not None:
            from ._policy import parse_every

            parse_every(every)
    except (ValueError, NbresumeError) as exc:
        raise UsageError(str(exc)) from None
    return checkpoint.CheckpointOptions(
        name=args.name,
        force=args.force,
        no_deps=args.no_deps,
        exclude=exclude,
        every=every,
        quiet=args.quiet,
        validate=args.validate,
        continue_run=args.continue_run,
    )


def show_note(note: checkpoint.Note) -> None:
    """Display a note so that it is never mistaken for the cell's own output."""
    from IPython.display import publish_display_data

    publish_display_data(  # type: ignore[no-untyped-call]
        {"text/plain": note.text},
        metadata={NOTE_KEY: {"kind": note.kind, "name": note.name, **note.data}},
    )


@magics_class
class CheckpointMagics(Magics):
    @line_cell_magic
    def checkpoint(self, line: str, cell: str | None = None) -> Any:
        __tracebackhide__ = True
        if cell is None:
            from . import _commands

            return _commands.run_line(self.shell, line)
        options = parse_cell_args(line)
        shell: Any = self.shell
        from .widget import PhaseView

        watch = None if options.quiet else PhaseView(source=cell)
        return checkpoint.run_checkpoint(shell, cell, options, show_note, watch=watch)

    checkpoint.__doc__ = CHECKPOINT_DOC


async def run_async_cell(line: str, cell: str) -> Any:
    """Entry point of rewritten ``%%checkpoint`` cells that use top-level ``await``."""
    __tracebackhide__ = True
    from IPython import get_ipython

    options = parse_cell_args(line)
    shell: Any = get_ipython()
    from .widget import PhaseView

    watch = None if options.quiet else PhaseView(source=cell)
    return await checkpoint.run_checkpoint_async(shell, cell, options, show_note, watch=watch)


def _has_top_level_await(shell: Any, body: str) -> bool:
    if "await" not in body and "async" not in body:
        return False
    try:
        source = shell.transform_cell(body)
        code = compile(source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return False
    return bool(code.co_flags & inspect.CO_COROUTINE)


def _await_transformer(shell: Any) -> Any:
    """Rewrite ``%%checkpoint`` cells with top-level ``await`` into an awaited call.

    A cell magic is a plain call made from inside the kernel's running event loop, so it cannot
    await; an awaited expression can, and IPython then runs the whole cell as async.
    """

    def transform(lines: list[str]) -> list[str]:
        if not lines or not lines[0].startswith("%%checkpoint"):
            return lines
        line, body = lines[0][len("%%checkpoint") :].strip(), "".join(lines[1:])
        if not body:  # IPython refuses an empty cell magic; ours is a no-op with a note
            return [lines[0].rstrip("\n") + "\n", "\n"]
        if not _has_top_level_await(shell, body):
            return lines
        call = f"__import__('nbresume._magics', fromlist=['_']).run_async_cell({line!r}, {body!r})"
        return [f"await {call}\n"]

    transform.nbresume = True  # type: ignore[attr-defined]
    return transform


def load(shell: Any) -> None:
    """Register the magics, the ``await`` support and ``resumable`` in the user namespace."""
    from . import _hints
    from .resumable import resumable

    shell.register_magics(CheckpointMagics)
    _hints.register(shell)  # one line after a long cell without %%checkpoint
    transformers = shell.input_transformers_cleanup
    if not any(getattr(t, "nbresume", False) for t in transformers):
        transformers.insert(0, _await_transformer(shell))
    shell.user_ns.setdefault("resumable", resumable)
