"""Pure key computation: normalise cell source, find a cell's inputs and outputs, fingerprint values.

Nothing here touches IPython or the store. Keys are readable and hold nothing volatile (no execution
counts, PIDs or temporary paths), so the same cell with the same inputs gets the same key in every
process.
"""

from __future__ import annotations

import ast
import functools
import pickle
import re
import sys
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import xxhash

__all__ = [
    "CellNames",
    "analyze_cell",
    "cell_key",
    "describe_change",
    "fingerprint",
    "hash_text",
    "normalize_source",
    "validate_name",
]

NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
FUNCTION_DEPTH = 3  # how deep fingerprints follow globals and closures of functions


def validate_name(name: str) -> str:
    """Return ``name`` if it can name a phase, else raise ``ValueError`` saying what is allowed."""
    if not NAME_RE.match(name):
        raise ValueError(
            f"checkpoint name {name!r} is not valid; use letters, digits and -_. only "
            "(e.g. %%checkpoint train-2)"
        )
    return name


def normalize_source(source: str) -> str:
    """Strip trailing whitespace of every line and blank lines at both ends."""
    return "\n".join(line.rstrip() for line in source.strip("\n").splitlines()).strip("\n")


def hash_text(text: str) -> str:
    """A short stable hash of some text (32 hex digits)."""
    return xxhash.xxh3_128_hexdigest(text.encode())


