"""Reading a store without diskcache: other processes (the dashboard, the CLI) and read-only stores.

`Store` opens through ``diskcache.Cache``, which writes its settings and schema on every open; a
reader must never write to the store of a running loop. This opens the database in sqlite's
read-only mode: in WAL mode readers neither block the writer nor wait for it.

Everything a row says is checked before it is used: keys are plain strings, records must verify
with the user's key (`_signing.open_record`), and a value file's name must be one the store could
have made, inside the store, not through a symlink (`value_file`). No path from a row is used as
it stands.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import sqlite3
import stat
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import _signing
from ._records import well_formed
from .errors import CheckpointWarning, StoreError, StoreReadOnlyError

__all__ = [
    "DB_FILE",
    "EntryInfo",
    "LooseFile",
    "StoreReader",
    "UnsafeFolder",
    "create_value_file",
    "extra_objects",
    "open_value_file",
    "read_record_file",
    "remove_loose_file",
    "remove_value_file",
    "schema_problem",
    "schema_refused",
    "value_file",
]

DB_FILE = "cache.db"  # diskcache's database, inside the store directory
# bytes of records kept in value files that one reader (a dashboard poll, a command) reads at
# most. A record nbresume writes is kilobytes; a shipped store of sparse 64 MB record files took
# 44 s per dashboard poll for 50 phases (each read and its HMAC computed over zeros)
RECORD_BUDGET = 1 << 28
READ_TIMEOUT = 2.0  # seconds a reader waits for sqlite (holding no lock: the writer never waits)
BUSY_SECONDS = 2.0  # and how long it retries a SQLITE_BUSY that sqlite returns without waiting
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
# diskcache's value modes (diskcache.core.MODE_*): nbresume writes RAW (small records in the row)
# and BINARY (files); TEXT and PICKLE rows are never ours and never decoded
MODE_RAW, MODE_BINARY = 1, 2
VALUE_FILE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{20,64}\.val")  # diskcache's layout
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_warned: set[str] = set()  # stores whose foreign rows (or unread records) this process reported


# -- value files: only where the store would have put them ---------------------------------------


def value_file(root: Path, name: object) -> Path | None:
    """The value file ``name`` (as a row gives it) inside the store ``root``; None if it is not one.

    It must have diskcache's shape (``ab/cd/<hex>.val``) and its folder must resolve inside the
    store: an absolute path, ``..`` or a symlinked folder never gets through.
    """
    if not isinstance(name, str) or not VALUE_FILE.fullmatch(name):
        return None
    folder = os.path.realpath(root / os.path.dirname(name))
    if folder != os.path.join(os.path.realpath(root), os.path.dirname(name)):
        return None
    return Path(folder) / os.path.basename(name)


# -- the database's schema: diskcache's own, nothing else runs --------------------------------------

# The schema diskcache creates, as sqlite keeps it (without ``IF NOT EXISTS``), compared with its
# layout normalised; a diskcache that changed it would fail test_store_schema_attacks's
# test_a_store_made_by_nbresume_still_opens_and_restores. A shipped database
# may hold anything else, and sqlite runs it: a view named Cache or Settings, or a generated
# column, on every read (a recursive view never ends); a trigger or an expression index on every
# write (an index of ``zeroblob(N)`` writes N bytes per row).
TABLES = {
    "Settings": "CREATE TABLE Settings ( key TEXT NOT NULL UNIQUE, value)",
    "Cache": (
        "CREATE TABLE Cache ( rowid INTEGER PRIMARY KEY, key BLOB, raw INTEGER, store_time REAL,"
        " expire_time REAL, access_time REAL, access_count INTEGER DEFAULT 0, tag BLOB, size "
        "INTEGER DEFAULT 0, mode INTEGER DEFAULT 0, filename TEXT, value BLOB)"
    ),
}
INDEXES = {  # diskcache's indexes, some made only under settings nbresume never uses
    "Cache_key_raw": "CREATE UNIQUE INDEX Cache_key_raw ON Cache(key, raw)",
    "Cache_expire_time": "CREATE INDEX Cache_expire_time ON Cache (expire_time)",
    "Cache_store_time": "CREATE INDEX Cache_store_time ON Cache (store_time)",
    "Cache_access_time": "CREATE INDEX Cache_access_time ON Cache (access_time)",
    "Cache_access_count": "CREATE INDEX Cache_access_count ON Cache (access_count)",
    "Cache_tag_rowid": "CREATE INDEX Cache_tag_rowid ON Cache(tag, rowid)",
}


def _sql(text: object) -> str:
    """SQL with its layout normalised (whitespace, spaces around brackets and commas)."""
    return re.sub(r"\s*([(),])\s*", r"\1", " ".join(str(text).split()))


def schema_problem(schema: list[tuple[Any, Any, Any]]) -> str | None:
    """What makes the tables diskcache reads not its own (a view, other columns); None if none.

    ``schema``: the rows ``SELECT type, name, sql FROM sqlite_master`` gives (a plain table:
    reading it runs nothing).
    """
    for kind, name, sql in schema:
        if name not in TABLES:
            continue
        if kind != "table":
            return f"its {name} is a {kind}"
        if _sql(sql) != _sql(TABLES[name]):
            return f"its {name} table is not diskcache's: {str(sql)[:80]!r}"
    return None


def extra_objects(schema: list[tuple[Any, Any, Any]]) -> list[tuple[str, str]]:
    """(type, name) of the triggers, views and indexes in ``schema`` that are not diskcache's.

    NB. diskcache's triggers are listed too: it creates them only IF NOT EXISTS, so one with
    their name but another body would stay; all are dropped and diskcache makes its own again.
    """
    return [
        (kind, name)
        for kind, name, sql in schema
        if kind in ("trigger", "view")
        or (kind == "index" and sql is not None and _sql(INDEXES.get(name)) != _sql(sql))
    ]


def schema_refused(root: Path, problem: str) -> StoreError:
    return StoreError(
        f"the checkpoint store {str(root)!r} has a database not made by nbresume ({problem}); "
        "it was not used (sqlite would run what it defines): remove it, or move the store "
        "with %checkpoint dir PATH"
    )


# sqlite opens (and creates, and writes) each of these by name, following symlinks
_DB_FILES = (DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", DB_FILE + "-journal")


def check_database_files(root: Path) -> None:
    """Raise `StoreError` (one line) unless the database and its journals are regular files or
    absent: a symlink would make sqlite create or write its target outside the store (another
    database of the user), a FIFO would hang the open, a folder fails deep inside sqlite."""
    for name in _DB_FILES:
        path = root / name
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:  # NB. the store itself is a file: sqlite fails on it below
            if isinstance(exc, NotADirectoryError):
                raise StoreError(
                    f"the checkpoint store {str(root)!r} is not a folder; it was not used: "
                    "remove it, or move the store with %checkpoint dir PATH"
                ) from exc
            raise StoreError(f"cannot check the checkpoint store {str(root)!r}: {exc}") from exc
        if stat.S_ISREG(mode):
            continue
        kind = (
            "a symlink"
            if stat.S_ISLNK(mode)
            else "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "not a regular file"
        )
        raise StoreError(
            f"the checkpoint store {str(root)!r} has {name} that is {kind}, not a file of its "
            "own; it was not used (sqlite would open what it points to): remove it, or move "
            "the store with %checkpoint dir PATH"
        )


class UnsafeFolder(StoreError):
    """A value folder of the store that is a symlink or not a folder: nothing goes through it."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW


