"""The shapes of the JSON records the engines write, checked when a record is read.

A record verified with the user's key was written by nbresume, but perhaps by another version or a
bug: a field of the wrong type must be a miss with a warning, never a ``TypeError`` in a cell or a
traceback in ``nbresume status``. One check, used by every reader (`Store.get_json`,
`StoreReader.get_json`), so no reader trusts a field it did not check.
"""

from __future__ import annotations

from typing import Any

__all__ = ["well_formed"]

_NUMBER = (int, float)
_OPTIONAL_NUMBER = (int, float, type(None))
_OPTIONAL_INT = (int, type(None))
_OPTIONAL_STR = (str, type(None))

# field -> the types it may have, for each record kind (by key prefix); absent fields are fine
_VERSION = {
    "key": (str,),
    "source_hash": _OPTIONAL_STR,
    "inputs": (dict, type(None)),
    "created": _OPTIONAL_NUMBER,
    "duration": _OPTIONAL_NUMBER,
    "size": _OPTIONAL_INT,
    "reason": _OPTIONAL_STR,
    "loops": (list, type(None)),  # each checked where it is read (`_history.restored_loops`)
    "resumes": _OPTIONAL_INT,
    "finished": _OPTIONAL_NUMBER,
}
_PHASE = {
    "name": _OPTIONAL_STR,
    "status": _OPTIONAL_STR,
    "updated": _OPTIONAL_NUMBER,
    "source_hash": _OPTIONAL_STR,
    "mark": _OPTIONAL_STR,
    "versions": (list,),
}
_LOOP = {
    "desc": _OPTIONAL_STR,
    "status": _OPTIONAL_STR,
    "done": _OPTIONAL_INT,
    "total": _OPTIONAL_INT,
    "skipped": _OPTIONAL_INT,
    "rate": _OPTIONAL_NUMBER,
    "eta": _OPTIONAL_NUMBER,
    "elapsed": _OPTIONAL_NUMBER,
    "last_snapshot": _OPTIONAL_NUMBER,
}
_PROGRESS = {
    **_LOOP,
    "name": _OPTIONAL_STR,
    "started": _OPTIONAL_NUMBER,
    "finished": _OPTIONAL_NUMBER,
    "updated": _OPTIONAL_NUMBER,
    "pid": _OPTIONAL_INT,
    "host": _OPTIONAL_STR,
    "notebook": _OPTIONAL_STR,
    "resumes": _OPTIONAL_INT,
    "loops": (list,),
}
_EVENT = {
    "t": _OPTIONAL_NUMBER,
    "event": (str,),
    "text": _OPTIONAL_STR,
    "name": _OPTIONAL_STR,
    "count": _OPTIONAL_INT,
    "since": _OPTIONAL_NUMBER,
}


def _fields(value: Any, shape: dict[str, tuple[type, ...]]) -> bool:
    return isinstance(value, dict) and all(
        type(value[k]) in types or (float in types and type(value[k]) is int)
        for k, types in shape.items()
        if k in value
    )


def well_formed(key: str, value: Any) -> bool:
    """Whether ``value``, read under ``key``, has the shape the engines and commands rely on."""
    kind = key.partition(":")[0]
    if kind == "phase":
        return _fields(value, _PHASE) and all(
            _fields(v, _VERSION) and "key" in v for v in value.get("versions", [])
        )
    if kind == "progress":
        return _fields(value, _PROGRESS) and all(_fields(v, _LOOP) for v in value.get("loops", []))
    if kind == "events":
        return isinstance(value, list) and all(_fields(e, _EVENT) for e in value)
    return True
