"""What one run of a checkpoint cell did to the namespace: the engine's side of `_namespace`.

`NamespaceTracker.start` looks at the namespace before the body runs (bindings by identity, the
fingerprints of what the cell can read), `values` after it (or at a loop snapshot): the variables
to save, as `_namespace` markers, and the pickler that keeps notebook objects live.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
import types
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

from ._keys import BUDGET_SECONDS, CellNames, FingerprintError, fingerprint, fingerprint_input
from ._members import MemberSnapshot, same_members, snapshot
from ._namespace import (
    DELETED,
    InPlace,
    NamespacePickler,
    Ref,
    ShellRef,
    deleted_names,
    in_place,
    is_dead,
    is_ipython,
    is_notebook_object,
    reachable_globals,
    unconditional,
)
from ._standins import Finished, Imported, Unsaved
from ._usermodules import is_user_module

__all__ = ["NamespaceTracker", "cell_inputs", "same_content"]

_HISTORY = re.compile(r"_{1,3}|_\d+|Out|_oh")  # IPython's results of earlier cells
_IMMUTABLE = (str, bytes, int, float, complex, bool, type(None), PurePath, range, tuple, frozenset)


def cell_inputs(
    names: Iterable[str], ns: Mapping[str, Any], exclude: Iterable[str], shell: Any
) -> tuple[dict[str, str], dict[str, str]]:
    """The fingerprint of each input the cell reads that exists now: not modules, not IPython's
    own objects (``get_ipython`` walked the whole shell, differently each time), not excluded.

    -> (fingerprints, the note for each input that cannot be fingerprinted within its budget).
    """
    skip = frozenset(exclude)
    found: dict[str, str] = {}
    refused: dict[str, str] = {}
    for n in names:
        if n in ns and n not in skip and _HISTORY.fullmatch(n):
            # NB. IPython's objects are never inputs, but these hold values of earlier cells
            refused[n] = (
                f"reads IPython's output history ({n}): the cell re-runs every time; give the "
                "value a name in the cell that computes it"
            )
            continue
        if (
            n in ns
            and n not in skip
            and not (isinstance(ns[n], types.ModuleType) and not _users_module(ns[n]))
            and not is_ipython(n, ns[n], shell)
        ):
            try:
                found[n] = fingerprint_input(n, ns[n])
            except FingerprintError as exc:
                refused[n] = str(exc)
    return found, refused


def _watch_print(value: Any) -> str | None:
    """A value's fingerprint for the in-place check; None if it cannot have one in budget."""
    try:
        return fingerprint(value, budget=BUDGET_SECONDS)
    except FingerprintError:
        return None


def same_content(live: Any, saved: Any) -> bool:
    """Whether ``live`` holds what a snapshot saved for it (a value, or `InPlace` content)."""
    if not isinstance(saved, InPlace):
        return fingerprint(live) == fingerprint(saved)
    if saved.kind == "attrs":
        state = getattr(live, "__dict__", None)
        return isinstance(state, dict) and fingerprint(dict(state)) == fingerprint(saved.content)
    if saved.kind == "members":
        return same_members(live, saved.content)
    if saved.kind == "bytearray":
        return type(live) is bytearray and fingerprint(bytes(live)) == fingerprint(saved.content)
    return fingerprint(live) == fingerprint(saved.content)


