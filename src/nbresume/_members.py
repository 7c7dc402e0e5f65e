"""Attributes a cell sets on a notebook function or class (``Model.default_lr = 0.1``,
``f.cache = {}``, ``type(self).runs += 1`` in a method), or on a module of the user's (a .py file
next to the notebook: ``settings.SCALE = 5``, ``settings.configure(7)``).

These are never saved as copies (a hit must leave the live ones in place), so what such a cell
changes is saved as the members it set or deleted, and a hit sets them on the live object again:
a hit in a new kernel leaves ``Model.default_lr`` as the run left it. A member changed in place
(``Registry.items['a'] = 1``) is written back into the live member. The members' values go
through `NamespacePickler` like any saved value.
"""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from ._fingerprint import BUDGET_SECONDS, FingerprintError, fingerprint
from ._widgets import widget_reduction
from .errors import CheckpointWarning

__all__ = ["MemberChange", "MemberSnapshot", "same_members", "snapshot", "write_members"]

# members of a class that are not set by cells: ``__slotnames__`` is copyreg's cache of the slot
# names, set the first time an instance is pickled or copied; the others are fixed by Python
_NOT_SET = frozenset(("__dict__", "__weakref__", "__slotnames__", "__doc__", "__module__"))


# members compared by identity: code (its globals are inputs of their own), not data
_CODE = (types.FunctionType, staticmethod, classmethod, property, type, types.ModuleType)


def members_of(obj: Any) -> dict[str, Any]:
    """The attributes a cell can set on a function, class or module (a shallow copy)."""
    if isinstance(obj, types.ModuleType):  # NB. not its __builtins__, __loader__, __spec__...
        return {k: v for k, v in vars(obj).items() if not (k.startswith("__") and k.endswith("__"))}
    return {k: v for k, v in vars(obj).items() if k not in _NOT_SET}


def snapshot(obj: Any) -> MemberSnapshot:
    """``obj``'s members now, to compare with after the run."""
    members = members_of(obj)
    return MemberSnapshot(members, {k: _print(v) for k, v in members.items()})


def _print(value: Any) -> str | None:
    if isinstance(value, _CODE):
        return None
    try:
        return fingerprint(value, budget=BUDGET_SECONDS)
    except FingerprintError:
        return None  # NB. then a change is seen only if the member is rebound


@dataclass
class MemberSnapshot:
    """A notebook function's or class's members before the cell ran."""

    members: dict[str, Any]  # NB. references: an id is never reused while the cell runs
    prints: dict[str, str | None]  # fingerprints of the data members (None: compare by identity)

    def changes(self, obj: Any, name: str = "") -> MemberChange | None:
        """What the run set or deleted on ``obj`` (bound to ``name``); None if nothing.

        A member that cannot be pickled (``Model.lock = threading.Lock()``) warns, and a hit in
        another kernel deletes it rather than leave an older value of it in place.
        """
        from ._namespace import in_place  # NB. _namespace imports this module

        now = members_of(obj)
        assigned: dict[str, Any] = {}
        for k, v in now.items():
            if k not in self.members or v is not self.members[k]:
                assigned[k] = v
            elif self.prints.get(k) is not None and _print(v) != self.prints[k]:
                assigned[k] = in_place(v) or v  # changed in place: written back in place
        deleted = [k for k in self.members if k not in now]
        for k in list(assigned):
            if _is_widget(now[k]) and widget_reduction(now[k]) is None:
                # NB. `interact(f)` sets f.widget, an `interactive`: its view is replayed as text
                del assigned[k]
                deleted.append(k)
                continue
            why = _unpicklable(assigned[k])
            if why is not None:
                del assigned[k]
                deleted.append(k)
                warnings.warn(
                    f"could not save attribute {k!r} the cell set on {name!r} ({why}); a hit in "
                    "another kernel leaves it unset; --force runs the cell again to set it",
                    CheckpointWarning,
                    stacklevel=2,
                )
        if not assigned and not deleted:
            return None
        return MemberChange(assigned, deleted)


def _is_widget(value: Any) -> bool:
    ipywidgets = sys.modules.get("ipywidgets")
    return ipywidgets is not None and isinstance(value, ipywidgets.Widget)


def _unpicklable(value: Any) -> str | None:
    """Why ``value`` cannot be saved, or None."""
    content = getattr(value, "content", value)  # NB. an `InPlace`
    try:
        cloudpickle.dumps(content)
    except Exception as exc:
        return f"a {type(content).__qualname__} cannot be pickled: {str(exc)[:80]}"
    return None


@dataclass(frozen=True)
class MemberChange:
    """The members a run set on a notebook function or class, and those it deleted."""

    assigned: dict[str, Any] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)


def write_members(live: Any, change: MemberChange) -> bool:
    """Set ``change`` on the live function, class or module; False if ``live`` is none."""
    from ._namespace import InPlace, rebuilt, write_in_place

    if not isinstance(getattr(live, "__dict__", None), Mapping) or not (
        callable(live) or isinstance(live, types.ModuleType)
    ):
        return False
    for name, value in change.assigned.items():
        if not isinstance(value, InPlace):
            setattr(live, name, value)
        elif not write_in_place(getattr(live, name, None), value):
            setattr(live, name, rebuilt(value))
    for name in change.deleted:
        if name in vars(live):
            delattr(live, name)
    return True


def same_members(live: Any, change: MemberChange) -> bool:
    """Whether ``live`` has the members ``change`` sets (and lacks those it deletes)."""
    state = getattr(live, "__dict__", None)
    if not isinstance(state, Mapping):
        return False
    if any(k in state for k in change.deleted):
        return False
    return all(
        k in state and fingerprint(state[k]) == fingerprint(v) for k, v in change.assigned.items()
    )
