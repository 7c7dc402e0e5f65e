"""The hint after a long cell without ``%%checkpoint``: one line suggesting it.

`register` hooks IPython's ``pre_run_cell`` / ``post_run_cell`` events (once per shell). A cell
that ran `HINT_SECONDS` or more and is not a checkpoint cell gets one marked line, once per cell
source in a kernel; ``%checkpoint hints off`` (or ``NBRESUME_HINTS=0``) silences it.
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["HINT_SECONDS", "hint_text", "register", "set_enabled"]

HINT_SECONDS = 300.0  # a cell this long is worth a checkpoint
HINTS_ENV = "NBRESUME_HINTS"  # "0" or "off": no hints in any kernel

_state: dict[str, Any] = {"enabled": True, "started": None, "hinted": set()}


def set_enabled(enabled: bool) -> None:
    """``%checkpoint hints on|off`` for this kernel."""
    _state["enabled"] = enabled


def enabled() -> bool:
    return bool(_state["enabled"]) and os.environ.get(HINTS_ENV, "").lower() not in ("0", "off")


def hint_text(seconds: float) -> str:
    """The one line.

    Examples
    --------
    >>> hint_text(432).split(";")[0]
    'nbresume: this cell ran 7m12s'
    """
    from ._progress import format_duration

    return (
        f"nbresume: this cell ran {format_duration(seconds)}; put %%checkpoint NAME on its first "
        "line to keep its results across kernel restarts (%checkpoint hints off silences this)"
    )


def _is_checkpoint_cell(source: str) -> bool:
    return source.lstrip().startswith(("%%checkpoint", "%checkpoint"))


def pre_run_cell(info: Any = None) -> None:
    _state["started"] = time.monotonic()


def post_run_cell(result: Any = None) -> None:
    started, _state["started"] = _state["started"], None
    if started is None or not enabled():
        return
    elapsed = time.monotonic() - started
    source = str(getattr(getattr(result, "info", None), "raw_cell", "") or "")
    if elapsed < HINT_SECONDS or not source.strip() or _is_checkpoint_cell(source):
        return
    hinted: set[int] = _state["hinted"]
    if hash(source) in hinted:  # once per cell: a re-run of the same cell is not told again
        return
    hinted.add(hash(source))
    from IPython.display import publish_display_data

    from ._capture import NOTE_KEY

    publish_display_data(  # type: ignore[no-untyped-call]
        {"text/plain": hint_text(elapsed)},
        metadata={NOTE_KEY: {"kind": "hint", "seconds": round(elapsed, 1)}},
    )


def register(shell: Any) -> None:
    """Hook the shell's cell events, once."""
    events = getattr(shell, "events", None)
    if events is None:
        return
    for name, callback in (("pre_run_cell", pre_run_cell), ("post_run_cell", post_run_cell)):
        if callback not in events.callbacks.get(name, []):
            events.register(name, callback)
