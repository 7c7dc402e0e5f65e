"""The checkpoint store: a diskcache Cache of signed entries. The only module that imports diskcache.

diskcache is the right tool (an atomic sqlite index, files for large values), but as it stands it
trusts its rows: it unpickles values *and keys* stored in its pickle mode, and deletes whatever path
a row's ``filename`` names. A store may arrive with a notebook from anyone, so `_Disk` narrows it to
what nbresume writes: string keys, signed bytes, value files it named itself. Rows of any other kind
read as `FOREIGN` (never decoded) and are ignored with one warning per store; a path from a row is
used only if it is one the store could have made, inside the store (`_storeread.value_file`).

Entries and records are signed and verified in `_signing`; see there for their layout. diskcache
writes a value's file first and commits its row after, so a kill during a write leaves the previous
entry under the same key intact.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import sqlite3
import sys
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import diskcache

from . import _serialize, _signing
from ._records import well_formed
from ._signing import KEY_ENV, SCHEMA_VERSION, EntryWriter, signing_key
from ._storeread import (
    DB_FILE,
    ENTRY,
    FOREIGN,
    MODE_BINARY,
    MODE_RAW,
    EntryInfo,
    LooseFile,
    ReadOnlyCache,
    StoreReader,
    check_database_files,
    create_value_file,
    extra_objects,
    open_value_file,
    read_record_file,
    remove_loose_file,
    remove_value_file,
    schema_problem,
    schema_refused,
)
from .errors import CheckpointWarning, StoreError, StoreReadOnlyError

__all__ = [
    "DB_FILE",
    "KEY_ENV",
    "MISSING",
    "SCHEMA_VERSION",
    "EntryInfo",
    "LooseFile",
    "Store",
    "StoreReader",
    "default_store_dir",
    "open_store",
    "remove_loose_file",
    "signing_key",
]

_SQLITE_FULL = 13  # sqlite's "database or disk is full"
_PREALLOCATE = 1 << 23  # bytes; smaller value files are written without reserving their blocks
_FALLOC_FL_KEEP_SIZE = 1  # Linux's fallocate mode: reserve blocks, leave the file's size alone
LOCK_TIMEOUT = 60.0  # seconds sqlite waits for another process's lock (diskcache's default)
DIR_ENV = "NBRESUME_DIR"  # where the store lives; default ./.nbresume
DEFAULT_DIR = ".nbresume"
# Every setting diskcache reads, given explicitly: a store's own Settings rows are data, and
# diskcache runs its ``sqlite_*`` rows as PRAGMAs and passes its ``disk_*`` rows to the Disk.
# NB. diskcache evicts down to 1 GB by default: checkpoints must never vanish silently.
SETTINGS: dict[str, Any] = {
    **diskcache.DEFAULT_SETTINGS,
    "eviction_policy": "none",
    "size_limit": 2**62,
    "cull_limit": 0,
}
_COUNTERS = frozenset(
    diskcache.core.METADATA
)  # count, size, hits, misses: integers diskcache keeps


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def default_store_dir(cwd: Path | None = None) -> Path:
    """``$NBRESUME_DIR`` if set, else ``.nbresume`` in the working directory (next to the notebook);
    ``cwd``: another process's working directory (a kernel's), instead of this one's."""
    return ((cwd or Path.cwd()) / (os.environ.get(DIR_ENV) or DEFAULT_DIR)).absolute()