def _folder_fd(root: Path, name: str, create: bool = False) -> int:
    """An open descriptor of the folder of the value file ``name`` (``ab/cd``), reached from the
    store one component at a time, never through a symlink (``create``: made if missing).

    NB. a check of the resolved path, then a use of the path, would leave a window in which a
    folder is swapped for a link; descriptors leave none. Raises `UnsafeFolder`, or OSError.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)  # the store itself may be a link of yours
    try:
        for part in name.split("/")[:-1]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise UnsafeFolder(
                    f"the checkpoint store {str(root)!r} has a value folder {part!r} that is a "
                    "symlink or not a folder (planted?); nothing is read or written through it: "
                    "remove it, or move the store with %checkpoint dir PATH"
                ) from None
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_value_file(root: Path, name: object) -> IO[bytes] | None:
    """The value file opened for reading; None if the row's name is not a file of this store.

    Raises OSError (FileNotFoundError: replaced since the row was read).
    """
    if not isinstance(name, str) or not VALUE_FILE.fullmatch(name):
        return None
    try:
        folder = _folder_fd(root, name)
    except UnsafeFolder:
        return None
    try:
        # NB. O_NONBLOCK: opening a FIFO for reading would wait for a writer forever
        fd = os.open(os.path.basename(name), os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def create_value_file(root: Path, name: str) -> IO[bytes]:
    """A new value file ``name`` (``ab/cd/<hex>.val``) in the store, open for writing.

    Its folders are made as needed and never followed if they are links (`UnsafeFolder`): a
    store that arrives with links planted in place of its folders would otherwise receive your
    values in a folder of the planter's choosing. Raises FileExistsError if the file exists.
    """
    if not VALUE_FILE.fullmatch(name):
        raise ValueError(f"not a value file's name: {name!r}")
    folder = _folder_fd(root, name, create=True)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        fd = os.open(os.path.basename(name), flags, 0o666, dir_fd=folder)
    finally:
        os.close(folder)
    return os.fdopen(fd, "wb")


def read_record_file(f: IO[bytes]) -> Any:
    """The bytes of a record kept in a value file; `ENTRY` if the file holds something else.

    NB. reads at most `_signing.MAX_RECORD`: an entry's file may be gigabytes.
    """
    head = f.read(len(_signing.RECORD_MAGIC))
    if head != _signing.RECORD_MAGIC:
        return ENTRY
    return head + f.read(_signing.MAX_RECORD)


def remove_value_file(root: Path, name: object) -> None:
    """Delete a value file of the store and its emptied folders; anything else is left alone."""
    if not isinstance(name, str) or not VALUE_FILE.fullmatch(name):
        return
    top, middle, base = name.split("/")
    with contextlib.suppress(OSError):
        folder = _folder_fd(root, name)
        try:
            os.unlink(base, dir_fd=folder)  # NB. unlink removes a symlink itself, never its target
        finally:
            os.close(folder)
    with contextlib.suppress(OSError):
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with contextlib.suppress(OSError):
                upper = os.open(top, _DIR_FLAGS, dir_fd=fd)
                try:
                    os.rmdir(middle, dir_fd=upper)
                finally:
                    os.close(upper)
            os.rmdir(top, dir_fd=fd)  # NB. rmdir of a link fails: never its target
        finally:
            os.close(fd)


# -- reading the database ---------------------------------------------------------------------


def _busy(exc: sqlite3.Error) -> bool:
    """Whether sqlite said busy/locked: transient for a WAL reader.

    NB. sqlite returns SQLITE_BUSY at once, without calling its busy handler, when a reader opens
    the WAL index while another process initialises or recovers it (a kernel opening the store).
    """
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is None:
        return isinstance(exc, sqlite3.OperationalError)
    return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


@dataclass(frozen=True)
class EntryInfo:
    """What the database row of an entry says, without reading the entry."""

    key: str
    stored: float  # epoch seconds of the last write
    size: int  # bytes of the value file (0 for small values kept in the row)
    row_bytes: int = 0  # bytes of a small value kept in the row (0 for a value file)

    @property
    def on_disk(self) -> int:
        """Bytes of its value, wherever it is kept (not sqlite's own overhead)."""
        return self.size + self.row_bytes


@dataclass(frozen=True)
class Row:
    """One row of nbresume's, as sqlite returned it (nothing decoded)."""

    mode: int
    filename: object
    value: object
    tag: object


class StoreReader:
    """A read-only view of a store for other processes (the dashboard).

    Only signed JSON records are decoded; signed entries are listed (`rows`), never read or
    unpickled. Raises `StoreError` if the directory holds no store or sqlite fails.
    """

    record_budget: int | None = RECORD_BUDGET  # read at call time: tests lower it

    def __init__(self, path: Path, timeout: float = READ_TIMEOUT) -> None:
        self.path = Path(path)
        db = self.path / DB_FILE
        check_database_files(self.path)
        if not db.is_file():
            raise StoreError(f"no checkpoint store at {str(self.path)!r} (no {DB_FILE})")
        uri = "file:" + urllib.parse.quote(str(db.absolute())) + "?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
            if not os.access(self.path, os.W_OK):
                self._db = self._immutable(uri, timeout)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot read the checkpoint store at {str(self.path)!r}: {exc}"
            ) from exc
        self._tables: set[str] = set()
        self._key: bytes | None = None
        self.foreign: set[str] = set()  # keys of rows not in nbresume's format, seen so far
        self.unread: set[str] = set()  # keys of records not read: `RECORD_BUDGET` was spent
        self._record_bytes = 0

    def _immutable(self, uri: str, timeout: float) -> sqlite3.Connection:
        """The connection for a read-only directory, where a WAL database may not open.

        NB. sqlite opens a WAL database read-only only if its -shm file exists or can be
        created; a read-only directory after the last writer closed has none. Nobody can write
        there either, so sqlite may read it as immutable (no locks, no -shm).
        """
        try:
            self._db.execute("PRAGMA schema_version").fetchall()
        except sqlite3.Error:
            self._db.close()
            return sqlite3.connect(
                uri + "&immutable=1", uri=True, timeout=timeout, isolation_level=None
            )
        return self._db

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
        where = str(self.path.absolute())
        if self.foreign and where not in _warned:
            _warned.add(where)
            warnings.warn(
                f"the checkpoint store at {where!r} has rows that nbresume did not write with "
                f"your key (e.g. {sorted(self.foreign)[0][:60]!r}); they were ignored, never "
                f"loaded. If you made this store with another key, run: nbresume trust {where!r}",
                CheckpointWarning,
                stacklevel=2,
            )
        if self.unread and "unread:" + where not in _warned:
            _warned.add("unread:" + where)
            warnings.warn(
                f"the checkpoint store at {where!r} has records far larger than nbresume writes "
                f"(e.g. {sorted(self.unread)[0][:60]!r}); after {self._record_bytes >> 20} MB of "
                "them the others were not read. If you did not make this store, clear it: "
                f"nbresume clear --all --dir {where!r}",
                CheckpointWarning,
                stacklevel=2,
            )

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = _signing.signing_key()
        return self._key

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        give_up = time.monotonic() + BUSY_SECONDS
        while True:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                if not _busy(exc) or time.monotonic() > give_up:
                    raise StoreError(
                        f"cannot read the checkpoint store at {str(self.path)!r}: {exc}"
                    ) from exc
            time.sleep(0.02)

    def _ready(self) -> bool:
        """Whether diskcache has created its tables (a store being created has a bare file)."""
        if not self._tables:
            schema = self._query("SELECT type, name, sql FROM sqlite_master")
            problem = schema_problem(schema)
            if problem is not None:
                raise schema_refused(self.path, problem)
            self._tables = {name for kind, name, _ in schema if kind == "table"}
        return {"Cache", "Settings"} <= self._tables

    def rows(self) -> list[EntryInfo]:
        """Every row with a string key (all of nbresume's), sorted by key."""
        if not self._ready():
            return []
        found = self._query(
            "SELECT key, store_time, size, mode, length(value) FROM Cache WHERE raw = 1 AND "
            "(expire_time IS NULL OR expire_time > ?)",
            (time.time(),),
        )
        rows = []
        for key, stored, size, mode, length in found:
            if (
                type(key) is str
                and type(stored) in (int, float)
                and type(size) is int
                and mode in (MODE_RAW, MODE_BINARY)
            ):
                inline = length if type(length) is int and mode == MODE_RAW else 0
                rows.append(EntryInfo(key, float(stored), max(size, 0), max(inline, 0)))
            else:
                self.foreign.add(repr(key)[:80])
        return sorted(rows, key=lambda row: row.key)

    def row(self, key: str) -> Row | None:
        if not self._ready():
            return None
        found = self._query(
            "SELECT mode, filename, value, tag FROM Cache WHERE key = ? AND raw = 1 AND "
            "(expire_time IS NULL OR expire_time > ?)",
            (key, time.time()),
        )
        return Row(*found[0]) if found else None

    def row_bytes(self, key: str, row: Row) -> Any:
        """A row's value as bytes (in the row or in its file); None if the row is not ours."""
        if row.mode == MODE_RAW and isinstance(row.value, bytes):
            return row.value
        if row.mode != MODE_BINARY:
            self.foreign.add(key)
            return None
        try:
            f = open_value_file(self.path, row.filename)
        except OSError:  # replaced between reading the row and the file: gone
            return None
        if f is None:
            self.foreign.add(key)
            return None
        with f:
            if self.record_budget is not None and self._record_bytes >= self.record_budget:
                self.unread.add(key)
                return None
            data = read_record_file(f)
        if data is not ENTRY:
            self._record_bytes += len(data)
        return data

    def get_json(self, key: str, default: Any = None) -> Any:
        """A record written by `Store.put_json`; ``default`` if absent, foreign or not verified.

        A record of another type than ``default`` (when it is not None) counts as not verified.
        """
        row = self.row(key)
        if row is None:
            return default
        data = self.row_bytes(key, row)
        if data is None or data is ENTRY:
            return default
        try:
            value = _signing.open_record(self.key, key, data)
        except _signing.OtherVersionError:
            return default
        except ValueError:
            self.foreign.add(key)
            return default
        if (default is not None and type(value) is not type(default)) or not well_formed(
            key, value
        ):
            self.foreign.add(key)
            return default
        return value

    def volume(self) -> int:
        """Bytes on disk, database and value files included (as `Store.volume`)."""
        if not self._ready():
            return 0
        ((pages,),) = self._query("PRAGMA page_count")
        ((page_size,),) = self._query("PRAGMA page_size")
        found = self._query("SELECT value FROM Settings WHERE key = 'size'")
        size = found[0][0] if found else 0
        return int(pages) * int(page_size) + (size if type(size) is int and size > 0 else 0)

    def unreferenced_files(self) -> list[LooseFile]:
        """Value files that no row refers to, oldest first: left by writes that were killed.

        NB. a write in progress looks the same (diskcache writes the file, then commits its row):
        callers keep files modified recently (`nbresume gc` keeps those of the last minutes).
        """
        if not self._ready():
            return []
        root = self.path
        found = []
        for file in root.glob("*/*/*.val"):  # diskcache's layout: ab/cd/<hex>.val
            name = file.relative_to(root).as_posix()
            if value_file(root, name) is None:
                continue
            with contextlib.suppress(FileNotFoundError):  # replaced meanwhile: not loose
                info = file.lstat()
                if stat.S_ISREG(info.st_mode):
                    found.append(LooseFile(name, info.st_mtime, info.st_size))
        # NB. rows after files: a file listed and committed meanwhile is referenced by now
        named = {n for (n,) in self._query("SELECT filename FROM Cache WHERE filename IS NOT NULL")}
        return sorted((f for f in found if f.name not in named), key=lambda f: f.modified)


