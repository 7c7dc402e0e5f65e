"""The ``%%checkpoint`` engine: lookup -> hit (restore + replay) | miss (run, record, save).

No IPython decorators here: the engine needs only the few parts of a shell named by `Shell`, so it
runs against a real kernel, a terminal IPython or a test's fake alike. It never displays anything
itself except the cell's own outputs (recorded, or replayed); notes go to the ``notify`` callback.
"""

from __future__ import annotations
import __future__

import ast
import contextlib
import io
import math
import os
import socket
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import _globalstate, _host
from ._capture import (
    Recorder,
    emit_execute_result,
    has_result,
    merge_streams,
    replay,
    spill_directory,
    strip_for_replay,
)
from ._gate import check_expression, check_gate
from ._history import (
    FIRST_RUN,
    Version,
    history_limit,
    log_event,
    loop_summary,
    promote,
    push_version,
    restored_loops,
    resumed_text,
    run_reason,
)
from ._host import LoopState
from ._keys import (
    BUDGET_SECONDS,
    FingerprintError,
    analyze_cell,
    cell_key,
    describe_change,
    file_inputs,
    fingerprint,
    hash_text,
    normalize_source,
)
from ._loophost import CellLoops
from ._namespace import (
    DELETED,
    Ref,
    Unresolved,
    analysis_source,
    apply_values,
    resolving,
    setting_magics,
)
from ._progress import PhaseProgress, format_duration, format_when
from ._serialize import dumps_namespace
from ._store import MISSING, Store, open_store
from ._streamorder import shown_order
from ._tempdirs import temporary_warning
from ._tracking import NamespaceTracker, cell_inputs, same_content
from ._usermodules import import_inputs
from .errors import CheckpointError, CheckpointWarning, StoreError, StoreReadOnlyError

__all__ = [
    "CheckpointOptions",
    "Note",
    "Shell",
    "phases",
    "run_checkpoint",
    "run_checkpoint_async",
]

PROGRESS_RECORD_SECONDS = 1.0  # how often a running phase rewrites its progress:NAME record
RESULT = "__nbresume_result__"  # the last expression's value, saved among the variables
FUTURE_FLAGS = 0  # the compiler flags of every `from __future__ import` feature
for _feature in __future__.all_feature_names:
    FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag
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


@dataclass(frozen=True)
class Note:
    """A one-line message about a checkpoint (shown marked with the ``nbresume`` metadata key)."""

    kind: str  # restored | running | resuming | store | rolled back | marked
    name: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


Notify = Callable[[Note], None]
Watch = Callable[[PhaseProgress, str], None]
"""A view of a running phase, called with events "start", "progress" (at most 10/s per loop),
"end" (status done/failed/interrupted) and "restored"."""

phases: dict[str, PhaseProgress] = {}  # the phases run in this kernel, by name
wall_clock: Callable[[], float] = time.time  # a run's start and duration (tests move it)
_told_store: set[str] = set()
# runs that failed their --validate gate, kept (in memory only) for `%checkpoint mark NAME done`
rejected: dict[str, CheckpointRun] = {}


