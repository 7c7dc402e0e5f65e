"""The ``--validate EXPR`` gate: the phase is done only if EXPR holds after the cell ran.

A false gate fails the phase; its message names the part of EXPR that is false and the values that
part saw (``len(df)=0``, ``df=<DataFrame of shape (0, 3)>``), so the user sees why without
re-running anything.
"""

from __future__ import annotations

import ast
import types
from typing import Any

from .errors import CheckpointError

__all__ = ["check_expression", "check_gate", "gate_detail"]

GATE_VALUES = 6  # sub-expressions a failed gate's message shows at most
VALUE_WIDTH = 80  # characters of each value shown


def check_gate(name: str, expr: str, ns: dict[str, Any]) -> None:
    """Evaluate ``--validate EXPR`` after phase ``name`` ran; `CheckpointError` if it is false or
    fails, quoting EXPR and the values it saw."""
    __tracebackhide__ = True  # the message says it all; nbresume's frames are noise to the user
    tree = ast.parse(expr, mode="eval")  # NB. `_prepare` checked it before the cell ran
    try:
        ok = bool(eval(compile(tree, "<validate>", "eval"), ns))
    except Exception as exc:
        raise CheckpointError(
            f"phase {name!r}: its gate --validate {expr!r} raised {exc!r}; nothing was "
            "cached; fix the expression (it must give True or False) or the cell"
        ) from None  # NB. the message names the error; its frame in "<validate>" shows nothing
    if ok:
        return
    raise CheckpointError(
        f"phase {name!r} failed its gate --validate {expr!r}: {gate_detail(expr, ns)}; "
        "nothing was cached; fix the data or the cell and run it again, or accept this run "
        f"as it is with %checkpoint mark {name} done"
    )


def gate_detail(expr: str, ns: dict[str, Any]) -> str:
    """Which part of a false gate is false, and the values it saw.

    Examples
    --------
    >>> gate_detail("len(rows) > 0 and max(rows) < 10", {"rows": [3, 12]})
    'max(rows) < 10 is false (saw max(rows)=12, rows=[3, 12])'
    """
    tree = ast.parse(expr, mode="eval")
    failing: ast.expr = tree.body
    if isinstance(failing, ast.BoolOp) and isinstance(failing.op, ast.And):
        for clause in failing.values:
            if not _truthy(clause, expr, ns):
                failing = clause
                break
    seen: dict[str, str] = {}
    operands = [
        node
        for compare in ast.walk(failing)
        if isinstance(compare, ast.Compare)
        for node in (compare.left, *compare.comparators)
    ]
    names = [node for node in ast.walk(failing) if isinstance(node, ast.Name)]
    for node in [*operands, *names]:
        text = ast.get_source_segment(expr, node)
        if text is None or text in seen or isinstance(node, ast.Constant):
            continue
        try:
            value = eval(text, ns)
        except Exception:  # a part that fails alone (a name bound inside a comprehension)
            continue
        if isinstance(value, types.ModuleType | types.FunctionType | types.BuiltinFunctionType):
            continue
        seen[text] = _short(value)
        if len(seen) == GATE_VALUES:
            break
    part = ast.get_source_segment(expr, failing) or expr
    values = ", ".join(f"{k}={v}" for k, v in seen.items())
    return f"{part} is false" + (f" (saw {values})" if values else "")


def _truthy(node: ast.expr, expr: str, ns: dict[str, Any]) -> bool:
    text = ast.get_source_segment(expr, node)
    try:
        return bool(eval(text, ns)) if text is not None else True
    except Exception:
        return False


def _short(value: Any) -> str:
    """A value in one short line: arrays and frames by type and shape."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and shape:
        return f"<{type(value).__name__} of shape {shape}>"
    if shape == () and callable(getattr(value, "item", None)):  # a numpy scalar: np.int64(3)
        value = value.item()
    text = " ".join(repr(value).split())
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def check_expression(expr: str) -> None:
    """`CheckpointError` unless ``expr`` is a Python expression (checked before the cell runs)."""
    try:
        compile(expr, "<validate>", "eval")
    except SyntaxError as exc:
        raise CheckpointError(
            f"--validate {expr!r} is not a Python expression ({exc.msg}); "
            "give one that is true when the phase is good, e.g. --validate 'len(df) > 0'"
        ) from None
