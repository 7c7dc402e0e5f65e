"""``nbresume run``'s files: the notebook read and checked, the output place checked, before any
kernel starts (a run may take hours: a typo in ``-o`` must not surface only at its end)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

STDOUT = "-"  # ``-o -``: the executed notebook on stdout, the progress lines on stderr

__all__ = [
    "STDOUT",
    "check_output",
    "lock_notebook",
    "read_notebook",
    "save_elsewhere",
    "write_output",
]


class RunFileError(Exception):
    """A notebook or output place ``nbresume run`` refuses; its message is the one line to print."""


def read_notebook(path: Path) -> Any:
    """``path`` as a valid nbformat 4 notebook; a notebook from before cell ids gets them."""
    import warnings

    import nbformat
    from nbformat.validator import ValidationError

    if not path.exists():
        raise RunFileError(f"no such notebook: {str(path)!r}")
    if not path.is_file():
        raise RunFileError(
            f"{str(path)!r} is not a notebook file (a folder, or not a regular file)"
        )
    try:
        with warnings.catch_warnings():
            # NB. a notebook without cell ids warns on every read and write; ids are added below
            warnings.simplefilter("ignore")
            nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
            _give_ids(nb)
            nbformat.validate(nb)
    except ValidationError as exc:
        where = "/".join(str(p) for p in getattr(exc, "absolute_path", ()) or ())
        message = _first_line(getattr(exc, "message", None) or str(exc))
        raise RunFileError(
            f"{str(path)!r} is not a valid notebook: {message}"
            + (f" (at {where})" if where else "")
        ) from exc
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunFileError(
            f"cannot read {str(path)!r} as a notebook: {_first_line(str(exc))}"
        ) from exc
    return nb


def _give_ids(nb: Any) -> None:
    """Cell ids where missing or repeated (4.5 requires unique ones; the output gets them)."""
    from nbformat.corpus.words import generate_corpus_id

    if not isinstance(nb.get("cells"), list):
        return  # validation says what is wrong
    seen: set[object] = set()
    for cell in nb.cells:
        if not isinstance(cell, dict):
            continue
        if not isinstance(cell.get("id"), str) or cell.get("id") in seen:
            cell["id"] = generate_corpus_id()  # type: ignore[no-untyped-call]
        seen.add(cell["id"])
    nb.nbformat_minor = max(int(nb.get("nbformat_minor") or 0), 5)


def check_output(output: Path | str, notebook: Path) -> None:
    """Refuse an output that is the notebook itself (by any path or link), a folder, or a place
    where no file can be created, before the run rather than after it."""
    if output == STDOUT:
        return
    output = Path(output)
    if output.exists():
        if _same_file(output, notebook):
            raise RunFileError(
                f"-o {str(output)!r} is the notebook itself; choose another output file"
            )
        if output.is_dir():
            raise RunFileError(
                f"-o {str(output)!r} is a folder; give a file name, e.g. "
                f"{str(output / notebook.name)!r}"
            )
        if not output.is_file():
            raise RunFileError(f"-o {str(output)!r} is not a regular file; choose another")
    elif output.is_symlink():
        raise RunFileError(f"-o {str(output)!r} is a dangling link; choose another output file")
    folder = output.parent
    if not folder.is_dir():
        raise RunFileError(f"-o {str(output)!r}: the folder {str(folder)!r} does not exist")
    _probe(folder, output)


def write_output(nb: Any, output: Path | str) -> None:
    import nbformat

    from ._run import write_notebook

    if output == STDOUT:
        nbformat.write(nb, sys.stdout)  # type: ignore[no-untyped-call]  # ends with a newline
        sys.stdout.flush()
        return
    write_notebook(nb, Path(output))


def save_elsewhere(nb: Any, output: Path | str) -> str:
    """After a run, ``output`` could not be written (its folder went away, the disk is full):
    the executed notebook in the temporary folder rather than lost; says where, in words."""
    import tempfile

    import nbformat

    stem = Path(output).stem or "notebook"
    try:
        fd, name = tempfile.mkstemp(prefix=f"{stem}.", suffix=".ipynb")
        with open(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)  # type: ignore[no-untyped-call]
    except OSError as exc:
        return f"could not save it elsewhere either ({exc.strerror or exc})"
    return f"saved it to {name!r} instead"


def lock_notebook(path: Path) -> int:
    """An open descriptor of ``path`` holding an exclusive flock, for as long as the run lasts:
    a second ``nbresume run`` of the same notebook (a cron job overlapping, a double launch)
    would run the same loops into the same store; it is refused instead. The lock goes with
    the process, whatever kills it."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise RunFileError(
                f"another nbresume run is running {str(path)!r}; wait for it to end or stop it "
                "(Ctrl-C or kill); its checkpoints are kept"
            ) from exc
        return os.open(path, os.O_RDONLY)  # a file system without locks: run unguarded
    return fd


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _probe(folder: Path, output: Path) -> None:
    """Create and remove a file in ``folder``: the only check that holds for root, read-only
    mounts and ACLs alike (os.access says yes to root)."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{output.name}.", suffix=".probe")
    except OSError as exc:
        raise RunFileError(
            f"cannot write -o {str(output)!r}: {exc.strerror or exc}; choose another place"
        ) from exc
    os.close(fd)
    os.unlink(name)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text
