"""Files nbresume writes for the user: replaced whole (a reader sees the old file or the new one,
never half of one), and never through a symlink, into a FIFO or onto a device."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["UnsafeTarget", "check_target", "creating", "replacing"]


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A new temporary file beside ``path`` for the block to write; it replaces ``path`` at once
    when the block ends without an error, and is removed otherwise.

    The temporary file is created exclusively under a random name (a link planted beside
    ``path`` is never written through); ``path`` keeps its mode, a new file gets the umask's.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o077)  # NB. os.umask is the only way to read it
        os.umask(umask)
        return 0o666 & ~umask


class UnsafeTarget(ValueError):
    """A path nbresume will not write: not a regular file, or one that exists (no overwrite)."""


_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_target(path: Path, *, overwrite: bool) -> None:
    """Raise `UnsafeTarget` unless ``path`` is free, or (``overwrite``) a regular file.

    ``path`` itself is never followed: a symlink is refused whatever it points to.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnsafeTarget(f"cannot look at {str(path)!r}: {exc.strerror or exc}") from exc
    for test, what in _KINDS:
        if test(mode):
            raise UnsafeTarget(f"{str(path)!r} is {what}; nbresume writes only regular files")
    if not stat.S_ISREG(mode):
        raise UnsafeTarget(f"{str(path)!r} is not a regular file")
    if not overwrite:
        raise UnsafeTarget(f"{str(path)!r} exists; pass --overwrite to replace it")


# NB. a filesystem without hard links (some FUSE and network mounts) answers these to os.link
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


@contextlib.contextmanager
def creating(path: Path, *, overwrite: bool = False) -> Iterator[IO[bytes]]:
    """A private (0600) temporary file beside ``path`` for the block to write; when the block
    ends without an error it becomes ``path``. Refuses (`UnsafeTarget`) what `check_target`
    refuses, before and again at the end: a symlink, FIFO or device put there meanwhile is not
    written through, and without ``overwrite`` a file that appeared meanwhile is not replaced.
    """
    check_target(path, overwrite=overwrite)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        check_target(path, overwrite=overwrite)
        if overwrite:
            os.replace(tmp, path)  # NB. replaces a symlink put there since, never follows it
            return
        try:
            os.link(tmp, path)  # fails if anything is at path now: never replaces
        except FileExistsError:
            check_target(path, overwrite=False)  # says what is there
            raise
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            os.rename(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
