"""nbresume: resumable Jupyter notebooks.

``%%checkpoint NAME`` caches a cell's variables and outputs; ``resumable(items)`` makes a loop
continue where a dead kernel left it. Load it in a notebook with ``%load_ext nbresume``.

Importing this package is cheap: the engines, IPython glue and widgets load on first use.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    CheckpointError,
    CheckpointWarning,
    NbresumeError,
    NbresumeWarning,
    StoreError,
    StoreReadOnlyError,
    StoreVersionError,
)

# NB. bound here, after the submodule of the same name: `from nbresume import resumable` must give
# the class, and importing the submodule first would otherwise leave the module in its place.
from .resumable import resumable

__all__ = [
    "CheckpointError",
    "CheckpointWarning",
    "NbresumeError",
    "NbresumeWarning",
    "StoreError",
    "StoreReadOnlyError",
    "StoreVersionError",
    "__version__",
    "load_ipython_extension",
    "resumable",
]

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbresume``: register ``%%checkpoint`` and put ``resumable`` in the namespace."""
    from ._magics import load

    load(ipython)
