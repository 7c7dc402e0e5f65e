"""The ``%%checkpoint`` engine: lookup -> hit (restore + replay) | miss (run, record, save).

No IPython decorators here: the engine needs only the few parts of a shell named by `Shell`, so it
runs against a real kernel, a terminal IPython or a test's fake alike. It never displays anything
itself except the cell's own outputs (recorded, or replayed); notes go to the ``notify`` callback.

`CheckpointRun` holds one run's state and its order of steps; the steps live beside it: a hit in
`_restore`, saving a finished miss in `_save`, going on from an interrupted run in `_continue`,
compiling in `_cellcode`, records/notes/progress views in `_runlog` (its base class), and the
loops the cell runs in `_loophost`.
"""

from __future__ import annotations

import ast
import contextlib
import os
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from . import _globalstate, _host
from ._capture import (
    Recorder,
    emit_execute_result,
    spill_directory,
)
from ._cellcode import RESULT, compile_cell, flush_figures, transform
from ._continue import (
    earlier_interrupted,
    items_done,
    note_run,
    own_interrupted,
    start_note,
    take_over,
)
from ._gate import check_expression, check_gate
from ._history import (
    FIRST_RUN,
    Version,
)
from ._host import LoopState
from ._keys import (
    analyze_cell,
    cell_key,
    describe_change,
    file_inputs,
    hash_text,
    normalize_source,
)
from ._loophost import CellLoops
from ._namespace import (
    Ref,
    Unresolved,
    analysis_source,
    resolving,
)
from ._progress import PhaseProgress
from ._restore import restore
from ._runlog import Note, Notify, RunLog, Watch, phases
from ._runlog import told_store as _told_store  # noqa: F401  (tests clear it: a new kernel)
from ._save import save
from ._store import MISSING, Store, open_store
from ._text import debugging, unexpected
from ._tracking import NamespaceTracker, cell_inputs
from ._usermodules import import_inputs
from .errors import CheckpointError, CheckpointWarning, StoreError

__all__ = [
    "RESULT",
    "CheckpointOptions",
    "Note",
    "Notify",
    "Shell",
    "Watch",
    "phases",
    "run_checkpoint",
    "run_checkpoint_async",
]

UNREADABLE = "unreadable:"  # + random hex: the input of a refused cell, which never matches


class Shell(Protocol):
    """The parts of an IPython shell the engine uses."""

    user_ns: dict[str, Any]
    display_pub: Any
    displayhook: Any
    display_formatter: Any
    compile: Any

    def transform_cell(self, raw_cell: str) -> str: ...
    def transform_ast(self, node: ast.AST) -> ast.AST: ...


@dataclass(frozen=True)
class CheckpointOptions:
    """What ``%%checkpoint NAME [options]`` asked for."""

    name: str | None = None
    force: bool = False
    no_deps: bool = False
    exclude: frozenset[str] = frozenset()
    every: int | str | None = None
    quiet: bool = False
    validate: str | None = None
    continue_run: bool = False  # --continue: keep the items of an interrupted run of other code


wall_clock: Callable[[], float] = time.time  # a run's start and duration (tests move it)
# runs that failed their --validate gate, kept (in memory only) for `%checkpoint mark NAME done`
rejected: dict[str, CheckpointRun] = {}