class NamespaceTracker:
    """The namespace of one cell run, before and after."""

    def __init__(
        self,
        shell: Any,
        names: CellNames,
        source: str,
        exclude: frozenset[str],
        inputs: Mapping[str, str],
    ) -> None:
        self.shell = shell
        self.names = names
        self.always = unconditional(source)  # bound whenever the cell completes
        self.deletes = deleted_names(source)
        self.exclude = exclude
        self.inputs = inputs
        self.ids: dict[str, int] = {}
        self.before: dict[str, Any] = {}
        self.watched: dict[str, str] = {}
        self.members: dict[str, MemberSnapshot] = {}  # notebook functions and classes read
        self.refs: dict[int, str] = {}

    @property
    def ns(self) -> dict[str, Any]:
        return self.shell.user_ns  # type: ignore[no-any-return]

    def _ours(self, name: str, value: Any) -> bool:
        return name not in self.exclude and not is_ipython(name, value, self.shell)

    def start(self) -> None:
        """Note the namespace before the body runs (a miss pays for this, a hit does not)."""
        ns = self.ns
        self.ids = {n: id(v) for n, v in ns.items()}
        # NB. references only for names bound inside blocks: an id may be reused once the old
        # value is freed, and a reference keeps a big old value alive until the cell ends
        self.before = {n: ns[n] for n in self.names.outputs if n in ns and n not in self.always}
        watched = {n: fp for n, fp in self.inputs.items() if n in ns}
        read = [n for n in self.names.inputs if n in ns]
        more = set(read) | reachable_globals([ns[n] for n in read], ns)
        more |= _array_aliases(ns, more)
        more |= _classes_of(ns, more)
        self.members = {
            n: snapshot(ns[n])
            for n in more
            if (is_notebook_object(ns[n]) or _users_module(ns[n])) and self._ours(n, ns[n])
        }
        for name in more - watched.keys():
            value = ns[name]
            if (
                self._ours(name, value)
                and not isinstance(value, types.ModuleType)
                and not is_notebook_object(value)
            ):
                print_ = _watch_print(value)
                if print_ is not None:
                    watched[name] = print_
        self.watched = watched

    def assigned(self) -> list[str]:
        """The names this run bound (so far)."""
        ns = self.ns
        names = []
        for name, value in ns.items():
            if name in self.exclude or is_ipython(name):
                continue
            if name in self.always and name in self.names.outputs:
                names.append(name)
            elif name in self.before:
                if value is not self.before[name]:
                    names.append(name)
            elif self.ids.get(name) != id(value):  # new, or rebound outside the cell's own code
                names.append(name)
        return names

    def values(self, skip: Iterable[str] = ()) -> dict[str, Any]:
        """The variables to save (`Ref`, `InPlace` or the value); sets `refs` for `pickler`."""
        ns = self.ns
        skipped = set(skip) | self.exclude
        every = self.assigned()
        assigned = [n for n in every if n not in skipped]
        bound = set(assigned)
        refs: dict[int, str] = {}
        changed: dict[str, Any] = {}
        for name, before in self.watched.items():
            if name in bound or name in skipped or name not in ns:
                continue
            value = ns[name]
            if id(value) != self.ids.get(name):
                continue
            now = _watch_print(value)
            if now is not None and now != before:
                change = in_place(value)
                changed[name] = value if change is None else change
                if change is None:
                    continue  # saved as a value: references to it must not become live ones
            if not isinstance(value, _IMMUTABLE):
                refs.setdefault(id(value), name)
        self._bind_items(changed, refs, bound | skipped)
        for name, members in self.members.items():
            if name in bound or name in skipped or id(ns.get(name)) != self.ids.get(name):
                continue
            member_change = members.changes(ns[name], name)
            if member_change is not None:  # the live object stays: a hit sets the members again
                changed[name] = InPlace("members", member_change)
        for name, value in ns.items():
            if (
                name not in bound
                and is_notebook_object(value)
                and self._ours(name, value)
                and (getattr(value, "__name__", None) == name or id(value) not in refs)
            ):
                refs[id(value)] = name
        values: dict[str, Any] = {}
        dead: list[str] = []
        installed = [m for m in self.names.imports if not is_user_module(m)]
        for name in assigned:
            value = ns[name]
            shell = ShellRef.of(value, self.shell)
            if shell is not None:
                values[name] = shell  # IPython's own objects are never saved: the live ones
                continue
            if is_dead(value):  # nothing to bring back; an older value must not show instead
                if inspect.isgenerator(value):
                    values[name] = Finished(value.__name__, value.__qualname__)
                else:
                    dead.append(name)
                continue
            live = refs.get(id(value))
            if live is not None and live != name:
                values[name] = Ref(live)
                continue
            imported = Imported.of(value, installed, (name, getattr(value, "__name__", name)))
            values[name] = value if imported is None else imported
        for name in set(skip) - self.exclude:  # could not be saved earlier in the run (a loop's
            if name in ns and name in every:  # progress): a hit must still drop it
                values[name] = Unsaved.of(name, ns[name], "it could not be pickled")
        for name, change in changed.items():  # an input the run used up is restored used up
            dead_generator = inspect.isgenerator(change) and is_dead(change)
            values[name] = (
                Finished(change.__name__, change.__qualname__) if dead_generator else change
            )
        deleted = [
            n
            for n in self.ids.keys() | self.deletes
            if n not in ns and n not in skipped and not is_ipython(n)
        ] + dead
        if deleted:
            values[DELETED] = deleted
        self.refs = refs
        return values

    def _bind_items(self, changed: dict[str, Any], refs: dict[int, str], taken: set[str]) -> None:
        """Items of a changed container that have a name of their own (``m`` in ``models =
        {'a': m}``) stay that object on a hit: the container refers to it by name, and its own
        state is saved too (the cell may have changed it through the container)."""
        containers = [
            c for c in changed.values() if isinstance(c, InPlace) and c.kind in ("dict", "list")
        ]
        if not containers:
            return
        named = {
            id(v): n
            for n, v in self.ns.items()
            if n not in taken
            and self.ids.get(n) == id(v)
            and self._ours(n, v)
            and not isinstance(v, (*_IMMUTABLE, types.ModuleType))
            and not is_notebook_object(v)
        }
        for change in containers:
            items = change.content.values() if change.kind == "dict" else change.content
            for item in items:
                name = named.get(id(item))
                if name is None or name in changed:
                    continue
                refs[id(item)] = name
                state = in_place(item)
                changed[name] = item if state is None else state
                if state is None:
                    del refs[id(item)]  # saved as a value: the container keeps a copy of it

    def pickler(self) -> Any:
        """The pickler factory for `values` (call `values` first)."""
        return functools.partial(NamespacePickler, ns=self.ns, refs=dict(self.refs))