class CheckpointRun:
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
        self.transformed = _transform(shell, cell)
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

    def _phase_record(self) -> dict[str, Any]:
        try:
            record = self.store.get_json(f"phase:{self.name}", {})
        except StoreError as exc:
            self._warn_store(exc)
            return {}
        return record if isinstance(record, dict) else {}

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

    def _load_snapshot(self) -> None:
        try:
            snapshot = self._read(self.snapshot_key)
        except StoreError as exc:
            self._warn_store(exc)
            return
        if snapshot is not MISSING:
            self.pending = snapshot

    def _read(self, key: str) -> Any:
        """A signed entry, unpickled against the namespace (`MISSING` if absent)."""
        with resolving(self.shell.user_ns):
            return self.store.get(key)

    # -- hit ----------------------------------------------------------------------------------

    def restore(self, entry: dict[str, Any]) -> Any:
        values = dict(entry["vars"])
        has_value = RESULT in values
        result = values.pop(RESULT, None)
        ns = self.shell.user_ns
        deleted = values.pop(DELETED, [])
        apply_values(ns, values)
        for name in deleted:
            ns.pop(name, None)
        _inherit_future(self.shell, self.transformed)  # as running the cell would have
        self._reapply_settings()
        _globalstate.restore(entry.get("globals") or {})
        self.key = self.entry_key
        record = self.record
        version: dict[str, Any] = next(
            (v for v in record.get("versions", []) if v.get("key") == self.key), {}
        )
        when = format_when(version.get("created") or time.time())
        ran = format_duration(version.get("duration"))
        text = f"restored {self.name!r} from checkpoint of {when}, ran {ran}"
        resumes = version.get("resumes")
        if isinstance(resumes, int) and resumes > 0:
            text += f", {resumed_text(resumes)}"
        self._notify("restored", text, {"key": self.key, "variables": sorted(values)})
        outputs = entry["outputs"]
        recorded = has_result(outputs)
        replay(
            outputs,
            self.shell.display_pub,
            lambda o: emit_execute_result(self.shell, o["data"], o["metadata"], result),
        )
        phase = phases[self.name] = PhaseProgress(self.name, status="restored")
        for loop in restored_loops(version):  # 40/40 in every view, as after the run
            phase.loops.append(loop)
        took = version.get("duration")
        if isinstance(took, int | float) and math.isfinite(took) and took >= 0:
            phase.prior = float(took)  # its progress says how long the run took, not the hit
        phase.finish("restored")
        with self._writing():  # NB. one transaction: a hit pays for one commit
            # NB. read again inside it: another kernel may have saved a version since `lookup`
            record = self._phase_record()
            promote(record, self.key)  # the version in use is kept longest
            if record.get("mark") == "done":
                del record["mark"]  # a run supersedes a manual mark
            self._set_record(record, "restored")
            self._log("restored", f"restored the version of {when}", fold=self.key)
            self._watch(phase, "restored")
        if recorded:  # shown in its place among the outputs
            return None
        if has_value:  # entries saved before results were recorded
            return result
        bundle = entry.get("result_bundle")
        if bundle is not None:
            emit_execute_result(self.shell, *bundle)
        return None

    def _reapply_settings(self) -> None:
        """Run the cell's ``%matplotlib``, ``%load_ext``, ``%config``... lines again: their effect
        is on the kernel, not in a variable. What they print was recorded and is replayed."""
        run_line_magic = getattr(self.shell, "run_line_magic", None)
        if run_line_magic is None:
            return
        for magic, line in setting_magics(self.transformed):
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    run_line_magic(magic, line)
            except Exception as exc:
                warnings.warn(
                    f"could not apply %{magic} {line} again on restoring {self.name!r}: {exc!r}; "
                    "run it in a plain cell",
                    CheckpointWarning,
                    stacklevel=3,
                )

    # -- miss ---------------------------------------------------------------------------------

    def begin(self) -> None:
        record = self.record
        versions = [Version.from_json(v) for v in record.get("versions", [])]
        if not self.options.force:
            self._load_snapshot()
            if self.pending is None:
                self._own_interrupted()
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
            earlier = self._earlier_interrupted()
        done = 0
        if self.pending is not None:
            self._take_over(self.pending)
            done = _items_done(self.pending)[0]
            text = (
                f"continuing {self.name!r}: {self.why}"
                if self.continued is not None
                else f"resuming {self.name!r} from a snapshot: {done} item{'s' * (done != 1)} done"
            )
            self._notify("resuming", text, {"key": self.key, "done": done})
        elif earlier is not None:
            total = f"/{earlier['total']:,}" if earlier.get("total") else ""
            change = describe_change(
                earlier.get("source_hash"),
                earlier.get("inputs") or {},
                self.source_hash,
                self.inputs,
            )
            text = (
                f"{change} since the interrupted run ({earlier['done']:,}{total} items done): "
                "starting over; --continue keeps them"
            )
            self._notify("running", text, {"reason": self.why, "interrupted": earlier})
        elif self.options.continue_run:
            text = f"running {self.name!r}: nothing to continue (no interrupted run of other code)"
            self._notify("running", text, {"reason": self.why})
        elif versions:
            self._notify("running", f"running {self.name!r}: {self.why}", {"reason": self.why})
        self._tell_store()
        self.recorder = Recorder(self.shell.display_pub, spill_dir=spill_directory(self.store.path))
        self.recorder.before_output = self._before_output
        phase = self.phase = phases[self.name] = PhaseProgress(self.name)
        phase.prior, phase.resumes = self.prior, self.resumes
        with self._writing():
            record = self._phase_record()  # as it is now (read in the transaction)
            record.pop("mark", None)  # a run supersedes a manual mark
            self._note_run(record, earlier)
            self._set_record(record, str(record.get("status", "pending")))
            self._log("started", f"started: {self.why}")
            if self.continued is not None:
                self._log("resumed", self.why, done=done)
            elif self.pending is not None:
                self._log("resumed", f"resumed at item {done + 1:,} from a snapshot", done=done)
            self._watch(phase, "start")
        self._previous_host = _host.set_host(self)

    def _take_over(self, snapshot: dict[str, Any]) -> None:
        """Go on with the run a snapshot was taken in: its time so far and start count in this
        run's duration, and why it ran stays why it runs (not "first run")."""
        info = snapshot.get("run")
        info = info if isinstance(info, dict) else {}
        elapsed, started = info.get("elapsed"), info.get("started")
        resumes, why = info.get("resumes"), info.get("why")
        if isinstance(elapsed, int | float) and math.isfinite(elapsed) and elapsed >= 0:
            self.prior = float(elapsed)
        if isinstance(started, int | float) and math.isfinite(started) and started > 0:
            self.run_started = float(started)
        self.resumes = (resumes if isinstance(resumes, int) and resumes >= 0 else 0) + 1
        if self.continued is None and isinstance(why, str) and self.why == FIRST_RUN:
            self.why = why

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

    def _own_interrupted(self) -> None:
        """Resume the same code's interrupted run whose inputs differ from ours only by what it
        changed in place itself (a loop filling an upstream dict, stopped by an error or Ctrl-C
        while the kernel lived on): the inputs must hold exactly what its snapshot saved."""
        info = self.record.get("run")
        if (
            not isinstance(info, dict)
            or info.get("source_hash") != self.source_hash
            or info.get("snapshot") in (None, self.snapshot_key)
        ):
            return
        start = dict(info.get("inputs") or {})
        theirs = {n: f for n, f in start.items() if n not in _globalstate.PSEUDO_INPUTS}
        ours = {n: f for n, f in self.inputs.items() if n not in _globalstate.PSEUDO_INPUTS}
        changed = [n for n in ours if ours[n] != theirs.get(n)]
        if ours.keys() != theirs.keys() or not changed:
            return
        try:
            snapshot = self._read(str(info["snapshot"]))
        except StoreError as exc:
            self._warn_store(exc)
            return
        if snapshot is MISSING:
            return
        saved, ns = snapshot["vars"], self.shell.user_ns
        if all(n in saved and n in ns and same_content(ns[n], saved[n]) for n in changed):
            self.inputs = start
            self.snapshot_key = str(info["snapshot"])
            self.key = "cell:" + self.snapshot_key[len("snap:") :]
            self.pending = snapshot

    def _earlier_interrupted(self) -> dict[str, Any] | None:
        """The phase's latest interrupted run of other code or inputs whose snapshot holds
        finished items (``snapshot``, ``source_hash``, ``inputs``, ``done``, ``total``); with
        --continue its snapshot becomes this run's."""
        for info in (self.record.get("run"), self.record.get("interrupted")):
            if not isinstance(info, dict) or info.get("snapshot") in (None, self.snapshot_key):
                continue
            try:
                snapshot = self._read(str(info["snapshot"]))
            except StoreError as exc:
                self._warn_store(exc)
                continue
            if snapshot is MISSING:
                continue
            done, total = _items_done(snapshot)
            if done == 0:
                continue
            earlier = {**info, "done": done, "total": total}
            if self.options.continue_run:
                self.pending = snapshot
                self.continued = earlier
                items = f"{done:,} item{'s' * (done != 1)}"
                self.why = f"continued after an edit: {items} from the earlier version"
            return earlier
        return None

    def _note_run(self, record: dict[str, Any], earlier: dict[str, Any] | None) -> None:
        """Keep the phase's latest interrupted snapshot (for --continue) until a run completes."""
        if earlier is not None:
            old = record.get("interrupted")
            if isinstance(old, dict) and old.get("snapshot") not in (earlier["snapshot"], None):
                self.store.delete(str(old["snapshot"]))  # superseded by a later interrupted run
            record["interrupted"] = {k: v for k, v in earlier.items() if k not in ("done",)}
        record["run"] = {
            "snapshot": self.snapshot_key,
            "source_hash": self.source_hash,
            "inputs": self.inputs,
        }

    def end(self, value: Any, has_value: bool) -> None:
        _host.set_host(self._previous_host)
        unfinished = self.loophost.unfinished_note()
        if unfinished is not None:  # a try around a loop caught its error: the result is half
            self._stopped(unfinished)
            return
        self.save(value, has_value)
        phases[self.name].finish("done")
        self._watch(phases[self.name], "end")

    def save(self, value: Any, has_value: bool) -> None:
        """Save the cell's variables (as they are in the namespace now) and outputs as done."""
        recorder = self.recorder
        assert recorder is not None
        duration = self.elapsed()
        values = self._variables()
        if has_value:
            values[RESULT] = value
        # NB. in the order the kernel showed them (stdout before a warning written first)
        outputs = merge_streams(strip_for_replay(shown_order(recorder.outputs, time.monotonic())))
        figures = any(k.startswith("image/") for o in outputs for k in (o.get("data") or {}))
        uses, states = _globalstate.used(
            self._states_before, _globalstate.fingerprints(), self.analysis, figures
        )
        if not self.options.no_deps:
            kept = {n: f for n, f in self.inputs.items() if n not in _globalstate.PSEUDO_INPUTS}
            self.inputs = {**kept, **uses}
        key = cell_key(self.name, self.source_hash, self.inputs)
        extra: dict[str, Any] = {"outputs": outputs, "globals": _globalstate.capture(states)}
        pickler = self.tracker.pickler()
        pickled, failures = dumps_namespace(values, extra, pickler)
        if RESULT in failures and not has_result(outputs):  # a run accepted after its gate failed
            failures.pop(RESULT)
            data, metadata = self.shell.display_formatter.format(value)
            pickled, more = dumps_namespace(
                {n: v for n, v in values.items() if n not in failures and n != RESULT},
                {**extra, "result_bundle": (data, metadata)},
                pickler,
            )
            failures.update(more)
        failures.pop(RESULT, None)  # its recorded form is replayed; Out[n] stays unset
        self._warn_unsaved(failures)
        try:
            size = self.store.put(key, pickled, {"name": self.name})
            self._save_record(duration, size, key)
            self._drop_progress()
        except StoreError as exc:
            self._warn_store(exc)
        self.key = self.entry_key = key

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
                _flush_figures()  # recorded: `%checkpoint mark NAME done` may save this run
                raise
        if has_value and value is not None:
            self._show_result(value)
        _flush_figures()  # NB. inside the recorder: IPython would show them after we return

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
        self.save(self.value, self.has_value)
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

    def _warn_store(self, exc: StoreError) -> None:
        if self._warned_store or isinstance(exc, StoreReadOnlyError):  # told when it opened
            return
        self._warned_store = True
        warnings.warn(
            f"{exc} (the cell's live result is kept; only the checkpoint is affected)",
            CheckpointWarning,
            stacklevel=2,
        )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Group record writes in one transaction; a failure is a warning, never the cell's."""
        try:
            with self.store.transact():
                yield
        except StoreError as exc:
            self._warn_store(exc)
        except Exception as exc:  # sqlite errors and diskcache.Timeout of the transaction
            self._warn_store(StoreError(f"could not write to {str(self.store.path)!r}: {exc}"))

    def _save_record(self, duration: float, size: int, key: str) -> None:
        phase = phases.get(self.name)
        version = Version(
            key,
            self.source_hash,
            self.inputs,
            self.run_started,
            duration,
            size,
            run_reason(self.why, self.resumes),
            loop_summary(phase.loops) if phase is not None and phase.loops else None,
            self.resumes,
            time.time(),
        )
        with self._writing():
            record = self._phase_record()
            for old in push_version(record, version, history_limit()):
                self.store.delete(old)
            record.pop("mark", None)  # a saved run settles a manual mark
            record.pop("rolled_back", None)
            for info in (record.pop("interrupted", None), record.pop("run", None)):
                if isinstance(info, dict) and info.get("snapshot") not in (None, self.snapshot_key):
                    self.store.delete(str(info["snapshot"]))  # a completed run ends --continue
            self._set_record(record, "done")
            reason = run_reason(self.why, self.resumes)
            self._log("done", f"done in {format_duration(duration)}: saved ({reason})")

    def _set_record(self, record: dict[str, Any], status: str) -> None:
        record.update(
            name=self.name, status=status, updated=time.time(), source_hash=self.source_hash
        )
        try:
            self.store.put_json(f"phase:{self.name}", record)
        except StoreError as exc:
            self._warn_store(exc)

    def _log(self, event: str, text: str, **data: Any) -> None:
        """Add an event to ``events:NAME`` (never per item: at most once per snapshot)."""
        try:
            log_event(self.store, self.name, event, text, **data)
        except StoreError as exc:
            self._warn_store(exc)

    def _on_progress(self, phase: PhaseProgress) -> None:
        self._watch(phase, "progress")
        if time.monotonic() - self._progress_written >= PROGRESS_RECORD_SECONDS:
            self._write_progress(phase)

    def _write_progress(self, phase: PhaseProgress) -> None:
        """``progress:NAME``: a small JSON record that other processes (the dashboard) can read."""
        self._progress_written = time.monotonic()
        try:
            self.store.put_json(f"progress:{self.name}", progress_record(phase))
        except StoreError as exc:
            self._warn_store(exc)

    def _watch(self, phase: PhaseProgress, event: str) -> None:
        if event in ("start", "end", "restored"):
            self._write_progress(phase)
        if self.watch is None or self.options.quiet:
            return
        try:
            self.watch(phase, event)
        except Exception as exc:  # a broken view must never break the cell
            warnings.warn(f"progress display failed: {exc!r}", CheckpointWarning, stacklevel=2)
            self.watch = None

    def _notify(self, kind: str, text: str, data: dict[str, Any]) -> None:
        if self.options.quiet:
            return
        self.notify(Note(kind, self.name, text, data))
        self._tell_store()

    def _tell_store(self) -> None:
        """The first checkpoint of a kernel says where the store is, also when nothing else is
        said (a first run); in notes of its own, so that the others fit one line of a cell."""
        where = str(self.store.path)
        if self.options.quiet or where in _told_store:
            return
        _told_store.add(where)
        self.notify(Note("store", self.name, f"checkpoints go to {where}", {"store": where}))
        warning = temporary_warning(self.store.path)
        if warning:
            self.notify(Note("store", self.name, warning, {"store": where, "temporary": True}))

    # -- LoopHost: the loops of this run live in `_loophost.CellLoops` ---------------------------

    def plain_reason(self, site: Any) -> str | None:
        return self.loophost.plain_reason(site)

    def note_plain(self, reason: str) -> None:
        self.loophost.note_plain(reason)

    def attach(self, loop: Any) -> LoopState | None:
        return self.loophost.attach(loop)

    def detach(self, loop: Any, complete: bool) -> None:
        self.loophost.detach(loop, complete)

    def snapshot(self, reason: str, loop: Any = None) -> float:
        return self.loophost.snapshot(reason, loop)

    def stopping(self) -> bool:
        return self.loophost.stopping()

    def _before_output(self) -> None:
        self.loophost.before_output()

    # -- running the body ---------------------------------------------------------------------

    def compile(self, allow_await: bool) -> tuple[types.CodeType, types.CodeType | None]:
        """Compile like IPython's ``%%time``: transformers, then the last expression split off."""
        shell = self.shell
        tree = shell.transform_ast(shell.compile.ast_parse(self.transformed))
        assert isinstance(tree, ast.Module)
        # NB. IPython compiles a cell node by node, so `%matplotlib inline` may come before a
        # `from __future__ import`; compiled as one module, the import must come first
        future = [
            n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"
        ]
        if future:
            tree.body = future + [n for n in tree.body if n not in future]
        last = None
        if (
            tree.body
            and isinstance(tree.body[-1], ast.Expr)
            and not _ends_with_semicolon(self.transformed)
        ):
            node = tree.body.pop()
            assert isinstance(node, ast.Expr)
            last = ast.Expression(node.value)
        result = getattr(shell.displayhook, "exec_result", None)
        count = getattr(result, "execution_count", None) or getattr(shell, "execution_count", 0)
        filename = shell.compile.cache(self.transformed, count)
        # NB. the notebook's `from __future__ import annotations` holds here too, as in any cell
        flags = getattr(shell.compile, "flags", 0) & FUTURE_FLAGS
        if allow_await:
            flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        body = compile(ast.Module(tree.body, []), filename, "exec", flags=flags, dont_inherit=True)
        _add_future_flags(shell, body.co_flags)  # ... and this cell's own for the cells after it
        self.code = body
        expr = None
        if last is not None:
            expr = compile(last, filename, "eval", flags=flags, dont_inherit=True)
        return body, expr


