"""What IPython's magics read, from the calls IPython's transforms write for them.

``%time model = fit(X)`` becomes ``get_ipython().run_line_magic('time', 'model = fit(X)')``: the
code is a string the cell analysis would not see. `read_magic` says which code a magic runs, which
file ``%run`` executes, which text IPython expands (``$name``, ``{expr}``), and what it cannot
follow.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

__all__ = ["MagicReads", "expansions", "read_magic"]

# magics whose argument or body is code run in the notebook's namespace -> do its assignments leak?
CODE_MAGICS = {"time": True, "prun": True, "timeit": False, "capture": True}
# %run options followed by a value (IPython's `%run?`)
RUN_VALUE_OPTIONS = {"-N", "-b", "-G", "-T", "-D", "-l", "-r", "-s", "-m"}
TIMEIT_VALUE_OPTIONS = {"-n", "-r", "-p", "-s", "-l", "-T", "-D"}
WRITEFILE_MAGICS = ("writefile", "file")  # NB. %%file is IPython's alias of %%writefile
_EXPANSION = re.compile(r"\$(\w+)|\{([^{}]+)\}")  # IPython's $name and {expr} in magic arguments


@dataclass(frozen=True)
class MagicReads:
    """What one magic call reads and binds."""

    code: str | None = None  # code it runs
    leaks: bool = True  # whether that code's assignments land in the notebook
    expanded: str = ""  # text in which IPython expands $name and {expr}
    run_file: str | None = None  # the file %run executes
    stores: tuple[str, ...] = ()  # names it binds itself (%%capture out)
    dynamic: str | None = None  # what it reads that no name list can follow
    refused: str | None = None  # why a hit could not stand for a run (the whole note)


def read_magic(method: str, texts: list[str]) -> MagicReads:
    """``get_ipython().METHOD(*texts)``, as IPython's transforms write a magic or ``!command``."""
    if method in ("system", "getoutput") and texts:
        return MagicReads(expanded=texts[0])  # !cmd {x} $y
    if method == "run_line_magic" and len(texts) >= 2:
        return _read_line_magic(texts[0], texts[1])
    if method == "run_cell_magic" and len(texts) >= 3:
        name, line, body = texts[0], texts[1], texts[2]
        if name in CODE_MAGICS:
            stores = (line.split()[-1],) if name == "capture" and line.split() else ()
            return MagicReads(code=body, leaks=CODE_MAGICS[name], stores=stores)
        if name in WRITEFILE_MAGICS:
            path = line.split()[-1] if line.split() else ""
            why = (
                f"%%writefile writes {path!r}: a hit would not write it, so the cell runs every "
                "time (put %%writefile in a plain cell)"
            )
            return MagicReads(expanded=line, refused=why)
        return MagicReads(expanded=line)
    return MagicReads()


def _read_line_magic(name: str, line: str) -> MagicReads:
    if name == "run":
        return _read_run(line)
    if name == "timeit":
        return MagicReads(code=_strip_options(line, TIMEIT_VALUE_OPTIONS), leaks=False)
    if name in CODE_MAGICS:
        return MagicReads(code=line)  # NB. IPython expands nothing in these
    return MagicReads(expanded=line)


def _read_run(line: str) -> MagicReads:
    if "$" in line or "{" in line:
        return MagicReads(dynamic="the file name of %run from a variable")
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    skip = False
    dynamic = None
    for word in words:
        if skip:
            skip = False
        elif word == "-i":
            dynamic = "the notebook's names through %run -i"
        elif word in RUN_VALUE_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            return MagicReads(run_file=word, dynamic=dynamic)  # what follows: the script's args
    return MagicReads(dynamic=dynamic)


def expansions(text: str) -> tuple[list[str], list[str]]:
    """The ``$name`` names and ``{expr}`` expressions IPython expands in ``text``."""
    names: list[str] = []
    exprs: list[str] = []
    for match in _EXPANSION.finditer(text):
        name, expr = match.groups()
        if name:
            names.append(name)
        else:
            exprs.append(expr)
    return names, exprs


def _strip_options(line: str, with_value: set[str]) -> str:
    """The code of ``%timeit -n 3 -r 1 code``: the words after the options."""
    words = line.split(" ")
    i = 0
    while i < len(words) and (words[i].startswith("-") or not words[i]):
        i += 2 if words[i] in with_value else 1
    return " ".join(words[i:])
