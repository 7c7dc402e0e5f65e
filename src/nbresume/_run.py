"""``nbresume run``: execute a notebook headless with nbclient, and run it again when its kernel dies.

`NotebookRun` starts a kernel, runs the cells, and on a kernel death (an OOM kill, ``os._exit``,
SIGKILL) starts a new one and runs the notebook again: finished phases restore from their
checkpoints, the interrupted loop continues. `Report` prints one line per cell (a live line on a
terminal). The output notebook holds the outputs of the attempt that finished.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ._capture import NOTE_KEY  # the metadata key of nbresume's notes in a cell's outputs

EXTENSION = "nbresume"
PLAIN_SECONDS = 10.0  # without a terminal: a progress line of a long cell this often
SKIP_TAG = "skip-execution"  # nbclient's default skip_cells_with_tag

__all__ = [
    "NotebookRun",
    "Report",
    "RunResult",
    "cell_label",
    "loads_extension",
    "signal_name",
    "write_notebook",
]


def write_notebook(nb: Any, output: Path) -> None:
    import nbformat

    from ._files import replacing

    with replacing(output) as tmp:
        nbformat.write(nb, tmp)  # type: ignore[no-untyped-call]


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def loads_extension(nb: Any) -> bool:
    """Whether a code cell of ``nb`` runs ``%load_ext nbresume`` itself."""
    import re

    pattern = re.compile(r"^\s*%load_ext\s+(.*\s)?nbresume(\s|$)", re.MULTILINE)
    return any(c.cell_type == "code" and pattern.search(c.source) for c in nb.cells)


def cell_label(source: str, width: int = 40) -> str:
    """The first line of code of a cell, shortened: ``%%checkpoint sweep --every 1``."""
    lines = [line.strip() for line in source.splitlines()]
    line = next((ln for ln in lines if ln and not ln.startswith("#")), lines[0] if lines else "")
    return line if len(line) <= width else line[: width - 1] + "…"


def phase_name(source: str) -> str | None:
    """The NAME of a ``%%checkpoint NAME`` cell, or None."""
    first = source.lstrip().split("\n", 1)[0].split()
    if len(first) < 2 or first[0] != "%%checkpoint" or first[1].startswith("-"):
        return None
    return first[1]


def progress_text(record: dict[str, Any]) -> str:
    """One line of a ``progress:NAME`` record's active loop: done/total, resumed, rate, ETA."""
    from ._progress import format_duration, format_rate

    loops = record.get("loops") or [{}]
    active = next((loop for loop in loops if loop.get("status") == "running"), loops[0])
    done, total = active.get("done"), active.get("total")
    if done is None:
        return f"running {format_duration(record.get('elapsed'))}"
    text = f"{active.get('desc') or 'loop'}: {done:,}/{'?' if total is None else f'{total:,}'}"
    if active.get("skipped"):
        text += f" ({active['skipped']:,} resumed)"
    text += f", {format_rate(active.get('rate'))}"
    if active.get("eta") is not None:
        text += f", ETA {format_duration(active['eta'])}"
    return text


def cell_notes(outputs: list[Any]) -> dict[str, dict[str, Any]]:
    """nbresume's notes among a cell's outputs, by kind (restored, resuming, running...)."""
    notes: dict[str, dict[str, Any]] = {}
    for output in outputs:
        meta = output.get("metadata") or {}
        note = meta.get(NOTE_KEY) if isinstance(meta, dict) else None
        if output.get("output_type") == "display_data" and isinstance(note, dict):
            notes[str(note.get("kind"))] = note
    return notes


