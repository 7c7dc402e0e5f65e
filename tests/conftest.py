"""Shared fixtures. Kernel helpers live in kernel_helpers.py; only thin fixtures here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_helpers import KernelPool


@pytest.fixture
def kernels(tmp_path: Path) -> Iterator[KernelPool]:
    """Start real IPython kernels under tmp_path (``kernels.start("name")``); all shut down after."""
    pool = KernelPool(tmp_path)
    try:
        yield pool
    finally:
        pool.shutdown()
