"""Going on from an interrupted run: a snapshot of the same code (resumed), of the same code whose
inputs it changed in place itself (resumed too), or of other code (``--continue`` keeps its items;
without it, the note says what was kept and how to keep it)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from . import _globalstate
from ._history import FIRST_RUN
from ._keys import describe_change
from ._tracking import same_content

if TYPE_CHECKING:
    from .checkpoint import CheckpointRun

__all__ = [
    "earlier_interrupted",
    "items_done",
    "note_run",
    "own_interrupted",
    "start_note",
    "take_over",
]


def take_over(run: CheckpointRun, snapshot: dict[str, Any]) -> None:
    """Go on with the run a snapshot was taken in: its time so far and start count in this
    run's duration, and why it ran stays why it runs (not "first run")."""
    info = snapshot.get("run")
    info = info if isinstance(info, dict) else {}
    elapsed, started = info.get("elapsed"), info.get("started")
    resumes, why = info.get("resumes"), info.get("why")
    if isinstance(elapsed, int | float) and math.isfinite(elapsed) and elapsed >= 0:
        run.prior = float(elapsed)
    if isinstance(started, int | float) and math.isfinite(started) and started > 0:
        run.run_started = float(started)
    run.resumes = (resumes if isinstance(resumes, int) and resumes >= 0 else 0) + 1
    if run.continued is None and isinstance(why, str) and run.why == FIRST_RUN:
        run.why = why


def own_interrupted(run: CheckpointRun) -> None:
    """Resume the same code's interrupted run whose inputs differ from ours only by what it
    changed in place itself (a loop filling an upstream dict, stopped by an error or Ctrl-C
    while the kernel lived on): the inputs must hold exactly what its snapshot saved."""
    info = run.record.get("run")
    if (
        not isinstance(info, dict)
        or info.get("source_hash") != run.source_hash
        or info.get("snapshot") in (None, run.snapshot_key)
    ):
        return
    start = dict(info.get("inputs") or {})
    theirs = {n: f for n, f in start.items() if n not in _globalstate.PSEUDO_INPUTS}
    ours = {n: f for n, f in run.inputs.items() if n not in _globalstate.PSEUDO_INPUTS}
    changed = [n for n in ours if ours[n] != theirs.get(n)]
    if ours.keys() != theirs.keys() or not changed:
        return
    snapshot = run.read_snapshot(str(info["snapshot"]))
    if snapshot is None:
        return
    saved, ns = snapshot["vars"], run.shell.user_ns
    if all(n in saved and n in ns and same_content(ns[n], saved[n]) for n in changed):
        run.inputs = start
        run.snapshot_key = str(info["snapshot"])
        run.key = "cell:" + run.snapshot_key[len("snap:") :]
        run.pending = snapshot


def earlier_interrupted(run: CheckpointRun) -> dict[str, Any] | None:
    """The phase's latest interrupted run of other code or inputs whose snapshot holds
    finished items (``snapshot``, ``source_hash``, ``inputs``, ``done``, ``total``); with
    --continue its snapshot becomes this run's."""
    for info in (run.record.get("run"), run.record.get("interrupted")):
        if not isinstance(info, dict) or info.get("snapshot") in (None, run.snapshot_key):
            continue
        snapshot = run.read_snapshot(str(info["snapshot"]))
        if snapshot is None:
            continue
        done, total = items_done(snapshot)
        if done == 0:
            continue
        earlier = {**info, "done": done, "total": total}
        if run.options.continue_run:
            run.pending = snapshot
            run.continued = earlier
            items = f"{done:,} item{'s' * (done != 1)}"
            run.why = f"continued after an edit: {items} from the earlier version"
        return earlier
    return None


def start_note(
    run: CheckpointRun, earlier: dict[str, Any] | None, done: int, ran_before: bool
) -> tuple[str, str, dict[str, Any]] | None:
    """The note a miss begins with (kind, text, data), or None: a first run says nothing."""
    if run.pending is not None:
        text = (
            f"continuing {run.name!r}: {run.why}"
            if run.continued is not None
            else f"resuming {run.name!r} from a snapshot: {done} item{'s' * (done != 1)} done"
        )
        return "resuming", text, {"key": run.key, "done": done}
    if earlier is not None:
        total = f"/{earlier['total']:,}" if earlier.get("total") else ""
        change = describe_change(
            earlier.get("source_hash"),
            earlier.get("inputs") or {},
            run.source_hash,
            run.inputs,
        )
        text = (
            f"{change} since the interrupted run ({earlier['done']:,}{total} items done): "
            "starting over; --continue keeps them"
        )
        return "running", text, {"reason": run.why, "interrupted": earlier}
    if run.options.continue_run:
        text = f"running {run.name!r}: nothing to continue (no interrupted run of other code)"
        return "running", text, {"reason": run.why}
    if ran_before:
        return "running", f"running {run.name!r}: {run.why}", {"reason": run.why}
    return None


def note_run(run: CheckpointRun, record: dict[str, Any], earlier: dict[str, Any] | None) -> None:
    """Keep the phase's latest interrupted snapshot (for --continue) until a run completes."""
    if earlier is not None:
        old = record.get("interrupted")
        if isinstance(old, dict) and old.get("snapshot") not in (earlier["snapshot"], None):
            run.store.delete(str(old["snapshot"]))  # superseded by a later interrupted run
        record["interrupted"] = {k: v for k, v in earlier.items() if k not in ("done",)}
    record["run"] = {
        "snapshot": run.snapshot_key,
        "source_hash": run.source_hash,
        "inputs": run.inputs,
    }


def items_done(snapshot: dict[str, Any]) -> tuple[int, int | None]:
    """(items done, total) of a snapshot's outermost loops."""
    states = [s for i, s in (snapshot.get("loops") or {}).items() if "/" not in str(i)]
    done = sum(int(getattr(s, "count", 0)) for s in states)
    totals = [t for s in states if isinstance(t := getattr(s, "total", None), int)]
    total = sum(totals) if states and len(totals) == len(states) else None
    return done, total
