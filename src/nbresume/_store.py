"""The checkpoint store: a diskcache Cache of signed entries. The only module that imports diskcache.

Layout of one entry (a diskcache file value, written by streaming, never in place)::

    [pickle stream][buffer 0][buffer 1]...[header JSON][HMAC-SHA256, 32 bytes][u32 header length][MAGIC]

The header holds the schema version, the entry's key, the lengths and the xxh3 digests of the
out-of-band buffers. The HMAC (per-user key, kept outside the store) covers the pickle stream and
the header, so nothing is unpickled before it verifies, nor under another key than its own; the
raw buffers are plain data checked by their digests, hashed chunk by chunk while they stream in.
A trailer instead of a header lets digests be computed while writing, in one pass over the data.

diskcache writes a value's file first and commits its row after, so a kill during a write leaves the
previous entry under the same key intact.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import hmac
import io
import json
import os
import re
import sqlite3
import struct
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import diskcache
import xxhash

from . import _serialize
from .errors import StoreError, StoreReadOnlyError, StoreVersionError

__all__ = [
    "MISSING",
    "SCHEMA_VERSION",
    "EntryInfo",
    "LooseFile",
    "Store",
    "StoreReader",
    "default_store_dir",
    "open_store",
    "remove_loose_file",
]

SCHEMA_VERSION = 1  # bump on any change of the entry layout or of what the engines store
MAGIC = b"NBRESUME"
_TRAILER = struct.Struct("<I8s")  # header length, MAGIC
_SQLITE_FULL = 13  # sqlite's "database or disk is full"
# 1 MiB: few syscalls, and small enough that a chunk hashed right after its copy to or from the
# page cache is still in the CPU cache (4 MiB chunks hashed 1.7x slower here)
_CHUNK = 1 << 20
_PREALLOCATE = 1 << 23  # bytes; smaller value files are written without reserving their blocks
_FALLOC_FL_KEEP_SIZE = 1  # Linux's fallocate mode: reserve blocks, leave the file's size alone
KEY_ENV = "NBRESUME_KEY"  # a signing key given directly (CI, shared service accounts)
DIR_ENV = "NBRESUME_DIR"  # where the store lives; default ./.nbresume
DEFAULT_DIR = ".nbresume"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def default_store_dir(cwd: Path | None = None) -> Path:
    """``$NBRESUME_DIR`` if set, else ``.nbresume`` in the working directory (next to the notebook);
    ``cwd``: another process's working directory (a kernel's), instead of this one's."""
    return ((cwd or Path.cwd()) / (os.environ.get(DIR_ENV) or DEFAULT_DIR)).absolute()


def _config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "nbresume"