def progress_record(phase: PhaseProgress) -> dict[str, Any]:
    """The JSON form of a phase's progress (wall-clock times as epoch seconds)."""
    offset = time.time() - phase.clock()
    loops = [
        {
            "desc": loop.desc,
            "status": loop.status,
            "done": loop.done,
            "total": loop.total,
            "skipped": loop.skipped,
            "rate": loop.rate,
            "eta": loop.eta,
            "elapsed": loop.elapsed,
            "last_snapshot": None if loop.last_snapshot is None else loop.last_snapshot + offset,
        }
        for loop in phase.loops
    ]
    active = next(
        (loop for loop in loops if loop["status"] == "running"), loops[0] if loops else {}
    )
    return {
        "name": phase.name,
        "status": phase.status,
        "started": phase.started + offset,
        "finished": None if phase.finished is None else phase.finished + offset,
        "updated": time.time(),
        "elapsed": phase.elapsed(),  # earlier kernels' time included
        "resumes": phase.resumes,
        "pid": os.getpid(),
        "host": socket.gethostname(),  # a pid means nothing on another machine
        "notebook": os.environ.get("JPY_SESSION_NAME"),  # set by jupyter_server for kernels
        **{k: active.get(k) for k in ("done", "total", "skipped", "rate", "eta", "last_snapshot")},
        "loops": loops,
    }


