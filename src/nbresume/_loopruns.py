"""How a `resumable` loop runs its items: the done ones skipped (once the probed items of a
loop keyed by position proved to be the interrupted run's), then the fast path.

The per-item path is a bare generator step plus one integer comparison; everything else (clock
reads, progress, snapshots) happens every K items, K adapted to the loop's speed as tqdm's
``miniters``. NB. `resumable._position` and `resumable.in_flight_key` read the locals ``n`` and
``key`` of `run_items`'s suspended frame: keep those names.
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from ._host import LoopHost
from ._keys import fingerprint
from ._ownhost import Guard, OwnHost
from ._policy import SnapshotPolicy, closed_by_exception
from ._prefix import Prefix
from .errors import CheckpointError

if TYPE_CHECKING:
    from .resumable import resumable

__all__ = ["FAST_KEY_TYPES", "print_of", "run_batches", "run_items", "run_plain"]

T = TypeVar("T")

CHECK_SECONDS = 0.02  # aim for a clock read about this often, whatever the loop's speed
MAX_STEP = 100_000  # never go longer than this many items without a clock read
FAST_KEY_TYPES = frozenset({str, bytes, int, float, bool, type(None)})  # exact types, no subclass

_END: Any = object()


def _attach(loop: resumable[Any], host: LoopHost) -> Counter[Any]:
    saved = host.attach(loop)
    if saved is None:
        return Counter()
    if loop._keyfn is None and not loop._restored:
        loop._expect = dict(saved.probes)
        loop._expect_prefix = saved.prefix
        if loop._seq is not None and not (_same_items(loop, host) and _same_prefix(loop, host)):
            return Counter()
    remaining: Counter[Any] = Counter()
    for chunk in saved.chunks:
        loop._freeze(chunk)
        remaining.update(chunk)
    loop.progress.skipped = loop.progress.done = loop._prior_count
    return remaining


def _same_prefix(loop: resumable[Any], host: LoopHost, seen: int | None = None) -> bool:
    """Whether the first items are those the interrupted run did (the digest of their prints);
    ``seen``: how many items an iterator yielded (a sequence's are printed here)."""
    expect, loop._expect_prefix = loop._expect_prefix, None
    if expect is None:
        return True
    count, digest = expect
    prefix = Prefix.of(loop._seq, count) if loop._seq is not None else loop._prefix
    if seen is not None and seen < count:
        now = None  # fewer items now: the done ones cannot all be there
    elif prefix is None or prefix.off:
        return True  # printing was too slow this time: the probes alone decide
    else:
        now = prefix.digest(count)
    if now == digest:
        return True
    return _changed(loop, host, None)


def _same_items(loop: resumable[Any], host: LoopHost) -> bool:
    """Whether the items at the probed positions are those of the interrupted run; a change
    is refused in a checkpoint cell (its variables hold the results of the other items)."""
    expect, loop._expect = loop._expect, {}
    seq = loop._seq
    for index, mark in expect.items():
        if seq is None:
            same = index != 0 or loop._first_same
        else:
            same = index < len(seq) and print_of(seq[index]) == mark
        if not same:
            return _changed(loop, host, index)
    return True


def _changed(loop: resumable[Any], host: LoopHost, index: int | None) -> bool:
    """Refuse items that changed since the interrupted run (in a cell), or say the loop starts
    over (outside cells) and return False. ``index``: the item that differs, when known."""
    which = (
        f"item {index + 1} is not the one of the interrupted run"
        if index is not None
        else "the done items are not those of the interrupted run"
    )
    if not isinstance(host, OwnHost):
        where = f"line {loop.site.lineno}" + (f" ({loop.site.text!r})" if loop.site.text else "")
        raise CheckpointError(
            f"{where}: {which} (the items are keyed by position and their source "
            "changed): the saved results belong to other items; run the cell with --force "
            "to start over, or pass key= to match items by an id"
        )
    differs = (
        "an item inserted, removed or edited" if index is None else f"item {index + 1} differs"
    )
    print(
        f"nbresume: the items of {loop.identity!r} changed since the interrupted run "
        f"({differs}; they are keyed by position): starting over",
        file=sys.stderr,
    )
    return False


def _forget_prior(loop: resumable[Any]) -> None:
    loop._prior, loop._prior_count = [], 0
    loop.progress.skipped = loop.progress.done = 0


def run_plain(loop: resumable[Any], host: LoopHost | None = None) -> Iterator[Any]:
    """A loop that cannot resume mid-way where it is: it runs every item, with progress.
    Left by an exception the cell goes on after, it tells ``host`` (its cell is not done)."""
    loop._started = True
    if host is not None:
        host.started_plain(loop)
    done = 0
    items: Iterable[Any] = loop._items
    if loop._batch is not None:
        items = _batched(iter(loop._items), loop._batch)
    try:
        for item in items:
            yield item
            done += 1
            loop._tick(done)
        loop.progress.status = "done"
    except BaseException as exc:
        _left(loop, exc, sys._getframe(1))
        if host is not None and loop.left_by is not None:
            host.left_plain(loop)
        raise
    finally:
        loop._emit(force=True)


def run_items(loop: resumable[T], host: LoopHost, own: OwnHost | None) -> Iterator[T]:
    loop._started = True
    loop._consumer = _frame_key(sys._getframe(1))
    guard = Guard(host) if own is not None else None
    complete = False
    index = n = 0
    clock = loop.progress.clock
    step = 1
    try:
        remaining = _attach(loop, host)  # NB. in the try: a refusal still detaches the loop
        it = loop._printed(iter(loop._items))
        replay = _Replay(loop)
        policy = SnapshotPolicy(loop, host, clock())
        last_check = policy.last
        if guard is not None:
            guard.install()
        if own is not None:
            own.enter()
        # catch-up: skip the items a saved state says are done, compute keys one by one;
        # every item is a boundary here (a saved key may never come: a removed item)
        while remaining:
            item = next(it, _END)
            if item is _END:
                if replay.pending() and not _same_prefix(loop, host, seen=index):
                    it, index = replay.restart(remaining, it), 0
                break
            key = loop._key(item, index)
            if index == 0 and loop._expect and not _same_items(loop, host):
                remaining.clear()  # outside cells: nothing skipped yet, start over
                _forget_prior(loop)
            replay.keep(item)
            index += 1
            if index == replay.check_at and not _same_prefix(loop, host):
                it, index = replay.restart(remaining, it), 0
                break
            if remaining[key] > 0:
                remaining[key] -= 1
                if not remaining[key]:
                    del remaining[key]
                continue
            loop._current_key = key
            yield item
            loop._done.append(key)
            done = loop._prior_count + len(loop._done)
            now = clock()
            loop._tick(done, now)
            policy.boundary(now, done)
            if loop._switch is not None:
                it = loop._switched(index)
        # fast path: one comparison per item; keys of sequences are computed at snapshot time
        loop._fast_from = loop._pos = loop._seq_have = index
        loop._fast_base = loop._prior_count + len(loop._done)
        loop._fast = True
        next_check = n = index
        keyed = loop._seq is None or loop._keyfn is not None  # a failing key= fails now
        plain = loop._keyfn is None
        done_append = loop._done.append
        key_of = loop._key
        start = index
        while True:
            for n, item in enumerate(it, start):
                if keyed:
                    key = item if plain and type(item) in FAST_KEY_TYPES else key_of(item, n)
                    yield item
                    done_append(key)
                else:
                    yield item
                if n < next_check:
                    continue
                # -- every K items: clock, progress, snapshot policy (a boundary: item n done)
                loop._pos = n + 1
                now = clock()
                done = loop.done_count(n + 1)
                loop._tick(done, now)
                now = policy.boundary(now, done)
                elapsed = now - last_check
                last_check = now
                grown = int(step * CHECK_SECONDS / elapsed) if elapsed > 0 else 2 * step
                step = max(1, min(grown, 2 * step, MAX_STEP))
                if policy.every_items is not None:
                    step = min(step, policy.every_items - done % policy.every_items)
                next_check = n + step
                if loop._switch is not None:  # a restore put the restored items in place
                    it, start = loop._switched(n + 1), n + 1
                    break
            else:
                break
        loop._pos = _position_after(loop, index)
        complete = True
        done = loop.done_count(loop._pos)
        loop._tick(done)
        policy.boundary(clock(), done, last=True)
    except BaseException as exc:
        _left(loop, exc, sys._getframe(1))
        # the item in flight is not done; NB. _pos == n + 1 (never so when closed at a yield):
        # raised at item n's boundary (a stop, after its snapshot), so item n is done
        if loop._fast and (isinstance(exc, GeneratorExit) or loop._pos != n + 1):
            loop._pos = n
            loop.progress.done = loop.done_count(n)
        raise
    finally:
        _finish(loop, host, own, guard, complete)


class _Replay:
    """The items an iterator keyed by position yielded while its done ones were skipped, kept
    until the digest of the done ones says they are the interrupted run's: outside cells a
    changed source starts over, and a generator cannot be iterated twice."""

    LIMIT = 100_000  # more than this and a changed source is an error, not a start over

    def __init__(self, loop: resumable[Any]) -> None:
        self.loop = loop
        expect = loop._expect_prefix if loop._seq is None else None
        self.check_at = -1 if expect is None else expect[0]
        self.items: list[Any] | None = None
        if expect is not None and iter(loop._items) is loop._items:
            self.items = []

    def pending(self) -> bool:
        return self.loop._expect_prefix is not None

    def keep(self, item: Any) -> None:
        items = self.items
        if items is None:
            return
        if not self.pending() or len(items) >= self.LIMIT:
            self.items = None  # checked (nothing more to keep), or too many to keep
        else:
            items.append(item)

    def restart(self, remaining: Counter[Any], it: Iterator[Any]) -> Iterator[Any]:
        """Forget the saved progress; -> the items from the first (outside cells only)."""
        loop = self.loop
        remaining.clear()
        _forget_prior(loop)
        if loop._done:  # NB. an item with a natural key ran already: the run is no fresh start
            raise CheckpointError(
                f"the items of {loop.identity!r} changed since the interrupted run and some "
                "ran already; run the loop again to start over, or pass key= to match items "
                "by an id"
            )
        loop._prefix = None  # printed again from the first item
        if iter(loop._items) is not loop._items:
            return iter(loop._items)
        if self.items is None:
            raise CheckpointError(
                f"the items of {loop.identity!r} changed since the interrupted run (they are "
                f"keyed by position) and more than {self.LIMIT:,} were read to find it out: its "
                "progress is cleared, run the loop again to start over (or pass key= to match "
                "items by an id)"
            )
        items, self.items = self.items, None
        return itertools.chain(items, it)


def _frame_key(frame: FrameType | None) -> tuple[int, Any] | None:
    return None if frame is None else (id(frame), frame.f_code)


def _position_after(loop: resumable[Any], index: int) -> int:
    seq = loop._seq
    if seq is not None:
        return len(seq)
    return index + loop._prior_count + len(loop._done) - loop._fast_base


def run_batches(loop: resumable[Any], host: LoopHost, own: OwnHost | None) -> Iterator[Any]:
    """``batch=N``: lists of N items, each batch done as a whole (keys recorded together)."""
    loop._started = True
    loop._consumer = _frame_key(sys._getframe(1))
    guard = Guard(host) if own is not None else None
    complete = False
    size = loop._batch or 1
    clock = loop.progress.clock
    try:
        remaining = _attach(loop, host)
        policy = SnapshotPolicy(loop, host, clock())
        if guard is not None:
            guard.install()
        if own is not None:
            own.enter()
        batch: list[Any] = []
        keys: list[Any] = []
        it = iter(loop._items)
        replay = _Replay(loop)
        index = 0
        while True:
            item = next(it, _END)
            if item is _END:
                if replay.pending() and not _same_prefix(loop, host, seen=index):
                    it, index, batch, keys = replay.restart(remaining, it), 0, [], []
                    continue
                break
            key = loop._key(item, index)
            if index == 0 and loop._expect and not _same_items(loop, host):
                remaining.clear()  # outside cells: nothing skipped yet, start over
                _forget_prior(loop)
            replay.keep(item)
            index += 1
            if index == replay.check_at and not _same_prefix(loop, host):
                it, index, batch, keys = replay.restart(remaining, it), 0, [], []
                continue
            if remaining[key] > 0:
                remaining[key] -= 1
                continue
            batch.append(item)
            keys.append(key)
            if len(batch) < size:
                continue
            loop._current_key = keys[0]
            yield batch
            loop._done.extend(keys)
            batch, keys = [], []
            now = clock()
            done = -(-(loop._prior_count + len(loop._done)) // size)
            loop._tick(done, now)
            policy.boundary(now, done)
        if batch:
            loop._current_key = keys[0]
            yield batch
            loop._done.extend(keys)
        complete = True
        done = -(-(loop._prior_count + len(loop._done)) // size)
        loop._tick(done)
        policy.boundary(clock(), done, last=True)
    except BaseException as exc:
        _left(loop, exc, sys._getframe(1))
        raise
    finally:
        _finish(loop, host, own, guard, complete)


def _left(loop: resumable[Any], exc: BaseException, closer: FrameType | None) -> None:
    """The loop was left unfinished by ``exc``: closed by the frame ``closer`` that iterated
    it (a ``break``, or an exception unwinding that frame), or an error raised in the loop
    itself (a failing key=, a stop at a boundary, Ctrl-C)."""
    if isinstance(exc, GeneratorExit):
        loop.progress.status = "interrupted"
        loop.left_by = closed_by_exception(closer)
    else:
        loop.progress.status = "failed"
        loop.left_by = type(exc).__name__


def _finish(
    loop: resumable[Any], host: LoopHost, own: OwnHost | None, guard: Guard | None, complete: bool
) -> None:
    if complete:
        loop.progress.status = "done"
    try:
        host.detach(loop, complete)
    finally:
        if guard is not None:
            guard.remove()
        if own is not None:
            own.close()
        loop._emit(force=True)


def _batched(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(it, size)):
        yield batch


def print_of(item: Any) -> str:
    """A fingerprint of ``item`` for a probe; "" when it has none (no probe then)."""
    try:
        return fingerprint(item)
    except Exception:
        return ""