@functools.cache
def _fallocate() -> Callable[[int, int, int, int], int] | None:
    """libc's ``fallocate`` (Linux only), or None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # NB. lazily: 5 ms, paid by the first big write only

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = getattr(libc, "fallocate64", None) or libc.fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function


def _preallocate(f: IO[bytes], nbytes: int) -> None:
    """Reserve the disk blocks of a big new file before writing it, as ``np.save`` does.

    ext4 then writes it about 1.4x faster: its blocks are allocated at once, not chunk by chunk.
    Best effort, as numpy's: where unsupported (a file system without it, not Linux) or failing
    (a full disk) it does nothing, and the writes report what matters.
    """
    fallocate = _fallocate() if nbytes >= _PREALLOCATE else None
    if fallocate is not None:
        fallocate(f.fileno(), _FALLOC_FL_KEEP_SIZE, 0, nbytes)


class _Disk(diskcache.Disk):  # type: ignore[misc]
    """diskcache's Disk narrowed to nbresume's rows: string keys, signed bytes, checked files.

    It remembers the value file it is writing (per thread). NB. diskcache leaves the file of a
    failed write behind: on a full disk that partial file would keep the disk full for good.
    `Store.put` removes it.
    """

    def __init__(self, directory: str, **settings: Any) -> None:
        super().__init__(directory, min_file_size=SETTINGS["disk_min_file_size"])
        self.root = Path(directory)
        self.writing = threading.local()

    def put(self, key: Any) -> tuple[str, bool]:
        if type(key) is not str:  # NB. diskcache would pickle it, and unpickle it when listed
            raise TypeError(f"nbresume's store keys are strings, not {type(key).__name__}")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        return key if raw and type(key) is str else FOREIGN  # never unpickled

    def filename(
        self, key: Any = diskcache.core.UNKNOWN, value: Any = diskcache.core.UNKNOWN
    ) -> Any:
        filename, full_path = super().filename(key, value)
        self.writing.path = filename
        return filename, full_path

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        """Signed bytes (records) as diskcache stores bytes; an entry writes its own new file."""
        if type(value) is bytes:
            return super().store(value, False, key=key)
        if not isinstance(value, EntryWriter):
            raise TypeError(f"nbresume's store holds signed bytes, not {type(value).__name__}")
        filename, _ = self.filename(key, value)
        # NB. a new file: the entry's row points to it only once it is complete
        with self._create(filename) as f:
            _preallocate(f, value.nbytes)
            return value.write_to(f), MODE_BINARY, filename, None

    def _create(self, filename: str) -> IO[bytes]:
        """The new value file ``filename``, never through a folder that is a link."""
        for attempt in range(10):
            try:
                return create_value_file(self.root, filename)
            except FileNotFoundError:  # as diskcache's: another cache removed the empty folder
                if attempt == 9:
                    raise
        raise AssertionError("unreachable")

    def _write(self, full_path: str, iterator: Any, mode: str, encoding: Any = None) -> int:
        """diskcache's, for a record kept in a file: the file made by `_create`."""
        if mode != "xb":  # NB. text mode: never nbresume's
            raise TypeError("nbresume's store writes bytes only")
        with self._create(Path(full_path).relative_to(self.root).as_posix()) as f:
            size = 0
            for chunk in iterator:
                size += f.write(chunk)
            return size

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        """A row's bytes (or its open file, with ``read``); `FOREIGN` for any row not nbresume's.

        Raises OSError when the file is gone (diskcache then reads the key as deleted).
        """
        if mode == MODE_RAW:
            return value if type(value) is bytes else FOREIGN
        if mode != MODE_BINARY:  # text and pickle rows: never decoded
            return FOREIGN
        f = open_value_file(self.root, filename)
        if f is None:
            return FOREIGN
        if read:
            return f
        with f:
            return read_record_file(f)

    def remove(self, file_path: Any) -> None:
        remove_value_file(self.root, file_path)  # NB. never a path outside the store


