"""Which names a cell reads before it assigns them (its inputs) and which it assigns (its outputs).

The walk follows evaluation order and branches: a name assigned only on some paths (an ``if``
branch, a loop body, a ``try`` body) may still hold its value from before the cell, so a later
read of it is an input. It also finds what no name list can follow: ``globals()``, ``eval``,
``vars()`` (`CellNames.dynamic`), and the files ``%run`` executes (`CellNames.run_files`).
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._magic_reads import expansions, read_magic

__all__ = ["CellNames", "analyze_cell"]

DYNAMIC_NOTE = "reads {} dynamically: use --force or --no-deps"


@dataclass(frozen=True)
class CellNames:
    """What a cell reads and assigns.

    ``dynamic`` is the one-line note for a cell that reads the notebook's names in a way no name
    list can follow (``globals()``, ``eval``): the engine must not restore it from its inputs.
    ``run_files`` are the files ``%run`` executes: their content is an input of the cell.
    ``conditional`` are the outputs assigned on some paths only (an ``if`` branch, a loop body,
    a function the cell may call): after a run they may still hold their value from before
    the cell, which a hit must not put back over a newer one.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: str | None = None
    run_files: tuple[str, ...] = ()
    conditional: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()  # modules the cell imports (a user's module is an input)


class _Scope(ast.NodeVisitor):
    """Walk a cell in evaluation order, noting loads of names not assigned yet, and assignments.

    Nested function/class/lambda/comprehension bodies contribute their loads of free names (they
    read globals when they run) but never their assignments, except of names they declare
    ``global``.
    """

    def __init__(self, nested: bool = False, declared: Iterable[str] = ()) -> None:
        self.inputs: dict[str, None] = {}
        self.definite: dict[str, None] = {}  # assigned on every path so far
        self.stored: dict[str, None] = {}  # assigned on some path
        self.outputs_in_place: dict[str, None] = {}
        self.walrus: dict[str, None] = {}  # := targets, which bind in the enclosing scope
        self.global_stores: dict[str, None] = {}  # names a function declares global and assigns
        self.declared = set(declared)  # `global x` in this function
        self.dynamic: str | None = None
        self.run_files: list[str] = []
        self.imports: list[str] = []
        self._nested = nested

    def _load(self, name: str) -> None:
        if name not in self.definite:
            self.inputs.setdefault(name)

    def _store(self, name: str, *, maybe: bool = False) -> None:
        if name in self.declared:
            self.global_stores.setdefault(name)
            return
        self.stored.setdefault(name)
        if not maybe:
            self.definite.setdefault(name)

    def _dynamic(self, what: str) -> None:
        if self.dynamic is None:
            self.dynamic = DYNAMIC_NOTE.format(what)

    def _branches(self, branches: list[Callable[[], None]], exhaustive: bool) -> None:
        """Run ``branches`` from the same state; after them, only names every one assigned (and,
        if none may run, that were assigned before) count as assigned."""
        before = dict(self.definite)
        results = []
        for branch in branches:
            self.definite = dict(before)
            branch()
            results.append(self.definite)
        if not exhaustive:
            results.append(before)
        self.definite = {n: None for n in results[0] if all(n in r for r in results[1:])}

    def _visit_all(self, nodes: Iterable[Any]) -> Callable[[], None]:
        def run() -> None:
            for node in nodes:
                self.visit(node)

        return run

    # -- names --------------------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._load(node.id)
        elif isinstance(node.ctx, ast.Del):
            self.definite.pop(node.id, None)
            self.stored.setdefault(node.id)
        else:
            self._store(node.id)

    def _visit_item_target(self, node: ast.Subscript | ast.Attribute) -> None:
        # `d['k'] = v`, `obj.a = v`: d and obj are read, then changed: inputs and outputs
        self.generic_visit(node)
        if isinstance(node, ast.Attribute) and node.attr in ("user_ns", "user_global_ns"):
            self._dynamic(f"get_ipython().{node.attr}")
        if isinstance(node, ast.Subscript) and _is_main_module(node):
            self._dynamic("sys.modules['__main__']")
        if isinstance(node.ctx, ast.Store | ast.Del):
            base: ast.expr = node
            while isinstance(base, ast.Subscript | ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and not self._nested:
                self.outputs_in_place.setdefault(base.id)

    visit_Subscript = _visit_item_target
    visit_Attribute = _visit_item_target

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            explicit = len(node.args) >= 2 or any(k.arg == "globals" for k in node.keywords)
            if func.id == "globals" or (func.id in ("eval", "exec") and not explicit):
                self._dynamic(f"{func.id}()")
            elif func.id in ("vars", "locals", "dir") and not node.args and not self._nested:
                self._dynamic(f"{func.id}()")  # at the top level these list the globals
        elif isinstance(func, ast.Attribute) and _is_get_ipython(func.value):
            self._magic(func.attr, node.args)
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in _EXPRESSION_CALLS and node.args:
            self._expression(node.args[0])
        elif name in _FORMULA_CALLS and node.args:
            self._formula(node.args[0])
        if any(isinstance(a, ast.Constant) and a.value == "__main__" for a in node.args):
            # `__import__('__main__')`, `importlib.import_module(...)`, `sys.modules.get(...)`
            self._dynamic("__main__")
        self.generic_visit(node)

    # -- statements that bind -----------------------------------------------------------------

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
        self.visit(node.annotation)  # `x: T = v` evaluates T (a dataclass field's type reads it)
        self.visit(node.target)

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
        if isinstance(node, ast.Import):
            self.imports.extend(alias.name for alias in node.names)
        elif node.module and not node.level:  # NB. `from mylib import sub` may be a module too
            self.imports.append(node.module)
            self.imports.extend(f"{node.module}.{a.name}" for a in node.names if a.name != "*")
        for alias in node.names:
            if alias.name == "__main__":
                self._dynamic("__main__")
            if alias.name != "*":
                self._store(alias.asname or alias.name.split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global) -> None:
        pass  # at the top level a no-op; in a function, `_function_loads` reads it first

    # -- branches -----------------------------------------------------------------------------

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        self._branches([self._visit_all(node.body), self._visit_all(node.orelse)], True)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit(node.test)
        self._branches([self._visit_all([node.body]), self._visit_all([node.orelse])], True)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.visit(node.values[0])
        self._branches([self._visit_all(node.values[1:])], False)  # short-circuits

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        body = [node.target, *node.body, *node.orelse]
        self._branches([self._visit_all(body)], False)  # the body may run zero times

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        self._branches([self._visit_all([*node.body, *node.orelse])], False)

    def visit_Try(self, node: ast.Try) -> None:
        before = dict(self.definite)
        # NB. a handler may run after any statement of the body: it starts from `before`
        branches = [self._visit_all([*node.body, *node.orelse])]
        branches += [self._visit_all([h]) for h in node.handlers]
        self._branches(branches, True)
        if node.finalbody:
            after = self.definite
            self.definite = dict(before)
            for stmt in node.finalbody:
                self.visit(stmt)
            self.definite = {**after, **self.definite}

    visit_TryStar = visit_Try  # NB. ast.TryStar (3.11+) has the same fields

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._store(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        self._branches([self._visit_all([c.pattern, c.guard, *c.body]) for c in node.cases], False)

    def visit(self, node: Any) -> None:
        if node is not None:
            super().visit(node)

    # -- nested scopes ------------------------------------------------------------------------

    def _free_loads(
        self,
        nodes: list[Any],
        local: set[str],
        comprehension: bool = False,
        declared: Iterable[str] = (),
    ) -> None:
        inner = _Scope(nested=True, declared=declared)
        for node in nodes:
            inner.visit(node)
        for name in inner.inputs:
            if name not in local:
                self._load(name)
        for name in inner.global_stores:  # a function that declares `global x` may assign it
            if self._nested:
                self.global_stores.setdefault(name)
            else:
                self._store(name, maybe=True)
        if comprehension:
            for name in inner.walrus:  # `[y := f(x) for x in xs]` binds y in the cell
                self._store(name, maybe=True)
        if inner.dynamic:
            self.dynamic = self.dynamic or inner.dynamic
        self.run_files.extend(inner.run_files)
        self.imports.extend(inner.imports)

    def _function_loads(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self.visit(decorator)
            # NB. annotations are evaluated at `def` (without `from __future__ import annotations`)
            for arg in ast.walk(node.args):
                if isinstance(arg, ast.arg) and arg.annotation is not None:
                    self.visit(arg.annotation)
            self.visit(node.returns)
        params = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        body: list[Any] = node.body if isinstance(node.body, list) else [node.body]
        declared = _declared_global(body)
        self._free_loads(body, (params | _bound_in(body)) - declared, declared=declared)

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

    # -- IPython's magics, as the transformed cell calls them -----------------------------------

    def _magic(self, method: str, args: list[ast.expr]) -> None:
        texts = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if len(texts) < len(args):
            return  # not as IPython's transforms write it
        reads = read_magic(method, texts)
        if reads.dynamic:
            self._dynamic(reads.dynamic)
        if reads.refused and self.dynamic is None:
            self.dynamic = reads.refused
        if reads.run_file:
            self.run_files.append(reads.run_file)
        if reads.code is not None:
            self._code(reads.code, leaks=reads.leaks)
        for name in reads.stores:
            self._store(name)
        self._expansions(reads.expanded)

    def _code(self, code: str, *, leaks: bool) -> None:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            return  # IPython reports it when the cell runs
        if leaks:
            for stmt in tree.body:
                self.visit(stmt)
        else:
            self._free_loads(tree.body, _bound_in(tree.body))

    def _expression(self, arg: ast.expr) -> None:
        """``df.query('a > @t')``, ``pd.eval('x + y')``, ``numexpr.evaluate('a * b')`` read names
        of the notebook from inside a string."""
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            return
        for name in _AT_NAME.findall(arg.value):  # NB. also when the rest does not parse
            self._load(name)
        text = _BACKTICKED.sub("0", arg.value).replace("@", " ").strip()  # `my column`
        try:
            tree = ast.parse(text)  # NB. pandas' eval may assign
        except SyntaxError:
            return
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                self._load(node.id)

    def _formula(self, arg: ast.expr) -> None:
        """``smf.ols('y ~ x + scale', data=df)``: patsy looks names up in the data, then in the
        caller's namespace; every identifier of the formula may be an input."""
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            for name in _IDENTIFIER.findall(_BACKTICKED.sub("", arg.value)):
                self._load(name)

    def _expansions(self, text: str) -> None:
        names, exprs = expansions(text)
        for name in names:
            self._load(name)
        for expr in exprs:
            try:
                tree = ast.parse(expr.strip(), mode="eval")
            except SyntaxError:
                continue
            self.visit(tree.body)


# calls whose string argument is an expression evaluated with the caller's names (`@t` in pandas)
_EXPRESSION_CALLS = frozenset({"query", "eval", "evaluate"})
# statsmodels' and patsy's formula functions
_FORMULA_CALLS = frozenset(
    {"ols", "gls", "wls", "glm", "logit", "probit", "poisson", "mixedlm", "quantreg"}
    | {"negativebinomial", "from_formula", "dmatrix", "dmatrices"}
)
_AT_NAME = re.compile(r"@([A-Za-z_]\w*)")
_BACKTICKED = re.compile(r"`[^`]*`")
_IDENTIFIER = re.compile(r"(?<![\w.'\"])[A-Za-z_]\w*")


def _is_get_ipython(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "get_ipython"
    )


def _is_main_module(node: ast.Subscript) -> bool:
    """``sys.modules['__main__']``: the notebook's namespace as a module."""
    key = node.slice
    return (
        isinstance(key, ast.Constant)
        and key.value == "__main__"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "modules"
    )


def _declared_global(body: list[Any]) -> set[str]:
    """Names a function declares ``global`` (in its own scope, not in functions nested in it)."""
    declared: set[str] = set()
    todo = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Global):
            declared.update(node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return declared


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

    A name assigned only on some paths is an input too when the cell reads it: on the others it
    holds its value from before the cell.

    Examples
    --------
    >>> names = analyze_cell("results = []\\nfor lr in grid:\\n    results.append(fit(lr))")
    >>> names.inputs, names.outputs, names.conditional
    (('grid', 'fit'), ('results', 'lr'), ('lr',))
    >>> analyze_cell("if debug:\\n    n = 10\\ny = n * 2").inputs
    ('debug', 'n')
    """
    scope = _Scope()
    for stmt in ast.parse(source).body:
        scope.visit(stmt)
    outputs = {**scope.stored, **scope.outputs_in_place}
    conditional = tuple(n for n in scope.stored if n not in scope.definite)
    files = tuple(dict.fromkeys(scope.run_files))
    imports = tuple(dict.fromkeys(scope.imports))
    return CellNames(
        tuple(scope.inputs), tuple(outputs), scope.dynamic, files, conditional, imports
    )