class CheckpointRun(RunLog):
    """One execution of a checkpoint cell; also the `LoopHost` of the loops it runs."""

    def __init__(
        self,
        shell: Shell,
        cell: str,
        options: CheckpointOptions,
        store: Store,
        notify: Notify,
        *,
        watch: Watch | None = None,
    ) -> None:
        self.shell = shell
        self.watch = watch
        self.options = options
        self.store = store
        self.notify = notify
        self.transformed = transform(shell, cell)
        self.source = normalize_source(self.transformed)
        self.analysis = analysis_source(self.transformed)  # with %time's statements
        self.names = analyze_cell(self.analysis)
        ns = shell.user_ns
        self.inputs: dict[str, str] = {}
        if not options.no_deps:
            self.inputs, refused = cell_inputs(self.names.inputs, ns, options.exclude, shell)
            for n, note in refused.items():
                self._refuse(n, note)
            self.inputs.update(file_inputs(self.names.run_files))
            self.inputs.update(import_inputs(self.names.imports))
            if self.names.dynamic:
                self._refuse("globals()", self.names.dynamic)
        self.source_hash = hash_text(self.source)
        self.name = options.name or "cell-" + cell_key("", self.source_hash, self.inputs)[6:14]
        # NB. `key` names the run (its snapshot, its map results); `entry_key` also covers the
        # global random/plot state the cell used last time (`_globalstate`): known only at lookup
        self.key = cell_key(self.name, self.source_hash, self.inputs)
        self.entry_key = self.key
        self.tracker = NamespaceTracker(shell, self.names, self.analysis, options.exclude, {})
        self.continued: dict[str, Any] | None = None  # the interrupted run --continue goes on from
        self._states_before: dict[str, str] = {}
        self.snapshot_key = "snap:" + self.key[len("cell:") :]
        self.recorder: Recorder | None = None
        self.loophost = CellLoops(self)
        self.code: types.CodeType | None = None  # the cell's compiled body (its loops resume)
        self.pending: dict[str, Any] | None = None  # a saved snapshot not yet restored
        self.unsaved: dict[str, str] = {}  # variables that could not be pickled, and why
        self.started = wall_clock()
        self.run_started = self.started  # in the first kernel, for a run resumed from a snapshot
        self.prior = 0.0  # seconds it ran in earlier kernels, up to the snapshot resumed
        self.resumes = 0  # kernels that took it over from a snapshot (this one included)
        self._warned_store = False
        self._unreadable = False  # an entry for this key exists but could not be used
        self._progress_written = 0.0
        self.record: dict[str, Any] = {}  # phase:NAME as `lookup` read it
        self.why = FIRST_RUN  # why the cell runs (kept with the version it saves)
        self.value: Any = None  # the last expression's value, once the body ran
        self.has_value = False
        self.gate_failed = False
        self.phase: PhaseProgress | None = None  # this run's, once it began

    def _refuse(self, name: str, note: str) -> None:
        """An input that cannot be compared: say so, and key the run so that it never hits."""
        warnings.warn(note, CheckpointWarning, stacklevel=4)
        self.inputs[name] = f"{UNREADABLE}{os.urandom(8).hex()}"

    # -- lookup -------------------------------------------------------------------------------

    def lookup(self) -> dict[str, Any] | None:
        """The entry to restore, or None: run the cell (`why` says why, if it is known yet)."""
        self.record = self._phase_record()
        if not self.options.no_deps:
            self._add_global_state()
        if self.options.force or self.record.get("mark") == "pending":
            self.why = "forced" if self.options.force else "marked pending"
            return None
        return self._usable_entry()

    def _add_global_state(self) -> None:
        """Global random/plot state that earlier runs of this source used is an input."""
        used = {
            n
            for v in self.record.get("versions", [])
            if v.get("source_hash") == self.source_hash
            for n in v.get("inputs") or {}
            if n in _globalstate.PSEUDO_INPUTS
        }
        if used:
            self.inputs.update(_globalstate.fingerprints(sorted(used)))
            self.entry_key = cell_key(self.name, self.source_hash, self.inputs)

    def _usable_entry(self) -> dict[str, Any] | None:
        try:
            entry = self._read(self.entry_key)
        except StoreError as exc:
            if isinstance(exc.__cause__, Unresolved):
                self.why = _unresolved(exc.__cause__)
            else:
                self._warn_store(exc)
                self._unreadable = True
            return None
        if entry is MISSING:
            return None
        ns = self.shell.user_ns
        missing = [
            v.name for v in entry["vars"].values() if isinstance(v, Ref) and v.name not in ns
        ]
        if missing:
            self.why = _unresolved(Unresolved(missing[0]))
            return None
        return entry  # type: ignore[no-any-return]

    def read_snapshot(self, key: str) -> dict[str, Any] | None:
        """A saved loop snapshot, or None: absent, or unreadable (a warning said so)."""
        try:
            snapshot = self._read(key)
        except StoreError as exc:
            self._warn_store(exc)
            return None
        return None if snapshot is MISSING else snapshot

    def _read(self, key: str) -> Any:
        """A signed entry, unpickled against the namespace (`MISSING` if absent)."""
        with resolving(self.shell.user_ns):
            return self.store.get(key)

    # -- miss ---------------------------------------------------------------------------------

    def begin(self) -> None:
        record = self.record
        versions = [Version.from_json(v) for v in record.get("versions", [])]
        if not self.options.force:
            self.pending = self.read_snapshot(self.snapshot_key)
            if self.pending is None:
                own_interrupted(self)
        self.tracker.inputs = self.inputs
        self.tracker.start()
        self._states_before = _globalstate.fingerprints()
        if self.why == FIRST_RUN:  # not forced, pending, or refused by `_usable_entry`
            if self._unreadable:
                self.why = "its checkpoint could not be read"
            elif versions:
                latest = versions[0]
                self.why = describe_change(
                    latest.source_hash, latest.inputs, self.source_hash, self.inputs
                )
        earlier = None
        if self.pending is None and not self.options.force:
            earlier = earlier_interrupted(self)
        done = 0
        if self.pending is not None:
            take_over(self, self.pending)
            done = items_done(self.pending)[0]
        note = start_note(self, earlier, done, bool(versions))
        if note is not None:
            self._notify(*note)
        self._tell_store()
        self.recorder = Recorder(self.shell.display_pub, spill_dir=spill_directory(self.store.path))
        self.recorder.before_output = self._before_output
        phase = self.phase = phases[self.name] = PhaseProgress(self.name)
        phase.prior, phase.resumes = self.prior, self.resumes
        with self._writing():
            record = self._phase_record()  # as it is now (read in the transaction)
            record.pop("mark", None)  # a run supersedes a manual mark
            note_run(self, record, earlier)
            self._set_record(record, str(record.get("status", "pending")))
            self._log("started", f"started: {self.why}")
            if self.continued is not None:
                self._log("resumed", self.why, done=done)
            elif self.pending is not None:
                self._log("resumed", f"resumed at item {done + 1:,} from a snapshot", done=done)
            self._watch(phase, "start")
        self._previous_host = _host.set_host(self)

    def elapsed(self) -> float:
        """Seconds the run has taken: in earlier kernels up to the snapshot, then in this one."""
        return self.prior + max(wall_clock() - self.started, 0.0)

    def run_info(self) -> dict[str, Any]:
        """What a snapshot keeps of the run, for the kernel that resumes it (`_take_over`)."""
        return {
            "started": self.run_started,
            "elapsed": self.elapsed(),
            "resumes": self.resumes,
            "why": self.why,
        }

    def end(self, value: Any, has_value: bool) -> None:
        _host.set_host(self._previous_host)
        unfinished = self.loophost.unfinished_note()
        if unfinished is not None:  # a try around a loop caught its error: the result is half
            self._stopped(unfinished)
            return
        try:
            save(self, value, has_value)
        except Exception as exc:  # NB. a bug or a damaged record never fails a cell that ran
            if debugging():
                raise
            warnings.warn(
                f"{unexpected(exc, f'saving checkpoint {self.name!r}')}; the cell's variables "
                "are kept",
                CheckpointWarning,
                stacklevel=2,
            )
        phases[self.name].finish("done")
        self._watch(phases[self.name], "end")

    def _drop_progress(self) -> None:
        """Delete the loop snapshot and the resumable.map results of this run's key."""
        self.store.delete(self.snapshot_key)
        for key in self.store.keys(f"map:{self.key}:"):
            self.store.delete(key)

    def fail(self, exc: BaseException) -> None:
        _host.set_host(self._previous_host)
        interrupted = isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "CancelledError"
        if self.gate_failed:  # nothing of a run that failed its gate is kept in the store
            rejected[self.name] = self
            try:
                self._drop_progress()
            except StoreError as error:
                self._warn_store(error)
        # NB. no snapshot here: the variables are those of the middle of an item; the last
        # boundary snapshot stays the one a re-run resumes from
        phase = phases[self.name]
        phase.finish("interrupted" if interrupted else "failed")
        self._watch(phase, "end")
        if interrupted:
            where = phase.where()
            text = "interrupted" + (f" at {where}" if where else "")
        else:
            text = f"failed: {type(exc).__name__}: {_first_line(str(exc))}"
        with self._writing():
            self._set_record(self._phase_record(), "interrupted" if interrupted else "failed")
            self._log("interrupted" if interrupted else "failed", text)

    def _stopped(self, text: str) -> None:
        """The body reached its end, but a loop of it did not: kept as interrupted (resumable)."""
        phase = phases[self.name]
        phase.finish("interrupted")
        self._watch(phase, "end")
        self._notify("unfinished", text, {})
        with self._writing():
            self._set_record(self._phase_record(), "interrupted")
            self._log("interrupted", text)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Around the body of a miss: records its outputs, then saves it, or marks it failed."""
        __tracebackhide__ = True
        self.begin()
        assert self.recorder is not None
        self.loophost.catch_run_interrupts()
        try:
            with self.recorder:
                yield
        except BaseException as exc:
            self.loophost.release_run_interrupts()
            self.fail(exc)
            raise
        self.loophost.release_run_interrupts()
        self.end(self.value, self.has_value)

    def ran(self, value: Any, has_value: bool) -> None:
        """The body ran to its end with ``value``; still inside the recorder: the gate may fail.

        Then the result is shown (and recorded) and the inline figures after it, as IPython shows
        them after a plain cell's result; the magic returns None.
        """
        __tracebackhide__ = True
        self.value, self.has_value = value, has_value
        if self.options.validate:
            try:
                check_gate(self.name, self.options.validate, self.shell.user_ns)
            except CheckpointError:
                self.gate_failed = True
                flush_figures()  # recorded: `%checkpoint mark NAME done` may save this run
                raise
        if has_value and value is not None:
            self._show_result(value)
        flush_figures()  # NB. inside the recorder: IPython would show them after we return

    def _show_result(self, value: Any) -> None:
        """Show the last expression's value through the displayhook (``Out[n]``, ``_``) now,
        recording the bundle it shows: a hit replays that bundle, not a new rendering."""
        recorder = self.recorder
        assert recorder is not None
        data, metadata = self.shell.display_formatter.format(value)
        if not data:
            return
        recorder.add_result(data, metadata)
        with recorder.silent():  # the terminal's displayhook prints; that is not a stream output
            emit_execute_result(self.shell, data, metadata, value)

    def accept(self) -> int:
        """Save a run that failed its gate, with its variables as they are now; -> its size."""
        self.why = "accepted by hand after failing its gate"
        save(self, self.value, self.has_value)
        rejected.pop(self.name, None)
        phase = phases[self.name]
        phase.status = "done"
        with self._writing():
            self._log("marked", "marked done: saved the run that failed its gate")
        return len(self._phase_record().get("versions", []))

    def _variables(self) -> dict[str, Any]:
        """The variables the run assigned (or deleted) so far, and the inputs it changed in
        place (``results['b'] = 2``, ``model.fit(X)``, a notebook helper filling a global dict):
        what a hit, or a resumed loop, puts back (`_namespace`)."""
        return self.tracker.values(skip=self.unsaved.keys())

    def _warn_unsaved(self, failures: dict[str, str]) -> None:
        for name, why in failures.items():
            if name in self.unsaved:
                continue
            self.unsaved[name] = why
            warnings.warn(
                f"could not save variable {name!r} ({why}); its value stays in the kernel; "
                f"add --exclude {name} to skip it",
                CheckpointWarning,
                stacklevel=2,
            )

    # -- LoopHost: the loops of this run live in `_loophost.CellLoops` ---------------------------

    def plain_reason(self, site: Any) -> str | None:
        return self.loophost.plain_reason(site)

    def note_plain(self, reason: str) -> None:
        self.loophost.note_plain(reason)

    def attach(self, loop: Any) -> LoopState | None:
        return self.loophost.attach(loop)

    def detach(self, loop: Any, complete: bool) -> None:
        self.loophost.detach(loop, complete)

    def left_plain(self, loop: Any) -> None:
        self.loophost.left_plain(loop)

    def started_plain(self, loop: Any) -> None:
        self.loophost.started_plain(loop)

    def snapshot(self, reason: str, loop: Any = None) -> float:
        return self.loophost.snapshot(reason, loop)

    def stopping(self) -> bool:
        return self.loophost.stopping()

    def _before_output(self) -> None:
        self.loophost.before_output()

    # -- running the body ---------------------------------------------------------------------

    def compile(self, allow_await: bool) -> tuple[types.CodeType, types.CodeType | None]:
        """The cell's body and last expression, compiled (`_cellcode.compile_cell`)."""
        body, expr = compile_cell(self.shell, self.transformed, allow_await)
        self.code = body  # its loops resume
        return body, expr


