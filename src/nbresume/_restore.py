"""A checkpoint hit: the saved variables, the session settings and the outputs put back."""

from __future__ import annotations

import contextlib
import io
import math
import time
import warnings
from typing import TYPE_CHECKING, Any

from . import _globalstate
from ._capture import emit_execute_result, has_result, replay
from ._cellcode import RESULT, inherit_future
from ._history import promote, restored_loops, resumed_text
from ._namespace import DELETED, apply_values, setting_magics
from ._progress import PhaseProgress, format_duration, format_when
from ._runlog import phases
from .errors import CheckpointWarning

if TYPE_CHECKING:
    from .checkpoint import CheckpointRun

__all__ = ["restore"]


def restore(run: CheckpointRun, entry: dict[str, Any]) -> Any:
    """Put a saved run back: its variables, its effect on the session, its outputs; -> the
    value for the displayhook (None, except for entries of older versions)."""
    values = dict(entry["vars"])
    has_value = RESULT in values
    result = values.pop(RESULT, None)
    ns = run.shell.user_ns
    deleted = values.pop(DELETED, [])
    apply_values(ns, values)
    for name in deleted:
        ns.pop(name, None)
    inherit_future(run.shell, run.transformed)  # as running the cell would have
    _reapply_settings(run)
    _globalstate.restore(entry.get("globals") or {})
    run.key = run.entry_key
    record = run.record
    version: dict[str, Any] = next(
        (v for v in record.get("versions", []) if v.get("key") == run.key), {}
    )
    when = format_when(version.get("created") or time.time())
    ran = format_duration(version.get("duration"))
    text = f"restored {run.name!r} from checkpoint of {when}, ran {ran}"
    resumes = version.get("resumes")
    if isinstance(resumes, int) and resumes > 0:
        text += f", {resumed_text(resumes)}"
    run._notify("restored", text, {"key": run.key, "variables": sorted(values)})
    outputs = entry["outputs"]
    recorded = has_result(outputs)
    replay(
        outputs,
        run.shell.display_pub,
        lambda o: emit_execute_result(run.shell, o["data"], o["metadata"], result),
    )
    phase = phases[run.name] = PhaseProgress(run.name, status="restored")
    for loop in restored_loops(version):  # 40/40 in every view, as after the run
        phase.loops.append(loop)
    took = version.get("duration")
    if isinstance(took, int | float) and math.isfinite(took) and took >= 0:
        phase.prior = float(took)  # its progress says how long the run took, not the hit
    phase.finish("restored")
    with run._writing():  # NB. one transaction: a hit pays for one commit
        # NB. read again inside it: another kernel may have saved a version since `lookup`
        record = run._phase_record()
        promote(record, run.key)  # the version in use is kept longest
        if record.get("mark") == "done":
            del record["mark"]  # a run supersedes a manual mark
        run._set_record(record, "restored")
        run._log("restored", f"restored the version of {when}", fold=run.key)
        run._watch(phase, "restored")
    if recorded:  # shown in its place among the outputs
        return None
    if has_value:  # entries saved before results were recorded
        return result
    bundle = entry.get("result_bundle")
    if bundle is not None:
        emit_execute_result(run.shell, *bundle)
    return None


def _reapply_settings(run: CheckpointRun) -> None:
    """Run the cell's ``%matplotlib``, ``%load_ext``, ``%config``... lines again: their effect
    is on the kernel, not in a variable. What they print was recorded and is replayed."""
    run_line_magic = getattr(run.shell, "run_line_magic", None)
    if run_line_magic is None:
        return
    for magic, line in setting_magics(run.transformed):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                run_line_magic(magic, line)
        except Exception as exc:
            warnings.warn(
                f"could not apply %{magic} {line} again on restoring {run.name!r}: {exc!r}; "
                "run it in a plain cell",
                CheckpointWarning,
                stacklevel=3,
            )
