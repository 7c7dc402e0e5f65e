"""The loops of one checkpoint cell run: their identities, boundary snapshots and the restore.

Identity: inside a run, each loop entered is its own loop, the k-th entered at the top level of the
cell (``#k``) or the k-th entered while an enclosing loop processes one item
(``PARENT/KEY#k``). A resumed run enters them in the same order, so the same ids come back.

A snapshot is taken only at a boundary of some loop L (L asks for its next item): the items
before it are done and the next is not started, in L and, for its enclosing loops, up to their
item in flight. It records L's id (``resume_at``). A re-run restores the saved variables when L is
entered again, after its enclosing loops skipped their done items, so whatever the code above L
recomputed is overwritten by the saved values.
"""

from __future__ import annotations

import ast
import contextvars
import copy
import os
import signal
import threading
import time
import warnings
from collections import Counter
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import _globalstate
from ._capture import replay, strip_for_replay
from ._host import LoopState
from ._namespace import DELETED, apply_values
from ._policy import WRAPPER_CLOSED
from ._serialize import dumps_namespace
from ._text import debugging, unexpected
from .errors import CheckpointError, CheckpointWarning, StoreError

if TYPE_CHECKING:
    from .checkpoint import CheckpointRun

__all__ = ["CellLoops", "snapshot_done"]

_GENERATORS = (_globalstate.NUMPY, _globalstate.RANDOM)

Parent = tuple[str, str]  # the id of the enclosing loop and the repr of its item's key


def snapshot_done(snapshot: dict[str, Any]) -> int:
    """Items done in a snapshot's top-level loops (what "N items done" tells the user)."""
    parents: dict[str, Any] = snapshot.get("parents") or {}
    return sum(
        state.count
        for loop_id, state in snapshot.get("loops", {}).items()
        if parents.get(loop_id) is None and (parents or "/" not in loop_id)
    )


