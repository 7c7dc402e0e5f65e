"""What a checkpoint cell reads from and writes to the user namespace.

A hit must leave the namespace exactly as a real run would have: it sets only the names the run
it restores assigned (or deleted), brings back inputs the run changed in place *in place* (other
names bound to them see the change), and never replaces a notebook function or class by a copy.
The rules, in the order the engine applies them:

- IPython's own names (``In``, ``Out``, ``_``, ``_i3``, ``get_ipython``, ``exit``, the shell
  itself) are neither inputs nor saved (`is_ipython`).
- ``%time STMT`` / ``%timeit STMT`` run STMT in the namespace: it counts as the cell's own code
  (`analysis_source`).
- Saved: the names a top-level statement binds (`unconditional`), plus any name whose binding
  changed during the run (assigned in a branch taken, by ``%run`` or by a function declaring
  ``global``); deleted names are deleted by a hit; a finished generator comes back used up
  (`Finished`), other dead handles (closed files, sockets) are not saved and a hit deletes their
  names, so an older value never shows through (`is_dead`).
- Inputs changed in place (``registry.update(...)``, ``model.fit(X)``, also through a notebook
  function that mutates a global it reads) are saved as `InPlace` content and restored into the
  live object.
- A saved value that refers to a notebook function or class, or to an unchanged input, refers to
  the live object on load (`Ref`, `NamespacePickler`); functions defined by the cell get the
  notebook's globals back, not a private copy of them.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import functools
import inspect
import re
import sys
import types
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import cloudpickle

from ._members import write_members
from ._standins import Unsaved, own_dict, rematch, self_dict
from ._widgets import widget_reduction
from .errors import CheckpointWarning

__all__ = [
    "DELETED",
    "InPlace",
    "NamespacePickler",
    "Ref",
    "ShellRef",
    "Unresolved",
    "analysis_source",
    "apply_values",
    "deleted_names",
    "in_place",
    "is_dead",
    "is_ipython",
    "is_notebook_object",
    "reachable_globals",
    "rebuilt",
    "resolving",
    "setting_magics",
    "unconditional",
    "write_in_place",
]

DELETED = "__nbresume_deleted__"  # among the saved variables: the names the run deleted

IPYTHON_NAMES = frozenset(
    {"get_ipython", "In", "Out", "exit", "quit", "_ih", "_oh", "_dh", "_sh", "_exit_code"}
)
_IPYTHON_PATTERN = re.compile(r"_{1,3}|_i{1,3}|_i?\d+|__\w+__")  # _, __, _ii, _5, _i5, __name__


def is_ipython(name: str, value: Any = None, shell: Any = None) -> bool:
    """Whether ``name`` (bound to ``value``) is IPython's, not the user's."""
    if name in IPYTHON_NAMES or _IPYTHON_PATTERN.fullmatch(name):
        return True
    return shell is not None and (value is shell or getattr(value, "__self__", None) is shell)


# -- reading the cell ---------------------------------------------------------------------------

_TIMING = frozenset({"time", "timeit"})
_TIMEIT_OPTION = re.compile(r"\s*(?:-[nrp]\s*\S+|-[tcqo]+)(?=\s)")


@functools.lru_cache(maxsize=256)
def analysis_source(source: str) -> str:
    """``source`` with each ``%time STMT`` / ``%timeit STMT`` (line or cell form) also written out
    as STMT, so the names STMT reads and binds are the cell's own inputs and outputs.

    Examples
    --------
    >>> print(analysis_source("get_ipython().run_line_magic('time', 'y = f(x)')"))
    y = f(x)
    """
    if "get_ipython()" not in source:
        return source
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    tree.body = _expand(tree.body)
    return ast.unparse(tree)


def _expand(body: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for stmt in body:
        for name, value in ast.iter_fields(stmt):
            if name in ("body", "orelse", "finalbody") and value and isinstance(value[0], ast.stmt):
                setattr(stmt, name, _expand(value))
        for part in [*getattr(stmt, "handlers", []), *getattr(stmt, "cases", [])]:
            part.body = _expand(part.body)
        calls = [n for e in _own_exprs(stmt) for n in ast.walk(e) if isinstance(n, ast.Call)]
        calls = [call for call in calls if _timing(call)]
        inner = [s for call in calls for s in _statements(call)]
        if isinstance(stmt, ast.Expr) and _timing(stmt.value):
            out += inner or [stmt]
        else:
            out += [*inner, stmt]
    return out


def _own_exprs(stmt: ast.stmt) -> Iterator[ast.AST]:
    """The parts of a statement that are not nested statements."""
    for name, value in ast.iter_fields(stmt):
        if name in ("body", "orelse", "finalbody", "handlers", "cases"):
            continue
        values = value if isinstance(value, list) else [value]
        yield from (v for v in values if isinstance(v, ast.AST))


def _timing(node: ast.AST) -> bool:
    """``get_ipython().run_line_magic('time', ...)`` and its cell and ``timeit`` forms."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    owner = node.func.value
    return (
        node.func.attr in ("run_line_magic", "run_cell_magic")
        and isinstance(owner, ast.Call)
        and isinstance(owner.func, ast.Name)
        and owner.func.id == "get_ipython"
        and len(node.args) >= 2
        and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
        and node.args[0].value in _TIMING  # type: ignore[attr-defined]
    )