def _prepare(
    shell: Shell,
    cell: str,
    options: CheckpointOptions,
    notify: Notify,
    *,
    store: Store | None,
    watch: Watch | None,
) -> tuple[CheckpointRun, dict[str, Any] | None]:
    if options.validate is not None:
        check_expression(options.validate)
    try:
        store = store or open_store()
    except StoreError as exc:
        warnings.warn(
            f"{exc}; the cell runs, but its checkpoint will not outlive this kernel",
            CheckpointWarning,
            stacklevel=3,
        )
        # NB. a scratch store keeps the engine's single code path; it is gone after a restart
        store = open_store(tempfile.mkdtemp(prefix="nbresume-unsaved-"))
    notice = store.read_only_notice()
    if notice is not None:
        warnings.warn(notice, CheckpointWarning, stacklevel=3)
    run = CheckpointRun(shell, cell, options, store, notify, watch=watch)
    return run, run.lookup()


def run_checkpoint(
    shell: Shell,
    cell: str,
    options: CheckpointOptions,
    notify: Notify,
    *,
    store: Store | None = None,
    watch: Watch | None = None,
) -> Any:
    """Run or restore one checkpoint cell.

    Its last expression's value is shown (and ``Out[n]`` set) in its place among the outputs;
    the return value is for the displayhook: None, except for entries of older versions.
    """
    __tracebackhide__ = True
    if _is_empty(shell, cell, options, notify):
        return None
    run, entry = _prepare(shell, cell, options, notify, store=store, watch=watch)
    if entry is not None:
        return restore(run, entry)
    body, expr = run.compile(allow_await=False)
    with run.running():
        exec(body, shell.user_ns)
        value = eval(expr, shell.user_ns) if expr is not None else None
        run.ran(value, expr is not None)
    return None


