"""Where a ``resumable(...)`` call sits, what consumes it, and the loop's identity.

A loop can resume mid-way only where nbresume saves its accumulators: a ``for`` statement of a
checkpoint cell's own code, nested in other resumable ``for`` statements only. Everything else is
told apart here, from the calling frame: the bytecode after the call says whether a ``for``
statement or a comprehension consumes it (exact, no source needed); the source's syntax tree,
found by the call's exact position, says which function wraps it and which loops enclose it.
"""

from __future__ import annotations

import ast
import dataclasses
import dis
import functools
import linecache
import os
import re
from dataclasses import dataclass
from types import CodeType, FrameType

from .errors import CheckpointError

__all__ = ["LoopSite", "kept_reason", "loop_identity", "site_of"]

# consumers that turn the loop into one value: after a resume it would hold only the rest
_AGGREGATES = frozenset(
    {"list", "tuple", "set", "frozenset", "dict", "sorted", "sum", "min", "max", "any", "all"}
)


@dataclass(frozen=True)
class LoopSite:
    """The call ``resumable(...)`` as written."""

    code: CodeType
    filename: str
    lineno: int
    consumer: str  # for | comprehension | enumerate | zip | <function name> | other
    text: str  # the statement's first line, stripped ("" when the source is unknown)
    occurrence: int  # how many statements with the same text come before it in the file
    under_plain_loop: bool  # a for/while that is not a resumable loop encloses it
    argument: ast.expr | None  # the items expression, to evaluate again after a restore
    target: str  # the loop variable (``lr`` of ``for lr in resumable(...)``), for the bar
    session: str | None = None  # the notebook's path in a kernel (IPython's ``__session__``)
    # the call that consumes the loop and keeps its items (``list(map(f, resumable(xs)))``,
    # ``pd.DataFrame(resumable(rows))``), when no for statement consumes it: see `kept_reason`
    kept_by: str | None = None

    @property
    def is_for(self) -> bool:
        return self.consumer == "for"


def site_of(frame: FrameType) -> LoopSite:
    """Analyse the call being made in ``frame`` (the caller of ``resumable``)."""
    session = frame.f_globals.get("__session__")
    code = frame.f_code
    site = _analyse(code, frame.f_lasti, frame.f_lineno, len(linecache.getlines(code.co_filename)))
    # NB. equal code objects (the same cell run twice) share an analysis, not their identity
    return dataclasses.replace(
        site, code=code, session=session if isinstance(session, str) and session else None
    )


@functools.lru_cache(maxsize=1024)
def _analyse(code: CodeType, lasti: int, lineno: int, _lines: int) -> LoopSite:
    """The analysis of one call site (cached: an inner loop is created once per outer item)."""
    call, after = _call_and_next(code, lasti)
    consumer = "other"
    if after[:1] == ["GET_ITER"]:
        consumer = "for" if after[1:2] == ["FOR_ITER"] else "comprehension"
    node, parents = _find_call(code, call)
    text, occurrence, under_plain, argument, target = "", 0, False, None, "items"
    if node is not None and parents:
        parent = parents[-1]
        if consumer == "other" and isinstance(parent, ast.Call) and node in parent.args:
            consumer = _name_of(parent.func) or "other"
        stmt = next((p for p in reversed(parents) if isinstance(p, ast.stmt)), None)
        lines = linecache.getlines(code.co_filename)
        if stmt is not None and stmt.lineno <= len(lines):
            text = lines[stmt.lineno - 1].strip()
            occurrence = sum(1 for line in lines[: stmt.lineno - 1] if line.strip() == text)
        consumed_by_for = isinstance(parent, ast.For | ast.AsyncFor) and parent.iter is node
        under_plain = _nested_in_plain(parents[:-1] if consumed_by_for else parents)
        argument = node.args[0] if node.args else None
        if isinstance(parent, ast.For | ast.AsyncFor) and consumed_by_for:
            target = ast.unparse(parent.target)
    kept_by = _keeper(node, parents) if node is not None and consumer != "for" else None
    return LoopSite(
        code,
        code.co_filename,
        lineno,
        consumer,
        text,
        occurrence,
        under_plain,
        argument,
        target,
        kept_by=kept_by,
    )


def _keeper(node: ast.expr, parents: list[ast.AST]) -> str | None:
    """The outermost call of the chain of calls that takes ``node`` as an argument, unless a for
    statement iterates over the chain (``for y in map(f, resumable(xs))``) or the chain is a bare
    ``iter(...)`` (a loop written with ``next``)."""
    current: ast.AST = node
    calls: list[ast.Call] = []
    i = len(parents) - 1
    while i >= 0:
        parent = parents[i]
        if isinstance(parent, ast.Starred) and parent.value is current:
            current = parent
        elif isinstance(parent, ast.Call) and (
            current in parent.args or any(k.value is current for k in parent.keywords)
        ):
            calls.append(parent)
            current = parent
        else:
            break
        i -= 1
    if not calls:
        return None
    outer = parents[i] if i >= 0 else None
    if isinstance(outer, ast.For | ast.AsyncFor) and outer.iter is current:
        return None
    if len(calls) == 1 and _name_of(calls[0].func) == "iter":
        return None
    return _name_of(calls[-1].func) or "a call"


def kept_reason(site: LoopSite) -> str | None:
    """Why a loop outside a checkpoint cell runs plain: its consumer keeps the items, and after
    a restart it would hold only the items not done yet (only done keys persist there)."""
    if site.kept_by is None:
        return None
    where = f"line {site.lineno}" + (f" ({site.text!r})" if site.text else "")
    return (
        f"{where}: resumable() is consumed by {site.kept_by}(...), which keeps the items; after "
        "a restart it would hold only the items not done yet, so it runs as a plain loop "
        "(every item, no progress kept): write a for loop over resumable(...), or use "
        "resumable.map(f, xs)"
    )