@dataclass(frozen=True)
class CellNames:
    """The names a cell reads before assigning them (inputs) and the names it assigns (outputs)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class _Scope(ast.NodeVisitor):
    """Walk a cell in evaluation order, noting loads of names not assigned yet, and assignments.

    Nested function/class/lambda/comprehension bodies contribute their loads of free names (they
    read globals when they run) but never their assignments.
    """

    def __init__(self, nested: bool = False) -> None:
        self.inputs: dict[str, None] = {}
        self.assigned: dict[str, None] = {}
        self.outputs_in_place: dict[str, None] = {}
        self.walrus: dict[str, None] = {}  # := targets, which bind in the enclosing scope
        self._nested = nested

    def _load(self, name: str) -> None:
        if name not in self.assigned:
            self.inputs.setdefault(name)

    def _store(self, name: str) -> None:
        self.assigned.setdefault(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._load(node.id)
        else:
            self._store(node.id)

    def _visit_item_target(self, node: ast.Subscript | ast.Attribute) -> None:
        # `d['k'] = v`, `obj.a = v`: d and obj are read, then changed: inputs and outputs
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Store | ast.Del):
            base: ast.expr = node
            while isinstance(base, ast.Subscript | ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and not self._nested:
                self.outputs_in_place.setdefault(base.id)

    visit_Subscript = _visit_item_target
    visit_Attribute = _visit_item_target

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        self.generic_visit(node)
        if node.name:
            self._store(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._store(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self._store(node.rest)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self._load(node.target.id)  # x += 1 reads x first
        self.visit(node.target)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)  # the right side runs before the targets are bound
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for stmt in [*node.body, *node.orelse]:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._store(node.target.id)
        self.walrus.setdefault(node.target.id)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._store(alias.asname or alias.name.split(".")[0])

    visit_ImportFrom = visit_Import

    def _free_loads(self, nodes: list[Any], local: set[str], comprehension: bool = False) -> None:
        inner = _Scope(nested=True)
        for node in nodes:
            inner.visit(node)
        for name in inner.inputs:
            if name not in local:
                self._load(name)
        if comprehension:
            for name in inner.walrus:  # `[y := f(x) for x in xs]` binds y in the cell
                self._store(name)

    def _function_loads(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self.visit(decorator)
        params = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        body: list[Any] = node.body if isinstance(node.body, list) else [node.body]
        self._free_loads(body, params | _bound_in(body))

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self._function_loads(node)
        if not isinstance(node, ast.Lambda):
            self._store(node.name)

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function
    visit_Lambda = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.bases, *(k.value for k in node.keywords), *node.decorator_list]:
            self.visit(expr)
        # NB. methods do not see the class body's names: their free names are the cell's globals
        methods = [n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for method in methods:
            self._function_loads(method)
        rest = [n for n in node.body if n not in methods]
        self._free_loads(rest, _bound_in(rest))
        self._store(node.name)

    def _visit_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        targets = {
            n.id for gen in node.generators for n in ast.walk(gen.target) if isinstance(n, ast.Name)
        }
        self._free_loads(list(ast.iter_child_nodes(node)), targets, comprehension=True)

    visit_ListComp = _visit_comprehension
    visit_SetComp = _visit_comprehension
    visit_GeneratorExp = _visit_comprehension
    visit_DictComp = _visit_comprehension

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            self._store(name)  # a function that declares `global x` may assign it


def _bound_in(body: list[Any]) -> set[str]:
    """Names bound in a function's own scope (Python makes them local to the whole function).

    Nested functions, lambdas, classes and comprehensions have scopes of their own: what they
    bind does not shadow the function's globals.
    """
    bound: set[str] = set()
    todo = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
            todo.extend(node.decorator_list)
            continue
        elif isinstance(
            node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
        ):
            continue
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name.split(".")[0]) for a in node.names)
        todo.extend(ast.iter_child_nodes(node))
    return bound


@functools.lru_cache(maxsize=256)  # a hit re-analyses the same source: keep it off the hit path
def analyze_cell(source: str) -> CellNames:
    """Find the names a cell reads before it assigns them, and the names it assigns.

    Examples
    --------
    >>> analyze_cell("results = []\nfor lr in grid:\n    results.append(fit(lr))")
    CellNames(inputs=('grid', 'fit'), outputs=('results', 'lr'))
    """
    scope = _Scope()
    for stmt in ast.parse(source).body:
        scope.visit(stmt)
    outputs = {**scope.assigned, **scope.outputs_in_place}
    return CellNames(tuple(scope.inputs), tuple(outputs))


# ----------------------------------------------------------------------------------------------
# fingerprints

_SCALARS = (str, bytes, int, float, complex, bool, type(None), PurePath, range, slice)


def fingerprint(value: Any) -> str:
    """A content hash of a value, stable across processes (32 hex digits).

    numpy arrays and pandas objects are hashed from their raw buffers without a copy; functions by
    their code, defaults, closure and the globals they read; containers element by element (sets in a
    canonical order); anything else by its pickle.
    """
    h = xxhash.xxh3_128()
    _feed(h, value, depth=0, seen=set())
    return h.hexdigest()


def _feed(h: xxhash.xxh3_128, value: Any, depth: int, seen: set[int]) -> None:
    t = type(value)
    h.update(f"<{t.__module__}.{t.__qualname__}>".encode())
    if isinstance(value, _SCALARS):
        h.update(repr(value).encode())
        return
    if id(value) in seen:
        h.update(b"<cycle>")
        return
    seen.add(id(value))
    try:
        _feed_object(h, value, depth, seen)
    finally:
        seen.discard(id(value))


def _feed_object(h: xxhash.xxh3_128, value: Any, depth: int, seen: set[int]) -> None:
    if isinstance(value, list | tuple):
        h.update(str(len(value)).encode())
        for item in value:
            _feed(h, item, depth, seen)
    elif isinstance(value, dict):
        h.update(str(len(value)).encode())
        for k, v in value.items():
            _feed(h, k, depth, seen)
            _feed(h, v, depth, seen)
    elif isinstance(value, set | frozenset):
        for part in sorted(fingerprint(item) for item in value):
            h.update(part.encode())
    elif isinstance(value, types.ModuleType):
        h.update(value.__name__.encode())
    elif isinstance(value, types.FunctionType):
        _feed_function(h, value, depth, seen)
    elif isinstance(value, types.MethodType):
        _feed(h, value.__func__, depth, seen)
        _feed(h, value.__self__, depth, seen)
    elif isinstance(value, type):
        _feed_class(h, value, depth, seen)
    elif isinstance(value, types.BuiltinFunctionType):
        h.update(f"{getattr(value, '__module__', '')}.{value.__qualname__}".encode())
    elif _feed_array(h, value):
        pass
    else:
        _feed_reduced(h, value, depth, seen)


def _feed_class(h: xxhash.xxh3_128, cls: type, depth: int, seen: set[int]) -> None:
    h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
    if cls.__module__ != "__main__" or depth >= FUNCTION_DEPTH:
        return  # an installed class is named by its module; a notebook's by its body
    for base in cls.__bases__:
        _feed(h, base, depth + 1, seen)
    for name, member in sorted(vars(cls).items()):
        if name in ("__dict__", "__weakref__", "__module__", "__doc__"):
            continue
        h.update(name.encode())
        inner = getattr(member, "__func__", member)  # staticmethod / classmethod
        if isinstance(inner, types.FunctionType):
            _feed_code(h, inner.__code__)
        elif isinstance(inner, property):
            for accessor in (inner.fget, inner.fset, inner.fdel):
                if isinstance(accessor, types.FunctionType):
                    _feed_code(h, accessor.__code__)
        else:
            _feed(h, member, depth + 1, seen)


def _feed_reduced(h: xxhash.xxh3_128, value: Any, depth: int, seen: set[int]) -> None:
    """Hash an object by what it pickles to, walked like a container.

    Walking ``__reduce_ex__`` (not hashing a pickle) keeps sets in canonical order and avoids the
    random ids cloudpickle gives classes defined in a notebook.
    """
    try:
        reduced = value.__reduce_ex__(pickle.DEFAULT_PROTOCOL)
    except Exception:
        reduced = None
    if isinstance(reduced, tuple) and depth < 32:
        for part in reduced[:5]:
            iterator = isinstance(part, Iterator)  # list/dict item iterators of reduce
            _feed(h, list(part) if iterator else part, depth + 1, seen)
        return
    _feed_pickle(h, value)


def _feed_function(h: xxhash.xxh3_128, fn: types.FunctionType, depth: int, seen: set[int]) -> None:
    module = getattr(fn, "__module__", None)
    if module and module != "__main__" and not fn.__qualname__.count("<locals>"):
        # an installed library's function is named, like a module: upgrading IPython or
        # nbresume must not invalidate every checkpoint whose cell calls `open` or `resumable`
        h.update(f"{module}.{fn.__qualname__}".encode())
        return
    _feed_code(h, fn.__code__)
    if depth >= FUNCTION_DEPTH:
        return
    _feed(h, fn.__defaults__, depth + 1, seen)
    _feed(h, fn.__kwdefaults__, depth + 1, seen)
    for cell in fn.__closure__ or ():
        try:
            _feed(h, cell.cell_contents, depth + 1, seen)
        except ValueError:  # an empty cell
            h.update(b"<empty>")
    g = fn.__globals__
    for name in _global_names(fn.__code__):
        if name in g:
            h.update(name.encode())
            _feed(h, g[name], depth + 1, seen)


def _global_names(code: types.CodeType) -> Iterable[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


def _feed_code(h: xxhash.xxh3_128, code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    h.update(repr(code.co_varnames).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(h, const)
        else:
            _feed(h, const, 0, set())  # NB. frozenset constants: canonical order, not repr


def _feed_array(h: xxhash.xxh3_128, value: Any) -> bool:
    """Hash numpy arrays and pandas objects by their buffers; False if ``value`` is neither."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        _feed_ndarray(h, value, np)
        return True
    pd = sys.modules.get("pandas")
    if pd is None:
        return False
    if isinstance(value, pd.DataFrame):
        _feed_index(h, value.columns, np, pd)
        _feed_index(h, value.index, np, pd)
        for i in range(value.shape[1]):
            _feed_column(h, value.iloc[:, i], np, pd)
        return True
    if isinstance(value, pd.Series):
        h.update(repr(value.name).encode())
        _feed_index(h, value.index, np, pd)
        _feed_column(h, value, np, pd)
        return True
    if isinstance(value, pd.Index):
        _feed_index(h, value, np, pd)
        return True
    return False


