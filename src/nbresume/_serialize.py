"""Values <-> bytes: the pickle policy.

cloudpickle (so functions and classes defined in a notebook survive a restart) with pickle protocol 5:
large contiguous buffers (numpy arrays, pandas blocks) are kept out of band, so the store writes them
straight from memory and reads them back into ``np.empty`` buffers with no extra copy.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._standins import Unsaved

__all__ = ["Pickled", "Verified", "allocate", "dumps", "dumps_namespace", "loads"]

PROTOCOL = 5  # out-of-band buffers need protocol 5


@dataclass
class Pickled:
    """A pickle stream and the out-of-band buffers it refers to, in order."""

    data: bytes
    buffers: list[memoryview] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return len(self.data) + sum(b.nbytes for b in self.buffers)


PicklerFactory = Callable[..., Any]  # (file, protocol=, buffer_callback=) -> a Pickler


def dumps(obj: Any, pickler: PicklerFactory | None = None) -> Pickled:
    """Pickle ``obj``; contiguous buffers of protocol-5-aware objects stay out of band.

    ``pickler`` makes the pickler (default: cloudpickle's), e.g. one that keeps notebook objects
    as references.
    """
    import io

    import cloudpickle

    buffers: list[memoryview] = []

    def keep(buffer: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(buffer.raw())
        except BufferError:  # not contiguous: let pickle copy it in band
            return True
        return False

    file = io.BytesIO()
    (pickler or cloudpickle.Pickler)(file, protocol=PROTOCOL, buffer_callback=keep).dump(obj)
    return Pickled(file.getvalue(), buffers)


def dumps_namespace(
    values: Mapping[str, Any], extra: Mapping[str, Any], pickler: PicklerFactory | None = None
) -> tuple[Pickled, dict[str, str]]:
    """Pickle ``{"vars": values, **extra}``, with an `Unsaved` in place of each variable that
    cannot be pickled (a hit elsewhere deletes the name rather than leave an older value).

    The variables are pickled as one object, so references shared between them survive. Returns
    the pickle and, for each left-out name, why it failed.
    """
    try:
        return dumps({"vars": dict(values), **extra}, pickler), {}
    except Exception:
        pass
    failures: dict[str, str] = {}
    for name, value in values.items():
        try:
            dumps(value, pickler)
        except Exception as exc:
            failures[name] = _reason(value, exc)
    kept = {n: v for n, v in values.items() if n not in failures}
    for name, why in failures.items():  # a hit must not leave the name to an older value
        if not name.startswith("__nbresume_"):  # the cell's result: replayed from its outputs
            kept[name] = Unsaved.of(name, values[name], why)
    return dumps({"vars": kept, **extra}, pickler), failures


def _reason(value: Any, exc: Exception) -> str:
    t = type(value)
    return f"a {t.__module__}.{t.__qualname__} cannot be pickled: {exc}".replace("builtins.", "")


@dataclass(frozen=True)
class Verified:
    """A pickle and its buffers whose signature verified: made only by `_signing.read_entry`.

    The trust boundary is this type: `loads` takes nothing else, so bytes read from disk cannot
    reach the unpickler without passing the check.
    """

    data: bytes
    buffers: list[Any]
    meta: dict[str, Any]


def loads(verified: Verified) -> Any:
    """Unpickle what `dumps` made, once its signature verified."""
    if not isinstance(verified, Verified):  # NB. a runtime check too: this is the trust boundary
        raise TypeError(f"only verified entries are unpickled, not {type(verified).__name__}")
    return pickle.loads(verified.data, buffers=verified.buffers)


def allocate(nbytes: int) -> Any:
    """A writable buffer of ``nbytes`` to read an out-of-band buffer into.

    numpy's ``np.empty`` is used when numpy is loaded: it is not zero-filled, and arrays rebuilt on
    it own it without a copy (a ``bytearray`` would be zero-filled first, which is 4x slower here).
    """
    np = sys.modules.get("numpy")
    if np is not None:
        return np.empty(nbytes, dtype=np.uint8)
    return bytearray(nbytes)