class Report:
    """Progress lines: one per cell when it ends; on a terminal also a live line while it runs."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.clock = clock
        self.cell: str | None = None  # "[3/7] %%checkpoint sweep" while a cell runs
        self.started = 0.0
        self.note = ""
        self._printed = 0.0  # when the last plain progress line was printed

    def start(self, label: str) -> None:
        self.cell, self.started, self.note = label, self.clock(), ""
        self._printed = self.started
        self.draw()

    def noted(self, text: str) -> None:
        """nbresume's latest note of the running cell: on a terminal, shown on its line."""
        self.note = " ".join(text.split())
        self.draw()

    def progress(self, text: str) -> None:
        """The running cell's loop progress, as the store has it. On a terminal it is redrawn in
        place; elsewhere (a CI log, a file) a long cell gets a plain line every `PLAIN_SECONDS`:
        ``[3/7] %%checkpoint sweep ... lr: 12/40 items, 2.1 it/s, ETA 14s``."""
        if self.tty:
            self.noted(text)
        elif self.cell is not None and self.clock() - self._printed >= PLAIN_SECONDS:
            self._printed = self.clock()
            self._write(f"{self.cell} ... {text}\n")

    def draw(self) -> None:
        if not self.tty or self.cell is None:
            return
        import shutil

        from ._progress import format_duration

        text = f"{self.cell} ... {format_duration(self.clock() - self.started)}"
        if self.note:
            text += f"  {self.note}"
        width = shutil.get_terminal_size().columns - 1
        self._write("\r\x1b[K" + text[:width])

    def end(self, outcome: str) -> None:
        """The running cell's last line; without one (between cells), ``outcome`` alone."""
        self.line(outcome if self.cell is None else f"{self.cell} ... {outcome}")
        self.cell = None

    def line(self, text: str) -> None:
        self._write(("\r\x1b[K" if self.tty else "") + text + "\n")

    def _write(self, text: str) -> None:
        """Write and flush; when the reader left (``nbresume run nb.ipynb | head -1``) the lines
        go nowhere from then on: the run goes on and writes its notebook."""
        import os
        import sys

        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            if self.stream is sys.stdout:
                # NB. else Python's flush of stdout at exit reports the broken pipe
                with contextlib.suppress(OSError, ValueError):
                    null = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(null, sys.stdout.fileno())
                    os.close(null)
            self.stream, self.tty = _Discard(), False


