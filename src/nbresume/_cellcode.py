"""A checkpoint cell's code: transformed, compiled like IPython's ``%%time``, its ``__future__``
flags carried to the cells after it, and its inline figures flushed while the recorder listens."""

from __future__ import annotations
import __future__

import ast
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .checkpoint import Shell

__all__ = ["RESULT", "compile_cell", "flush_figures", "inherit_future", "transform"]

RESULT = "__nbresume_result__"  # the last expression's value, saved among the variables
FUTURE_FLAGS = 0  # the compiler flags of every `from __future__ import` feature
for _feature in __future__.all_feature_names:
    FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag

_TRANSFORMED: dict[tuple[int, str, int, int], str] = {}
_TRANSFORMED_KEPT = 256


def transform(shell: Shell, cell: str) -> str:
    """``shell.transform_cell(cell)``, remembered for cells of several lines: theirs are static
    (IPython applies the namespace-dependent prefilter to one-line cells only); a hit then skips
    IPython's tokenizer, about 60 us."""
    if "\n" not in cell.strip():
        return str(shell.transform_cell(cell))
    key = (
        id(shell),
        cell,
        len(getattr(shell, "input_transformers_cleanup", ())),
        len(getattr(shell, "input_transformers_post", ())),
    )
    transformed = _TRANSFORMED.get(key)
    if transformed is None:
        transformed = _TRANSFORMED[key] = str(shell.transform_cell(cell))
        if len(_TRANSFORMED) > _TRANSFORMED_KEPT:
            del _TRANSFORMED[next(iter(_TRANSFORMED))]  # the oldest
    return transformed


def compile_cell(
    shell: Shell, transformed: str, allow_await: bool
) -> tuple[types.CodeType, types.CodeType | None]:
    """Compile like IPython's ``%%time``: transformers, then the last expression split off."""
    tree = shell.transform_ast(shell.compile.ast_parse(transformed))
    assert isinstance(tree, ast.Module)
    # NB. IPython compiles a cell node by node, so `%matplotlib inline` may come before a
    # `from __future__ import`; compiled as one module, the import must come first
    future = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    if future:
        tree.body = future + [n for n in tree.body if n not in future]
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not _ends_with_semicolon(transformed):
        node = tree.body.pop()
        assert isinstance(node, ast.Expr)
        last = ast.Expression(node.value)
    result = getattr(shell.displayhook, "exec_result", None)
    count = getattr(result, "execution_count", None) or getattr(shell, "execution_count", 0)
    filename = shell.compile.cache(transformed, count)
    # NB. the notebook's `from __future__ import annotations` holds here too, as in any cell
    flags = getattr(shell.compile, "flags", 0) & FUTURE_FLAGS
    if allow_await:
        flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    body = compile(ast.Module(tree.body, []), filename, "exec", flags=flags, dont_inherit=True)
    _add_future_flags(shell, body.co_flags)  # ... and this cell's own for the cells after it
    expr = None
    if last is not None:
        expr = compile(last, filename, "eval", flags=flags, dont_inherit=True)
    return body, expr


def _ends_with_semicolon(cell: str) -> bool:
    try:
        from IPython.core.displayhook import DisplayHook

        return bool(DisplayHook.semicolon_at_end_of_expression(cell))  # type: ignore[no-untyped-call]
    except (ImportError, AttributeError):
        return cell.rstrip().endswith(";")


def flush_figures() -> None:
    """Publish pending inline matplotlib figures now, while the recorder listens.

    IPython shows them in a post_execute callback, after the magic returned: too late to record.
    """
    backend = sys.modules.get("matplotlib_inline.backend_inline")
    mpl = sys.modules.get("matplotlib")
    if backend is None or mpl is None:
        return
    if "inline" in str(mpl.get_backend()).lower():
        backend.flush_figures()


def _add_future_flags(shell: Shell, co_flags: int) -> None:
    compiler = getattr(shell, "compile", None)
    if compiler is not None and co_flags & FUTURE_FLAGS:
        compiler.flags = getattr(compiler, "flags", 0) | (co_flags & FUTURE_FLAGS)


def inherit_future(shell: Shell, source: str) -> None:
    """A restored cell's ``from __future__ import`` applies to the cells after it."""
    if "__future__" not in source:
        return
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    flags = 0
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(__future__, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
    _add_future_flags(shell, flags)
