"""Content fingerprints of values, stable across processes, with a memo and a time budget.

Every non-scalar value is hashed once per call into its own digest (a Merkle tree over the object
graph): an object reached along many paths (a matplotlib figure from each of its artists) costs
one walk, a cycle ends in a marker, and the digest of a value does not depend on which of its
parts are shared. A value that cannot be compared by content (a generator, a walk over budget)
raises `FingerprintError`, whose message is the note the engine shows.
"""

from __future__ import annotations

import copy
import copyreg
import enum
import io
import marshal
import re
import sys
import time
import types
import weakref
from collections import abc
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

import xxhash

from ._code import code_digest, global_names
from ._usermodules import file_digest, is_user_module
from ._widgets import widget_reduction
from .errors import NbresumeError

__all__ = ["BUDGET_SECONDS", "FingerprintError", "fingerprint", "fingerprint_input"]

BUDGET_SECONDS = 1.0  # per input: a walk of a user's objects past this ends in a note, not a hang
BULK_MIN = 32  # sequences this long of exact scalars are serialised whole (marshal), not per item
BULK_CHUNK = 1 << 20  # items per marshal call: bounds the temporary bytes of a huge list
FLUSH_BYTES = 1 << 16  # a Sink hashes what it gathered once it holds this much
SCALAR_RUN = 4096  # scalars of a sequence gathered before they go to the Sink
MEMO_MIN = 64  # leaf containers shorter than this are not memoised: hashing them again is cheap
CLOCK_EVERY = 1023  # mask: nodes between two reads of the clock
MARSHAL_VERSION = 2  # NB. version 3+ writes refs that depend on refcounts: not deterministic

_SCALARS = (str, bytes, int, float, complex, bool, type(None))
_HEADERS = {t: f"<{t.__module__}.{t.__qualname__}>".encode() for t in _SCALARS}
# NB. marshal writes any buffer (bytearray, ndarray) as bytes: only these exact types go through it
_MARSHALLED = frozenset(_SCALARS)
_RECORDS = _MARSHALLED | {tuple}  # a list of rows: tuples of exact scalars marshal too
_CONSUMED = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
# objects of these packages are part of the kernel, not the user's data: named, never walked
_NAMED_PACKAGES = (
    "IPython",
    "ipykernel",
    "zmq",
    "tornado",
    "jupyter_client",
    "asyncio",
)
# types whose pickled state changes each time it is read: hashed by type only (callbacks, not data)
_OPAQUE_TYPES = frozenset({"matplotlib.cbook.CallbackRegistry"})
# attributes that say which session an object lives in, not what it shows: matplotlib's transforms
# point back to their parents by id(), a figure has a number, a canvas and a renderer, and its
# artists callbacks; a restored figure has other ones, and cells reading it would never restore
_VOLATILE_ATTRIBUTES = {
    package: frozenset(
        {
            "_parents",
            "_invalid",
            "stale_callback",
            "canvas",
            "_number",
            "_counter",
            "_cachedRenderer",
            "_renderer",
            "_layoutgrid",
            "_stale",
        }
    )
    for package in ("matplotlib", "mpl_toolkits")
}
# a pandas Styler draws a random id for its HTML at creation: two stylers of one frame are alike
_VOLATILE_ATTRIBUTES["pandas"] = frozenset({"uuid"})
# hashlib's objects: OpenSSL's, and the builtin ones Python falls back to
_HASH_MODULES = frozenset(
    ("_hashlib", "_md5", "_sha1", "_sha256", "_sha2", "_sha512", "_sha3", "_blake2")
)
# IPython's output cache and history: read through a function's globals, they change every cell
_IPYTHON_NAMES = frozenset({"In", "Out", "_", "__", "___", "_ih", "_oh", "_dh", "get_ipython"})


class FingerprintError(NbresumeError):
    """A value that cannot be compared by content; ``str(exc)`` is the note for the user.

    ``name`` is the input's name ("" when `fingerprint` was called without one), ``type_name``
    the type of the value, ``why`` a few words. The engine shows the message and runs the cell
    every time (a stale hit would be the alternative).
    """

    def __init__(self, name: str, type_name: str, why: str) -> None:
        self.name = name
        self.type_name = type_name
        self.why = why
        if name:
            text = (
                f"cannot fingerprint {name} (type {type_name}: {why}): the cell re-runs every "
                f"time; --exclude {name} if it does not matter"
            )
        else:
            text = f"cannot fingerprint a value of type {type_name}: {why}"
        super().__init__(text)