def refuse_inexact(site: LoopSite) -> None:
    """Refuse the idioms whose state lives where nbresume cannot save it (anywhere they are)."""
    where = f"line {site.lineno}" + (f" ({site.text!r})" if site.text else "")
    if site.consumer == "comprehension":
        raise CheckpointError(
            f"{where}: resumable() in a comprehension cannot resume: after a restart the list "
            "would hold only the items not done yet; use resumable.map(f, xs), or a for loop "
            "appending to a list in a %%checkpoint cell"
        )
    if site.consumer == "enumerate":
        raise CheckpointError(
            f"{where}: enumerate(resumable(xs)) would count from 0 again after a restart; "
            "write resumable(enumerate(xs))"
        )
    if site.consumer == "zip":
        raise CheckpointError(
            f"{where}: zip(resumable(a), ...) cannot keep the loops in step after a restart; "
            "write resumable(zip(a, b))"
        )
    if site.consumer in _AGGREGATES:
        raise CheckpointError(
            f"{where}: {site.consumer}(resumable(...)) would hold only the items not done yet "
            "after a restart; write a loop, for x in resumable(xs), or use resumable.map(f, xs)"
        )


def loop_identity(name: str | None, site: LoopSite) -> str:
    """The identity of a loop outside a checkpoint cell, in its store.

    ``name=`` when given, wherever the loop is called from; else its notebook or script and the
    text of its statement (not its line number: inserting a line above must not lose progress).
    """
    if name is not None:
        return name
    where = _source_name(site)
    text = site.text or f"line {site.lineno}"
    return f"{where}: {text}" + (f" #{site.occurrence + 1}" if site.occurrence else "")


def _source_name(site: LoopSite) -> str:
    filename = site.filename
    if filename.startswith("<") or _is_cell_file(filename):
        # NB. the notebook's path: two notebooks of one folder share a store, not their loops
        session = site.session or os.environ.get("JPY_SESSION_NAME")
        return session or "notebook"
    return _relative(filename)


def _relative(filename: str) -> str:
    path = os.path.abspath(os.path.expanduser(filename))
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith("..") else relative


_CELL_FILE = re.compile(r"ipykernel_\d+|ipython-input-|<ipython-input")


def _is_cell_file(filename: str) -> bool:
    return bool(_CELL_FILE.search(filename))


def _is_resumable_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _name_of(node.func) == "resumable"


def _nested_in_plain(parents: list[ast.AST]) -> bool:
    return any(
        isinstance(p, ast.While) or (isinstance(p, ast.For | ast.AsyncFor) and not _is_resumable_call(p.iter))
        for p in parents
    )  # fmt: skip


def _name_of(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


# NB. a long loop body needs EXTENDED_ARG before its FOR_ITER (a jump past 255 words)
_PREFIXES = frozenset({"EXTENDED_ARG", "CACHE", "NOP"})


@functools.lru_cache(maxsize=256)
def _instructions(code: CodeType) -> tuple[tuple[int, str], ...]:
    return tuple((i.offset, i.opname) for i in dis.get_instructions(code))


def _call_and_next(code: CodeType, lasti: int) -> tuple[int, list[str]]:
    """The offset of the call being made at ``lasti`` and the names of the two instructions after
    it. NB. ``f_lasti`` points into the call's inline caches, which `dis` hides."""
    instructions = _instructions(code)
    call = 0
    after: list[str] = []
    for offset, opname in instructions:
        if offset <= lasti:
            call = offset
        elif opname in _PREFIXES:
            continue
        elif len(after) < 2:
            after.append(opname)
        else:
            break
    return call, after


def _find_call(code: CodeType, offset: int) -> tuple[ast.Call | None, list[ast.AST]]:
    """The Call node at the instruction ``offset`` of ``code``, and its ancestors (outermost first)."""
    where: tuple[int | None, ...]
    if hasattr(code, "co_positions"):
        positions = list(code.co_positions())
        if offset // 2 >= len(positions):
            return None, []
        where = positions[offset // 2]
        lineno, end_lineno, col, end_col = where
        where = (lineno, col, end_lineno, end_col)
    else:  # NB. Python 3.10 has line numbers only: the line's first resumable(...) call
        starts = [line for start, line in dis.findlinestarts(code) if start <= offset]
        lineno = starts[-1] if starts else None
        where = (lineno, None, None, None)
    if lineno is None:
        return None, []
    tree = _tree(code.co_filename, "".join(linecache.getlines(code.co_filename)))
    if tree is None:
        return None, []
    return _search(tree, where, [])


def _search(
    node: ast.AST, where: tuple[int | None, ...], parents: list[ast.AST]
) -> tuple[ast.Call | None, list[ast.AST]]:
    for child in ast.iter_child_nodes(node):
        start, end = getattr(child, "lineno", None), getattr(child, "end_lineno", None)
        if start is not None and end is not None and not (start <= (where[0] or 0) <= end):
            continue
        if isinstance(child, ast.Call) and (
            (child.lineno, child.col_offset, child.end_lineno, child.end_col_offset) == where
            or (where[1] is None and child.lineno == where[0] and _calls_resumable(child))
        ):
            return child, [*parents, node]
        found = _search(child, where, [*parents, node])
        if found[0] is not None:
            return found
    return None, []


def _calls_resumable(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Name) and func.id == "resumable") or (
        isinstance(func, ast.Attribute) and func.attr == "resumable"
    )


@functools.lru_cache(maxsize=64)
def _tree(filename: str, source: str) -> ast.Module | None:
    if not source:
        return None
    try:
        return ast.parse(source, filename)
    except SyntaxError:
        return None
