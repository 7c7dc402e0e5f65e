"""The signing key and the signed formats: nothing from a store is used before it verifies here.

Two formats, both bound to the store key they were written under and to `SCHEMA_VERSION`:

- **entries** (pickled values), written as one value file::

    [pickle stream][buffer 0][buffer 1]...[header JSON][HMAC-SHA256, 32 bytes][u32 header length][MAGIC]

  The header holds the schema version, the entry's key, a random id (the row's tag must name it:
  an older file of the same key put back is a replay), the lengths and xxh3 digests of the
  out-of-band buffers. The HMAC covers the pickle stream and the header; the raw buffers are plain
  data checked by their digests, hashed chunk by chunk while they stream. A trailer instead of a
  header lets digests be computed while writing, in one pass over the data.
- **records** (small JSON documents: phase records, loop progress, history, marks, the log)::

    [RECORD_MAGIC][schema, u16][HMAC-SHA256 of (schema, key, JSON)][JSON]

`Verified` is the trust boundary: the only type `_serialize.loads` accepts, made only here, after
the HMAC matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import xxhash

from . import _serialize
from .errors import NbresumeWarning, StoreError, StoreVersionError

__all__ = [
    "KEY_ENV",
    "MAX_RECORD",
    "MIN_KEY_BYTES",
    "RECORD_MAGIC",
    "SCHEMA_VERSION",
    "EntryWriter",
    "open_record",
    "read_entry",
    "seal_record",
    "signing_key",
]

SCHEMA_VERSION = 2  # bump on any change of the entry/record layout or of what the engines store
MAGIC = b"NBRESUME"
RECORD_MAGIC = b"NBRJ"  # a signed JSON record, followed by its schema version (u16)
_RECORD_SCHEMA = struct.Struct("<H")
_TRAILER = struct.Struct("<I8s")  # header length, MAGIC
_MAC = 32  # bytes of an HMAC-SHA256
MAX_HEADER = 1 << 24  # bytes; a header claiming more is not one of ours
MAX_RECORD = 1 << 26  # bytes; a JSON record (phase, progress, log) is never near this
# 1 MiB: few syscalls, and small enough that a chunk hashed right after its copy to or from the
# page cache is still in the CPU cache (4 MiB chunks hashed 1.7x slower here)
CHUNK = 1 << 20
# bytes of an entry's pickle read before its signature is checked; a larger one (a header may
# claim anything) is verified by streaming first, read afterwards: two reads, no blind allocation
MAX_UNVERIFIED = 1 << 28
KEY_ENV = "NBRESUME_KEY"  # a signing key given directly (CI, shared service accounts)
KEY_BYTES = 32  # random bytes of a new key
MIN_KEY_BYTES = 16  # shorter keys (file or environment) are refused: anyone could guess them


# -- the key ------------------------------------------------------------------------------------


def _config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "nbresume"


def key_path() -> Path:
    return _config_dir() / "key"


def signing_key() -> bytes:
    """The per-user signing key: ``$NBRESUME_KEY``, else a random key created once with mode 0600.

    Raises `StoreError` (one line, what to do) for a short key or a key location that cannot be
    used; the engines turn it into a warning and keep the cell's live result.
    """
    env = os.environ.get(KEY_ENV)
    if env is not None:
        # NB. bytes that are not UTF-8 come as lone surrogates: the key is the bytes as set
        raw = env.encode("utf-8", "surrogateescape")
        if len(raw) < MIN_KEY_BYTES:
            raise StoreError(
                f"{KEY_ENV} is {len(raw)} bytes; a signing key needs at least "
                f'{MIN_KEY_BYTES}: set it to a long random string (python -c "import secrets; '
                f'print(secrets.token_hex(32))") or unset it to use a key file'
            )
        return raw
    path = key_path()
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _key_error(path, exc) from exc
    try:
        try:
            return _create_key(path)
        except FileExistsError:  # another kernel created it first (or a file is in the way)
            return _read_key(path)
    except OSError as exc:
        raise _key_error(path, exc) from exc


def _key_error(path: Path, exc: OSError) -> StoreError:
    return StoreError(
        f"cannot use the signing key at {str(path)!r} ({exc.strerror or exc}); make "
        f"{str(path.parent)!r} a folder you own, or set {KEY_ENV} to a random string of at "
        f"least {MIN_KEY_BYTES} bytes"
    )


def _read_key(path: Path) -> bytes:
    # NB. O_NONBLOCK: opening a FIFO for reading would wait for a writer forever
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(
                f"the signing key at {str(path)!r} is not a regular file; it was not used: "
                "delete it (a new key is made; run `nbresume trust` on your stores afterwards) "
                f"or set {KEY_ENV}"
            )
        os.set_blocking(fd, True)
        key = f.read(4096)
    if len(key) < MIN_KEY_BYTES:
        raise StoreError(
            f"the signing key at {str(path)!r} is {len(key)} bytes (a failed write?); a key needs "
            f"at least {MIN_KEY_BYTES}: delete the file (a new key is made; run `nbresume trust` "
            "on your stores afterwards) or set NBRESUME_KEY"
        )
    if info.st_uid != os.geteuid():
        raise StoreError(
            f"the signing key at {str(path)!r} belongs to another user (uid {info.st_uid}), who "
            "could forge checkpoints with it; it was not used: delete it (a new key is made; "
            "run `nbresume trust` on your stores afterwards) or set NBRESUME_KEY"
        )
    _check_folder(path.parent)
    if info.st_mode & 0o077 and not _told_mode(path):
        warnings.warn(
            f"the signing key at {str(path)!r} is readable by other users (mode "
            f"{stat.S_IMODE(info.st_mode):o}): they could forge checkpoints; run chmod 600 "
            f"{str(path)!r}",
            NbresumeWarning,
            stacklevel=3,
        )
    return key


_told: set[Path] = set()


def _check_folder(folder: Path) -> None:
    """Warn once when others may replace the key: its folder is writable by them (no sticky bit)."""
    try:
        info = folder.stat()
    except OSError:
        return
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX and not _told_mode(folder):
        warnings.warn(
            f"the folder of the signing key {str(folder)!r} is writable by other users (mode "
            f"{stat.S_IMODE(info.st_mode):o}): they could replace the key and forge "
            f"checkpoints; run chmod 700 {str(folder)!r}",
            NbresumeWarning,
            stacklevel=4,
        )


def _told_mode(path: Path) -> bool:
    told = path in _told
    _told.add(path)
    return told


def _create_key(path: Path) -> bytes:
    """Write a new key atomically: a complete 0600 file appears under its name, or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = os.urandom(KEY_BYTES)
    temporary = path.with_name(f".key-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        os.link(temporary, path)  # NB. unlike rename, never replaces a key another kernel made
    finally:
        os.unlink(temporary)
    return key


# -- records ------------------------------------------------------------------------------------


def _record_mac(key: bytes, name: str, payload: bytes) -> bytes:
    mac = hmac.new(key, f"nbresume-record/{SCHEMA_VERSION}\0{name}\0".encode(), hashlib.sha256)
    mac.update(payload)
    return mac.digest()


def seal_record(key: bytes, name: str, value: Any) -> bytes:
    """The signed bytes of the JSON record ``value`` stored under ``name``."""
    payload = json.dumps(value, default=str).encode()
    head = RECORD_MAGIC + _RECORD_SCHEMA.pack(SCHEMA_VERSION)
    return head + _record_mac(key, name, payload) + payload


class OtherVersionError(ValueError):
    """A record written by another schema version of nbresume (not a forgery: a clean miss)."""


def open_record(key: bytes, name: str, data: bytes) -> Any:
    """The JSON value of a record `seal_record` made for ``name``; ValueError if it is not one."""
    head = len(RECORD_MAGIC) + _RECORD_SCHEMA.size
    if data[: len(RECORD_MAGIC)] != RECORD_MAGIC or len(data) < head + _MAC:
        raise ValueError("not a signed nbresume record")
    (schema,) = _RECORD_SCHEMA.unpack(data[len(RECORD_MAGIC) : head])
    if schema != SCHEMA_VERSION:
        raise OtherVersionError(f"written by schema {schema}")
    payload = data[head + _MAC :]
    if not hmac.compare_digest(_record_mac(key, name, payload), data[head : head + _MAC]):
        raise ValueError("its signature does not verify")
    return _parse_json(payload)


def _parse_json(data: bytes) -> Any:
    """``json.loads``; ValueError for JSON nested too deeply to parse (not a RecursionError).

    NB. an entry's header and an unsigned record are parsed before a signature can be checked:
    their nesting is anyone's; and how deep parses depends on the caller's stack depth.
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("its JSON is nested too deeply") from None


# -- entries ------------------------------------------------------------------------------------


class EntryWriter:
    """An entry as a stream of parts, the buffers straight from memory (no copy).

    The store writes it to its value file (`write_to`). Each chunk of a buffer is hashed after it
    was written, while it is still in the CPU cache: the digest costs no second pass over the data.
    """

    def __init__(
        self, pickled: _serialize.Pickled, key: bytes, meta: dict[str, Any], entry: str
    ) -> None:
        self.id = os.urandom(12).hex()  # the row's tag: binds the row to this very file
        self.nbytes = pickled.nbytes  # all but the small trailer
        self._parts: Iterator[memoryview] = self._generate(pickled, key, meta, entry)

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
                # NB. chunks end at multiples of CHUNK in the file, not in the buffer: a write
                # that ends inside a page makes the kernel fill in the rest (1.15x slower here)
                end = min(buffer.nbytes, start + CHUNK - (offset + start) % CHUNK)
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
                "id": self.id,
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

    def write_to(self, f: IO[bytes]) -> int:
        """Write the whole entry to the new, empty file ``f``; returns its size."""
        size = 0
        for part in self._parts:
            size += f.write(part)
        return size


def read_header(f: IO[bytes]) -> tuple[bytes, bytes, dict[str, Any], int]:
    """The header bytes, the MAC, the parsed header and the file's size; ValueError if malformed.

    Every length in the header is checked against the file's real size: a header can never make
    a reader allocate more than the file holds.
    """
    end = f.seek(0, os.SEEK_END)
    if end < _TRAILER.size + _MAC:
        raise ValueError("truncated")
    f.seek(end - _TRAILER.size)
    header_len, magic = _TRAILER.unpack(f.read(_TRAILER.size))
    if magic != MAGIC or header_len > MAX_HEADER or header_len + _MAC + _TRAILER.size > end:
        raise ValueError("not an nbresume entry, or truncated")
    f.seek(end - _TRAILER.size - _MAC - header_len)
    header_bytes = f.read(header_len)
    mac = f.read(_MAC)
    header = _parse_json(header_bytes)
    if not isinstance(header, dict):
        raise ValueError("malformed header")
    body = end - _TRAILER.size - _MAC - header_len
    sizes = [header.get("pickle"), *(header.get("buffers") or [])]
    digests = header.get("digests")
    if (
        not all(type(n) is int and n >= 0 for n in sizes)
        or not isinstance(header.get("buffers"), list)
        or not isinstance(digests, list)
        or len(digests) != len(sizes) - 1
        or not all(isinstance(d, str) for d in digests)
        or sum(sizes) != body
    ):
        raise ValueError("its header does not describe its data")
    return header_bytes, mac, header, end


def _not_signed(name: str, where: str) -> StoreError:
    return StoreError(
        f"entry {name!r} in {where!r} is not signed by your key; it was not loaded. "
        f"If you trust this store, run: nbresume trust {where!r}"
    )


def _streamed_mac_matches(f: IO[bytes], key: bytes, size: int, header: bytes, mac: bytes) -> bool:
    """Whether the HMAC of ``size`` bytes of ``f`` and ``header`` is ``mac``, in CHUNK reads."""
    check = hmac.new(key, digestmod=hashlib.sha256)
    left = size
    while left:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            raise ValueError("truncated")
        check.update(chunk)
        left -= len(chunk)
    check.update(header)
    return hmac.compare_digest(check.digest(), mac)


def read_entry(f: IO[bytes], key: bytes, name: str, where: str, tag: object) -> _serialize.Verified:
    """Read and verify the entry ``name`` from ``f``: the only way to get bytes to unpickle.

    ``tag``: the id its row names (an older file put back under the same key is refused).
    Raises `StoreError` (`StoreVersionError` for another schema) if it is not usable.
    """
    try:
        header_bytes, mac, header, _ = read_header(f)
        if header.get("schema") != SCHEMA_VERSION:
            raise StoreVersionError(
                f"entry {name!r} in {where!r} has schema {header.get('schema')!r}, this "
                f"nbresume reads schema {SCHEMA_VERSION}; it will be recomputed"
            )
        f.seek(0)
        if header["pickle"] > MAX_UNVERIFIED:
            # NB. the size comes from a header not verified yet: a sparse file may claim
            # gigabytes it does not hold; verify by streaming before allocating any of it
            if not _streamed_mac_matches(f, key, header["pickle"], header_bytes, mac):
                raise _not_signed(name, where)
            f.seek(0)
            data = f.read(header["pickle"])
            if xxhash.xxh3_128_hexdigest(data) != header.get("pickle_digest"):
                raise ValueError("its data changed while it was read")
        else:
            data = f.read(header["pickle"])
            expected = hmac.new(key, data, hashlib.sha256)
            expected.update(header_bytes)
            if not hmac.compare_digest(expected.digest(), mac):
                if xxhash.xxh3_128_hexdigest(data) != header.get("pickle_digest"):
                    raise ValueError("its data does not match its digest")
                raise _not_signed(name, where)
        if header.get("key") != name:
            raise ValueError(f"it was written as {header.get('key')!r}")
        if header.get("id") != tag:
            raise StoreError(
                f"entry {name!r} in {where!r} is an older copy put back in place of the current "
                "one (a replay); it was not loaded and will be recomputed"
            )
        buffers = [
            read_buffer(f, n, d) for n, d in zip(header["buffers"], header["digests"], strict=True)
        ]
    except StoreError:
        raise
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise StoreError(f"entry {name!r} in {where!r} is corrupt: {exc}") from exc
    return _serialize.Verified(data, buffers, header.get("meta") or {})


def read_buffer(f: IO[bytes], nbytes: int, digest: str) -> Any:
    buffer = _serialize.allocate(nbytes)
    view = memoryview(buffer).cast("B")
    h = xxhash.xxh3_128()
    for start in range(0, nbytes, CHUNK):
        chunk = view[start : start + CHUNK]
        if f.readinto(chunk) != chunk.nbytes:  # type: ignore[attr-defined]
            raise ValueError("truncated buffer")
        h.update(chunk)
    if h.hexdigest() != digest:
        raise ValueError("a data buffer does not match its digest")
    return buffer


# -- trusting a store made with another key: structure checked, nothing unpickled ---------------

NOT_A_RECORD: Any = object()


def unsigned_record(f: IO[bytes]) -> Any:
    """The JSON of a record whatever key signed it; `NOT_A_RECORD` if ``f`` holds no record.

    ValueError if it is one but damaged. ``f`` is left at its start.
    """
    f.seek(0)
    if f.read(len(RECORD_MAGIC)) != RECORD_MAGIC:
        f.seek(0)
        return NOT_A_RECORD
    data = f.read(MAX_RECORD + 1)
    skip = _RECORD_SCHEMA.size + _MAC
    if not skip <= len(data) <= MAX_RECORD or data[: _RECORD_SCHEMA.size] != _RECORD_SCHEMA.pack(
        SCHEMA_VERSION
    ):
        raise ValueError("not a record of this version")
    return _parse_json(data[skip:])


def unsigned_entry(f: IO[bytes], name: str) -> tuple[_serialize.Pickled, dict[str, Any]]:
    """An entry's pickle and buffers whatever key signed it, checked against its digests only.

    For `nbresume trust`, which re-signs them: nothing is unpickled, every size is bounded by the
    file's real size (`read_header`). ValueError if it is damaged or was written under another key.
    """
    _, _, header, _ = read_header(f)
    f.seek(0)
    data = f.read(header["pickle"])
    if xxhash.xxh3_128_hexdigest(data) != header.get("pickle_digest"):
        raise ValueError("its data does not match its digest")
    if header.get("key") != name:
        raise ValueError(f"it was written as {header.get('key')!r}")
    buffers = [
        read_buffer(f, n, d) for n, d in zip(header["buffers"], header["digests"], strict=True)
    ]
    meta = header.get("meta")
    views = [memoryview(b).cast("B") for b in buffers]
    return _serialize.Pickled(data, views), meta if isinstance(meta, dict) else {}