def fingerprint(value: Any, *, budget: float | None = None) -> str:
    """A content hash of a value, stable across processes (32 hex digits).

    numpy arrays and pandas objects are hashed from their buffers; lists and dicts of plain
    scalars in bulk; functions by their code, defaults, closure, decorators and the globals they
    read, to any depth; notebook classes by their members; anything else by what it pickles to
    (``__reduce_ex__``), walked like a container. Raises `FingerprintError` for a value that
    cannot be compared by content (a generator; a function that reads ``globals()``), or when
    walking objects takes longer than ``budget`` seconds (reading buffers does not count;
    `fingerprint_input`, the engine's way in, has a budget of `BUDGET_SECONDS`).

    Examples
    --------
    >>> fingerprint([1, 2]) == fingerprint([1, 2]) != fingerprint([1, 2.0])
    True
    """
    h = Sink()
    walk = Walk(budget)
    try:
        walk.feed(h, value)
    except RecursionError:
        raise FingerprintError("", _type_name(value), "nested too deeply") from None
    except FingerprintError:
        raise
    except Exception as exc:  # user code ran (a property, __reduce_ex__): never the cell's crash
        why = f"reading it raised {type(exc).__name__}: {str(exc)[:80]!r}"
        raise FingerprintError("", _type_name(value), why) from exc
    return h.digest().hex()


def fingerprint_input(name: str, value: Any, *, budget: float | None = BUDGET_SECONDS) -> str:
    """`fingerprint` of the input ``name``: a refusal names it and says how to skip it."""
    try:
        return fingerprint(value, budget=budget)
    except FingerprintError as exc:
        why = exc.why
        outer = _type_name(value)
        if exc.type_name != outer:
            why = f"it holds a {exc.type_name}, {why}"
        raise FingerprintError(name, outer, why) from None


_PLAIN, _NAMED, _DATA, _OTHER, _WIDGET = object(), object(), object(), object(), object()
_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python, not in C
_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: a C type made at runtime, never a class
_OBJECT_GETSTATE = getattr(object, "__getstate__", None)  # 3.11+
_OBJECT_SETSTATE = getattr(object, "__setstate__", None)  # None: object has none


def _kind(t: type) -> object:
    """How values of type ``t`` are hashed (decided once per type and walk)."""
    if any(c.__module__.partition(".")[0] in _NAMED_PACKAGES for c in t.__mro__):
        return _NAMED  # the kernel's own objects (the shell and its subclasses, streams, loops)
    if f"{t.__module__}.{t.__qualname__}" in _OPAQUE_TYPES:
        return _NAMED
    if t.__module__.partition(".")[0] in ("numpy", "pandas"):
        return _DATA
    if any(c.__module__.partition(".")[0] == "ipywidgets" for c in t.__mro__):
        return _WIDGET
    plain = (
        # NB. `class N(int)` holds an int; a C type (re.Pattern) is a heap type, but immutable
        all(c.__flags__ & _HEAP_TYPE and not c.__flags__ & _IMMUTABLE_TYPE for c in t.__mro__[:-1])
        and t not in copyreg.dispatch_table
        and t.__reduce_ex__ is object.__reduce_ex__  # type: ignore[comparison-overlap]
        and t.__reduce__ is object.__reduce__  # type: ignore[comparison-overlap]
        and getattr(t, "__getstate__", None) is _OBJECT_GETSTATE
    )
    return _PLAIN if plain else _OTHER


def _rows_of_scalars(seq: list[Any] | tuple[Any, ...]) -> bool:
    return all(set(map(type, row)) <= _MARSHALLED for row in seq if type(row) is tuple)


def _type_name(value: Any) -> str:
    t = type(value)
    return (
        t.__qualname__
        if t.__module__ in ("builtins", "__main__")
        else f"{t.__module__}.{t.__qualname__}"
    )