def signing_key() -> bytes:
    """The per-user signing key: ``$NBRESUME_KEY``, else a random key created once with mode 0600."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    path = _config_dir() / "key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another kernel created it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class _EntryReader:
    """An entry as a stream of parts, the buffers straight from memory (no copy).

    `_Disk` writes it to its value file (`write_to`); it is also a file-like object, as diskcache
    reads any other value. Each chunk of a buffer is hashed after it was written, while it is
    still in the CPU cache: the digest costs no second pass over the data.
    """

    def __init__(
        self, pickled: _serialize.Pickled, key: bytes, meta: dict[str, Any], entry: str
    ) -> None:
        self._parts: Iterator[memoryview] = self._generate(pickled, key, meta, entry)
        self._current = memoryview(b"")
        self._nbytes = pickled.nbytes  # all but the small trailer

    def _generate(
        self, pickled: _serialize.Pickled, key: bytes, meta: dict[str, Any], entry: str
    ) -> Iterator[memoryview]:
        mac = hmac.new(key, pickled.data, hashlib.sha256)
        yield memoryview(pickled.data)
        digests = []
        offset = len(pickled.data)  # where the next buffer starts in the file
        for buffer in pickled.buffers:
            h = xxhash.xxh3_128()
            start = 0
            while start < buffer.nbytes:
                # NB. chunks end at multiples of _CHUNK in the file, not in the buffer: a write
                # that ends inside a page makes the kernel fill in the rest (1.15x slower here)
                end = min(buffer.nbytes, start + _CHUNK - (offset + start) % _CHUNK)
                chunk = buffer[start:end]
                yield chunk
                h.update(chunk)  # NB. a chunk changed after its write is a digest mismatch: a miss
                start = end
            offset += buffer.nbytes
            digests.append(h.hexdigest())
        header = json.dumps(
            {
                "schema": SCHEMA_VERSION,
                # signed with the data: an intact entry moved under another key is refused
                "key": entry,
                "pickle": len(pickled.data),
                # tells a damaged entry from one signed by another key (never trust-able)
                "pickle_digest": xxhash.xxh3_128_hexdigest(pickled.data),
                "buffers": [b.nbytes for b in pickled.buffers],
                "digests": digests,
                "meta": meta,
            }
        ).encode()
        mac.update(header)
        yield memoryview(header + mac.digest() + _TRAILER.pack(len(header), MAGIC))

    def read(self, size: int = -1) -> memoryview:
        while not self._current:
            part = next(self._parts, None)
            if part is None:
                return memoryview(b"")
            self._current = part
        chunk, self._current = self._current[:size], self._current[size:]
        return chunk

    def write_to(self, f: IO[bytes]) -> int:
        """Write the whole entry to the new, empty file ``f``; returns its size."""
        _preallocate(f, self._nbytes)
        size = 0
        for part in self._parts:
            size += f.write(part)
        return size


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
    """diskcache's Disk, remembering the value file it is writing (per thread).

    NB. diskcache leaves the file of a failed write behind: on a full disk that partial file would
    keep the disk full for good. `Store.put` removes it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writing = threading.local()

    def filename(
        self, key: Any = diskcache.core.UNKNOWN, value: Any = diskcache.core.UNKNOWN
    ) -> Any:
        filename, full_path = super().filename(key, value)
        self.writing.path = full_path
        return filename, full_path

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        """As diskcache's, but an entry writes itself to its new file (`_EntryReader.write_to`)."""
        if not isinstance(value, _EntryReader):
            return super().store(value, read, key=key)
        filename, full_path = self.filename(key, value)
        for attempt in range(10):
            with contextlib.suppress(OSError):
                os.makedirs(os.path.dirname(full_path))
            try:
                # NB. a new file: the entry's row points to it only once it is complete
                f = open(full_path, "xb")  # noqa: SIM115
            except FileNotFoundError:  # as diskcache's: another cache removed the empty directory
                if attempt == 9:
                    raise
                continue
            with f:
                return value.write_to(f), diskcache.core.MODE_BINARY, filename, None
        raise AssertionError("unreachable")


