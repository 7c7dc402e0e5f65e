"""Shared fixtures. Kernel helpers live in kernel_helpers.py; only thin fixtures here.

The in-process shell (`shell`, `run_cell`) runs each test in its own working directory with a
fixed signing key and nbresume's module-level registries reset. Cells count their executions
with ``tick(label)`` (in the namespace), which appends a line to ./runs.txt: a namespace counter
would be an input of the cell and change its key, and ``open(...).write`` in the cell leaves a
file for the garbage collector (a ResourceWarning, an error under ``filterwarnings = error``).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from traitlets.config import Config

from kernel_helpers import TEST_KEY, KernelPool

# CI gets the same examples on every run: a property test may find a new case on a developer's
# machine, never fail CI by a draw nobody can replay
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    """Module and session fixtures sign with the test key too: a user's key file is never read."""
    os.environ["NBRESUME_KEY"] = TEST_KEY
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="nbresume-test-config-")


@pytest.fixture(autouse=True)
def _test_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test signs with the test key and keeps key files under tmp_path: never the user's."""
    monkeypatch.setenv("NBRESUME_KEY", TEST_KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def kernels(tmp_path: Path) -> Iterator[KernelPool]:
    """Start real IPython kernels under tmp_path (``kernels.start("name")``); all shut down after."""
    pool = KernelPool(tmp_path)
    try:
        yield pool
    finally:
        pool.shutdown()


# -- the in-process shell ---------------------------------------------------------------------

NOTE_KEY = "nbresume"  # metadata key of nbresume's own notes (never part of a cell's output)
RUNS_FILE = "runs.txt"  # cells count their executions here (a namespace counter would be an input)


@dataclass
class Event:
    """One thing a cell showed: a stream write, a display_data or a clear_output."""

    kind: str  # stream | display | clear
    name: str = ""  # stdout | stderr, for streams
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_note(self) -> bool:
        return self.kind == "display" and NOTE_KEY in self.metadata


@dataclass
class CellRun:
    """What running one cell produced."""

    result: ExecutionResult
    events: list[Event]

    @property
    def error(self) -> BaseException | None:
        return self.result.error_before_exec or self.result.error_in_exec

    @property
    def value(self) -> Any:
        return self.result.result

    @property
    def stdout(self) -> str:
        return "".join(e.text for e in self.events if e.kind == "stream" and e.name == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(e.text for e in self.events if e.kind == "stream" and e.name == "stderr")

    @property
    def notes(self) -> list[Event]:
        return [e for e in self.events if e.is_note]

    @property
    def note_text(self) -> str:
        return "\n".join(e.data.get("text/plain", "") for e in self.notes)

    @property
    def displays(self) -> list[Event]:
        """display_data of the cell itself (nbresume's notes left out)."""
        return [e for e in self.events if e.kind == "display" and not e.is_note]

    @property
    def outputs(self) -> list[tuple[str, Any]]:
        """The cell's own outputs in order, consecutive writes to one stream merged."""
        merged: list[tuple[str, Any]] = []
        for event in self.events:
            if event.is_note:
                continue
            if event.kind == "stream":
                if merged and merged[-1][0] == event.name:
                    merged[-1] = (event.name, merged[-1][1] + event.text)
                else:
                    merged.append((event.name, event.text))
            else:
                merged.append((event.kind, (event.data, event.metadata)))
        return merged


def runs(label: str = "") -> int:
    """How many times cells logged ``label`` with `tick` (all labels when empty)."""
    try:
        lines = Path(RUNS_FILE).read_text().splitlines()
    except FileNotFoundError:
        return 0
    return sum(1 for line in lines if not label or line == label)


def tick(label: object = "x") -> None:
    """Log one execution; cells call it (a function input whose fingerprint never changes)."""
    with open(RUNS_FILE, "a") as f:
        f.write(f"{label}\n")


class _Stream(io.StringIO):
    """A text stream logging every write (a Python subclass, so ``write`` is patchable)."""

    def __init__(self, name: str, events: list[Event]) -> None:
        super().__init__()
        self.name = name
        self.events = events

    def write(self, text: str) -> int:
        self.events.append(Event("stream", name=self.name, text=text))
        return super().write(text)


class RecordingDisplayPublisher(DisplayPublisher):
    """Keeps what was published instead of printing ``text/plain`` to stdout.

    The engine's recorder patches ``publish`` on the instance during a cell and restores it after,
    so it wraps this class's method and the two compose.
    """

    def __init__(self, events: list[Event], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events = events

    def publish(  # type: ignore[override]
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        self.events.append(
            Event("display", data=copy.deepcopy(dict(data)), metadata=copy.deepcopy(metadata or {}))
        )

    def clear_output(self, wait: bool = False) -> None:
        self.events.append(Event("clear", text=str(wait)))


class NbShell(InteractiveShell):
    """The in-process shell. ``%matplotlib inline`` needs ``enable_gui``, which only the terminal
    and kernel shells implement; inline needs no GUI event loop, so a no-op is faithful."""

    def enable_gui(self, gui: str | None = None) -> None:
        if gui not in (None, "inline"):
            raise NotImplementedError(f"no GUI event loop {gui!r} in the test shell")


@pytest.fixture(scope="session")
def _ipython() -> InteractiveShell:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = NbShell.instance(config=config)
    shell.colors = "nocolor"
    return shell


def reset_nbresume_state() -> None:
    """Forget what earlier tests left in nbresume's module-level registries."""
    from nbresume import _host, _store, checkpoint

    resumable_module = sys.modules.get("nbresume.resumable")
    guard = getattr(resumable_module, "_Guard", None)
    if _host.current_host() is not None or (guard is not None and guard.active is not None):
        _host.set_host(None)
        gc.collect()  # loops abandoned by the test finish now, while their store is open
        if guard is not None and guard.active is not None:
            guard.active.remove()
    for store in _store._stores.values():
        store.close()
    _store._stores.clear()
    checkpoint.phases.clear()
    checkpoint._told_store.clear()


def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For plain-Python loop tests what the shell fixture gives cells: their own working
    directory, the test key, no user configuration, fresh registries and once-per-process notes,
    and the SIGTERM handler put back (``yield from isolated(...)`` in an autouse fixture)."""
    from nbresume import _ownhost

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NBRESUME_KEY", TEST_KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NBRESUME_DIR", raising=False)
    reset_nbresume_state()
    _ownhost._noted.clear()  # each test hears its once-per-process notes
    sigterm = signal.getsignal(signal.SIGTERM)
    yield
    reset_nbresume_state()
    signal.signal(signal.SIGTERM, sigterm)


@pytest.fixture
def shell(
    _ipython: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InteractiveShell]:
    """The in-process IPython shell with ``%load_ext nbresume`` done, in its own working directory.

    The store is ./.nbresume of a fresh tmp_path, signed with a fixed test key; nothing of the
    user's configuration is read.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBRESUME_DIR", raising=False)
    reset_nbresume_state()
    shell = _ipython
    hook = shell.displayhook
    full_cache, hook.do_full_cache = hook.do_full_cache, False
    try:
        shell.reset(new_session=False)  # NB. without the displayhook's flush: a full gc, 0.1 s
    finally:
        hook.do_full_cache = full_cache
    shell.compile.reset_compiler_flags()  # NB. an earlier test's `from __future__ import ...`
    events: list[Event] = []
    shell.display_pub = RecordingDisplayPublisher(events, shell=shell)
    shell.extension_manager.loaded.discard("nbresume")
    result = shell.run_line_magic("load_ext", "nbresume")
    assert result is None, result
    shell.user_ns["tick"] = tick
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        yield shell
    finally:
        reset_nbresume_state()
        signal.signal(signal.SIGTERM, sigterm)
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close("all")


@pytest.fixture
def run_cell(shell: InteractiveShell) -> Callable[..., CellRun]:
    """``run_cell(source)`` -> `CellRun`: runs a cell in the shell and records what it showed."""

    def run(source: str, *, store_history: bool = False) -> CellRun:
        events: list[Event] = []
        shell.display_pub.events = events
        stdout, stderr = _Stream("stdout", events), _Stream("stderr", events)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            result = shell.run_cell(source, store_history=store_history)
        return CellRun(result, events)

    return run


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``nbresume ARGV`` in-process -> (exit status, stdout, stderr)."""
    from nbresume.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