class _Discard(io.StringIO):
    """A stream that keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)


@dataclass
class RunResult:
    nb: Any
    error: str | None = None  # one line, when the run failed
    signal: int = 0  # when stopped by SIGINT/SIGTERM
    ran: bool = False  # a kernel ran at least one cell: the notebook holds outputs
    summary: str = ""


@dataclass
class _Attempt:
    nb: Any
    process: Any = None  # the kernel's Popen, to tell how it died
    cell: int | None = None  # index of the cell running (or failed) when the attempt ended
    started: bool = False  # the kernel answered: cells began
    restored: int = 0


class NotebookRun:
    """Run a notebook with nbclient; after a kernel death, run it again in a fresh kernel."""

    def __init__(
        self,
        nb: Any,
        *,
        cwd: Path,
        kernel: str | None,
        timeout: float | None,
        retries: int,
        report: Report,
    ) -> None:
        self.original = nb
        self.cwd = cwd
        self.kernel = kernel
        self.timeout = timeout
        self.retries = retries
        self.report = report
        self.signal = 0  # SIGINT or SIGTERM received: stop, no retry
        self.timed_out = False  # nbclient gave up on a cell: it shuts the busy kernel down
        self._task: Any = None  # the asyncio task running the attempts
        code = [
            i
            for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code"
            and cell.source.strip()
            and SKIP_TAG not in cell.metadata.get("tags", [])
        ]
        self.numbers = {index: n for n, index in enumerate(code, 1)}
        self.labels = {
            index: f"[{n}/{len(code)}] {cell_label(nb.cells[index].source)}"
            for index, n in self.numbers.items()
        }
        # NB. loading it twice prints "already loaded": preload only for notebooks that do not.
        self.preload = not loads_extension(nb)
        self.phases = {
            index: name
            for index in self.numbers
            if (name := phase_name(nb.cells[index].source)) is not None
        }
        self._cell: int | None = None  # the cell running now
        self._cell_started = 0.0  # when it started (epoch seconds)

    def run(self) -> RunResult:
        import asyncio

        return asyncio.run(self._run())

    async def _run(self) -> RunResult:
        import asyncio
        import copy

        from jupyter_client.kernelspec import NoSuchKernel
        from nbclient.exceptions import CellControlSignal

        self._task = asyncio.current_task()
        began = time.monotonic()
        deaths: list[str] = []
        for number in range(self.retries + 1):
            attempt = _Attempt(copy.deepcopy(self.original))
            try:
                await self._execute(attempt)
            except (RuntimeError, CellControlSignal, NoSuchKernel) as exc:
                result = self._stopped(attempt, exc, deaths)
                if result is not None:
                    return result
                self.report.end(f"kernel died ({deaths[-1]}), retry {number + 1}/{self.retries}")
                continue
            return self._succeeded(attempt, deaths, time.monotonic() - began)
        raise AssertionError("unreachable: the last attempt returns")

    def _stopped(self, attempt: _Attempt, exc: Exception, deaths: list[str]) -> RunResult | None:
        """The result of an attempt that raised ``exc``, or None to try again."""
        if self.signal:
            if self.report.cell is not None:
                self.report.end(f"stopped by {signal_name(self.signal)}")
            return RunResult(attempt.nb, signal=self.signal, ran=attempt.started)
        from jupyter_client.kernelspec import NoSuchKernel

        if isinstance(exc, NoSuchKernel) and self.kernel:
            error = f"--kernel {self.kernel!r} is not installed; see jupyter kernelspec list"
            return RunResult(attempt.nb, error=error)
        why = self._failure(attempt, exc)
        if why is not None:
            if self.report.cell is not None:  # a cell error was reported as the cell ended
                self.report.end(why)
            return RunResult(attempt.nb, error=f"{self._where(attempt)} {why}", ran=attempt.started)
        deaths.append(self._how(attempt))
        if len(deaths) <= self.retries:
            return None
        self.report.end(f"kernel died ({deaths[-1]})")
        where = f"{self._where(attempt)} ({deaths[-1]})"
        died = f"in {where}" if len(deaths) == 1 else f"{len(deaths)} times, last in {where}"
        retries = (
            "no retry (--retries 0)"
            if self.retries == 0
            else f"gave up after {self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        )
        return RunResult(
            attempt.nb,
            error=f"the kernel died {died}; {retries}; checkpoints are kept: run again to resume",
            ran=True,
        )

    def _failure(self, attempt: _Attempt, exc: Exception) -> str | None:
        """Why the run failed for good, or None for a kernel death worth a retry."""
        from jupyter_client.kernelspec import NoSuchKernel
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        if isinstance(exc, NoSuchKernel):
            return (
                f"needs kernel {exc.args[0]!r}, which is not installed; see jupyter kernelspec "
                "list, or pass --kernel NAME"
            )
        if isinstance(exc, CellExecutionError):
            return f"raised {_exception(exc.ename, exc.evalue)}"
        if isinstance(exc, CellTimeoutError):
            return (
                # NB. nbclient takes whole seconds: the bound enforced, not the one typed
                f"timed out after {math.ceil(self.timeout or 0)}s (--timeout); checkpoints are "
                "kept: run again to resume"
            )
        if not isinstance(exc, DeadKernelError):
            return f"could not start a kernel: {_first_line(str(exc))}"
        if not attempt.started:
            return f"the kernel died as it started ({self._how(attempt)})"
        return None

    def _succeeded(self, attempt: _Attempt, deaths: list[str], seconds: float) -> RunResult:
        from ._progress import format_duration

        cells = len(self.labels)
        parts = [f"ran {cells} cell{'s' * (cells != 1)} in {format_duration(seconds)}"]
        if attempt.restored:
            parts.append(f"{attempt.restored} restored")
        if deaths:
            parts.append(f"{len(deaths)} kernel restart{'s' * (len(deaths) != 1)}")
        attempt.nb.metadata[NOTE_KEY] = {"attempts": len(deaths) + 1, "kernel_deaths": deaths}
        return RunResult(attempt.nb, ran=True, summary=", ".join(parts))

    def _where(self, attempt: _Attempt) -> str:
        if attempt.cell is None or attempt.cell not in self.numbers:
            return "the notebook"
        label = cell_label(attempt.nb.cells[attempt.cell].source)
        return f"code cell {self.numbers[attempt.cell]} ({label})"

    @staticmethod
    def _how(attempt: _Attempt) -> str:
        process = attempt.process
        code = process.poll() if process is not None else None
        if code is None:
            return "stopped responding"
        if code < 0:
            return signal_name(-code)
        return f"exit code {code}"

    def _kernel_arguments(self) -> list[str]:
        # NB. the kernel's own log (e.g. ipykernel's warning that it runs over TCP without
        # encryption, on localhost) would interleave with the progress lines
        arguments = ["--IPKernelApp.log_level=ERROR"]
        if self.preload:
            arguments.append(f"--InteractiveShellApp.extra_extensions={EXTENSION}")
        return arguments

    async def _execute(self, attempt: _Attempt) -> None:
        import asyncio

        client = _client_class()(
            attempt.nb,
            runner=self,
            attempt=attempt,
            kernel_name=self.kernel or "",
            timeout=math.ceil(self.timeout) if self.timeout else None,
            resources={"metadata": {"path": str(self.cwd)}},
            extra_arguments=self._kernel_arguments(),
        )
        self.handle_signals()
        ticker = asyncio.ensure_future(self._tick())
        relay = _StderrRelay(lambda: bool(self.signal) or self.timed_out or client.quitting)
        try:
            await client.async_execute(stderr=relay.fileno)
        except asyncio.CancelledError:
            if not self.signal:
                raise
            from nbclient.exceptions import DeadKernelError

            raise DeadKernelError("stopped") from None
        finally:
            if ticker is not None:
                ticker.cancel()
            relay.close()

    async def _tick(self) -> None:
        """Once a second: redraw the terminal line; every other second, read the running
        phase's loop progress from the store (the record the dashboard reads)."""
        import asyncio

        for second in itertools.count(1):
            await asyncio.sleep(1)
            self.report.draw()
            name = self.phases.get(self._cell) if self._cell is not None else None
            if name is not None and second % 2 == 0:
                text = self._progress(name)
                if text is not None:
                    self.report.progress(text)

    def _progress(self, name: str) -> str | None:
        """``lr: 12/40 items (8 resumed), 2.1 it/s, ETA 14s`` of phase ``name``'s running loop."""
        from ._store import StoreReader, default_store_dir
        from .errors import NbresumeError

        path = default_store_dir(self.cwd)  # as the kernel sees it
        try:
            with StoreReader(path) as reader:
                record = reader.get_json(f"progress:{name}")
        except (NbresumeError, OSError):  # no store yet, or busy: next time
            return None
        if not isinstance(record, dict) or record.get("status") != "running":
            return None
        if (record.get("started") or 0) < self._cell_started - 5:  # an earlier run's record
            return None
        return progress_text(record)

    def _stop(self, signum: int) -> None:
        self.signal = signum
        if self._task is not None:
            self._task.cancel()

    # -- nbclient hooks -------------------------------------------------------------------------

    def handle_signals(self) -> None:
        """SIGINT and SIGTERM stop the run: no retry, one line, exit 128+n.

        NB. replaces nbclient's handlers, which stop the kernel and go on (a death to retry, or
        during the kernel's start a run that carries on), and asyncio.run's (a CancelledError
        traceback). nbclient removes ours when an attempt ends: each attempt installs them
        again, before its kernel starts."""
        import asyncio
        import signal

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(RuntimeError, NotImplementedError, ValueError):
                loop.add_signal_handler(signum, self._stop, signum)

    def on_start(self, attempt: _Attempt, client: Any) -> None:
        attempt.started = True
        attempt.process = getattr(getattr(client.km, "provisioner", None), "process", None)

    def on_cell_start(self, attempt: _Attempt, index: int) -> None:
        if index in self.labels:
            attempt.cell = self._cell = index
            self._cell_started = time.time()
            self.report.start(self.labels[index])

    def on_cell_executed(self, attempt: _Attempt, cell: Any, index: int, reply: Any) -> None:
        from ._progress import format_duration

        if index not in self.labels:
            return
        content = (reply or {}).get("content", {})
        if content.get("status") == "error":
            if "raises-exception" in cell.metadata.get("tags", []):
                self.report.end(f"raised {content.get('ename')} (allowed by its tag)")
            else:
                self.report.end(
                    f"failed: {_exception(content.get('ename'), content.get('evalue', ''))}"
                )
            return
        notes = cell_notes(cell.outputs)
        elapsed = format_duration(time.monotonic() - self.report.started)
        if "restored" in notes:
            attempt.restored += 1
            self.report.end("restored")
        elif "resuming" in notes:
            done = notes["resuming"].get("done")
            self.report.end(f"done in {elapsed} (resumed after {done} items)")
        elif "running" in notes and notes["running"].get("reason"):
            self.report.end(f"done in {elapsed} ({notes['running']['reason']})")
        else:
            self.report.end(f"done in {elapsed}")
        attempt.cell = None


