"""The exceptions and warnings nbresume raises.

::

    NbresumeError(Exception)
     ├── StoreError               the store cannot be opened, read or written
     │    ├── StoreVersionError   an entry was written by an incompatible schema version
     │    └── StoreReadOnlyError  a write to a store that could only be opened for reading
     └── CheckpointError          a checkpoint cell or loop was used wrongly

    NbresumeWarning(UserWarning)
     └── CheckpointWarning        something was not saved or not restored; the live result stays

A failure of the cache is a warning, never a lost result: the engines catch `StoreError` around every
save and turn it into a `CheckpointWarning` that says what happened and what to do.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CheckpointWarning",
    "NbresumeError",
    "NbresumeWarning",
    "StoreError",
    "StoreReadOnlyError",
    "StoreVersionError",
]


class NbresumeError(Exception):
    """Base class of every nbresume error."""


class StoreError(NbresumeError):
    """The checkpoint store cannot be opened, read or written."""


class StoreVersionError(StoreError):
    """An entry was written by an incompatible version of nbresume's storage layout."""


class StoreReadOnlyError(StoreError):
    """A write to a store opened for reading only: its entries restore, nothing new is saved."""


class CheckpointError(NbresumeError):
    """A checkpoint cell or a resumable loop was used wrongly (bad name, bad option, bad key)."""


class NbresumeWarning(UserWarning):
    """Base class of every nbresume warning."""


class CheckpointWarning(NbresumeWarning):
    """Something was not saved or not restored; the live values in the kernel are untouched."""
