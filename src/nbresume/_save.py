"""A checkpoint miss that ran to its end: its variables and outputs saved as a new version."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import _globalstate
from ._capture import has_result, merge_streams, strip_for_replay
from ._cellcode import RESULT
from ._history import Version, history_limit, loop_summary, push_version, run_reason
from ._keys import cell_key
from ._progress import format_duration
from ._runlog import phases
from ._serialize import dumps_namespace
from ._streamorder import shown_order
from .errors import StoreError

if TYPE_CHECKING:
    from .checkpoint import CheckpointRun

__all__ = ["save"]


def save(run: CheckpointRun, value: Any, has_value: bool) -> None:
    """Save the cell's variables (as they are in the namespace now) and outputs as done."""
    recorder = run.recorder
    assert recorder is not None
    duration = run.elapsed()
    values = run._variables()
    if has_value:
        values[RESULT] = value
    # NB. in the order the kernel showed them (stdout before a warning written first)
    outputs = merge_streams(strip_for_replay(shown_order(recorder.outputs, time.monotonic())))
    figures = any(k.startswith("image/") for o in outputs for k in (o.get("data") or {}))
    shown = any(o.get("output_type") in ("display_data", "execute_result") for o in outputs)
    uses, states = _globalstate.used(
        run._states_before, _globalstate.fingerprints(), run.analysis, figures, shown
    )
    if not run.options.no_deps:
        kept = {n: f for n, f in run.inputs.items() if n not in _globalstate.PSEUDO_INPUTS}
        run.inputs = {**kept, **uses}
    key = cell_key(run.name, run.source_hash, run.inputs)
    extra: dict[str, Any] = {"outputs": outputs, "globals": _globalstate.capture(states)}
    pickler = run.tracker.pickler()
    pickled, failures = dumps_namespace(values, extra, pickler)
    if RESULT in failures and not has_result(outputs):  # a run accepted after its gate failed
        failures.pop(RESULT)
        data, metadata = run.shell.display_formatter.format(value)
        pickled, more = dumps_namespace(
            {n: v for n, v in values.items() if n != RESULT},  # the unsaved get markers again
            {**extra, "result_bundle": (data, metadata)},
            pickler,
        )
        failures.update(more)
    failures.pop(RESULT, None)  # its recorded form is replayed; Out[n] stays unset
    run._warn_unsaved(failures)
    try:
        size = run.store.put(key, pickled, {"name": run.name})
        _save_record(run, duration, size, key)
        run._drop_progress()
    except StoreError as exc:
        run._warn_store(exc)
    run.key = run.entry_key = key


def _save_record(run: CheckpointRun, duration: float, size: int, key: str) -> None:
    phase = phases.get(run.name)
    version = Version(
        key,
        run.source_hash,
        run.inputs,
        run.run_started,
        duration,
        size,
        run_reason(run.why, run.resumes),
        loop_summary(phase.loops) if phase is not None and phase.loops else None,
        run.resumes,
        time.time(),
    )
    with run._writing():
        record = run._phase_record()
        for old in push_version(record, version, history_limit()):
            run.store.delete(old)
        record.pop("mark", None)  # a saved run settles a manual mark
        record.pop("rolled_back", None)
        for info in (record.pop("interrupted", None), record.pop("run", None)):
            if isinstance(info, dict) and info.get("snapshot") not in (None, run.snapshot_key):
                run.store.delete(str(info["snapshot"]))  # a completed run ends --continue
        run._set_record(record, "done")
        reason = run_reason(run.why, run.resumes)
        run._log("done", f"done in {format_duration(duration)}: saved ({reason})")