def _feed_ndarray(h: xxhash.xxh3_128, arr: Any, np: Any) -> None:
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    if arr.dtype.hasobject:
        for item in arr.ravel().tolist():
            _feed(h, item, 0, set())
        return
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)  # NB. only non-contiguous views pay for a copy
    # NB. the bytes through a uint8 view: buffer formats such as datetime64's cannot be cast
    h.update(memoryview(arr.reshape(-1).view(np.uint8)))


def _feed_index(h: xxhash.xxh3_128, index: Any, np: Any, pd: Any) -> None:
    if isinstance(index, pd.RangeIndex):
        h.update(f"range({index.start},{index.stop},{index.step})".encode())
        return
    h.update(repr(index.names).encode())
    _feed_column(h, index, np, pd)


def _feed_column(h: xxhash.xxh3_128, column: Any, np: Any, pd: Any) -> None:
    dtype = column.dtype
    h.update(str(dtype).encode())
    categories = getattr(dtype, "categories", None)
    if categories is not None:  # the codes mean nothing without their labels
        h.update(repr(getattr(dtype, "ordered", None)).encode())
        _feed_index(h, categories, np, pd)
    values = column.array if hasattr(column, "array") else column
    raw = getattr(values, "_ndarray", None)  # numpy-backed extension arrays expose their buffer
    if raw is None and isinstance(column.dtype, np.dtype) and not column.dtype.hasobject:
        raw = column.to_numpy(copy=False)
    if raw is not None and isinstance(raw, np.ndarray):
        _feed_ndarray(h, raw, np)
    else:
        hashed = pd.util.hash_pandas_object(column, index=False).to_numpy()
        h.update(memoryview(hashed).cast("B"))


