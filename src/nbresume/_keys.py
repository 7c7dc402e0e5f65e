"""Pure key computation: normalise cell source, find a cell's inputs and outputs, fingerprint values.

Nothing here touches IPython or the store. Keys are readable and hold nothing volatile (no execution
counts, PIDs or temporary paths), so the same cell with the same inputs gets the same key in every
process. The cell analysis lives in `_analysis`, value fingerprints in `_fingerprint` (numpy and
pandas in `_arrays`, bytecode in `_code`); this module is their one public face.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

import xxhash

from ._analysis import CellNames, analyze_cell
from ._fingerprint import BUDGET_SECONDS, FingerprintError, fingerprint, fingerprint_input

__all__ = [
    "BUDGET_SECONDS",
    "CellNames",
    "FingerprintError",
    "analyze_cell",
    "cell_key",
    "describe_change",
    "file_inputs",
    "fingerprint",
    "fingerprint_input",
    "hash_text",
    "normalize_source",
    "validate_name",
]

NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


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


def file_inputs(paths: Iterable[str]) -> dict[str, str]:
    """Pseudo-inputs for the files a cell runs with ``%run``: ``{"%run PATH": content hash}``.

    The path is resolved as ``%run`` does (``~``, and ``.py`` added when the name has none); a
    missing file has the fingerprint ``"missing"`` (the cell fails when it runs).
    """
    inputs: dict[str, str] = {}
    for path in paths:
        real = os.path.expanduser(path)
        if not os.path.isfile(real) and os.path.isfile(real + ".py"):
            real += ".py"
        try:
            with open(real, "rb") as f:
                digest = xxhash.xxh3_128_hexdigest(f.read())
        except OSError:
            digest = "missing"
        inputs[f"%run {path}"] = digest
    return inputs


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