class Store:
    """Signed checkpoint entries and small JSON records in one diskcache directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.read_only = False  # opened for reading only: entries restore, writes raise
        self._told = False  # whether `read_only_notice` was given
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(OSError):  # not ours, or a read-only file system
                path.chmod(0o700)
            # NB. diskcache evicts down to 1 GB by default: checkpoints must never vanish silently.
            self._cache = diskcache.Cache(
                str(path), eviction_policy="none", size_limit=2**62, cull_limit=0, disk=_Disk
            )
        except (OSError, diskcache.Timeout, Exception) as exc:
            # NB. diskcache writes its settings on every open: a store on a read-only share or
            # mount, or another user's copy, fails here even though its entries are readable
            if not (path / DB_FILE).is_file() or _writable(path):
                raise StoreError(
                    f"cannot open the checkpoint store at {str(path)!r}: {exc}; "
                    "check its permissions or move it with %checkpoint dir PATH"
                ) from exc
            self._cache = _ReadOnlyCache(path)
            self.read_only = True
        self._key: bytes | None = None

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
        if self._key is None:
            self._key = signing_key()
        return self._key

    # -- signed entries ---------------------------------------------------------------------

    def put(self, key: str, pickled: _serialize.Pickled, meta: dict[str, Any] | None = None) -> int:
        """Write an entry atomically; returns its size in bytes. Raises `StoreError`."""
        reader = _EntryReader(pickled, self.key, meta or {}, key)
        writing = self._cache.disk.writing
        writing.path = None
        try:
            self._cache.set(key, reader, read=True)
        except BaseException as exc:
            if writing.path is not None:  # never committed: nothing refers to it
                with contextlib.suppress(OSError):
                    os.remove(writing.path)
            if not isinstance(exc, Exception):
                raise
            raise self._write_error(key, exc) from exc
        return pickled.nbytes

    def _write_error(self, key: str, exc: Exception) -> StoreError:
        """What failed and what to do, for a write that failed."""
        if isinstance(exc, StoreReadOnlyError):  # says it all already
            return exc
        why = str(exc)
        code = getattr(exc, "errno", None)
        full = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # Python >= 3.11
        if code in (errno.EROFS, errno.EACCES, errno.EPERM) or not os.access(self.path, os.W_OK):
            why = f"the store is read-only ({exc}); make it writable"
        elif code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or full == _SQLITE_FULL:
            why = f"{exc}; free some disk space"
        else:
            why = f"{exc}; check the disk and the store's permissions"
        return StoreError(
            f"could not write {key!r} to {str(self.path)!r}: {why}, "
            "or move the store with %checkpoint dir PATH"
        )

    def get(self, key: str) -> Any:
        """Read and verify an entry; `MISSING` if absent. Raises `StoreError` if it is unusable."""
        try:
            handle = self._cache.get(key, default=None, read=True)
        except Exception as exc:
            raise StoreError(f"could not read {key!r} from {str(self.path)!r}: {exc}") from exc
        if handle is None:
            try:
                if key not in self._cache:
                    return MISSING
                # NB. a writer that replaced the entry deletes the old file: read the new one
                handle = self._cache.get(key, default=None, read=True)
            except Exception as exc:
                raise StoreError(f"could not read {key!r} from {str(self.path)!r}: {exc}") from exc
            if handle is None:
                raise StoreError(
                    f"entry {key!r} in {str(self.path)!r} is corrupt: its value file is missing; "
                    "it will be recomputed"
                )
        with handle:
            return self._read_entry(key, handle)

    def _read_entry(self, key: str, f: IO[bytes]) -> Any:
        try:
            end = f.seek(0, os.SEEK_END)
            if end < _TRAILER.size:
                raise ValueError("truncated")
            header_bytes, mac, header = _read_trailer(f, end)
            if header.get("schema") != SCHEMA_VERSION:
                raise StoreVersionError(
                    f"entry {key!r} in {str(self.path)!r} has schema {header.get('schema')!r}, "
                    f"this nbresume reads schema {SCHEMA_VERSION}; it will be recomputed"
                )
            f.seek(0)
            data = f.read(header["pickle"])
            expected = hmac.new(self.key, data, hashlib.sha256)
            expected.update(header_bytes)
            if not hmac.compare_digest(expected.digest(), mac):
                if xxhash.xxh3_128_hexdigest(data) != header.get("pickle_digest"):
                    raise ValueError("its data does not match its digest")
                raise StoreError(
                    f"entry {key!r} in {str(self.path)!r} is not signed by your key; it was not "
                    f"loaded. If you trust this store, run: nbresume trust {str(self.path)!r}"
                )
            if header.get("key", key) != key:  # entries written before keys were signed: none
                raise ValueError(f"it was written as {header['key']!r}")
            buffers = [
                self._read_buffer(f, n, d)
                for n, d in zip(header["buffers"], header["digests"], strict=True)
            ]
        except StoreError:
            raise
        except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
            raise StoreError(f"entry {key!r} in {str(self.path)!r} is corrupt: {exc}") from exc
        try:
            return _serialize.loads(data, buffers)
        except Exception as exc:
            raise StoreError(
                f"entry {key!r} in {str(self.path)!r} could not be unpickled: {exc!r}; "
                "a module it needs may be missing or changed"
            ) from exc

    @staticmethod
    def _read_buffer(f: IO[bytes], nbytes: int, digest: str) -> Any:
        buffer = _serialize.allocate(nbytes)
        view = memoryview(buffer).cast("B")
        h = xxhash.xxh3_128()
        for start in range(0, nbytes, _CHUNK):
            chunk = view[start : start + _CHUNK]
            if f.readinto(chunk) != chunk.nbytes:  # type: ignore[attr-defined]
                raise ValueError("truncated buffer")
            h.update(chunk)
        if h.hexdigest() != digest:
            raise ValueError("a data buffer does not match its digest")
        return buffer

    def resign(self) -> tuple[int, list[str]]:
        """Re-sign every intact entry with this user's key (``nbresume trust``).

        Returns how many were re-signed and the keys of damaged entries, which are left alone:
        trusting a store must never bless bytes that no longer match their digests.
        """
        count, damaged = 0, []
        for key in list(self._cache.iterkeys()):
            handle = self._cache.get(key, default=None, read=True)
            if not hasattr(handle, "read"):
                continue
            with handle as f:
                try:
                    end = f.seek(0, os.SEEK_END)
                    _, _, header = _read_trailer(f, end)
                    f.seek(0)
                    data = f.read(header["pickle"])
                    if xxhash.xxh3_128_hexdigest(data) != header.get("pickle_digest"):
                        raise ValueError("pickle digest")
                    if header.get("key", key) != key:
                        raise ValueError("moved from another key")
                    buffers = [
                        self._read_buffer(f, n, d)
                        for n, d in zip(header["buffers"], header["digests"], strict=True)
                    ]
                except (OSError, ValueError, KeyError, TypeError, struct.error):
                    damaged.append(str(key))
                    continue
            views = [memoryview(b).cast("B") for b in buffers]
            self.put(key, _serialize.Pickled(data, views), header.get("meta", {}))
            count += 1
        return count, damaged

    # -- small JSON records -----------------------------------------------------------------

    def get_json(self, key: str, default: Any = None) -> Any:
        try:
            text = self._cache.get(key, default=None)
        except Exception as exc:
            raise StoreError(f"could not read {key!r} from {str(self.path)!r}: {exc}") from exc
        if not isinstance(text, str):
            return default
        try:
            return json.loads(text)
        except ValueError:
            return default

    def put_json(self, key: str, value: Any) -> None:
        try:
            self._cache.set(key, json.dumps(value, default=str))
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
        return sorted(
            k for k in self._cache.iterkeys() if isinstance(k, str) and k.startswith(prefix)
        )

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    @contextlib.contextmanager
    def transact(self) -> Iterator[None]:
        """Group several writes into one sqlite transaction (all or nothing)."""
        with self._cache.transact():
            yield

    def volume(self) -> int:
        """Bytes on disk, database and value files included."""
        return int(self._cache.volume())

    def close(self) -> None:
        self._cache.close()


def _read_trailer(f: IO[bytes], end: int) -> tuple[bytes, bytes, dict[str, Any]]:
    """The header bytes, the MAC and the parsed header of an entry; ValueError if malformed."""
    if end < _TRAILER.size:
        raise ValueError("truncated")
    f.seek(end - _TRAILER.size)
    header_len, magic = _TRAILER.unpack(f.read(_TRAILER.size))
    if magic != MAGIC or header_len + 32 + _TRAILER.size > end:
        raise ValueError("not an nbresume entry or truncated")
    f.seek(end - _TRAILER.size - 32 - header_len)
    header_bytes = f.read(header_len)
    mac = f.read(32)
    header = json.loads(header_bytes)
    if not isinstance(header, dict):
        raise ValueError("malformed header")
    return header_bytes, mac, header


_stores: dict[Path, Store] = {}
_lock = threading.Lock()


def open_store(path: Path | str | None = None) -> Store:
    """The `Store` at ``path`` (default: `default_store_dir`), opened once per process."""
    resolved = Path(path).absolute() if path is not None else default_store_dir()
    with _lock:
        store = _stores.get(resolved)
        # a store opened read-only is opened again once it is writable ("make it writable")
        if store is None or (store.read_only and _writable(resolved)):
            store = _stores[resolved] = Store(resolved)
        return store


def _writable(path: Path) -> bool:
    """Whether this process may write the store's directory and database (checks, never writes)."""
    db = path / DB_FILE
    return os.access(path, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


def now() -> float:
    """Wall-clock time for records (seconds since the epoch)."""
    return time.time()


# -- read-only access for other processes -----------------------------------------------------

DB_FILE = "cache.db"  # diskcache's database, inside the store directory
READ_TIMEOUT = 2.0  # seconds a reader waits for sqlite (holding no lock: the writer never waits)
BUSY_SECONDS = 2.0  # and how long it retries a SQLITE_BUSY that sqlite returns without waiting
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


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


class StoreReader:
    """A read-only view of a store for other processes (the dashboard).

    `Store` opens through ``diskcache.Cache``, which writes its settings and schema on every
    open; a reader must never write to the store of a running loop. This opens the database in
    sqlite's read-only mode: in WAL mode readers neither block the writer nor wait for it. Only
    JSON records are decoded; signed entries are listed (`rows`), never read or unpickled.

    Raises `StoreError` if the directory holds no store or sqlite fails.
    """

    def __init__(self, path: Path, timeout: float = READ_TIMEOUT) -> None:
        self.path = Path(path)
        db = self.path / DB_FILE
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
            found = self._query("SELECT name FROM sqlite_master WHERE type = 'table'")
            self._tables = {name for (name,) in found}
        return {"Cache", "Settings"} <= self._tables

    def rows(self) -> list[EntryInfo]:
        """Every entry with a string key (all of nbresume's), sorted by key."""
        if not self._ready():
            return []
        found = self._query(
            "SELECT key, store_time, size FROM Cache WHERE raw = 1 AND "
            "(expire_time IS NULL OR expire_time > ?)",
            (time.time(),),
        )
        rows = [
            EntryInfo(key, float(stored or 0.0), int(size or 0))
            for key, stored, size in found
            if isinstance(key, str)
        ]
        return sorted(rows, key=lambda row: row.key)

    def get_json(self, key: str, default: Any = None) -> Any:
        """A record written by `Store.put_json`; ``default`` if absent or not JSON."""
        if not self._ready():
            return default
        found = self._query(
            "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1 AND "
            "(expire_time IS NULL OR expire_time > ?)",
            (key, time.time()),
        )
        text = self._text(*found[0]) if found else None
        if text is None:
            return default
        try:
            return json.loads(text)
        except ValueError:
            return default

    def _text(self, mode: int, filename: str | None, value: Any) -> str | None:
        if mode == diskcache.core.MODE_RAW:
            return value if isinstance(value, str) else None
        if mode != diskcache.core.MODE_TEXT or not isinstance(filename, str):
            return None  # NB. pickled or binary values are never decoded here
        file = (self.path / filename).resolve()
        if not file.is_relative_to(self.path.resolve()):
            return None
        try:
            return file.read_text(encoding="UTF-8")
        except OSError:  # replaced between reading the row and the file: gone
            return None

    def volume(self) -> int:
        """Bytes on disk, database and value files included (as `Store.volume`)."""
        if not self._ready():
            return 0
        ((pages,),) = self._query("PRAGMA page_count")
        ((page_size,),) = self._query("PRAGMA page_size")
        found = self._query("SELECT value FROM Settings WHERE key = 'size'")
        return int(pages) * int(page_size) + (int(found[0][0] or 0) if found else 0)

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
            if not _VALUE_FILE.fullmatch(name):
                continue
            with contextlib.suppress(FileNotFoundError):  # replaced meanwhile: not loose
                stat = file.stat()
                found.append(LooseFile(name, stat.st_mtime, stat.st_size))
        # NB. rows after files: a file listed and committed meanwhile is referenced by now
        named = {n for (n,) in self._query("SELECT filename FROM Cache WHERE filename IS NOT NULL")}
        return sorted((f for f in found if f.name not in named), key=lambda f: f.modified)


_VALUE_FILE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]+\.val")


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
    if not _VALUE_FILE.fullmatch(name):
        return 0
    file = store / name
    try:
        stat = file.stat()
        if time.time() - stat.st_mtime < older_than:
            return 0
        file.unlink()
    except FileNotFoundError:
        return 0
    return stat.st_size


