"""Kill a notebook's kernel half-way through a loop, run the notebook again, watch it resume.

    python scripts/demo.py

Copies notebooks/quickstart.ipynb into a temporary directory and executes it headless (nbclient).
When the sweep cell has printed half of its lines, a thread SIGKILLs the kernel, as the
out-of-memory killer would. Then the same notebook runs again in the same directory: the finished
cells are restored from their checkpoints and the sweep continues at its first unfinished item.
The executed notebook is written next to the copy. Exit status 0 on success, 1 otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "notebooks" / "quickstart.ipynb"
SWEEP_CELL = "%%checkpoint sweep"  # how the loop cell starts
ITEMS = 20  # learning rates in the sweep
KILL_AFTER = ITEMS // 2  # lines the sweep has printed when the kernel is killed
TIMEOUT = 600  # seconds per cell; the sweep takes about 6 s


class DemoError(Exception):
    """The demo did not show what it should; the message says what went wrong, in one line."""


class WatchingClient(NotebookClient):  # type: ignore[misc]
    """A NotebookClient that counts the lines the sweep cell prints as they arrive."""

    def __init__(self, nb: Any, sweep_index: int, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.sweep_index = sweep_index
        self.lines = 0
        self.halfway = threading.Event()
        self.finished = False

    def output(self, outs: Any, msg: dict[str, Any], display_id: Any, cell_index: int) -> Any:
        out = super().output(outs, msg, display_id, cell_index)
        content = msg["content"]
        if (
            cell_index == self.sweep_index
            and msg["msg_type"] == "stream"
            and content.get("name") == "stdout"
        ):
            self.lines += content["text"].count("\n")
            if self.lines >= KILL_AFTER:
                self.halfway.set()
        return out


def kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NBRESUME_DIR", None)  # the store must be the fresh one next to the copied notebook
    return env


def make_client(nb: Any, workdir: Path, sweep_index: int) -> WatchingClient:
    return WatchingClient(
        nb,
        sweep_index,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        timeout=TIMEOUT,
        startup_timeout=60,
        iopub_timeout=10,
        # the kernel's own log (e.g. "running over TCP without encryption") is noise here
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )


def find_sweep(nb: Any) -> int:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.startswith(SWEEP_CELL):
            return index
    raise DemoError(f"{SOURCE} has no cell starting with {SWEEP_CELL!r}")


def run_killed(copy: Path, sweep_index: int) -> tuple[int, float]:
    """Run 1: SIGKILL the kernel once the sweep printed half its lines -> (lines seen, seconds)."""
    client = make_client(nbformat.read(copy, as_version=4), copy.parent, sweep_index)
    killed: list[int] = []

    def killer() -> None:
        client.halfway.wait()
        if client.finished or client.km is None:
            return
        os.kill(client.km.provisioner.pid, signal.SIGKILL)
        killed.append(client.lines)

    thread = threading.Thread(target=killer, name="killer", daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        client.execute(env=kernel_env())
    except DeadKernelError:
        pass
    except CellExecutionError as exc:
        raise DemoError(f"run 1 failed before the kill: {_first_line(exc)}") from exc
    finally:
        client.finished = True
        client.halfway.set()
        thread.join(timeout=10)
    if not killed:
        raise DemoError("run 1 finished before the sweep was half-way; the kernel was never killed")
    return killed[0], time.monotonic() - start


def run_resumed(copy: Path, sweep_index: int) -> tuple[Any, float]:
    """Run 2: the same notebook, same directory, a fresh kernel -> (executed notebook, seconds)."""
    nb = nbformat.read(copy, as_version=4)
    client = make_client(nb, copy.parent, sweep_index)
    start = time.monotonic()
    try:
        client.execute(env=kernel_env())
    except (CellExecutionError, DeadKernelError) as exc:
        raise DemoError(f"run 2 failed: {_first_line(exc)}") from exc
    return nb, time.monotonic() - start


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _restored_count(cell: Any) -> int:
    """How many items the 'resuming' note of nbresume says were restored."""
    for output in cell.outputs:
        note = output.get("metadata", {}).get("nbresume")
        if note and note.get("kind") == "resuming":
            return int(note.get("done", 0))
    raise DemoError("run 2 did not resume the sweep from a checkpoint (no 'resuming' note)")


def _stdout(cell: Any) -> str:
    return "".join(
        output.get("text", "")
        for output in cell.outputs
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


def main() -> int:
    if not SOURCE.exists():
        raise DemoError(f"{SOURCE} not found; run the demo from a checkout of nbresume")
    workdir = Path(tempfile.mkdtemp(prefix="nbresume-demo-"))
    copy = workdir / SOURCE.name
    shutil.copyfile(SOURCE, copy)
    sweep_index = find_sweep(nbformat.read(copy, as_version=4))
    print(f"nbresume demo: {SOURCE.relative_to(REPO)} copied to {copy}")
    print("run 1: executing headless; the kernel gets SIGKILLed half-way through the sweep")

    started = time.monotonic()
    lines, first_time = run_killed(copy, sweep_index)
    print(f"kernel killed at item {lines + 1}/{ITEMS} (after {first_time:.1f} s)")

    print("run 2: executing the same notebook again, same directory, fresh kernel")
    nb, second_time = run_resumed(copy, sweep_index)
    sweep = nb.cells[sweep_index]
    restored = _restored_count(sweep)
    printed = _stdout(sweep).splitlines()
    if len(printed) != ITEMS:
        raise DemoError(f"the resumed sweep shows {len(printed)} lines, expected {ITEMS}")
    for line in printed:
        print(f"    {line}")
    ran = f"items {restored + 1}..{ITEMS} ran" if restored < ITEMS else "no item ran"
    print(
        f"resumed: {ran}, {restored} items restored from the checkpoint, "
        f"total time {second_time:.1f} s (both runs: {time.monotonic() - started:.1f} s)"
    )
    best = _stdout(nb.cells[-1]).strip()
    if best:
        print(best)

    executed = workdir / f"{copy.stem}.executed.ipynb"
    nbformat.write(nb, executed)
    print(f"executed notebook: {executed}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("demo interrupted", file=sys.stderr)
        sys.exit(130)
