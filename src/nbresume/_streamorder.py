"""The order in which a kernel showed a cell's outputs, from the order they were written.

ipykernel buffers stdout and stderr apart: a write is sent when its stream is flushed, either
``flush_interval`` (0.2 s) after the first write into an empty buffer, or when the kernel flushes
both (stdout first) before a display, a result, and at the end of the cell. A warning written
just before a print is therefore shown after it. The recorder stamps each new output with the
time it was written (`STAMP`); `shown_order` replays the kernel's flushes on those stamps, so a
restore shows what the first run showed.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["STAMP", "shown_order"]

STAMP = "_written"  # key of an output's write time (time.monotonic); never saved
STREAMS = ("stdout", "stderr")  # the order of the kernel's own flushes


def flush_interval() -> float | None:
    """ipykernel's flush interval of ``sys.stdout``; None outside a kernel (no buffering)."""
    interval = getattr(sys.stdout, "flush_interval", None)
    return interval if isinstance(interval, int | float) else None


def shown_order(
    outputs: list[dict[str, Any]], end: float, interval: float | None = None
) -> list[dict[str, Any]]:
    """``outputs`` (in the order written) in the order the kernel showed them; stamps dropped.

    ``end`` is when the cell ended; ``interval`` the kernel's flush interval (default: the
    running kernel's; without one the written order is the shown order).
    """
    if interval is None:
        interval = flush_interval()
    if interval is None:
        return [_unstamped(o) for o in outputs]
    shown: list[dict[str, Any]] = []
    pending: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def flush(name: str) -> None:
        shown.extend(_unstamped(o) for o in pending.pop(name)[1])

    def due(now: float) -> None:  # the flushes the kernel's timer made before ``now``
        for name in sorted(
            (n for n in pending if pending[n][0] <= now), key=lambda n: pending[n][0]
        ):
            flush(name)

    def flush_all() -> None:
        for name in STREAMS:
            if name in pending:
                flush(name)

    for output in outputs:
        written = output.get(STAMP)
        if written is None:  # replayed from a loop's snapshot: it was shown where it is
            flush_all()
            shown.append(output)
            continue
        due(written)
        if output["output_type"] == "stream" and output.get("name") in STREAMS:
            name = output["name"]
            if name in pending:
                pending[name][1].append(output)
            else:
                pending[name] = (written + interval, [output])
        else:
            flush_all()  # NB. ipykernel flushes both streams before it sends a display
            shown.append(_unstamped(output))
    due(end)
    flush_all()
    return shown


def _unstamped(output: dict[str, Any]) -> dict[str, Any]:
    if STAMP not in output:
        return output
    return {k: v for k, v in output.items() if k != STAMP}
