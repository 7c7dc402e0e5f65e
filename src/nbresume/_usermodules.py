"""The user's own modules: ``.py`` files in the notebook's folder, not installed packages.

A notebook's code often lives in a ``mylib.py`` next to it. Installed packages are fingerprinted
by name (upgrading one must not invalidate every checkpoint), but a user's module is where their
code changes: its functions and classes are fingerprinted by their code like the notebook's
(`is_user_module`), and a cell that imports one has the module as an input (`import_inputs`):
the code loaded now if it is loaded, and always the content of its files and of the user modules
they import, since a fresh kernel (or ``importlib.reload``) reads the files.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import xxhash

__all__ = ["file_digest", "import_inputs", "is_user_module", "module_files"]

# packages that are never the user's, even when run from their source checkout
_NEVER = frozenset({"nbresume", "IPython", "ipykernel", "__main__", "builtins"})
_cache: dict[tuple[str, str, str], bool] = {}


def _roots() -> list[Path]:
    """Folders the user's modules are imported from: the working folder (and sys.path entries
    inside it), never an environment's."""
    cwd = Path.cwd().resolve()
    roots = [cwd]
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if path != cwd and path.is_relative_to(cwd) and _is_source(path):
            roots.append(path)
    return roots


def _is_source(path: Path) -> bool:
    """Not an environment's folder (a .venv inside the project, site-packages)."""
    parts = set(path.parts)
    if parts & {"site-packages", "dist-packages"}:
        return False
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return not any(path.is_relative_to(p) for p in prefixes)


def _user_file(filename: str | None) -> bool:
    if not filename:
        return False
    path = Path(filename).resolve()
    return _is_source(path) and path.is_relative_to(Path.cwd().resolve())


def is_user_module(name: str) -> bool:
    """Whether the loaded module ``name`` is a file of the user's (in the working folder)."""
    if not name or name.partition(".")[0] in _NEVER:
        return False
    module = sys.modules.get(name)
    filename = getattr(module, "__file__", None) if module is not None else None
    key = (name, str(filename), os.getcwd())
    known = _cache.get(key)
    if known is None:
        known = _cache[key] = _user_file(filename)
    return known


_file_digests: dict[tuple[str, int, int], str] = {}


def file_digest(module: Any) -> str:
    """The content hash of a loaded module's file (cached by its path, mtime and size)."""
    filename = getattr(module, "__file__", None)
    if not filename:
        return "no file"
    try:
        stat = os.stat(filename)
        key = (filename, stat.st_mtime_ns, stat.st_size)
        digest = _file_digests.get(key)
        if digest is None:
            with open(filename, "rb") as f:
                digest = _file_digests[key] = xxhash.xxh3_128_hexdigest(f.read())
    except OSError:
        return "unreadable"
    return digest


def module_files(name: str) -> list[Path]:
    """The files of the user module ``name`` (its packages' ``__init__.py`` too), found on disk
    without importing anything; [] if it is not a user module."""
    if name.partition(".")[0] in _NEVER:
        return []
    parts = name.split(".")
    for root in _roots():
        found: list[Path] = []
        folder = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            package = folder / part / "__init__.py"
            if package.is_file():
                found.append(package)
                folder = folder / part
            elif last and (folder / f"{part}.py").is_file():
                found.append(folder / f"{part}.py")
            else:
                break
        else:
            return found
    return []


def _imported(path: Path) -> list[str]:
    """The absolute module names a file imports (at any depth of its code)."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _files_digest(name: str) -> str | None:
    """A hash of the files of user module ``name`` and of the user modules they import."""
    h = xxhash.xxh3_128()
    seen: set[Path] = set()
    todo = [name]
    while todo:
        for path in module_files(todo.pop()):
            if path in seen:
                continue
            seen.add(path)
            try:
                h.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
            except OSError:
                h.update(str(path).encode() + b"\0<unreadable>\0")
            todo.extend(_imported(path))
    return h.hexdigest() if seen else None


def import_inputs(modules: Iterable[str]) -> dict[str, str]:
    """Pseudo-inputs for the user modules a cell imports: ``{"import NAME": digest}``.

    The digest covers the module's files now (and the user modules they import: what a reload or
    a fresh kernel reads) and the code an import in the cell gets: the files when the module is
    not loaded, the files it was loaded from when nbresume saw that, else its loaded code.
    """
    inputs: dict[str, str] = {}
    for name in dict.fromkeys(modules):
        files = _files_digest(name)
        if files is not None:
            inputs[f"import {name}"] = f"{files}:{_loaded_from(name, files)}"
    return inputs


# name -> files digest when a cell was about to import it; then (id, code, files) once loaded
_pending: dict[str, str] = {}
_origins: dict[str, tuple[int, str, str]] = {}


def _loaded_from(name: str, files: str) -> str:
    """What an import of ``name`` gives now: a files digest, or the loaded code's fingerprint.

    NB. the same digest for "not loaded yet" and "loaded from these files, unchanged since", so
    the cell that imports a module restores in a fresh kernel and again in the same one.
    """
    from ._fingerprint import FingerprintError, fingerprint

    loaded = sys.modules.get(name)
    if loaded is None:
        _pending[name] = files
        _origins.pop(name, None)
        return files
    try:
        code = fingerprint(loaded)
    except FingerprintError:
        return "unreadable"  # NB. the files still count: a change re-runs the cell
    origin = _origins.get(name)
    if origin is None and name in _pending:  # loaded by the cell that saw it unloaded
        origin = _origins[name] = (id(loaded), code, _pending.pop(name))
    if origin is not None and origin[:2] == (id(loaded), code):
        return origin[2]
    return code