def _statements(call: ast.Call) -> list[ast.stmt]:
    magic, *texts = (str(a.value) for a in call.args)  # type: ignore[attr-defined]
    if magic == "timeit":
        line = texts[0]
        while match := _TIMEIT_OPTION.match(line + " "):
            line = line[match.end() :]
        texts[0] = line
    elif len(texts) > 1:
        texts = texts[1:]  # %%time's line holds no code
    statements: list[ast.stmt] = []
    for text in texts:
        with contextlib.suppress(SyntaxError):
            statements += ast.parse(text.strip()).body
    return statements


@functools.lru_cache(maxsize=256)
def unconditional(source: str) -> frozenset[str]:
    """The names bound by the top-level statements of a cell: bound whenever the cell completes.

    Examples
    --------
    >>> sorted(unconditional("a = 1\\nif x:\\n    b = 2\\nimport numpy as np\\nc, *d = e"))
    ['a', 'c', 'd', 'np']
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return frozenset()
    names: set[str] = set()
    for stmt in tree.body:
        targets: list[ast.AST] = []
        if isinstance(stmt, ast.Assign):
            targets = list(stmt.targets)
        elif isinstance(stmt, ast.AugAssign) or (
            isinstance(stmt, ast.AnnAssign) and stmt.value is not None
        ):
            targets = [stmt.target]
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            targets = [i.optional_vars for i in stmt.items if i.optional_vars is not None]
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            names.update(a.asname or a.name.split(".")[0] for a in stmt.names if a.name != "*")
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(stmt.name)
        for target in targets:
            names.update(_target_names(target))
    return frozenset(names)


@functools.lru_cache(maxsize=256)
def deleted_names(source: str) -> frozenset[str]:
    """The names a ``del`` statement of the cell (at any depth) unbinds."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return frozenset()
    return frozenset(
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Delete)
        for t in node.targets
        if isinstance(t, ast.Name)
    )


# line magics whose effect is a setting of the shell, not a value: a hit runs them again
SETTING_MAGICS = frozenset(
    {
        "matplotlib", "load_ext", "reload_ext", "config", "env", "set_env", "cd", "autoreload",
        "aimport", "precision", "xmode", "colors", "alias", "pylab", "autocall", "pdb",
    }
)  # fmt: skip


