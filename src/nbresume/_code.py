"""What a function's code is and which globals it reads, from its bytecode (cached per code object).

A function defined in the notebook is fingerprinted by its code and by the globals it reads;
`global_names` lists those (attribute names are not globals: ``self.rate`` does not read a global
``rate``) and says when the code reads globals in a way no name list can follow
(``globals()``, ``vars()``, ``eval``, ``exec``, ``import __main__``).
"""

from __future__ import annotations

import dis
import functools
import types

import xxhash

__all__ = ["code_digest", "global_names"]

_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL", "STORE_NAME"})
_CALL_OPS = frozenset({"PRECALL", "CALL", "CALL_FUNCTION"})  # 3.11, 3.12+, 3.10
_ALWAYS_DYNAMIC = {"globals": "globals()", "eval": "eval()", "exec": "exec()"}
_NAMESPACE_ATTRS = {"user_ns": "get_ipython().user_ns", "f_globals": "a frame's f_globals"}


@functools.lru_cache(maxsize=4096)
def global_names(code: types.CodeType) -> tuple[tuple[str, ...], str | None]:
    """The global names ``code`` (and code nested in it) reads or writes, and what it reads
    dynamically (e.g. ``"globals()"``), or None."""
    names: dict[str, None] = {}
    dynamic: str | None = None
    for inner in _codes(code):
        instructions = [i for i in dis.get_instructions(inner) if i.opname != "CACHE"]
        for n, ins in enumerate(instructions):
            if ins.opname in _GLOBAL_OPS and isinstance(ins.argval, str):
                name = ins.argval
                names.setdefault(name)
                if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and dynamic is None:
                    after = instructions[n + 1] if n + 1 < len(instructions) else None
                    if name in _ALWAYS_DYNAMIC:
                        dynamic = _ALWAYS_DYNAMIC[name]
                    elif name == "vars" and after and after.opname in _CALL_OPS and not after.arg:
                        dynamic = "vars()"
            elif ins.opname == "IMPORT_NAME" and ins.argval == "__main__" and dynamic is None:
                dynamic = "__main__"
            elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and dynamic is None:
                dynamic = _NAMESPACE_ATTRS.get(str(ins.argval))
    return tuple(names), dynamic


def _codes(code: types.CodeType) -> list[types.CodeType]:
    found = [code]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.extend(_codes(const))
    return found


@functools.lru_cache(maxsize=4096)
def code_digest(code: types.CodeType) -> bytes:
    """A digest of what ``code`` does: bytecode, names, argument layout, constants.

    Not its file name, line numbers or name: the same function defined in another cell (at
    another execution count) has the same digest.
    """
    h = xxhash.xxh3_128()
    h.update(code.co_code)
    h.update(getattr(code, "co_exceptiontable", b""))  # 3.11+: where try blocks end
    layout = (
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
    )
    h.update(repr(layout).encode())
    for const in code.co_consts:
        h.update(_const(const))
    return h.digest()


def _const(value: object) -> bytes:
    if isinstance(value, types.CodeType):
        return b"<code>" + code_digest(value)
    if isinstance(value, tuple):
        return b"(" + b",".join(_const(v) for v in value) + b")"
    if isinstance(value, frozenset):  # NB. canonical order: a frozenset's order depends on hashes
        return b"{" + b",".join(sorted(_const(v) for v in value)) + b"}"
    return f"{type(value).__name__}:{value!r}".encode()