def _first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def _exception(ename: object, evalue: object) -> str:
    """``ZeroDivisionError: division by zero``; an exception without a message says what it is."""
    message = _first_line(str(evalue or ""))
    if ename == "KeyboardInterrupt" and not message:
        return "KeyboardInterrupt (the kernel was interrupted)"
    return f"{ename}: {message}" if message else f"{ename} (no message)"


class _StderrRelay:
    """The kernel's stderr, copied line by line to ours until the run is stopped.

    NB. a kernel shut down while it runs a cell (Ctrl-C on ``nbresume run``, --timeout) logs a 20-line
    ZMQError traceback as its sockets close: noise after the user's own stop. Anything the kernel
    writes before that (a C library's message, a crash report) still shows.
    """

    def __init__(self, stopped: Callable[[], bool]) -> None:
        import os
        import threading

        self._stopped = stopped
        read, self.fileno = os.pipe()  # the write end becomes the kernel's stderr
        self._thread = threading.Thread(
            target=self._copy, args=(read,), name="nbresume-kernel-stderr", daemon=True
        )
        self._thread.start()

    def _copy(self, read: int) -> None:
        import sys

        with open(read, "rb") as pipe:
            for line in pipe:
                if not self._stopped():
                    with contextlib.suppress(OSError, ValueError):
                        sys.stderr.write(line.decode(errors="replace"))
                        sys.stderr.flush()

    def close(self) -> None:
        """Once the kernel is gone: close our copy of the write end, let the last lines through."""
        import os

        with contextlib.suppress(OSError):
            os.close(self.fileno)
        # NB. a bound, not a wait for something: a process the kernel started may keep the pipe
        self._thread.join(timeout=2.0)