def _feed_pickle(h: xxhash.xxh3_128, value: Any) -> None:
    import cloudpickle

    def hash_buffer(buffer: pickle.PickleBuffer) -> None:
        h.update(buffer.raw())  # out-of-band: hashed in place, never copied into the pickle

    try:
        h.update(cloudpickle.dumps(value, protocol=5, buffer_callback=hash_buffer))
    except Exception:
        # NB. an object that cannot be pickled cannot be compared across runs either; its type
        # (already hashed) stands for it, so changing it does not invalidate the cell.
        h.update(b"<unpicklable>")


# ----------------------------------------------------------------------------------------------
# keys


def cell_key(name: str, source_hash: str, inputs: Mapping[str, str]) -> str:
    """The readable key of a checkpoint cell: ``cell:NAME:HASH``."""
    h = xxhash.xxh3_128()
    h.update(name.encode() + b"\0" + source_hash.encode())
    for input_name in sorted(inputs):
        h.update(f"\0{input_name}={inputs[input_name]}".encode())
    return f"cell:{name}:{h.hexdigest()}"


def describe_change(
    old_source: str | None,
    old_inputs: Mapping[str, str],
    new_source: str,
    new_inputs: Mapping[str, str],
) -> str:
    """Say in a few words why a new run differs from a recorded one.

    Examples
    --------
    >>> describe_change("a", {"lr": "1"}, "a", {"lr": "2"})
    "input 'lr' changed"
    >>> describe_change("a", {}, "b", {})
    'source changed'
    """
    if old_source != new_source:
        return "source changed"
    changed = [n for n in new_inputs if n in old_inputs and old_inputs[n] != new_inputs[n]]
    if changed:
        names = ", ".join(repr(n) for n in changed)
        return f"input{'s' if len(changed) > 1 else ''} {names} changed"
    added = [n for n in new_inputs if n not in old_inputs]
    if added:
        return f"input {added[0]!r} is new"
    removed = [n for n in old_inputs if n not in new_inputs]
    if removed:
        return f"input {removed[0]!r} no longer defined"
    return "options changed"