async def run_checkpoint_async(
    shell: Shell,
    cell: str,
    options: CheckpointOptions,
    notify: Notify,
    *,
    store: Store | None = None,
    watch: Watch | None = None,
) -> Any:
    """`run_checkpoint` for cells with top-level ``await``."""
    __tracebackhide__ = True
    if _is_empty(shell, cell, options, notify):
        return None
    run, entry = _prepare(shell, cell, options, notify, store=store, watch=watch)
    if entry is not None:
        return restore(run, entry)
    body, expr = run.compile(allow_await=True)
    with run.running():
        pending = eval(body, shell.user_ns)
        if pending is not None:
            await pending
        value = eval(expr, shell.user_ns) if expr is not None else None
        if isinstance(value, types.CoroutineType):
            value = await value
        run.ran(value, expr is not None)
    return None


def _is_empty(shell: Shell, cell: str, options: CheckpointOptions, notify: Notify) -> bool:
    """A cell with nothing to run (blank, or comments only) is a no-op with a note, not an error:
    ``nbresume run`` must go on past it."""
    if any(line.strip() and not line.lstrip().startswith("#") for line in cell.splitlines()):
        return False  # NB. the common case, decided without parsing: a hit stays cheap
    try:
        empty = not ast.parse(transform(shell, cell)).body
    except SyntaxError:
        return False  # the run reports it as usual
    if empty and not options.quiet:
        name = options.name or "this cell"
        text = f"%%checkpoint {name}: the cell is empty; nothing to run or save"
        notify(Note("empty", options.name or "", text))
    return empty


def _unresolved(exc: Unresolved) -> str:
    return f"its checkpoint refers to {exc.name!r}, which is not defined now (run its cell first)"


def _first_line(text: str, width: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"