_CLIENT: Any = None


def _client_class() -> Any:
    """nbclient's NotebookClient, calling our hooks and showing nbresume's notes as they arrive."""
    global _CLIENT
    if _CLIENT is not None:
        return _CLIENT
    from nbclient import NotebookClient

    class Client(NotebookClient):
        def __init__(self, nb: Any, *, runner: NotebookRun, attempt: _Attempt, **kw: Any) -> None:
            super().__init__(
                nb,
                on_notebook_start=lambda notebook: runner.on_start(attempt, self),
                on_cell_start=lambda cell, cell_index: runner.on_cell_start(attempt, cell_index),
                on_cell_executed=lambda cell, cell_index, execute_reply: runner.on_cell_executed(
                    attempt, cell, cell_index, execute_reply
                ),
                **kw,
            )
            self.runner = runner

        def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
            content = msg.get("content") or {}
            meta = content.get("metadata")
            if (
                msg.get("msg_type") in ("display_data", "update_display_data")
                and isinstance(meta, dict)
                and NOTE_KEY in meta
            ):
                self.runner.report.noted(str(content.get("data", {}).get("text/plain", "")))
            return super().process_message(msg, cell, cell_index)

        async def async_start_new_kernel(self, **kw: Any) -> None:
            self.runner.handle_signals()  # nbclient has just installed its own
            await self._stopping_kernel(super().async_start_new_kernel(**kw))

        async def async_start_new_kernel_client(self) -> Any:
            return await self._stopping_kernel(super().async_start_new_kernel_client())

        async def _stopping_kernel(self, starting: Any) -> Any:
            """Await ``starting``; when the run is stopped meanwhile, shut the new kernel down
            (nbclient does so only once the kernel is ready)."""
            import asyncio
            import atexit

            try:
                return await starting
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._async_cleanup_kernel())
                # NB. nbclient unregisters its exit-time cleanup only once the kernel is ready:
                # left, it runs at exit on the manager just dropped and prints a traceback
                atexit.unregister(self._cleanup_kernel)
                raise

        quitting = False  # a live kernel is being shut down: what it writes now is noise

        async def _async_cleanup_kernel(self) -> None:
            from nbclient.util import ensure_async

            with contextlib.suppress(Exception):
                # NB. a dead kernel's last words (a crash report) still show
                self.quitting = bool(self.km and await ensure_async(self.km.is_alive()))
            await super()._async_cleanup_kernel()

        async def _async_handle_timeout(self, timeout: int, cell: Any = None) -> Any:
            self.runner.timed_out = True
            return await super()._async_handle_timeout(timeout, cell)

    _CLIENT = Client
    return Client