class _Cache(diskcache.Cache):  # type: ignore[misc]
    """diskcache's Cache whose `close` closes the connection of every thread that opened one.

    NB. diskcache's own closes the calling thread's only; Python 3.13 warns about each sqlite
    connection collected unclosed. Connections are made shareable for that one close.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    @property
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None or getattr(self._local, "pid", None) != os.getpid():
            self._local.pid = os.getpid()
            con = self._local.con = sqlite3.connect(
                os.path.join(self._directory, DB_FILE),
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            with self._connections_lock:
                self._connections.append(con)
            # NB. per-connection pragmas: ours, never the store's own Settings rows
            for key, value in SETTINGS.items():
                if key.startswith("sqlite_"):
                    self.reset(key, value, update=False)
        return con

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for con in connections:
            with contextlib.suppress(sqlite3.Error):
                con.close()
        with contextlib.suppress(AttributeError):
            del self._local.con


def _open_cache(path: Path) -> _Cache:
    """diskcache's Cache over ``path``; a failed open closes the connections it made."""
    cache = _Cache.__new__(_Cache)
    try:
        _Cache.__init__(cache, str(path), timeout=LOCK_TIMEOUT, disk=_Disk, **SETTINGS)
    except BaseException:
        cache.close()  # NB. diskcache connects before it fails (a read-only store)
        raise
    return cache


def _clean_settings(path: Path) -> None:
    """Refuse a database whose tables are not diskcache's; drop the triggers, views and indexes
    it did not make; remove Settings rows diskcache would act on that are not nbresume's.

    NB. diskcache runs each ``sqlite_*`` row as ``PRAGMA key = value`` before anything else, and
    a store may come from anyone; the rows it needs are written again from `SETTINGS`.
    """
    db = path / DB_FILE
    if not db.is_file():
        return
    con = sqlite3.connect(db, timeout=LOCK_TIMEOUT, isolation_level=None)
    try:
        schema = con.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        problem = schema_problem(schema)
        if problem is not None:
            raise schema_refused(path, problem)
        # NB. before any other write: a shipped trigger would run on the deletes below
        for kind, name in extra_objects(schema):
            quoted = '"' + str(name).replace('"', '""') + '"'
            con.execute(f"DROP {kind.upper()} IF EXISTS {quoted}")
        try:
            rows = con.execute("SELECT rowid, key, value FROM Settings").fetchall()
        except sqlite3.OperationalError:  # no Settings table yet
            return
        bad = [
            rowid
            for rowid, key, value in rows
            if not (
                (key in SETTINGS and value == SETTINGS[key] and type(value) is type(SETTINGS[key]))
                or (key in _COUNTERS and type(value) is int)
            )
        ]
        if bad:
            con.executemany("DELETE FROM Settings WHERE rowid = ?", [(r,) for r in bad])
    finally:
        con.close()


def _prepare_directory(path: Path) -> None:
    """Create the store's folder (0700, with a ``.gitignore``); refuse a symlink to another's.

    An existing folder's permissions are never changed: it may be shared on purpose.
    """
    if path.is_symlink():
        target = path.resolve()
        if target.exists() and target.stat().st_uid != os.geteuid():
            raise StoreError(
                f"the checkpoint store {str(path)!r} is a symlink to {str(target)!r}, which "
                "belongs to another user; it was not used: remove the link, or move the store "
                "with %checkpoint dir PATH"
            )
        # NB. a link that came with a notebook may point at any folder of yours (~/.ssh,
        # another program's diskcache, whose settings and triggers opening it would rewrite)
        if target.is_dir() and not _is_store(target) and any(target.iterdir()):
            raise StoreError(
                f"the checkpoint store {str(path)!r} is a symlink to {str(target)!r}, a folder "
                "of other files, not a checkpoint store; it was not used: point the link at an "
                "empty folder, or move the store with %checkpoint dir PATH"
            )
    if path.exists():
        return
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        path.chmod(0o700)  # NB. mkdir's mode is masked by the umask
        # NB. a store holds the user's variables: never committed by accident
        (path / ".gitignore").write_text("# made by nbresume: the checkpoint store\n*\n")