class CellLoops:
    """The `LoopHost` part of a `CheckpointRun` (which delegates its host methods here)."""

    def __init__(self, run: CheckpointRun) -> None:
        self.run = run
        self.loops: list[Any] = []  # the loops running now, outermost first
        self.states: dict[str, LoopState] = {}
        self.parents: dict[str, Parent | None] = {}
        self._entries: Counter[Parent] = Counter()
        self._restoring: dict[str, Any] | None = None  # a snapshot whose variables are not back
        self._resume_at: str | None = None
        self._saved_outputs: list[dict[str, Any]] | None = None
        self._first_mark = 0  # outputs recorded when the first loop of a resumed run started
        self._item_start: dict[str, tuple[int, int]] = {}  # loop id -> (done, outputs then)
        self.stop_requested = False  # a first Ctrl-C: stop at the next boundary, saved
        self._noted: set[str] = set()
        # the first loop of this run left by an exception the cell went on after (caught by a
        # try around the loop): from then on the variables hold a loop ended mid-way, so no
        # later snapshot is taken and the run is not saved as done (`unfinished_note`)
        self.unfinished: Any = None
        # a KeyboardInterrupt raised into the cell's code (a second Ctrl-C, or one outside
        # loops): if the cell swallows it and goes on, its variables are those of a cut item
        self.interrupted = False
        self._whole_run = False  # the SIGINT handler is ours for the whole run, not per loop
        self._plain: list[Any] = []  # plain loops started (`it = iter(resumable(xs))`, next(it))
        self._previous_sigint: Any = None
        self._told_unexpected = False  # a snapshot failed in a way nbresume did not foresee

    # -- which loops resume here --------------------------------------------------------------

    def plain_reason(self, site: Any) -> str | None:
        """Only ``for`` statements of the cell's own code, nested in resumable ones, resume."""
        where = f"line {site.lineno}" + (f" ({site.text!r})" if site.text else "")
        if site.code is not getattr(self.run, "code", None):
            return f"{where} is in a function called by the cell; its state is not the cell's"
        if not site.is_for:
            return f"{where} does not consume resumable() with a for statement"
        if site.under_plain_loop:
            return f"{where} is inside a plain for/while loop; make the outer loop resumable too"
        return None

    def note_plain(self, reason: str) -> None:
        if reason in self._noted:
            return  # once per loop and run: an inner loop may be entered thousands of times
        self._noted.add(reason)
        self.run._notify(
            "plain", f"{reason}: it runs as a plain loop and will not resume mid-way", {}
        )

    # -- LoopHost -----------------------------------------------------------------------------

    def attach(self, loop: Any) -> LoopState | None:
        parent_loop = self.loops[-1] if self.loops else None
        parent: Parent = ("", "")
        if parent_loop is not None:
            parent = (parent_loop.loop_id, repr(parent_loop.in_flight_key))
        k = self._entries[parent]
        self._entries[parent] += 1
        loop.loop_id = f"#{k}" if parent_loop is None else f"{parent[0]}/{parent[1]}#{k}"
        self.parents[loop.loop_id] = None if parent_loop is None else parent
        if not self.loops and not self._whole_run:
            self._catch_interrupts()
        self.loops.append(loop)
        self._configure(loop)
        pending = self.run.pending
        self.run.pending = None
        # NB. a snapshot of an older version (no "resume_at") names its loops by call site and
        # holds variables of the middle of an item: restoring it could double an accumulator
        if pending is not None and pending.get("resume_at") is not None:
            self._restoring = pending
            self.states = dict(pending["loops"])
            self.parents.update(pending.get("parents") or {})
            self._saved_outputs = pending["outputs"]
            self._resume_at = pending["resume_at"]
            self._first_mark = len(self.run.recorder.outputs) if self.run.recorder else 0
        if self._restoring is not None and loop.loop_id == self._resume_at:
            self._restore(loop)
            state = self.states.get(loop.loop_id)
            self._replay_up_to(state, record_from=self._first_mark)
            return state
        state = self.states.get(loop.loop_id)
        self._replay_up_to(state)
        return state

    def _configure(self, loop: Any) -> None:
        every = self.run.options.every
        if every is not None and loop._every_items is None and loop._every_seconds is None:
            from ._policy import parse_every

            loop._every_items, loop._every_seconds = parse_every(every)
        phase = self.run.phase
        if phase is not None:
            phase.loops.append(loop.progress)
            loop.subscribe(lambda _progress: self.run._on_progress(phase))

    def _restore(self, loop: Any) -> None:
        assert self._restoring is not None
        values = dict(self._restoring["vars"])
        _globalstate.restore(self._restoring.get("globals") or {})
        ns = self.run.shell.user_ns
        for name in [n for n, v in values.items() if _handle(v) and _handle(ns.get(n))]:
            # NB. a display the re-run showed again above the loop: its live handle is the one
            # whose updates reach it (the saved one names a display of the dead kernel)
            del values[name]
        deleted = values.pop(DELETED, [])
        apply_values(ns, values)  # NB. inputs changed in place are written into the live objects
        for name in deleted:
            ns.pop(name, None)
        values = {n: ns[n] for n in values if n in ns}  # what the names hold now
        self._restoring = None
        self._resume_at = None
        # NB. the items must be the restored objects: in-place work on item k (a model
        # fitted, a dict filled) lives in the restored variables, not in a copy rebuilt by
        # re-running the code above the loop; enclosing loops continue on them too
        items = _restored_items(loop, ns, values)
        if items is not None:
            loop.use_items(items, restored=True)
        for outer in self.loops[:-1]:
            items = _restored_items(outer, ns, values)
            if items is not None:
                outer.switch_items(items)

    def _replay_up_to(self, state: LoopState | None, record_from: int | None = None) -> None:
        """Show the saved outputs up to where ``state``'s loop resumes; with ``record_from``
        (the loop where the snapshot was taken), the record from there on is the saved one: what
        the code between the first loop and this one printed again, before the variables were
        back, may differ from what it printed in the run that was interrupted."""
        recorder = self.run.recorder
        if recorder is None:
            return
        have = recorder.mark()  # outputs before a loop never merge with the loop's own
        saved = self._saved_outputs
        if state is None or saved is None:
            return
        target = state.outputs_end if state.complete else state.outputs_start
        if target is None:
            return
        if have < target:
            recorder.paused += 1
            try:
                replay(saved[have:target], self.run.shell.display_pub)
            finally:
                recorder.paused -= 1
        start = have if record_from is None else min(record_from, target)
        if start < target or (record_from is not None and have > target):
            # NB. replayed outputs are shown live but recorded as saved, element for element,
            # so positions in later snapshots keep matching.
            recorder.outputs[start:] = copy.deepcopy(saved[start:target])
            recorder.mark()

    def detach(self, loop: Any, complete: bool) -> None:
        if loop in self.loops:
            self.loops.remove(loop)
        if not self.loops and not self._whole_run:
            self._release_interrupts()
        state = loop.state()
        if not complete and loop.left_by is not None and self.unfinished is None:
            self.unfinished = loop
        if complete:
            state.complete = True
            state.outputs_end = len(self.run.recorder.outputs) if self.run.recorder else None
        else:
            state.outputs_start = self._outputs_start(loop)
        self.states[loop.loop_id] = state

    def left_plain(self, loop: Any) -> None:
        """A plain loop (in a helper, under a plain loop, `it = resumable(xs)`) an exception
        left: if the cell catches it and goes on, its variables hold a loop ended mid-way."""
        if self.unfinished is None:
            self.unfinished = loop

    def started_plain(self, loop: Any) -> None:
        self._plain.append(loop)

    def snapshot(self, reason: str, loop: Any = None) -> float:
        """Save the cell's variables, outputs and loop states at a boundary of ``loop``."""
        if self._restoring is not None:
            resume_at = self._resume_at or ""
            if loop is None or not resume_at.startswith(loop.loop_id + "/"):
                return 0.0  # a loop skipped whole on the way to where the snapshot was taken
            raise CheckpointError(
                f"the re-run of {self.run.name!r} did not reach the loop where its snapshot was "
                f"taken (loop {self._resume_at}): the code around its loops ran another way; "
                f"run the cell with --force to start over"
            )
        if self.unfinished is not None or self.interrupted:
            return 0.0  # the last snapshot before the loop was left stays the one to resume
        start = time.perf_counter()
        run = self.run
        for active in self.loops:
            state = active.state()
            state.outputs_start = self._outputs_start(active)
            self.states[active.loop_id] = state
        live = self._live(loop)
        states = {i: s for i, s in self.states.items() if i in live}
        parents = {i: p for i, p in self.parents.items() if i in live}
        recorder = run.recorder
        outputs = strip_for_replay(copy.deepcopy(recorder.outputs)) if recorder else []
        extra = {
            "outputs": outputs,
            "loops": states,
            "parents": parents,
            "resume_at": None if loop is None else loop.loop_id,
            "reason": reason,
            "run": run.run_info(),  # its time so far, for the kernel that resumes it
            # NB. a body drawing from np.random / random: the items after the boundary draw
            # what they drew in the run that was interrupted, not the seed's first numbers
            "globals": _globalstate.capture(_GENERATORS),
        }
        try:
            pickled, failures = dumps_namespace(run._variables(), extra, run.tracker.pickler())
        except Exception as exc:  # NB. a bug of ours never stops the user's loop
            if debugging():
                raise
            if not self._told_unexpected:
                self._told_unexpected = True
                warnings.warn(
                    f"{unexpected(exc, f'a snapshot of {run.name!r}')}; the loop goes on "
                    "without snapshots",
                    CheckpointWarning,
                    stacklevel=2,
                )
            return time.perf_counter() - start
        run._warn_unsaved(failures)
        done = snapshot_done(extra)
        try:
            run.store.put(
                run.snapshot_key,
                pickled,
                {"name": run.name, "reason": reason, "done": done, "created": time.time()},
            )
        except StoreError as exc:
            run._warn_store(exc)
            saved = False
        else:
            saved = True
        for active in self.loops:
            active.progress.last_snapshot = active.progress.clock()
        if saved:
            why = "" if reason == "periodic" else f" ({reason})"
            fold = f"{os.getpid()}:{run.started:.6f}"  # snapshots of one run fold into one event
            # NB. the event and the progress record in one transaction, now rather than at the
            # next once-a-second write: after a kill both say the items of the last snapshot
            with run._writing():
                run._log(
                    "snapshot", f"snapshot saved{why}: {done:,} items done", done=done, fold=fold
                )
                if run.phase is not None:
                    run._write_progress(run.phase)
        return time.perf_counter() - start

    def _live(self, boundary: Any) -> set[str]:
        """Ids whose state a resume needs: top-level loops, the running loops, and the loops
        entered by a running loop's item in flight (not those of its finished items)."""
        keys = {
            active.loop_id: repr(active.in_flight_key) for active in self.loops if active is not boundary
        }  # fmt: skip
        live = set()
        for loop_id, parent in self.parents.items():
            if loop_id not in self.states:
                continue
            if (
                parent is None
                or any(a.loop_id == loop_id for a in self.loops)
                or keys.get(parent[0]) == parent[1]
            ):
                live.add(loop_id)
        return live

    def unfinished_note(self) -> str | None:
        """Why a run that reached its end is not saved as done, or None."""
        loop = self.unfinished
        if loop is None:
            suspended = [p for p in self._plain if p.progress.status == "running"]
            if suspended:
                # NB. an iterator the cell holds (`it = iter(resumable(xs))`, `next(it)`) and
                # did not finish: an exception the cell caught may have cut it short
                site = suspended[0].site
                where = f"line {site.lineno}" + (f" ({site.text!r})" if site.text else "")
                done = suspended[0].progress.done
                return (
                    f"{where}: the loop had not finished when the cell ended ({done:,} items "
                    "done): not saved as done, since an uninterrupted run may differ; iterate "
                    "it to the end, e.g. with a for statement"
                )
            if not self.interrupted:
                return None
            return (
                "a Ctrl-C (KeyboardInterrupt) stopped the cell's code and the cell caught it "
                "and went on: not saved as done, since an uninterrupted run would differ; "
                "re-run the cell (a loop resumes from its last snapshot)"
            )
        site = loop.site
        where = f"line {site.lineno}" + (f" ({site.text!r})" if site.text else "")
        item = loop.progress.done + 1
        again = f"resume at item {item:,}" if loop._host is not None else "run the loop again"
        if loop.left_by == WRAPPER_CLOSED:
            return (
                f"{where}: the call around resumable() (itertools.islice, map...) stopped the "
                f"loop at item {item:,}, at its end or by an error the cell caught: not saved "
                "as done, since nbresume cannot tell which; put the call inside, "
                "e.g. resumable(itertools.islice(xs, 10))"
            )
        return (
            f"{where}: the loop was left by {loop.left_by} at item {item:,} and the cell went "
            "on: not saved as done, since an uninterrupted run would finish the loop; re-run "
            f"the cell to {again}, or catch errors inside the loop body"
        )

    # -- Ctrl-C: finish the item, save, stop ---------------------------------------------------

    def catch_run_interrupts(self) -> None:
        """Handle Ctrl-C for the whole run: one swallowed by the cell is seen (`interrupted`)."""
        self._catch_interrupts()
        self._whole_run = self._previous_sigint is not None

    def release_run_interrupts(self) -> None:
        self._whole_run = False
        self._release_interrupts()

    def _catch_interrupts(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self.stop_requested = False
        self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _release_interrupts(self) -> None:
        previous, self._previous_sigint = self._previous_sigint, None
        if previous is not None and signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, previous)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        """The first interrupt lets the item in flight finish (a boundary snapshot, then
        KeyboardInterrupt there); a second one stops at once. JupyterLab's restart sends one
        before it shuts the kernel down, so a restart keeps every finished item."""
        if self.stop_requested or not self.loops:
            self.interrupted = True
            raise KeyboardInterrupt
        self.stop_requested = True
        loop = self.loops[-1]
        text = (
            f"finishing item {loop.done_so_far() + 1:,} of {loop.progress.desc!r} before "
            "stopping; interrupt again to stop now"
        )
        # NB. not from the handler itself: the main thread may be inside a write of its own;
        # the context carries the kernel's parent header, so the note lands in this cell
        context = contextvars.copy_context()
        notify = self.run._notify
        threading.Thread(
            target=context.run, args=(notify, "stopping", text, {}), daemon=True
        ).start()

    def stopping(self) -> bool:
        """Whether a first Ctrl-C asks the loop to stop at this boundary; told once (a cell
        that catches that stop and enters another loop is not stopped again by it)."""
        stop, self.stop_requested = self.stop_requested, False
        return stop

    # -- outputs of the item in flight --------------------------------------------------------

    def before_output(self) -> None:
        """Note where the item in flight of each loop began its output.

        Done lazily, on output rather than per item: a loop body that prints pays a frame read,
        a silent one pays nothing. An interrupted item's partial output is then never replayed
        (the item runs again and prints it again).
        """
        recorder = self.run.recorder
        if recorder is None or not self.loops:
            return
        for loop in self.loops:
            done = loop.done_so_far()
            seen = self._item_start.get(loop.loop_id)
            if seen is None or seen[0] != done:
                count = recorder.mark()  # the item's output never merges into earlier output
                self._item_start[loop.loop_id] = (done, count)

    def _outputs_start(self, loop: Any) -> int | None:
        """Outputs before the item in flight of ``loop`` (all outputs if it printed nothing)."""
        seen = self._item_start.get(loop.loop_id)
        count = len(self.run.recorder.outputs) if self.run.recorder is not None else 0
        if seen is not None and seen[0] == loop.done_so_far():
            return min(seen[1], count)
        return count


def _restored_items(loop: Any, ns: dict[str, Any], values: dict[str, Any]) -> Any:
    """The loop's items evaluated again over the restored variables, when they are made of them."""
    argument = loop.site.argument
    if argument is None or not _names(argument) & values.keys():
        return None
    items = eval(compile(ast.Expression(argument), loop.site.filename, "eval"), ns)
    restored = any(items is value for value in values.values())
    if restored and iter(items) is items:  # a restored iterator is mid-way: it would skip items
        return None
    return items


def _handle(value: Any) -> bool:
    """An IPython DisplayHandle (`display(..., display_id=True)`)."""
    return type(value).__name__ == "DisplayHandle" and "IPython" in type(value).__module__


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
