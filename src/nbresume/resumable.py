"""`resumable`: a loop that records its progress and continues where a dead kernel left it.

The per-item path is a bare generator step plus one integer comparison; everything else (clock
reads, progress, snapshots) happens every K items, K adapted to the loop's speed as tqdm's
``miniters``. Progress lives in memory and reaches the store in time-based snapshots.
"""

from __future__ import annotations

import enum
import itertools
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from types import FrameType
from typing import Any, Generic, TypeVar

from . import _host
from ._host import LoopHost, LoopState
from ._keys import fingerprint
from ._loopruns import FAST_KEY_TYPES, print_of, run_batches, run_items, run_plain
from ._loopsite import kept_reason, loop_identity, refuse_inexact, site_of
from ._ownhost import Guard, OwnHost, note_plain
from ._policy import SNAPSHOT_BUDGET, parse_every
from ._prefix import Prefix
from ._progress import LoopProgress
from .errors import CheckpointError

__all__ = ["SNAPSHOT_BUDGET", "Position", "resumable"]  # SNAPSHOT_BUDGET: the docs cite it

T = TypeVar("T")

PROGRESS_SECONDS = 0.1  # listeners (widget, on_progress) hear at most 10 times a second

_SIMPLE_KEYS = (str, bytes, int, float, bool, type(None), PurePath)


@dataclass(frozen=True)
class Position:
    """The key of an item that has no natural key: its position in the iterable."""

    index: int


def default_key(item: Any, index: int) -> Any:
    """The item itself for str, bytes, numbers, None, paths and tuples of those, else its position."""
    if isinstance(item, _SIMPLE_KEYS) or (
        type(item) is tuple and all(isinstance(part, _SIMPLE_KEYS) for part in item)
    ):
        return item
    return Position(index)


@dataclass(frozen=True)
class Fingerprint:
    """The key of an item of a set: a fingerprint of its value (a set's order is not stable)."""

    value: str


def value_key(item: Any) -> Any:
    """The item itself when it is its own key, else a fingerprint of its value."""
    if isinstance(item, _SIMPLE_KEYS) or (
        type(item) is tuple and all(isinstance(part, _SIMPLE_KEYS) for part in item)
    ):
        return item
    return Fingerprint(fingerprint(item))


_Guard = Guard  # NB. the name the test suite's reset helper looks for

_IDENTITY_EQ: Any = object.__eq__  # the __eq__ of a class that defines none


def check_key(key: Any) -> None:
    """Refuse a ``key=`` result that equals only itself: after a restart no saved key matches it.

    An object whose class keeps ``object.__eq__`` compares by identity; its unpickled copy in a
    snapshot is another object, so every item would look new and run again. Classes, enum
    members and None compare by identity too, but unpickle to the very same object.
    """
    if type(key) is tuple or type(key) is frozenset:
        for part in key:
            check_key(part)
    elif (
        type(key).__eq__ is _IDENTITY_EQ
        and key is not None
        and not isinstance(key, type | enum.Enum)
    ):
        raise CheckpointError(
            f"key= returned {key!r:.60} for the first item, a {type(key).__name__} that equals "
            "only itself: after a restart no saved key would match it and done items would run "
            "again; return a str, int or tuple from key= (e.g. key=lambda job: job.id)"
        )


