"""`resumable.map`: a resumable parallel map over concurrent.futures executors or Dask.

Workers never touch the store: results come back to this process, which saves them in small
chunks as they arrive (``map:ID:N``), so the store needs no shared file system. A re-run loads the
saved chunks and computes only the missing items.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from . import _host
from ._keys import fingerprint
from ._progress import LoopProgress
from .errors import CheckpointError, CheckpointWarning, StoreError, StoreReadOnlyError

__all__ = ["resumable_map"]

FLUSH_SECONDS = 0.05  # save new results at most this often (plus once at the end)
IN_FLIGHT_PER_WORKER = 4  # bounded submission: memory stays flat for 100,000 items


class _Saver:
    """Results by item key, saved as numbered chunks of new results."""

    def __init__(self, prefix: str) -> None:
        from ._serialize import dumps
        from ._store import open_store

        self._dumps = dumps
        self.prefix = prefix
        self.results: dict[Any, Any] = {}
        self._new: dict[Any, Any] = {}
        self._chunks = 0
        self.added = 0  # results computed by this run
        self._last = time.monotonic()
        self._warned = False
        try:
            self.store: Any = open_store()
            notice = self.store.read_only_notice()
            if notice is not None:
                warnings.warn(notice, CheckpointWarning, stacklevel=4)
            for key in self.store.keys(prefix):
                chunk = self.store.get(key)
                if isinstance(chunk, dict):
                    self.results.update(chunk)
                self._chunks += 1
        except StoreError as exc:
            self._warn(exc)
            self.store = None

    def _warn(self, exc: Exception) -> None:
        if not self._warned and not isinstance(exc, StoreReadOnlyError):  # told when it opened
            self._warned = True
            warnings.warn(f"{exc}; results are not saved", CheckpointWarning, stacklevel=4)

    def add(self, key: Any, value: Any) -> None:
        self.results[key] = value
        self._new[key] = value
        self.added += 1
        if time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if not self._new or self.store is None:
            return
        try:
            self.store.put(f"{self.prefix}{self._chunks:08d}", self._dumps(self._new))
        except StoreError as exc:
            self._warn(exc)
            return
        self._chunks += 1
        self._new = {}

    def clear(self) -> None:
        if self.store is None:
            return
        try:
            for key in self.store.keys(self.prefix):
                self.store.delete(key)
        except StoreError as exc:
            self._warn(exc)


def _map_id(fn: Callable[..., Any], name: str | None, site: str) -> str:
    # NB. the function's fingerprint is part of the id: changing `fit` must not return old results
    return f"{name or site}:{fingerprint(fn)[:16]}"


def resumable_map(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    key: Callable[[Any], Any] | None = None,
    name: str | None = None,
    executor: Any = None,
    desc: str | None = None,
    site: str = "map",
) -> list[Any]:
    """Apply ``fn`` to every item, in parallel if an executor is given; results in input order.

    Each result is saved as soon as it arrives, so after a kernel death a re-run computes only the
    missing items. ``executor`` is a `concurrent.futures` executor or a ``dask.distributed.Client``.
    An item that raises does not stop the others: their results are kept, and a `CheckpointError`
    names the failed keys at the end; a re-run retries only those.

    Examples
    --------
    >>> import os, tempfile
    >>> os.environ["NBRESUME_DIR"] = tempfile.mkdtemp()
    >>> from nbresume import resumable
    >>> resumable.map(abs, [-1, 2, -3], name="doctest-abs")
    [1, 2, 3]
    """
    from .resumable import value_key

    if not callable(fn):
        raise CheckpointError(f"resumable.map needs a function first; got {fn!r}")
    if not isinstance(items, Iterable):
        raise CheckpointError(f"resumable.map needs an iterable of items; got {items!r}")
    values = list(items)
    keys = []
    for index, item in enumerate(values):
        try:
            # NB. by value, never by position: a changed item must be computed again
            keys.append(key(item) if key is not None else value_key(item))
        except Exception as exc:
            raise CheckpointError(
                f"key function failed on item {index} ({item!r:.60}): {exc!r}"
            ) from exc
    host = _host.current_host()
    cell_key = getattr(host, "key", None) if host is not None else None
    prefix = f"map:{cell_key or ''}:{_map_id(fn, name, site)}:"
    saver = _Saver(prefix)
    progress = LoopProgress(desc or name or "map", total=len(values))
    todo = [i for i in range(len(values)) if keys[i] not in saver.results]
    progress.skipped = progress.done = len(values) - len(todo)
    errors: dict[int, BaseException] = {}
    try:
        if executor is None:
            for i in todo:
                try:
                    saver.add(keys[i], fn(values[i]))
                except Exception as exc:
                    errors[i] = exc
                progress.update(progress.skipped + saver.added)
        else:
            _run_parallel(
                fn,
                values,
                keys,
                todo,
                executor=executor,
                saver=saver,
                errors=errors,
                progress=progress,
            )
    finally:
        saver.flush()
    if errors:
        first = min(errors)
        failed = ", ".join(repr(keys[i]) for i in sorted(errors)[:5])
        raise CheckpointError(
            f"{len(errors)} of {len(values)} items failed (keys {failed}); the first, key "
            f"{keys[first]!r}, raised {errors[first]!r}; the other results are saved: fix the "
            "cause and run again to compute only the failed items"
        ) from errors[first]
    results = [saver.results[k] for k in keys]
    if cell_key is None:
        saver.clear()  # a completed map outside a checkpoint cell starts fresh next time
    return results


def _is_dask(executor: Any) -> bool:
    return type(executor).__module__.startswith("distributed")


def _run_parallel(
    fn: Callable[[Any], Any],
    values: list[Any],
    keys: list[Any],
    todo: list[int],
    *,
    executor: Any,
    saver: _Saver,
    errors: dict[int, BaseException],
    progress: LoopProgress,
) -> None:
    workers = _workers(executor)
    limit = max(2, workers * IN_FLIGHT_PER_WORKER)
    queue = iter(todo)
    running: dict[Any, list[int]] = {}
    batches = _Batches(len(todo), workers)
    dask = _is_dask(executor)

    def submit() -> None:
        while len(running) < limit:
            # NB. Dask ships one item a task: its workers then need nothing but `fn`
            chunk = list(itertools.islice(queue, 1 if dask else batches.size))
            if not chunk:
                return
            if dask:
                future = executor.submit(fn, values[chunk[0]], pure=False)  # same item twice: twice
            else:
                future = executor.submit(_apply, fn, [values[i] for i in chunk])
            running[future] = chunk

    try:
        submit()
        while running:
            for future in _wait_any(executor, list(running)):
                chunk = running.pop(future)
                try:
                    if dask:
                        outcomes = [(True, future.result())]
                    else:
                        seconds, outcomes = future.result()
                        batches.finished(len(chunk), seconds)
                except Exception as exc:  # the item (Dask), or the batch's transport, failed
                    outcomes = [(False, exc)] * len(chunk)
                for i, (ok, value) in zip(chunk, outcomes, strict=True):
                    if ok:
                        saver.add(keys[i], value)
                    else:
                        errors[i] = value
            progress.update(progress.skipped + saver.added)
            submit()
    finally:
        for future in running:
            future.cancel()


BATCH_SECONDS = 0.05  # a batch of quick items takes about this long: few futures, fast saves
MAX_BATCH = 1024


class _Batches:
    """How many items go in one future: 1 at first, then as many as run in `BATCH_SECONDS`.

    Quick items (microseconds: a dict lookup, a small computation) cost a future, a pickle round
    trip and a wake-up each; in batches they cost a fraction of ``executor.map``'s. Slow items
    (the usual case: a fit, a download) stay one per future, each saved as soon as it ends, and
    a batch never holds more than a fair share of what is left (load balance at the end).
    """

    def __init__(self, items: int, workers: int) -> None:
        self.size = 1
        self._fair = max(1, items // (workers * IN_FLIGHT_PER_WORKER))

    def finished(self, items: int, seconds: float) -> None:
        """A batch of ``items`` took ``seconds`` in its worker."""
        per_item = max(seconds / items, 1e-7)
        self.size = max(1, min(self._fair, MAX_BATCH, int(BATCH_SECONDS / per_item)))


def _apply(fn: Callable[[Any], Any], items: list[Any]) -> tuple[float, list[tuple[bool, Any]]]:
    """Run ``fn`` over a batch in a worker: its time, and ``(True, result)`` or
    ``(False, exception)`` for each item."""
    start = time.perf_counter()
    outcomes: list[tuple[bool, Any]] = []
    for item in items:
        try:
            outcomes.append((True, fn(item)))
        except Exception as exc:
            outcomes.append((False, exc))
    return time.perf_counter() - start, outcomes


def _wait_any(executor: Any, futures: list[Any]) -> list[Any]:
    if _is_dask(executor):
        from distributed import wait

        done = wait(futures, return_when="FIRST_COMPLETED").done  # type: ignore[no-untyped-call]
        return list(done)
    done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
    return list(done)


def _workers(executor: Any) -> int:
    if _is_dask(executor):
        try:
            return max(1, int(sum(executor.nthreads().values())))
        except Exception:
            return 2
    return int(getattr(executor, "_max_workers", 2) or 2)