class Sink:
    """The bytes of one digest: small parts are gathered and hashed at once.

    NB. each call into xxhash releases and takes the GIL again (about 0.2 us, more on a busy
    machine): a call per scalar made a list of tuples hash at 8 MB/s. Equal byte streams give
    equal digests however they were split.
    """

    __slots__ = ("_h", "_parts", "_size")

    def __init__(self, first: bytes = b"") -> None:
        self._parts: list[Any] = [first]
        self._size = len(first)
        self._h: xxhash.xxh3_128 | None = None

    def update(self, data: Any) -> None:
        """Add bytes or a 1-d byte buffer (a uint8 view)."""
        size = len(data)
        if size >= FLUSH_BYTES:
            self._flush().update(data)
            return
        self._parts.append(data)
        self._size += size
        if self._size >= FLUSH_BYTES:
            self._flush()

    def _flush(self) -> xxhash.xxh3_128:
        if self._h is None:
            self._h = xxhash.xxh3_128()
        if self._parts:
            self._h.update(b"".join(self._parts))
            self._parts = []
            self._size = 0
        return self._h

    def digest(self) -> bytes:
        if self._h is None:
            return xxhash.xxh3_128_digest(b"".join(self._parts))
        return self._flush().digest()


class Walk:
    """One fingerprint's walk: the memo of digests, the objects on the path, the clock."""

    def __init__(self, budget: float | None) -> None:
        self.memo: dict[int, bytes] = {}
        self.path: dict[int, int] = {}  # id -> depth of the objects being hashed (cycles)
        self.keep: list[Any] = []  # memoised objects stay alive: an id is never reused
        self.kinds: dict[type, object] = {}  # how each type met in this walk is hashed
        self.headers: dict[type, bytes] = {}
        self.nodes = 0
        self.budget = budget
        self.deadline = None if budget is None else time.monotonic() + budget

    def feed(self, h: Sink, value: Any) -> None:
        t = type(value)
        header = _HEADERS.get(t)
        if header is not None:
            h.update(header + repr(value).encode())
            return
        self.nodes += 1
        if self.deadline is not None and not self.nodes & CLOCK_EVERY:
            self._check_clock(value)
        key = id(value)
        digest = self.memo.get(key)
        if digest is not None:
            h.update(digest)
            return
        depth = self.path.get(key)
        if depth is not None:
            h.update(b"<cycle %d>" % (len(self.path) - depth))
            return
        self.path[key] = len(self.path)
        nodes = self.nodes
        header = self.headers.get(t)
        if header is None:
            header = self.headers[t] = f"<{t.__module__}.{t.__qualname__}>".encode()
        sub = Sink(header)
        try:
            self._object(sub, value)
        finally:
            del self.path[key]
        digest = sub.digest()
        size = len(value) if isinstance(value, list | tuple | dict | set | frozenset) else MEMO_MIN
        if self.nodes > nodes or size >= MEMO_MIN:
            self.memo[key] = digest
            self.keep.append(value)
        h.update(digest)

    def _check_clock(self, value: Any) -> None:
        assert self.deadline is not None
        if time.monotonic() > self.deadline:
            raise FingerprintError("", _type_name(value), f"not read within {self.budget:g} s")

    def bulk(self, h: Sink, seq: list[Any] | tuple[Any, ...]) -> None:
        """Hash a sequence of exact scalars whole (the caller checked the types)."""
        start = time.monotonic()
        for i in range(0, len(seq), BULK_CHUNK):
            h.update(marshal.dumps(seq[i : i + BULK_CHUNK], MARSHAL_VERSION))
        if self.deadline is not None:  # NB. reading data is progress: only the walk has a budget
            self.deadline += time.monotonic() - start

    def sequence(self, h: Sink, seq: list[Any] | tuple[Any, ...]) -> None:
        h.update(b"%d[" % len(seq))
        if len(seq) >= BULK_MIN:
            kinds = set(map(type, seq))
            if kinds <= _MARSHALLED or (kinds <= _RECORDS and _rows_of_scalars(seq)):
                self.bulk(h, seq)
                return
        scalars: list[bytes] = []  # NB. one Sink.update per run of scalars, not per item
        for item in seq:
            header = _HEADERS.get(type(item))
            if header is not None:
                scalars.append(header + repr(item).encode())
                if len(scalars) < SCALAR_RUN:
                    continue
            if scalars:
                h.update(b"".join(scalars))
                scalars = []
            if header is None:
                self.feed(h, item)
        if scalars:
            h.update(b"".join(scalars))

    def _object(self, h: Sink, value: Any) -> None:
        if isinstance(value, list | tuple):
            self.sequence(h, value)
        elif isinstance(value, dict):
            h.update(b"%d{" % len(value))
            self.sequence(h, list(value))
            self.sequence(h, list(value.values()))
        elif isinstance(value, set | frozenset):
            self._set(h, value)
        elif isinstance(value, types.FunctionType):
            self._function(h, value)
            return
        elif isinstance(value, type):
            self._class(h, value)
            return
        else:
            self._other(h, value)
            return
        if type(value) not in (list, tuple, dict, set, frozenset):  # a subclass: its own state
            self.feed(h, type(value))
            self.feed(h, getattr(value, "default_factory", None))
            state = _surviving_state(value)
            if state:
                self.feed(h, state)

    def _set(self, h: Sink, value: set[Any] | frozenset[Any]) -> None:
        h.update(b"%d<" % len(value))
        kinds = set(map(type, value))
        if len(kinds) == 1 and kinds <= {int, str, bytes}:
            self.bulk(h, sorted(value))  # canonical order, whatever the insertion order
            return
        parts = []
        for item in value:
            sub = Sink()
            self.feed(sub, item)
            parts.append(sub.digest())
        parts.sort()
        h.update(b"".join(parts))

    def _other(self, h: Sink, value: Any) -> None:
        t = type(value)
        kind = self.kinds.get(t)
        if kind is None:
            kind = self.kinds[t] = _kind(t)
        if kind is _WIDGET:
            # as a hit makes it again (`_widgets`): not by its comm and model id, new each kernel
            reduced = widget_reduction(value)
            if reduced is not None:
                state = reduced[1]
                self.keep.append(state)
                self.feed(h, state)
                return
            kind = _OTHER
        if kind is _PLAIN:  # an instance of a Python class that pickles its __dict__ and slots
            self.feed(h, t)
            self._state(h, value)
        elif kind is _NAMED:
            pass  # the type (in the header) stands for it
        elif kind is _DATA and _feed_data(self, h, value):
            pass
        else:
            self._builtin(h, value)

    def _builtin(self, h: Sink, value: Any) -> None:
        if isinstance(value, types.ModuleType):
            name = str(getattr(value, "__name__", ""))  # NB. %run leaves one without
            h.update(name.encode())
            if name == "__main__" or not is_user_module(name):
                return
            if len(self.path) > 1:  # NB. reached from another value: its files, not a walk of a
                h.update(file_digest(value).encode())  # whole local package for every input
                return
            state = {k: v for k, v in vars(value).items() if not k.startswith("__")}
            self.keep.append(state)  # a .py file next to the notebook: what is loaded now
            self.feed(h, state)
        elif isinstance(value, io.BytesIO | io.StringIO):
            self._buffer(h, value)
        elif isinstance(value, io.IOBase):
            h.update(repr(getattr(value, "name", "")).encode())  # files are not tracked (README)
        elif isinstance(value, types.MethodType):
            self.feed(h, value.__func__)
            self.feed(h, value.__self__)
        elif isinstance(value, types.BuiltinFunctionType | types.BuiltinMethodType):
            h.update(f"{getattr(value, '__module__', '')}.{value.__qualname__}".encode())
            owner = getattr(value, "__self__", None)
            if owner is not None and not isinstance(owner, types.ModuleType):
                self.feed(h, owner)  # `results.append`: the list is part of it
        elif isinstance(value, property):
            for accessor in (value.fget, value.fset, value.fdel):
                self.feed(h, accessor)
        elif isinstance(value, staticmethod | classmethod):
            self.feed(h, value.__func__)
        elif isinstance(value, PurePath | range):
            h.update(repr(value).encode())
        elif isinstance(value, slice):
            self.feed(h, (value.start, value.stop, value.step))
        elif isinstance(value, abc.KeysView | abc.ValuesView | abc.ItemsView):
            items = list(value)  # `keys = d.keys()` follows d
            self.keep.append(items)
            self.sequence(h, items)
        elif isinstance(value, types.MappingProxyType):
            self.feed(h, dict(value))  # a class's __dict__: it pickles to nothing
        elif isinstance(value, weakref.ref):
            self.feed(h, value())
        elif isinstance(value, types.CodeType):
            h.update(code_digest(value))
        elif isinstance(value, types.CellType):
            try:
                self.feed(h, value.cell_contents)
            except ValueError:  # an empty cell
                h.update(b"<empty>")
        elif isinstance(value, types.GeneratorType) and value.gi_frame is None:
            # finished: nothing left to read, all alike but for the name (what a hit restores)
            h.update(f"<finished generator {value.__qualname__}>".encode())
        elif type(value).__module__ in _HASH_MODULES and hasattr(value, "digest"):
            # a hashlib object pickles to nothing: what it has read is its digest so far
            digest = value.digest(64) if "shake" in value.name else value.digest()
            h.update(f"{value.name}:".encode() + digest)
        elif isinstance(value, re.Match):
            # what a hit finds again (`rematch`): the search, and where it matched
            self.feed(h, (value.re, value.string, value.pos, value.endpos, value.regs))
        elif isinstance(value, _CONSUMED):
            raise FingerprintError("", _type_name(value), "its items are used up when read")
        else:
            self._reduced(h, value)

    def _reduced(self, h: Sink, value: Any) -> None:
        """Hash an object by what it pickles to, walked like a container."""
        try:
            # NB. pickle asks copyreg first: re.Pattern and `int | str` cannot reduce themselves
            reducer = copyreg.dispatch_table.get(type(value))
            reduced = value.__reduce_ex__(5) if reducer is None else reducer(value)
        except Exception:
            reduced = None
        if isinstance(reduced, str):  # pickled by reference, e.g. a functools.cache wrapper
            h.update(reduced.encode())
            self._state(h, value)
            return
        if isinstance(reduced, tuple):
            self.keep.append(reduced)  # NB. its parts may be new objects: keep their ids unique
            for i, item in enumerate(reduced[:6]):
                part = _lasting(value, item) if i == 2 and isinstance(item, dict) else item
                if part is not item:  # the state, without a session's attributes
                    self.keep.append(part)
                if isinstance(part, Iterator):  # the list/dict items of a subclass
                    items = list(part)
                    self.keep.append(items)
                    self.feed(h, items)
                else:
                    self.feed(h, part)
            if _users(type(value).__module__):
                # a notebook class's __getstate__/__reduce__ may leave out what its methods
                # read (a cache, a setting): what the cell sees is its attributes
                self._state(h, value)
            return
        if hasattr(type(value), "__next__"):
            raise FingerprintError("", _type_name(value), "an iterator is used up when read")
        try:
            with memoryview(value) as view:
                h.update(f"{view.format}{view.shape}".encode())
                h.update(view.tobytes())
            return
        except TypeError:
            pass
        if not self._state(h, value):
            h.update(b"<opaque>")  # a lock, a socket: nothing to compare but its type

    def _buffer(self, h: Sink, value: io.BytesIO | io.StringIO) -> None:
        """An in-memory file is data (`pd.read_csv(io.StringIO(text))`): its content and position."""
        try:
            content, position = value.getvalue(), value.tell()
        except ValueError:  # closed
            h.update(b"<closed>")
            return
        h.update(b"%d:" % position)
        self.feed(h, content)

    def _state(self, h: Sink, value: Any) -> bool:
        """Hash an object's ``__dict__`` and slots; False if it has neither."""
        found = False
        state = getattr(value, "__dict__", None)
        if isinstance(state, dict):
            state = _lasting(value, state)
            self.keep.append(state)
            self.feed(h, state)
            found = True
        for cls in type(value).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if isinstance(slot, str) and slot not in ("__dict__", "__weakref__"):
                    h.update(slot.encode())
                    self.feed(h, getattr(value, slot, None))
                    found = True
        return found

    def _function(self, h: Sink, fn: types.FunctionType) -> None:
        module = getattr(fn, "__module__", None)
        if module and not _users(module) and "<locals>" not in fn.__qualname__:
            # an installed library's function is named, like a module: upgrading IPython or
            # nbresume must not invalidate every checkpoint whose cell calls `open` or `resumable`
            h.update(f"{module}.{fn.__qualname__}".encode())
            return
        code = fn.__code__
        names, dynamic = global_names(code)
        if dynamic:
            why = f"function {fn.__qualname__!r} reads {dynamic} dynamically"
            raise FingerprintError("", "function", why)
        h.update(code_digest(code))
        self.feed(h, fn.__defaults__)
        self.feed(h, fn.__kwdefaults__)
        annotations = fn.__annotations__
        if annotations:  # read by dataclasses, pydantic, typing.get_type_hints
            self.feed(h, annotations)
            names = (*names, *_annotation_names(annotations))
        for cell in fn.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                h.update(b"<empty>")
                continue
            self.feed(h, contents)
        g = fn.__globals__
        for name in names:
            if name in g and name not in _IPYTHON_NAMES:
                h.update(name.encode())
                self.feed(h, g[name])
        if fn.__dict__:  # functools.wraps' __wrapped__, attributes set on the function
            self.feed(h, fn.__dict__)

    def _class(self, h: Sink, cls: type) -> None:
        h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        if not _users(cls.__module__):
            return  # an installed class is named by its module; a notebook's by its body
        for base in cls.__bases__:
            self.feed(h, base)
        if type(cls) is not type:
            self.feed(h, type(cls))
        for name, member in sorted(vars(cls).items()):
            if name in _NOT_CLASS_BODY or (name in _ENUM_CACHES and isinstance(cls, enum.EnumMeta)):
                continue
            h.update(name.encode())
            self.feed(h, member)
        annotations = vars(cls).get("__annotations__")
        if isinstance(annotations, dict):  # `x: 'Unit'`: typing.get_type_hints reads Unit
            g = _class_globals(cls)
            for name in _annotation_names(annotations):
                if name in g and name not in _IPYTHON_NAMES:
                    h.update(name.encode())
                    self.feed(h, g[name])