class resumable(Generic[T]):
    """Iterate over ``items``, recording progress so a re-run continues at the first unfinished item.

    An item counts as done when the loop asks for the next one; the item in flight when the kernel
    dies, that raised, or after which the loop ``break``-s is run again next time.

    Inside a ``%%checkpoint`` cell, the cell's ``for`` statements (nested in each other as deep as
    you like) resume mid-way: snapshots also hold every variable the cell has assigned so far
    (``results``, ``model``...) and its outputs, and a re-run restores them and continues with the
    first item not done. Elsewhere (another cell, a script), the done items are remembered under
    ``name`` and skipped on the next run; a loop that completes forgets them. Forms that cannot
    resume exactly are refused with a `CheckpointError` naming the form that works:
    ``[f(x) for x in resumable(xs)]`` (use ``resumable.map``), ``enumerate(resumable(xs))``
    (use ``resumable(enumerate(xs))``), ``zip(resumable(a), resumable(b))``.

    Parameters
    ----------
    items : iterable
        Any iterable: a list, a range, a generator, a file.
    key : callable, optional
        ``key(item)`` -> a hashable key that identifies an item across runs. Default: the item itself
        for str, bytes, numbers, None, paths and tuples of those (repeats counted by occurrence);
        items of a set or frozenset by a fingerprint of their value; else its position.
    name : str, optional
        The loop's identity in its store outside a checkpoint cell, wherever it is called from;
        default: its notebook or script and the text of its ``for`` line.
    total : int, optional
        The number of items, for generators and other unsized iterables.
    desc : str, optional
        Label of the progress bar.
    every : int or str, optional
        Snapshot every N items (``5``) or seconds (``"30s"``). Default: as often as 2% of the
        loop's time allows (a cheap save after every item). Snapshots are taken only between
        items, never in the middle of one.
    batch : int, optional
        Yield lists of ``batch`` items; a batch is done as a whole.
    on_progress : callable, optional
        Called with ``(completed, total, skipped)`` at most 10 times a second.

    Examples
    --------
    >>> squares = []
    >>> for x in resumable(range(4), name="doctest-squares"):
    ...     squares.append(x * x)
    >>> squares
    [0, 1, 4, 9]
    """

    def __init__(
        self,
        items: Iterable[T],
        *,
        key: Callable[[T], Any] | None = None,
        name: str | None = None,
        total: int | None = None,
        desc: str | None = None,
        every: int | float | str | None = None,
        batch: int | None = None,
        on_progress: Callable[[int, int | None, int], object] | None = None,
    ) -> None:
        if not isinstance(items, Iterable):
            raise CheckpointError(
                f"resumable() needs an iterable (a list, range or generator); got {items!r}"
            )
        if key is not None and not callable(key):
            raise CheckpointError(f"key={key!r} is not callable; pass a function item -> key")
        if batch is not None and (
            isinstance(batch, bool) or not isinstance(batch, int) or batch < 1
        ):
            raise CheckpointError(f"batch={batch!r} is not valid; give a whole number >= 1")
        if name is not None and not isinstance(name, str):
            raise CheckpointError(f"name={name!r} is not valid; give a string")
        frame = sys._getframe(1)
        self.site = site_of(frame)
        refuse_inexact(self.site)  # before any item runs: never a wrong value first
        if key is None and isinstance(items, set | frozenset):
            key = value_key  # a set's order changes between processes: key items by value
        self._items = items
        self._seq: Sequence[Any] | None = None
        self._switch: Iterable[Any] | None = None  # restored items to continue with
        self._batch = batch
        self.use_items(items)
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        if total is not None and batch is not None:
            total = -(-total // batch)
        self.total = total
        self._keyfn = key if key is None or key is value_key else self._checking_first(key)
        self._every_items, self._every_seconds = parse_every(every)
        self._on_progress = on_progress
        self.name = name
        self.identity = loop_identity(name, self.site)
        self.loop_id = ""  # set by the host that runs it
        self.progress = LoopProgress(desc or name or self.site.target, total=total)
        self._prior: list[Sequence[Any]] = []  # chunks of done keys, saved or frozen
        self._prior_count = 0
        self._done: list[Any] = []  # keys done since the last freeze (catch-up, keyed loops)
        self._fast_from = 0  # position where the current fast run started
        self._fast_base = 0  # items done before it
        self._seq_have = 0  # positions of the fast run whose keys are in self._prior
        self._pos = 0  # positions done in the fast run, as of the last check
        self._fast = False  # in the fast run (no saved keys left to skip)
        # NB. a weak reference: the loop must not keep its own generator alive, or leaving the
        # loop by an exception would never close it (no final save, a stale host left behind)
        self._gen: weakref.ref[Iterator[T]] | None = None
        # whether an iterator of this loop ran (a second `iter()` before that is harmless: tqdm's
        # asyncio class, the one `tqdm.auto` gives in scripts, calls it in `__init__`)
        self._started = False
        # (id, code) of the frame that iterates this loop, once it started: loops entered
        # while it runs are nested in this one (`OwnHost.encloses`)
        self._consumer: tuple[int, Any] | None = None
        self._current_key: Any = None
        self._host: LoopHost | None = None
        # how an unfinished loop was left: None (break, return, or not yet left), else the
        # exception's name; a cell whose loop an exception left must not be saved as done
        self.left_by: str | None = None
        self._listeners: list[Callable[[LoopProgress], object]] = []
        self._first_print = ""  # a fingerprint of item 0 of an iterator keyed by position
        self._first_same = True  # whether it is the interrupted run's item 0
        self._probe: tuple[int, str] | None = None  # of a sequence: (position, fingerprint)
        self._expect: dict[int, str] = {}  # probes of the interrupted run, checked on resume
        self._restored = False  # the items are the restored objects of a checkpoint cell
        # prints of the items of a loop keyed by position, as yielded: a digest of the done
        # ones is saved and checked on resume (`_prefix`); None for every other loop
        self._prefix: Prefix | None = None
        self._expect_prefix: tuple[int, str] | None = None  # (count, digest) to check

    # -- state --------------------------------------------------------------------------------

    def _checking_first(self, key: Callable[[T], Any]) -> Callable[[T], Any]:
        """``key``, checking the first key it returns; later items call ``key`` itself."""

        def first(item: T) -> Any:
            result = key(item)
            check_key(result)
            self._keyfn = key  # NB. checked once: keyed loops pay nothing per item for it
            return result

        return first

    def switch_items(self, items: Iterable[Any]) -> None:
        """Continue, after the item in flight, with the same positions of ``items`` (restored
        objects that stand for the ones being iterated); sets are left alone (their order may
        differ between a set and its restored copy)."""
        if not isinstance(self._items, set | frozenset):
            self._switch = items

    def _switched(self, consumed: int) -> Iterator[Any]:
        items, self._switch = self._switch, None
        assert items is not None
        if self._seq is not None and isinstance(items, list | tuple | range):
            self._seq = items
        it = iter(items)
        for _ in itertools.islice(it, consumed):
            pass
        return it

    def use_items(self, items: Iterable[Any], restored: bool = False) -> None:
        """Iterate over ``items`` (before the loop starts): a restore swaps in the restored ones."""
        self._restored = restored  # NB. restored objects are the interrupted run's: no probes
        self._items = items
        self._seq = (
            items if isinstance(items, list | tuple | range) and self._batch is None else None
        )

    def _key(self, item: Any, index: int) -> Any:
        if self._keyfn is None:
            key = default_key(item, index)
            if type(key) is Position:
                if index == 0:
                    # NB. a probe of the items (`_probes`), before the loop body changes the item
                    self._first_print = print_of(item)
                    self._first_same = self._first_print == self._expect.get(0, self._first_print)
                    if self._seq is None and not self._restored:
                        self._prefix = Prefix(self._batch or 1)
                # NB. a sequence's items are printed by `Prefix.wrap` (this serves its probes)
                if self._prefix is not None and self._seq is None:
                    self._prefix.add(item)
            return key
        try:
            key = self._keyfn(item)
            hash(key)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(
                f"key function failed on item {index} ({item!r:.60}): {exc!r}; it must return a "
                "hashable value such as a str, int or tuple"
            ) from exc
        return key

    def _printed(self, it: Iterator[Any]) -> Iterator[Any]:
        """``it``, printing each item as it is yielded when a sequence is keyed by position
        (an iterator's items are printed by `_key`)."""
        seq = self._seq
        if (
            seq is None
            or self._keyfn is not None
            or self._restored
            or not len(seq)
            or type(default_key(seq[0], 0)) is not Position
        ):
            return it
        self._prefix = Prefix()
        return self._prefix.wrap(it)

    def _position(self) -> int:
        """Positions done in the current fast run (the in-flight item is not done)."""
        gen = self._gen() if self._gen is not None else None
        frame: FrameType | None = getattr(gen, "gi_frame", None)
        if frame is not None and not getattr(gen, "gi_running", False):
            # NB. the fast loop keeps its index in a local only (an attribute store per item
            # would double the loop's cost); suspended at `yield`, item `n` is in flight.
            n = frame.f_locals.get("n")
            if isinstance(n, int) and n >= self._fast_from:
                return n
        return self._pos

    def _freeze(self, chunk: Sequence[Any]) -> None:
        if not chunk:
            return
        last = self._prior[-1] if self._prior else None
        if (
            isinstance(chunk, range)
            and isinstance(last, range)
            and last.stop == chunk.start
            and last.step == chunk.step == 1
        ):
            self._prior[-1] = range(last.start, chunk.stop)
            self._prior_count += len(chunk)
            return
        self._prior.append(chunk)
        self._prior_count += len(chunk)

    def _seq_keys(self, start: int, stop: int) -> Sequence[Any]:
        """Keys of ``seq[start:stop]``: the slice itself when every item is its own key."""
        seq = self._seq
        assert seq is not None
        chunk = seq[start:stop]
        if isinstance(chunk, range) or all(type(item) in FAST_KEY_TYPES for item in chunk):
            return chunk
        return [default_key(seq[i], i) for i in range(start, stop)]

    def state(self) -> LoopState:
        """The keys of the done items, in chunks; keys of sequences are made only here."""
        if self._done:
            self._freeze(self._done[:])
            self._done.clear()
        if self._seq is not None and self._fast:
            pos = max(self._position(), self._seq_have)
            self._freeze(self._seq_keys(max(self._seq_have, self._fast_from), pos))
            self._seq_have = pos
        prefix = None
        if self._prefix is not None:
            digest = self._prefix.digest(self._prior_count)
            prefix = None if digest is None else (self._prior_count, digest)
        return LoopState(
            chunks=list(self._prior), total=self.total, probes=self._probes(prefix), prefix=prefix
        )

    def _probes(self, prefix: tuple[int, str] | None) -> tuple[tuple[int, str], ...]:
        """Fingerprints of items the loop body has not touched yet (in-place work on an item
        must not look like a change), for loops keyed by position: a source nbresume does not
        track (a CSV, a folder, an API) may put other items at the done positions before a
        resume. An iterator's first item, taken before it ran; a sequence's item after the one
        in flight, which a row inserted or removed before it moves."""
        if self._keyfn is not None:
            return ()
        seq = self._seq
        if seq is None:
            return ((0, self._first_print),) if self._first_print else ()
        if prefix is not None:
            return ()  # the digest covers every done item; the items after them may change
        after = self._prior_count + len(self._done) + 1
        if after >= len(seq) or type(default_key(seq[0], 0)) is not Position:
            return ()
        if self._probe is None or self._probe[0] != after:
            self._probe = (after, print_of(seq[after]))
        return (self._probe,) if self._probe[1] else ()

    def done_so_far(self) -> int:
        """Items done so far; it changes exactly when the item in flight changes."""
        if self._fast and self._seq is not None:
            return self.done_count(self._position())
        return self._prior_count + len(self._done)

    def done_count(self, position: int) -> int:
        return self._fast_base + position - self._fast_from

    @property
    def in_flight_key(self) -> Any:
        """The key of the item being processed (nested loops are told apart by it)."""
        seq = self._seq
        if seq is not None and self._fast:
            pos = self._position()
            if pos < len(seq):
                return self._key(seq[pos], pos)
        gen = self._gen() if self._gen is not None else None
        frame: FrameType | None = getattr(gen, "gi_frame", None)
        if self._fast and frame is not None and "key" in frame.f_locals:
            return frame.f_locals["key"]  # keyed fast path: a local, not an attribute store
        return self._current_key

    # -- iteration ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[T]:
        if self._gen is not None and self._started:
            raise CheckpointError(
                "this resumable() was already iterated; create a new one for each loop"
            )
        host = _host.current_host()
        if isinstance(host, OwnHost) and not host.encloses():
            host = None  # another loop's generator, suspended: not this loop's parent
        own: OwnHost | None = None
        kept = kept_reason(self.site) if host is None else None
        if kept is not None:  # NB. decided before a host opens the store: nothing to save
            note_plain(kept)
            gen: Iterator[Any] = run_plain(self)
            self._gen = weakref.ref(gen)
            return gen
        if host is None:
            own = OwnHost(self.identity)
            host = own
        reason = host.plain_reason(self.site)
        if reason is not None:
            host.note_plain(reason)
            gen = run_plain(self, host)
        else:
            self._host = host
            gen = (
                run_items(self, host, own) if self._batch is None else run_batches(self, host, own)
            )
        self._gen = weakref.ref(gen)
        return gen

    # -- progress -----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[LoopProgress], object]) -> None:
        """Call ``listener(progress)`` at most 10 times a second (the widget uses this)."""
        self._listeners.append(listener)

    def _tick(self, done: int, now: float | None = None) -> None:
        progress = self.progress
        progress.done = done
        progress.updated = progress.clock() if now is None else now
        self._emit()

    _last_emit = -1.0

    def _emit(self, force: bool = False) -> None:
        if not self._listeners and self._on_progress is None:
            return
        now = self.progress.updated
        if not force and now - self._last_emit < PROGRESS_SECONDS:
            return
        self._last_emit = now
        if self._on_progress is not None:
            self._on_progress(self.progress.done, self.progress.total, self.progress.skipped)
        for listener in self._listeners:
            listener(self.progress)

    def __repr__(self) -> str:
        return f"<resumable {self.progress.text()}>"

    @staticmethod
    def map(
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        *,
        key: Callable[[Any], Any] | None = None,
        name: str | None = None,
        executor: Any = None,
        desc: str | None = None,
    ) -> list[Any]:
        """Apply ``fn`` to every item (in parallel with ``executor``); results in input order.

        Each result is saved by the calling process as it arrives (workers never touch the
        store), so after a kernel death a re-run computes only the missing items. A result is
        keyed by a fingerprint of its item and of ``fn``: a changed item or a changed function is
        computed again. An item that raises does not stop the others: their results are kept, a
        `CheckpointError` names the failed keys at the end, and a re-run retries only those.

        Parameters
        ----------
        fn : callable
            The function applied to each item; for a process pool it must be picklable, as for
            ``executor.map``.
        items : iterable
            The items, read into a list first.
        key : callable, optional
            ``key(item)`` -> the item's key across runs. Default: the item itself for str, bytes,
            numbers, None, paths and tuples of those, else a fingerprint of its value.
        name : str, optional
            The map's identity in its store; default: where it is called from (its notebook or
            script and the text of its line).
        executor : optional
            A ``concurrent.futures`` executor (``ProcessPoolExecutor``, ``ThreadPoolExecutor``)
            or a ``distributed.Client``; default: run in this process, one item after another.
        desc : str, optional
            Label of the progress bar.

        Returns
        -------
        list
            ``fn(item)`` for every item, in the order of ``items``.

        Examples
        --------
        >>> from nbresume import resumable
        >>> resumable.map(abs, [-1, 2, -3], name="doctest-abs")
        [1, 2, 3]
        """
        from ._map import resumable_map

        site = loop_identity(None, site_of(sys._getframe(1)))
        return resumable_map(fn, items, key=key, name=name, executor=executor, desc=desc, site=site)