_TRANSFORMED: dict[tuple[int, str, int, int], str] = {}
_TRANSFORMED_KEPT = 256


def _transform(shell: Shell, cell: str) -> str:
    """``shell.transform_cell(cell)``, remembered for cells of several lines: theirs are static
    (IPython applies the namespace-dependent prefilter to one-line cells only); a hit then skips
    IPython's tokenizer, about 60 us."""
    if "\n" not in cell.strip():
        return str(shell.transform_cell(cell))
    key = (
        id(shell),
        cell,
        len(getattr(shell, "input_transformers_cleanup", ())),
        len(getattr(shell, "input_transformers_post", ())),
    )
    transformed = _TRANSFORMED.get(key)
    if transformed is None:
        transformed = _TRANSFORMED[key] = str(shell.transform_cell(cell))
        if len(_TRANSFORMED) > _TRANSFORMED_KEPT:
            del _TRANSFORMED[next(iter(_TRANSFORMED))]  # the oldest
    return transformed


def _ends_with_semicolon(cell: str) -> bool:
    try:
        from IPython.core.displayhook import DisplayHook

        return bool(DisplayHook.semicolon_at_end_of_expression(cell))  # type: ignore[no-untyped-call]
    except (ImportError, AttributeError):
        return cell.rstrip().endswith(";")


