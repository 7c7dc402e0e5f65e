"""A digest of the done items of a loop keyed by position, checked when it resumes.

Items without a natural key (dicts, rows, objects) are keyed by their position. When their source
is not something nbresume tracks (a CSV, a folder, an API) and a row was inserted, removed or edited
among the done ones before a resume, the done positions hold other items: the saved results would
belong to items that are not there any more. So each item is printed when the loop yields it (before
the body can change it in place) and the prints of the done items are folded into one digest,
saved with the done keys and compared with the same digest of the re-run's first items.

A print is a `marshal` dump (plain data) or a `pickle` (objects), folded into an xxh3 hash: well
under a microsecond for a small dict, against the 25-270 us of a full `fingerprint`.
"""

from __future__ import annotations

import marshal
import pickle
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import xxhash

__all__ = ["SLOW_PRINT_SECONDS", "Prefix", "item_print"]

# a print that takes longer (an item that pickles a large object graph, a shared DataFrame
# referenced by every item) turns the check off for the loop: it falls back to the probes of
# a few items, rather than slowing every item down
SLOW_PRINT_SECONDS = 0.005


def item_print(item: Any) -> bytes:
    """Bytes that change when the item's value does (equal values may print alike or not: a
    false "changed" starts a loop over, it never skips an item). Self-delimiting, so the prints
    of consecutive items concatenate without ambiguity."""
    try:
        return marshal.dumps(item, 2)  # exact builtins only (no refs: the same bytes every run)
    except ValueError:
        return _framed(item)


def _framed(item: Any) -> bytes:
    data = _data(item)
    return len(data).to_bytes(8, "little") + data


def _data(item: Any) -> bytes:
    if isinstance(item, tuple | list):  # a namedtuple, a `df.iterrows()` pair
        return b"T" + b"".join(item_print(part) for part in item)
    series = _series_data(item)
    if series is not None:
        return series
    array = _array_data(item)
    if array is not None:
        return array
    try:
        return b"P" + pickle.dumps(item, 5)
    except Exception:
        pass
    from ._keys import fingerprint

    try:
        return b"F" + fingerprint(item).encode()
    except Exception:
        return b"?" + type(item).__qualname__.encode()  # unprintable: its type at least


def _series_data(item: Any) -> bytes | None:
    """A pandas Series (a `df.iterrows()` row) as plain data: pickling one costs 200 us."""
    if type(item).__name__ != "Series" or type(item).__module__.split(".")[0] != "pandas":
        return None
    try:
        return b"S" + marshal.dumps((item.name, item.index.tolist(), item.tolist()), 2)
    except (ValueError, TypeError):
        return None


def _array_data(item: Any) -> bytes | None:
    """A numpy array by its dtype, shape and a hash of its buffer (no pickled copy)."""
    np = sys.modules.get("numpy")
    if np is None or type(item) is not np.ndarray or item.dtype.hasobject:
        return None
    buffer = np.ascontiguousarray(item)
    head = f"{buffer.dtype.str}{buffer.shape}".encode()
    return b"A" + head + xxhash.xxh3_128_digest(memoryview(buffer).cast("B"))


class Prefix:
    """Prints of the items yielded so far; the digest of the first ``done`` of them.

    The last ``keep`` prints (the item or batch in flight) wait, the older ones are folded.
    """

    __slots__ = ("_hash", "_keep", "_last", "_pending", "folded", "off")

    def __init__(self, keep: int = 1) -> None:
        self._hash = xxhash.xxh3_128()
        self._keep = keep
        self._last: bytes | None = None  # keep == 1: the print of the item in flight
        self._pending: deque[bytes] = deque()  # keep > 1: those of the batch in flight
        self.folded = 0
        self.off = False  # a print was too slow: no digest for this loop

    def add(self, item: Any) -> None:
        if self.off:
            return
        try:
            data = marshal.dumps(item, 2)
        except ValueError:
            start = time.perf_counter()
            data = _framed(item)
            if time.perf_counter() - start > SLOW_PRINT_SECONDS:
                self.off = True
                return
        if self._keep == 1:
            if self._last is not None:
                self._hash.update(self._last)
                self.folded += 1
            self._last = data
            return
        pending = self._pending
        pending.append(data)
        if len(pending) > self._keep:
            self._hash.update(pending.popleft())
            self.folded += 1

    def wrap(self, items: Iterable[Any]) -> Iterator[Any]:
        add = self.add
        for item in items:
            add(item)
            yield item

    def digest(self, done: int) -> str | None:
        """The digest of the first ``done`` items, or None when they were not all printed."""
        if self.off:
            return None
        if self.folded < done and self._last is not None:
            self._hash.update(self._last)
            self.folded += 1
            self._last = None
        pending = self._pending
        while self.folded < done and pending:
            self._hash.update(pending.popleft())
            self.folded += 1
        return self._hash.hexdigest() if self.folded == done else None

    @classmethod
    def of(cls, items: Iterable[Any], count: int) -> Prefix:
        """The prints of the first ``count`` of ``items`` (fewer if there are fewer)."""
        prefix = cls()
        for index, item in enumerate(items):
            if index == count:
                break
            prefix.add(item)
        return prefix