class _ReadOnlyCache(StoreReader):
    """What `Store` uses of ``diskcache.Cache``, for a store it may only read.

    Reads go through sqlite's read-only mode (`StoreReader`); every write raises
    `StoreReadOnlyError`, which the engines do not repeat after `Store.read_only_notice`.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.disk = _ReadOnlyDisk()

    def _row(self, key: str) -> tuple[int, str | None, Any] | None:
        if not self._ready():
            return None
        found = self._query(
            "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1 AND "
            "(expire_time IS NULL OR expire_time > ?)",
            (key, time.time()),
        )
        return (int(found[0][0]), found[0][1], found[0][2]) if found else None

    def get(self, key: str, default: Any = None, read: bool = False) -> Any:
        row = self._row(key)
        if row is None:
            return default
        mode, filename, value = row
        if not read:
            text = self._text(mode, filename, value)
            return default if text is None else text
        if mode == diskcache.core.MODE_BINARY and isinstance(filename, str):
            try:
                return open(self.path / filename, "rb")  # the caller closes it
            except FileNotFoundError:  # as diskcache: gone between the row and the file
                return default
        return io.BytesIO(value) if isinstance(value, bytes) else value

    def __contains__(self, key: str) -> bool:
        return self._row(key) is not None

    def iterkeys(self) -> Iterator[str]:
        return iter([row.key for row in self.rows()])

    @contextlib.contextmanager
    def transact(self) -> Iterator[None]:
        yield  # nothing to group: no write can succeed

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreReadOnlyError(
            f"the checkpoint store at {str(self.path)!r} is read-only: nothing new is saved; "
            "make it writable, or move the store with %checkpoint dir PATH"
        )

    set = delete = _refuse


class _ReadOnlyDisk:
    def __init__(self) -> None:
        self.writing = threading.local()  # `Store.put` resets it before writing