@functools.lru_cache(maxsize=256)
def setting_magics(source: str) -> tuple[tuple[str, str], ...]:
    """The top-level ``%matplotlib inline``, ``%load_ext x``, ``%config ...`` lines of a cell, as
    (magic, line): a hit runs them again, so the kernel ends up set as after a real run.

    Examples
    --------
    >>> setting_magics("get_ipython().run_line_magic('matplotlib', 'inline')\nx = 1")
    (('matplotlib', 'inline'),)
    """
    if "get_ipython()" not in source:
        return ()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    found = []
    for stmt in tree.body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "run_line_magic"
            and len(call.args) == 2
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in call.args)
        ):
            magic, line = (str(a.value) for a in call.args)  # type: ignore[attr-defined]
            if magic in SETTING_MAGICS and (magic != "env" or "=" in line or " " in line.strip()):
                found.append((magic, line))
    return tuple(found)


def _target_names(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _target_names(element)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def is_notebook_object(value: Any) -> bool:
    """A function or class defined in the notebook (``__main__``), or a wrapper of one."""
    if not isinstance(value, types.FunctionType | type) and not hasattr(value, "__wrapped__"):
        return False
    return getattr(value, "__module__", None) == "__main__"


def reachable_globals(values: Iterable[Any], ns: Mapping[str, Any]) -> set[str]:
    """The namespace names that notebook functions among ``values`` read, to any depth: through
    the functions and classes they call, the methods of notebook classes and instances, closures,
    defaults and ``__wrapped__``. A notebook helper that mutates a global makes it an input of
    the cells calling it, so the change is saved with them."""
    found: set[str] = set()
    seen: set[int] = set()
    todo = list(values)
    while todo:
        value = todo.pop()
        if id(value) in seen or isinstance(value, types.ModuleType):
            continue
        seen.add(id(value))
        if isinstance(value, types.MethodType):
            todo += [value.__func__, value.__self__]
            continue
        wrapped = getattr(value, "__wrapped__", None)
        if wrapped is not None and is_notebook_object(value):
            todo.append(wrapped)
        if isinstance(value, types.FunctionType):
            if value.__globals__ is not ns:
                continue
            for name in _code_names(value.__code__):
                if name in ns and name not in found:
                    found.add(name)
                    todo.append(ns[name])
            cells = [c.cell_contents for c in value.__closure__ or () if _filled(c)]
            todo += [*cells, *(value.__defaults__ or ()), *(value.__kwdefaults__ or {}).values()]
        elif isinstance(value, type):
            if value.__module__ == "__main__":
                for member in vars(value).values():
                    inner = getattr(member, "__func__", member)  # static/class methods
                    if isinstance(inner, property):
                        todo += [a for a in (inner.fget, inner.fset, inner.fdel) if a]
                    else:
                        todo.append(inner)
                todo += value.__bases__
        elif type(value).__module__ == "__main__":
            todo.append(type(value))
    return found


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def is_dead(value: Any) -> bool:
    """A closed file or socket, a finished generator: nothing a hit could bring back."""
    if inspect.isgenerator(value):
        return inspect.getgeneratorstate(value) == inspect.GEN_CLOSED
    if inspect.iscoroutine(value):
        return inspect.getcoroutinestate(value) == inspect.CORO_CLOSED
    if inspect.isasyncgen(value):
        return value.ag_frame is None
    try:
        return getattr(value, "closed", None) is True or getattr(value, "_closed", None) is True
    except Exception:  # a property that raises on a dead object
        return False


# -- saving and restoring -----------------------------------------------------------------------


class Unresolved(LookupError):
    """A saved value refers to a notebook object that does not exist in the namespace now."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


_NAMESPACE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "nbresume_namespace", default=None
)


@contextlib.contextmanager
def resolving(ns: dict[str, Any]) -> Iterator[None]:
    """Unpickle references to notebook objects (`Ref`, functions) against ``ns``."""
    token = _NAMESPACE.set(ns)
    try:
        yield
    finally:
        _NAMESPACE.reset(token)


def _namespace() -> dict[str, Any]:
    ns = _NAMESPACE.get()
    if ns is None:  # NB. IPython makes ``__main__`` the user namespace (rollback, exports)
        ns = vars(sys.modules["__main__"])
    return ns


def _live(name: str) -> Any:
    ns = _NAMESPACE.get()
    if ns is None:  # NB. a reader without a notebook (the command line) only lists the names
        return vars(sys.modules["__main__"]).get(name, Ref(name))
    try:
        return ns[name]
    except KeyError:
        raise Unresolved(name) from None


@dataclass(frozen=True)
class Ref:
    """A saved variable bound to the live value of another name (an unchanged input)."""

    name: str


@dataclass(frozen=True)
class ShellRef:
    """A saved variable bound to IPython's shell (``attr`` None) or one of its methods."""

    attr: str | None = None

    @classmethod
    def of(cls, value: Any, shell: Any) -> ShellRef | None:
        if shell is None:
            return None
        if value is shell:
            return cls()
        if getattr(value, "__self__", None) is shell:
            return cls(getattr(value, "__name__", None))
        return None


@dataclass(frozen=True)
class InPlace:
    """The new content of an input the cell changed in place; `apply_values` writes it into the
    live object (``kind``: dict, list, set, bytearray, array, pandas, attrs)."""

    kind: str
    content: Any


_COPIES: dict[type, Any] = {dict: dict, list: list, set: set, bytearray: bytes}
# a class whose instances keep all their state in __dict__ defines none of these
_CUSTOM_STATE = ("__slots__", "__reduce__", "__reduce_ex__", "__getstate__", "__setstate__")


def in_place(value: Any) -> InPlace | None:
    """The content to write back into ``value`` on a hit; None if it cannot be done in place."""
    t = type(value)
    if t in _COPIES:
        return InPlace(t.__name__, _COPIES[t](value))
    np = sys.modules.get("numpy")
    if np is not None and t is np.ndarray:
        return InPlace("array", value.copy())
    pd = sys.modules.get("pandas")
    if pd is not None and t in (pd.DataFrame, pd.Series):
        return InPlace("pandas", value.copy())
    if (
        isinstance(getattr(value, "__dict__", None), dict)
        and not isinstance(value, type | types.FunctionType | types.ModuleType)
        and not any(k in vars(c) for c in t.__mro__[:-1] for k in (*_CUSTOM_STATE, "__setattr__"))
    ):
        return InPlace("attrs", dict(vars(value)))
    return None


def write_in_place(live: Any, change: InPlace) -> bool:
    kind, content = change.kind, change.content
    if kind in ("dict", "set") and type(live) is type(content):
        live.clear()
        live.update(content)
    elif kind in ("list", "bytearray") and type(live).__name__ == kind:
        live[:] = content
    elif kind == "array" and type(live) is type(content) and live.shape == content.shape:
        if live.dtype != content.dtype or not live.flags.writeable:
            return False
        live[...] = content
    elif kind == "pandas" and type(live) is type(content):
        try:  # NB. what pandas' own inplace=True methods call
            live._update_inplace(content)
        except Exception:
            return False
        # NB. outside the data `_update_inplace` moves: `df.attrs[...] = `, `s.name = `, flags
        live.attrs = content.attrs
        live.flags.allows_duplicate_labels = content.flags.allows_duplicate_labels
        if hasattr(content, "name"):
            live.name = content.name
    elif kind == "members":
        return write_members(live, content)
    elif kind == "attrs" and isinstance(getattr(live, "__dict__", None), dict):
        vars(live).clear()
        vars(live).update(content)
    else:
        return False
    return True


def rebuilt(change: InPlace) -> Any:
    if change.kind == "bytearray":
        return bytearray(change.content)
    return change.content


def apply_values(ns: dict[str, Any], values: Mapping[str, Any]) -> None:
    """Put saved variables into ``ns``: `Ref` to the live value, `InPlace` into the live object,
    the rest bound as they are. Raises `Unresolved` (and changes nothing) if a `Ref` is unknown."""
    for value in values.values():
        if isinstance(value, Ref) and value.name not in ns:
            raise Unresolved(value.name)
    for name, value in values.items():
        if isinstance(value, Ref):
            ns[name] = ns[value.name]
        elif isinstance(value, ShellRef):
            shell = ns["get_ipython"]() if "get_ipython" in ns else None
            if shell is not None:
                ns[name] = shell if value.attr is None else getattr(shell, value.attr)
        elif isinstance(value, Unsaved):
            if not value.kept(ns, name):
                ns.pop(name, None)
                warnings.warn(
                    f"variable {name!r} of the restored run could not be saved ({value.why}), "
                    f"so it is not defined now; --force runs the cell again to make it",
                    CheckpointWarning,
                    stacklevel=2,
                )
        elif isinstance(value, InPlace):
            live = ns.get(name)
            if not write_in_place(live, value) and value.kind != "members":
                ns[name] = rebuilt(value)
        else:
            ns[name] = value


class _Empty:
    """An empty closure cell."""


def _function(code: types.CodeType, name: str, cells: int) -> types.FunctionType:
    closure = tuple(types.CellType() for _ in range(cells)) or None
    return types.FunctionType(code, _namespace(), name, None, closure)


def _set_function_state(fn: types.FunctionType, state: dict[str, Any]) -> types.FunctionType:
    for cell, value in zip(fn.__closure__ or (), state.pop("cells"), strict=True):
        if value is not _Empty:
            cell.cell_contents = value
    fn.__dict__.update(state.pop("dict"))
    for attribute, value in state.items():
        setattr(fn, attribute, value)
    return fn


_LRU_WRAPPER = type(functools.lru_cache(maxsize=None)(len))


def _lru_cached(fn: Any, maxsize: int | None, typed: bool) -> Any:
    return functools.lru_cache(maxsize=maxsize, typed=typed)(fn)


class NamespacePickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, except that notebook objects stay themselves.

    ``refs`` maps ``id(obj)`` to a name in ``ns``: such objects are saved as "the value of that
    name" (notebook functions and classes the cell did not define, unchanged inputs). Functions
    whose globals are ``ns`` (defined in a cell) get ``ns`` back as their globals when loaded, not
    a private copy of the globals they read. NB. the C pickler skips ``reducer_override`` for
    exact dicts, lists and tuples: those keep identity only as top-level variables (`Ref`).
    """

    def __init__(
        self, file: Any, *, ns: dict[str, Any], refs: Mapping[int, str], **kwargs: Any
    ) -> None:
        super().__init__(file, **kwargs)
        self._ns = ns
        self._refs = refs

    def reducer_override(self, obj: Any) -> Any:
        name = self._refs.get(id(obj))
        if name is not None:
            return _live, (name,)
        if type(obj) is _LRU_WRAPPER and getattr(obj, "__module__", None) == "__main__":
            # NB. pickle would save it "by name" from __main__, where a new kernel lacks it yet
            parameters = obj.cache_parameters()
            return _lru_cached, (obj.__wrapped__, parameters["maxsize"], parameters["typed"])
        if type(obj) is types.FunctionType and obj.__globals__ is self._ns:
            cells = [c.cell_contents if _filled(c) else _Empty for c in obj.__closure__ or ()]
            state = {
                "cells": cells,
                "dict": dict(obj.__dict__),
                "__defaults__": obj.__defaults__,
                "__kwdefaults__": obj.__kwdefaults__,
                "__qualname__": obj.__qualname__,
                "__annotations__": obj.__annotations__,
                "__doc__": obj.__doc__,
                "__module__": obj.__module__,
            }
            args = (obj.__code__, obj.__name__, len(cells))
            return _function, args, state, None, None, _set_function_state
        if isinstance(obj, re.Match):
            search = (obj.re, obj.string, obj.pos, obj.endpos, obj.regs)
            rematch(*search)  # NB. raises now, not on load, when it cannot be found again
            return rematch, search
        if isinstance(obj, dict) and type(obj) is not dict and own_dict(obj) is obj:
            # attributes that are the items (statsmodels' Dataset): pickle's default would load
            # a __dict__ of its own, another value (and another fingerprint) than the one saved
            return self_dict, (type(obj),), None, None, iter(dict.items(obj))
        # NB. a widget holds the kernel's comm: saved as its traits
        return widget_reduction(obj) or super().reducer_override(obj)