@dataclass(frozen=True)
class LooseFile:
    """A value file in a store that no row refers to."""

    name: str  # relative to the store, as diskcache names it: ab/cd/<hex>.val
    modified: float  # epoch seconds
    size: int


def remove_loose_file(store: Path, name: str, older_than: float) -> int:
    """Delete a value file `StoreReader.unreferenced_files` listed, if it is still that old.

    Returns the bytes freed (0 if it is gone, was written to since, or is not a value file).
    """
    if not VALUE_FILE.fullmatch(name):
        return 0
    base = os.path.basename(name)
    try:
        folder = _folder_fd(store, name)  # NB. a folder swapped for a link since: not followed
    except (OSError, UnsafeFolder):
        return 0
    try:
        info = os.stat(base, dir_fd=folder, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode) or time.time() - info.st_mtime < older_than:
            return 0
        os.unlink(base, dir_fd=folder)
    except FileNotFoundError:
        return 0
    finally:
        os.close(folder)
    return info.st_size


class ReadOnlyCache(StoreReader):
    """What `Store` uses of ``diskcache.Cache``, for a store it may only read.

    Reads go through sqlite's read-only mode; every write raises `StoreReadOnlyError`, which the
    engines do not repeat after `Store.read_only_notice`.
    """

    record_budget = None  # NB. it lives as long as the kernel: one record at a time, as `Store`

    def get(self, key: str, default: Any = None, read: bool = False, tag: bool = False) -> Any:
        row = self.row(key)
        if row is None:
            return (default, None) if tag else default
        value: Any
        if row.mode == MODE_BINARY and read:
            try:
                value = open_value_file(self.path, row.filename)  # the caller closes it
            except FileNotFoundError:  # as diskcache: gone between the row and the file
                return (default, None) if tag else default
            value = value if value is not None else FOREIGN
        else:
            data = self.row_bytes(key, row)
            if data is None:  # foreign, or its file gone since the row was read
                value = FOREIGN if key in self.foreign else default
            else:
                value = io.BytesIO(data) if read else data
        return (value, row.tag) if tag else value

    def __contains__(self, key: str) -> bool:
        return self.row(key) is not None

    def iterkeys(self) -> list[str]:
        return [row.key for row in self.rows()]

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreReadOnlyError(
            f"the checkpoint store at {str(self.path)!r} is read-only: nothing new is saved; "
            "make it writable, or move the store with %checkpoint dir PATH"
        )

    set = delete = _refuse


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


FOREIGN: Any = _Sentinel("FOREIGN")  # what a row not in nbresume's format reads as: never decoded
ENTRY: Any = _Sentinel("ENTRY")  # what `read_record_file` gives for a value file not a record