def _array_aliases(ns: Mapping[str, Any], names: Iterable[str]) -> set[str]:
    """Other arrays of the namespace sharing memory with arrays among ``names``: writing through
    a view (``B = A.reshape(...)``, then ``B[0] = 5``) changes the array it views too."""
    np = sys.modules.get("numpy")
    if np is None:
        return set()
    roots = {id(_owner(ns[n], np)) for n in names if isinstance(ns.get(n), np.ndarray)}
    if not roots:
        return set()
    return {n for n, v in ns.items() if isinstance(v, np.ndarray) and id(_owner(v, np)) in roots}


def _classes_of(ns: Mapping[str, Any], names: Iterable[str]) -> set[str]:
    """The names of the notebook classes of instances among ``names``: a method may set a class
    attribute through ``type(self)`` without naming the class."""
    classes = {id(c) for n in names for c in type(ns[n]).__mro__ if c.__module__ == "__main__"}
    if not classes:
        return set()
    return {n for n, v in ns.items() if isinstance(v, type) and id(v) in classes}


def _owner(array: Any, np: Any) -> Any:
    """The object that owns an array's memory (numpy collapses ``base`` chains of views)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array if array.base is None else array.base


def _users_module(module: Any) -> bool:
    """A module of the user's (a .py file next to the notebook) is an input: its code may change."""
    if not isinstance(module, types.ModuleType):
        return False
    return is_user_module(str(getattr(module, "__name__", "")))  # NB. %run leaves one without