def _flush_figures() -> None:
    """Publish pending inline matplotlib figures now, while the recorder listens.

    IPython shows them in a post_execute callback, after the magic returned: too late to record.
    """
    backend = sys.modules.get("matplotlib_inline.backend_inline")
    mpl = sys.modules.get("matplotlib")
    if backend is None or mpl is None:
        return
    if "inline" in str(mpl.get_backend()).lower():
        backend.flush_figures()


def _add_future_flags(shell: Shell, co_flags: int) -> None:
    compiler = getattr(shell, "compile", None)
    if compiler is not None and co_flags & FUTURE_FLAGS:
        compiler.flags = getattr(compiler, "flags", 0) | (co_flags & FUTURE_FLAGS)


SESSION_MAGICS = frozenset(
    {"matplotlib", "config", "load_ext", "reload_ext", "precision", "autoreload", "aimport"}
)  # line magics that configure the session, not the namespace: a hit runs them again


def _inherit_future(shell: Shell, source: str) -> None:
    """A restored cell's ``from __future__ import`` applies to the cells after it."""
    if "__future__" not in source:
        return
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    flags = 0
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(__future__, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
    _add_future_flags(shell, flags)


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
        return run.restore(entry)
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
        return run.restore(entry)
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
        empty = not ast.parse(_transform(shell, cell)).body
    except SyntaxError:
        return False  # the run reports it as usual
    if empty and not options.quiet:
        name = options.name or "this cell"
        text = f"%%checkpoint {name}: the cell is empty; nothing to run or save"
        notify(Note("empty", options.name or "", text))
    return empty


def _moved(value: Any, before: str) -> bool:
    """Did an input change in place? One that cannot be fingerprinted is left alone."""
    if before.startswith(UNREADABLE):
        return False
    try:
        return fingerprint(value, budget=BUDGET_SECONDS) != before
    except FingerprintError:
        return False


def _items_done(snapshot: dict[str, Any]) -> tuple[int, int | None]:
    """(items done, total) of a snapshot's outermost loops."""
    states = [s for i, s in (snapshot.get("loops") or {}).items() if "/" not in str(i)]
    done = sum(int(getattr(s, "count", 0)) for s in states)
    totals = [t for s in states if isinstance(t := getattr(s, "total", None), int)]
    total = sum(totals) if states and len(totals) == len(states) else None
    return done, total


def _unresolved(exc: Unresolved) -> str:
    return f"its checkpoint refers to {exc.name!r}, which is not defined now (run its cell first)"


def _first_line(text: str, width: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"
