"""Stand-ins saved in place of values that cannot be pickled as they are, each bringing back on
load what running the cell again would bind: a used-up generator (`Finished`), the package's own
function or class (`Imported`), a regex match found again (`rematch`), a dict that is its own
``__dict__`` (`self_dict`); or, for a value nothing can bring back, a marker that deletes the name
instead of leaving an older value there (`Unsaved`)."""

from __future__ import annotations

import importlib
import pickle
import re
import secrets
import sys
import types
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Finished", "Imported", "Unsaved", "own_dict", "rematch", "self_dict"]


def _nothing() -> Generator[Any]:
    yield from ()


def finished_generator(name: str = "_nothing", qualname: str = "_nothing") -> Generator[Any]:
    """A generator that is used up: what a hit binds where the run left a finished one."""
    generator = _nothing()
    for _ in generator:
        pass
    typed: types.GeneratorType[Any, None, None] = generator  # type: ignore[assignment]
    typed.__name__, typed.__qualname__ = name, qualname
    return generator


@dataclass(frozen=True)
class Finished:
    """Saved in place of a finished generator (generators cannot be pickled): a hit binds the
    name to a used-up generator of the same name as the run did, so ``list(G)`` after it gives
    ``[]`` and never an older value of ``G``."""

    name: str
    qualname: str

    def __reduce__(self) -> tuple[Any, ...]:
        return (finished_generator, (self.name, self.qualname))


@dataclass(frozen=True)
class Imported:
    """Saved in place of a function or class the cell imported from an installed package: a hit
    imports it again, as running the cell would (installed code counts by name, not content;
    some, like sympy's, cannot be pickled by value or not loaded back)."""

    module: str
    attr: str

    @classmethod
    def of(cls, value: Any, modules: Iterable[str], names: Iterable[str]) -> Imported | None:
        if not (callable(value) or isinstance(value, types.ModuleType)):
            return None  # data an installed package holds may be changed by the cell: by value
        for module in modules:
            loaded = sys.modules.get(module)
            for attr in names:
                if loaded is None or not isinstance(attr, str):
                    continue
                try:
                    found = getattr(loaded, attr, None)
                except Exception:  # a module's __getattr__ (lazy loaders)
                    continue
                if found is value:
                    return cls(module, attr)
        return None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_imported, (self.module, self.attr))


def _imported(module: str, attr: str) -> Any:
    loaded = importlib.import_module(module)
    try:
        return getattr(loaded, attr)
    except AttributeError:
        # `from matplotlib import animation`: a submodule, an attribute only once imported
        return importlib.import_module(f"{module}.{attr}")


# The values runs of this kernel could not save, by name (the latest one only): a hit keeps one
# only while the name still holds it. Kept alive here so that its id cannot be reused.
_UNSAVED: dict[str, tuple[str, Any]] = {}
_KERNEL = secrets.token_hex(8)


@dataclass(frozen=True)
class Unsaved:
    """Saved in place of a variable that could not be pickled. A hit keeps the value the run left
    while this kernel's name still holds it; anywhere else it deletes the name with a warning, so
    a later cell fails loudly instead of reading what an earlier cell bound to that name."""

    token: str
    why: str

    @classmethod
    def of(cls, name: str, value: Any, why: str) -> Unsaved:
        token = f"{_KERNEL}:{id(value)}"
        _UNSAVED[name] = (token, value)
        return cls(token, why)

    def kept(self, ns: Mapping[str, Any], name: str) -> bool:
        token, value = _UNSAVED.get(name, ("", None))
        return token == self.token and name in ns and ns[name] is value


def own_dict(obj: Any) -> Any:
    try:
        return object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None


def rematch(
    pattern: re.Pattern[Any], string: Any, pos: int, endpos: int, regs: tuple[Any, ...]
) -> re.Match[Any]:
    """The match of ``pattern`` in ``string`` with these group spans: a ``re.Match`` cannot be
    pickled, but the search that made it (match, fullmatch, search or finditer) can be redone."""
    tries: list[re.Match[Any] | None] = [
        pattern.match(string, pos, endpos),
        pattern.fullmatch(string, pos, endpos),
        *pattern.finditer(string, pos, endpos),
    ]
    for match in tries:
        if match is not None and match.regs == regs:
            return match
    raise pickle.PicklingError(f"the match {regs[0]} of {pattern!r} cannot be found again")


def self_dict(cls: type[dict[Any, Any]]) -> dict[Any, Any]:
    """An empty ``cls`` whose ``__dict__`` is itself; pickle then sets its items."""
    obj = dict.__new__(cls)
    obj.__dict__ = obj
    return obj