def _is_store(folder: Path) -> bool:
    """Whether ``folder`` holds a store nbresume made: diskcache with nbresume's settings."""
    if not (folder / DB_FILE).is_file() or (folder / DB_FILE).is_symlink():
        return False
    uri = "file:" + urllib.parse.quote(str((folder / DB_FILE).absolute())) + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=5, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        if schema_problem(con.execute("SELECT type, name, sql FROM sqlite_master").fetchall()):
            return False
        rows = dict(con.execute("SELECT key, value FROM Settings").fetchall())
    except sqlite3.Error:
        return False
    finally:
        con.close()
    return all(rows.get(k) == SETTINGS[k] for k in ("eviction_policy", "size_limit"))


class Store:
    """Signed checkpoint entries and signed JSON records in one diskcache directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.read_only = False  # opened for reading only: entries restore, writes raise
        self._told = False  # whether `read_only_notice` was given
        self._warned_foreign = False
        self._warned_shapes: set[str] = set()
        self._key: bytes | None = None
        try:
            _prepare_directory(path)
        except OSError as exc:
            raise StoreError(
                f"cannot create the checkpoint store at {str(path)!r}: {exc}; check its "
                "permissions or move it with %checkpoint dir PATH"
            ) from exc
        self._cache: Any
        check_database_files(path)
        try:
            _clean_settings(path)
            self._cache = _open_cache(path)
        except StoreError:  # a database that is not diskcache's: refused, read-only or not
            raise
        except (OSError, diskcache.Timeout, Exception) as exc:
            # NB. diskcache writes its settings on every open: a store on a read-only share or
            # mount, or another user's copy, fails here even though its entries are readable
            if _locked(exc):
                raise StoreError(
                    f"cannot open the checkpoint store at {str(path)!r}: another process holds "
                    f"its database locked ({exc}); nothing is saved or restored until it lets "
                    "go: end it (an open sqlite3 shell, a stuck kernel), or move the store with "
                    "%checkpoint dir PATH"
                ) from exc
            if not (path / DB_FILE).is_file() or _writable(path):
                raise StoreError(
                    f"cannot open the checkpoint store at {str(path)!r}: {exc}; "
                    "check its permissions or move it with %checkpoint dir PATH"
                ) from exc
            self._cache = ReadOnlyCache(path)
            self.read_only = True

    def read_only_notice(self) -> str | None:
        """For a store opened read-only, what that means and what to do; once, then None.

        The engines warn with it when they open the store and stay silent about the writes that
        fail after it (`StoreReadOnlyError`): one warning per kernel, not one per cell.
        """
        if not self.read_only or self._told:
            return None
        self._told = True
        return (
            f"the checkpoint store at {str(self.path)!r} is read-only: its checkpoints are "
            "restored, but nothing new will be saved; make it writable, or move the store with "
            "%checkpoint dir PATH"
        )

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @property
    def key(self) -> bytes:
        """The signing key; `StoreError` if it cannot be had (the engines warn and go on)."""
        if self._key is None:
            self._key = signing_key()
        return self._key

    def _foreign(self, key: str) -> None:
        """Say once per store that rows not written by nbresume with this user's key are ignored."""
        if self._warned_foreign:
            return
        self._warned_foreign = True
        warnings.warn(
            f"the checkpoint store at {str(self.path)!r} has rows that nbresume did not write "
            f"with your key (e.g. {key[:60]!r}); they are ignored, never loaded. If you made this "
            f"store with another key, run: nbresume trust {str(self.path)!r}",
            CheckpointWarning,
            stacklevel=3,
        )

    def _malformed(self, key: str) -> None:
        """Say once per store that a signed record of an unexpected shape was ignored."""
        if key in self._warned_shapes:
            return
        self._warned_shapes.add(key)
        warnings.warn(
            f"the record {key!r} in the checkpoint store at {str(self.path)!r} has an unexpected "
            "shape (written by another version of nbresume?); it is ignored and will be "
            "written again",
            CheckpointWarning,
            stacklevel=3,
        )

    def _read_error(self, key: str, exc: Exception) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        return StoreError(f"could not read {key!r} from {str(self.path)!r}: {exc}")

    # -- signed entries ---------------------------------------------------------------------

    def put(self, key: str, pickled: _serialize.Pickled, meta: dict[str, Any] | None = None) -> int:
        """Write an entry atomically; returns its size in bytes. Raises `StoreError`."""
        writing = self._cache.disk.writing if not self.read_only else None
        if writing is not None:
            writing.path = None
        try:
            writer = EntryWriter(pickled, self.key, meta or {}, key)
            self._cache.set(key, writer, read=True, tag=writer.id)
        except BaseException as exc:
            if writing is not None and writing.path is not None:  # never committed
                remove_value_file(self.path, writing.path)  # NB. never through a planted link
            if not isinstance(exc, Exception):
                raise
            raise self._write_error(key, exc) from exc
        return pickled.nbytes

    def _write_error(self, key: str, exc: Exception) -> StoreError:
        """What failed and what to do, for a write that failed."""
        if isinstance(exc, StoreError):  # says it all already (read-only, a bad key)
            return exc
        why = str(exc)
        code = getattr(exc, "errno", None)
        full = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # Python >= 3.11
        if _locked(exc):
            why = f"another process holds its database locked ({exc}); end it"
        elif code in (errno.EROFS, errno.EACCES, errno.EPERM) or not os.access(self.path, os.W_OK):
            why = f"the store is read-only ({exc}); make it writable"
        elif code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or full == _SQLITE_FULL:
            why = f"{exc}; free some disk space"
        else:
            why = f"{exc}; check the disk and the store's permissions"
        return StoreError(
            f"could not write {key!r} to {str(self.path)!r}: {why}, "
            "or move the store with %checkpoint dir PATH"
        )

    def _fetch(self, key: str) -> tuple[Any, Any]:
        """The open value file (or bytes) of ``key`` and its row's tag; (None, None) if absent."""
        try:
            handle, tag = self._cache.get(key, default=None, read=True, tag=True)
            if handle is None:
                if key not in self._cache:
                    return None, None
                # NB. a writer that replaced the entry deletes the old file: read the new one
                handle, tag = self._cache.get(key, default=None, read=True, tag=True)
        except Exception as exc:
            raise self._read_error(key, exc) from exc
        if handle is None:
            raise StoreError(
                f"entry {key!r} in {str(self.path)!r} is corrupt: its value file is missing; "
                "it will be recomputed"
            )
        return handle, tag

    def get(self, key: str) -> Any:
        """Read and verify an entry; `MISSING` if absent. Raises `StoreError` if it is unusable."""
        handle, tag = self._fetch(key)
        if handle is None:
            return MISSING
        if handle is FOREIGN:
            self._foreign(key)
            raise StoreError(f"entry {key!r} in {str(self.path)!r} is not nbresume's; not loaded")
        with handle if not isinstance(handle, bytes) else io.BytesIO(handle) as f:
            verified = _signing.read_entry(f, self.key, key, str(self.path), tag)
        try:
            return _serialize.loads(verified)
        except Exception as exc:
            raise StoreError(
                f"entry {key!r} in {str(self.path)!r} could not be unpickled: {exc!r}; "
                "a module it needs may be missing or changed"
            ) from exc

    def resign(self) -> tuple[int, list[str]]:
        """Re-sign every intact entry and record with this user's key (``nbresume trust``).

        Nothing is unpickled: entries are checked against their digests, every size bounded by
        the file's real size. Returns how many were re-signed and the keys of damaged ones,
        which are left alone: trusting a store must never bless bytes that no longer match.
        The count is of entries; records are re-signed too.
        """
        count, damaged = 0, []
        for key in self.keys():
            try:
                handle, _ = self._fetch(key)
            except StoreError:
                damaged.append(key)
                continue
            if handle is None or handle is FOREIGN:
                continue
            with handle if not isinstance(handle, bytes) else io.BytesIO(handle) as f:
                try:
                    count += self._resign_one(key, f)
                except (OSError, ValueError, KeyError, TypeError, RecursionError):
                    damaged.append(key)
        return count, damaged

    def _resign_one(self, key: str, f: IO[bytes]) -> int:
        """Re-sign one row; 1 for an entry, 0 for a record (the count is of entries)."""
        record = _signing.unsigned_record(f)
        if record is not _signing.NOT_A_RECORD:
            if not well_formed(key, record):  # NB. signed, it would be trusted by every reader
                raise ValueError(f"the record {key!r} has an unexpected shape")
            self.put_json(key, record)
            return 0
        pickled, meta = _signing.unsigned_entry(f, key)
        self.put(key, pickled, meta)
        return 1

    # -- small signed JSON records ------------------------------------------------------------

    def get_json(self, key: str, default: Any = None) -> Any:
        """A record `put_json` wrote under ``key``; ``default`` if absent or not verified.

        A record of another type than ``default`` (when it is not None) is ignored too.
        """
        try:
            data = self._cache.get(key, default=None)
        except Exception as exc:
            raise self._read_error(key, exc) from exc
        if data is None or data is ENTRY:  # absent, or an entry's file: not a record
            return default
        try:
            if type(data) is not bytes:
                raise ValueError("not nbresume's")
            value = _signing.open_record(self.key, key, data)
        except _signing.OtherVersionError:  # the entry it describes says so, once
            return default
        except ValueError:
            self._foreign(key)
            return default
        if (default is not None and type(value) is not type(default)) or not well_formed(
            key, value
        ):
            self._malformed(key)
            return default
        return value

    def put_json(self, key: str, value: Any) -> None:
        try:
            self._cache.set(key, _signing.seal_record(self.key, key, value))
        except Exception as exc:
            raise self._write_error(key, exc) from exc

    # -- housekeeping -----------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        try:
            return bool(self._cache.delete(key))
        except StoreReadOnlyError:
            raise
        except Exception as exc:
            raise StoreError(f"could not delete {key!r} from {str(self.path)!r}: {exc}") from exc

    def keys(self, prefix: str = "") -> list[str]:
        """The keys of nbresume's rows starting with ``prefix``, sorted; others are ignored."""
        try:
            found = list(self._cache.iterkeys())
        except Exception as exc:
            raise self._read_error(prefix or "the keys", exc) from exc
        keys = []
        for key in found:
            if type(key) is not str:
                self._foreign(repr(key))
            elif key.startswith(prefix):
                keys.append(key)
        return sorted(keys)

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    @contextlib.contextmanager
    def transact(self) -> Iterator[None]:
        """Group several writes into one sqlite transaction (all or nothing)."""
        if self.read_only:
            yield  # nothing to group: no write can succeed
            return
        with self._cache.transact():
            yield

    def volume(self) -> int:
        """Bytes on disk, database and value files included."""
        return int(self._cache.volume())

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_stores: dict[Path, Store] = {}
_lock = threading.Lock()


def open_store(path: Path | str | None = None) -> Store:
    """The `Store` at ``path`` (default: `default_store_dir`), opened once per process."""
    resolved = Path(path).absolute() if path is not None else default_store_dir()
    with _lock:
        store = _stores.get(resolved)
        # a store opened read-only is opened again once it is writable ("make it writable")
        if store is None or (store.read_only and _writable(resolved)):
            if store is not None:
                store.close()
            store = _stores[resolved] = Store(resolved)
        return store


def close_stores() -> None:
    """Close every store `open_store` opened (tests; the end of ``nbresume run``)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


def _locked(exc: BaseException) -> bool:
    """Whether sqlite gave up waiting for another connection's lock."""
    if isinstance(exc, diskcache.Timeout):
        return True
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _writable(path: Path) -> bool:
    """Whether this process may write the store's directory and database (checks, never writes)."""
    db = path / DB_FILE
    return os.access(path, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


def now() -> float:
    """Wall-clock time for records (seconds since the epoch)."""
    return time.time()