_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
# members of a class that are not its body: ``__slotnames__`` is the cache copyreg sets on the
# class the first time an instance is pickled or copied (saving one must not make it "changed")
_NOT_CLASS_BODY = frozenset(("__dict__", "__weakref__", "__module__", "__doc__", "__slotnames__"))
# an enum's lookup caches: a Flag adds every combination it makes (`R | W`) to them; the members
# themselves are in `_member_map_` and the class attributes
_ENUM_CACHES = frozenset(("_value2member_map_", "_unhashable_values_"))


def _annotation_names(annotations: dict[str, Any]) -> list[str]:
    """Globals named by string annotations (`from __future__ import annotations`, 'Model')."""
    return [n for v in annotations.values() if isinstance(v, str) for n in _IDENTIFIER.findall(v)]


def _class_globals(cls: type) -> dict[str, Any]:
    """The globals a class's string annotations resolve in: its methods', or its module's."""
    for member in vars(cls).values():
        fn = getattr(member, "__func__", member)
        if isinstance(fn, types.FunctionType):
            return fn.__globals__
    module = sys.modules.get(cls.__module__)
    return vars(module) if module is not None else {}


def _users(module: str | None) -> bool:
    """Whether code of ``module`` is the user's: the notebook's, or a .py file next to it."""
    return module == "__main__" or (module is not None and is_user_module(module))


def _lasting(value: Any, state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without the attributes of a kernel's session that a restore does not keep."""
    package = type(value).__module__.partition(".")[0]
    volatile = _VOLATILE_ATTRIBUTES.get(package)
    if volatile is None or volatile.isdisjoint(state):
        return state
    return {k: v for k, v in state.items() if k not in volatile}


def _surviving_state(value: Any) -> Any:
    """The attributes of a container subclass that a copy (and a restore) keeps.

    NB. sklearn's `Bunch` (every dataset loader's result) drops its attributes in `__setstate__`:
    hashed as they are, a restored dataset would differ from the one saved, and every cell
    reading it would run again after a restart.
    """
    state = getattr(value, "__dict__", None)
    if not state or getattr(type(value), "__setstate__", None) is _OBJECT_SETSTATE:
        return state
    try:
        return getattr(copy.copy(value), "__dict__", None)
    except Exception:  # the copy needs more than pickling gives it: hash what is there
        return state


def _feed_data(walk: Walk, h: Sink, value: Any) -> bool:
    """numpy and pandas values, by their buffers; False if ``value`` is neither."""
    from ._arrays import feed_data  # NB. only once numpy is imported: a type of it is here

    return feed_data(walk, h, value)
