"""``%checkpoint rollback`` and ``%checkpoint mark``: manual moves through a phase's history.

A rollback puts an earlier version's variables back in the namespace and shows its outputs again;
it becomes the phase's current version (first in its history, so pruning keeps it longest). A mark
changes what the next run does: ``pending`` runs the cell again whatever is saved; ``done`` accepts
the phase as it stands (the run that failed its gate, or the current version).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from . import checkpoint
from ._capture import emit_execute_result, has_result, replay
from ._history import log_event, promote
from ._progress import PhaseProgress, format_duration, format_when
from ._store import MISSING, Store, open_store
from .checkpoint import RESULT, Note, Notify, Shell, phases
from .errors import CheckpointError, CheckpointWarning, StoreError

__all__ = [
    "MARKS",
    "load_version",
    "mark_phase",
    "record_rollback",
    "rollback_phase",
]


def load_version(store: Store, name: str, number: int | None) -> tuple[dict[str, Any], Any]:
    """Version ``number`` (1 = current; default 2, the one current before) of phase ``name``
    and its entry. Raises `CheckpointError` with what to do."""
    record = store.get_json(f"phase:{name}")
    if not isinstance(record, dict):
        raise CheckpointError(
            f"no phase named {name!r} in {str(store.path)!r}; see %checkpoint list"
        )
    versions = [v for v in record.get("versions", []) if isinstance(v, dict)]
    number = 2 if number is None else number
    if not versions:
        raise CheckpointError(f"phase {name!r} has no completed version to roll back to")
    if len(versions) == 1 and number == 2:
        raise CheckpointError(
            f"phase {name!r} has one version only (#1, the current one); nothing to roll back to"
        )
    if not 1 <= number <= len(versions):
        raise CheckpointError(
            f"phase {name!r} has {_plural(len(versions), 'version')}; give a number from 1 "
            f"to {len(versions)}, as its history lists them"
        )
    version = versions[number - 1]
    try:
        entry = store.get(str(version["key"]))
    except StoreError as exc:
        raise CheckpointError(f"cannot roll back {name!r} to version #{number}: {exc}") from exc
    if entry is MISSING:
        raise CheckpointError(
            f"version #{number} of {name!r} is gone from the store (pruned by nbresume gc?); "
            "pick another from its history"
        )
    return version, entry


def record_rollback(store: Store, name: str, number: int, version: dict[str, Any]) -> None:
    """Make ``version`` the phase's current one: first in its history, status "rolled back"."""
    when = format_when(version.get("created") or time.time())
    with store.transact():
        record = store.get_json(f"phase:{name}")
        if not isinstance(record, dict):
            return
        versions = record.get("versions") or [{}]
        now = time.time()
        rolled = {"from": versions[0].get("key"), "to": version["key"], "at": now}
        promote(record, str(version["key"]))
        record.update(
            status="rolled back",
            updated=now,
            source_hash=version.get("source_hash"),
            rolled_back=rolled,
        )
        store.put_json(f"phase:{name}", record)
        log_event(store, name, "rolled back", f"rolled back to version #{number} of {when}")


def rollback_phase(
    shell: Shell,
    name: str,
    number: int | None,
    notify: Notify,
    *,
    store: Store | None = None,
) -> Any:
    """``%checkpoint rollback NAME [N]``: version N's variables back into the namespace, its
    outputs shown again; it becomes the phase's current version. Returns its result."""
    store = store or open_store()
    from ._namespace import DELETED, Unresolved, apply_values, resolving

    try:
        with resolving(shell.user_ns):
            version, entry = load_version(store, name, number)
        number = 2 if number is None else number
        values = dict(entry["vars"])
        has_value = RESULT in values
        result = values.pop(RESULT, None)
        deleted = values.pop(DELETED, [])
        apply_values(shell.user_ns, values)
    except (CheckpointError, Unresolved) as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, Unresolved):
            cause = cause.__cause__  # CheckpointError <- StoreError <- Unresolved
        if cause is None:
            raise
        raise CheckpointError(
            f"cannot roll back {name!r}: its version refers to {cause.name!r}, which is not "
            "defined now; run the cell that defines it first"
        ) from None
    for gone in deleted:
        shell.user_ns.pop(gone, None)
    when = format_when(version.get("created") or time.time())
    listed = ", ".join(sorted(values)) or "no variables"
    notify(
        Note(
            "rolled back",
            name,
            f"rolled back {name!r} to version #{number} of {when} (ran "
            f"{format_duration(version.get('duration'))}): {listed}",
            {"key": version["key"], "version": number, "variables": sorted(values)},
        )
    )
    outputs = entry["outputs"]
    replay(
        outputs,
        shell.display_pub,
        lambda o: emit_execute_result(shell, o["data"], o["metadata"], result),
    )
    try:
        record_rollback(store, name, number, version)
    except StoreError as exc:
        warnings.warn(
            f"{exc} (the variables are back; the phase's history could not record the rollback)",
            CheckpointWarning,
            stacklevel=2,
        )
    phase = phases[name] = PhaseProgress(name, status="rolled back")
    phase.finished = phase.clock()
    if has_result(outputs):  # shown in its place among the outputs
        return None
    if has_value:
        return result
    bundle = entry.get("result_bundle")
    if bundle is not None:
        emit_execute_result(shell, *bundle)
    return None


MARKS = ("pending", "done")


def mark_phase(name: str, mark: str, *, store: Store | None = None) -> str:
    """``%checkpoint mark NAME pending|done``; -> what was done, in one line.

    pending: the next run of the cell runs it (a miss), whatever is saved; the history stays.
    done: a run of this kernel that failed its --validate gate is saved now, its variables as
    they are in the namespace (fixed by hand, perhaps); else the current version is accepted as
    the phase's result and a pending mark is lifted. Raises `CheckpointError`.
    """
    if mark not in MARKS:
        raise CheckpointError(f"a phase can be marked pending or done, not {mark!r}")
    store = store or open_store()
    run = checkpoint.rejected.get(name)
    if mark == "done" and run is not None:
        if phases.get(name) is run.phase and run.store.path == store.path:
            count = run.accept()
            return (
                f"marked {name!r} done: saved the run that failed its gate "
                f"--validate {run.options.validate!r}, with its variables as they are now "
                f"(version #1 of {count})"
            )
        del checkpoint.rejected[name]
    record = store.get_json(f"phase:{name}")
    if not isinstance(record, dict):
        raise CheckpointError(
            f"no phase named {name!r} in {str(store.path)!r}; see %checkpoint list"
        )
    versions = record.get("versions") or []
    if mark == "done" and not versions:
        raise CheckpointError(
            f"phase {name!r} has no saved version to accept: none of its runs completed (or "
            "passed its gate); run the cell until it does"
        )
    current = format_when(versions[0].get("created") or time.time()) if versions else "-"
    with store.transact():
        record = store.get_json(f"phase:{name}") or record
        record.update(mark=mark, status=mark, updated=time.time())
        store.put_json(f"phase:{name}", record)
        text = f"marked {mark}"
        if mark == "done":
            text += f": version #1 of {current} is current"
        log_event(store, name, "marked", text)
    checkpoint.rejected.pop(name, None)
    phase = phases[name] = PhaseProgress(name, status=mark)
    if mark == "done":
        phase.finish("done")
        return f"marked {name!r} done: its version of {current} is its current result"
    kept = (
        "its saved version stays"
        if len(versions) == 1
        else f"its {len(versions)} saved versions stay"
    )
    return f"marked {name!r} pending: its next run runs the cell again; {kept}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
