"""A restored cell shows its streams in the order the kernel showed them, not the order they were
written: ipykernel buffers stdout and stderr apart and flushes stdout first at the end of a cell,
so a warning written before a print is shown after it."""

from __future__ import annotations

from typing import Any

import pytest

from kernel_helpers import KernelPool, note_kinds, own_outputs, read_runs
from nbresume._streamorder import STAMP, shown_order

pytestmark = pytest.mark.kernel

SETUP = """\
%load_ext nbresume
import warnings
def mark(i):
    with open("runs.txt", "a") as f:
        f.write(f"{i}\\n")
"""

WARN_THEN_PRINT = """\
%%checkpoint warned
mark(0)
warnings.warn("parsing is deprecated")
print("info: 55 rows")
display("a table")
print("after the table")
"""


def _shown(outputs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(stream name or output type, text) of the cell's own outputs, streams merged."""
    shown: list[tuple[str, str]] = []
    for output in own_outputs(outputs):
        if output["output_type"] == "stream":
            if shown and shown[-1][0] == output["name"]:
                shown[-1] = (output["name"], shown[-1][1] + output["text"])
            else:
                shown.append((output["name"], output["text"]))
        else:
            shown.append((output["output_type"], str(output.get("data", {}).get("text/plain"))))
    return shown


def test_a_restore_shows_stdout_and_stderr_in_the_order_the_first_run_showed(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    kernel.run(SETUP)
    first = _shown(kernel.run(WARN_THEN_PRINT))
    assert [kind for kind, _ in first][:2] == ["stdout", "stderr"]  # how ipykernel shows it
    kernel.restart()
    kernel.run(SETUP)
    again = kernel.run(WARN_THEN_PRINT)
    assert read_runs(kernel.workdir / "runs.txt") == [0]
    assert "restored" in note_kinds(again)
    assert _shown(again) == first


# -- the simulation itself (no kernel) ------------------------------------------------------------


def _out(name: str, text: str, written: float | None) -> dict[str, Any]:
    output: dict[str, Any] = {"output_type": "stream", "name": name, "text": text}
    if written is not None:
        output[STAMP] = written
    return output


def _display(written: float) -> dict[str, Any]:
    return {"output_type": "display_data", "data": {"text/plain": "d"}, STAMP: written}


def _texts(outputs: list[dict[str, Any]]) -> list[str]:
    return [o.get("text", "display") for o in outputs]


@pytest.mark.parametrize(
    ("outputs", "end", "shown"),
    [
        # written within one flush interval: the end of the cell flushes stdout first
        ([_out("stderr", "warn", 0.0), _out("stdout", "info", 0.01)], 0.02, ["info", "warn"]),
        # the cell went on: the timer flushed stderr first
        ([_out("stderr", "warn", 0.0), _out("stdout", "info", 0.01)], 5.0, ["warn", "info"]),
        # a long gap between the writes: stderr was sent before stdout was written
        ([_out("stderr", "warn", 0.0), _out("stdout", "info", 0.5)], 0.5, ["warn", "info"]),
        # a display flushes both streams first, stdout first
        (
            [_out("stderr", "w", 0.0), _out("stdout", "i", 0.01), _display(0.02)],
            0.03,
            ["i", "w", "display"],
        ),
        # outputs put back from a loop's snapshot keep their places
        ([_out("stderr", "old", None), _out("stdout", "new", 1.0)], 1.01, ["old", "new"]),
    ],
)
def test_the_kernels_flushes_are_replayed_on_the_write_times(
    outputs: list[dict[str, Any]], end: float, shown: list[str]
) -> None:
    ordered = shown_order(outputs, end, interval=0.2)
    assert _texts(ordered) == shown
    assert all(STAMP not in o for o in ordered)


def test_outside_a_kernel_the_written_order_is_kept() -> None:
    outputs = [_out("stderr", "warn", 0.0), _out("stdout", "info", 0.01)]
    assert _texts(shown_order(outputs, 0.02)) == ["warn", "info"]  # pytest's stdout: no buffer
