"""Tee a cell's outputs while they display live, and replay recorded outputs.

Recording patches instance attributes (``sys.stdout.write``, ``sys.stderr.write``,
``display_pub.publish``, ``display_pub.clear_output``) for the duration of the cell and restores them
in reverse order. Outputs still go out live, unchanged; this works in ipykernel and terminal IPython.

Only the cell's own outputs are recorded: writes from the thread that runs the cell (and C-level
output, which ipykernel forwards from its file-descriptor watcher thread), under the cell's own
request. Text that other threads or the kernel itself print meanwhile (a background logger, a
"No such comm" warning while an ``await`` lets the kernel handle a comm message) is shown but
never saved.

The recorded list is kept normalised as a frontend's output area would be: ``clear_output`` empties it
(``wait=True`` before the next output), ``update_display_data`` rewrites the earlier output with the
same display id, consecutive writes to one stream are merged.

Streams cost O(1) per write: writes are gathered in a list and joined every `JOIN_CHARS`; a stream
output that grows past `SPILL_CHARS`, or any once the recorder holds `HELD_CHARS` of text, moves to
a spill file (unlinked, next to the store) as a `LongText`, pickled as out-of-band buffers mapped
from that file, so printing 100 MB never holds 100 MB in memory.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import mmap
import os
import pickle
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ._streamorder import STAMP

__all__ = [
    "NOTE_KEY",
    "WIDGET_MIME",
    "LongText",
    "Recorder",
    "join_texts",
    "merge_streams",
    "replay",
    "strip_for_replay",
]

NOTE_KEY = "nbresume"  # metadata key marking nbresume's own notes; never part of a cell's output
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
JOIN_CHARS = 1 << 16  # pending writes of the open stream output are joined this often
SPILL_CHARS = 1 << 20  # a stream output this long moves to the spill file
HELD_CHARS = 8 << 20  # past this much text in memory, every growing stream output spills
REPLAY_BYTES = 1 << 20  # long texts are replayed in writes of this size
ENCODING, ERRORS = "utf-8", "surrogatepass"  # lossless for any str a cell can print

Output = dict[str, Any]


class DisplayPublisher(Protocol):
    def publish(self, data: Any, metadata: Any = None, **kwargs: Any) -> None: ...
    def clear_output(self, wait: bool = False) -> None: ...


# -- long texts ---------------------------------------------------------------------------------


class _SpillFile:
    """An unlinked temporary file that long stream texts are appended to."""

    def __init__(self, directory: Path | None) -> None:
        if directory is not None and not directory.is_dir():
            directory = None
        self.file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by the finalizer)
        self.size = 0
        self._map: mmap.mmap | None = None
        weakref.finalize(self, self.file.close)

    def append(self, data: bytes) -> int:
        """Append ``data``; returns its offset."""
        offset = self.size
        self.file.write(data)
        self.size += len(data)
        return offset

    def view(self, offset: int, nbytes: int) -> memoryview:
        """The bytes at ``offset``, mapped (no copy in memory)."""
        self.file.flush()
        if self._map is None or len(self._map) < offset + nbytes:
            # NB. never closed explicitly: views handed to a pickle may outlive the next map
            self._map = mmap.mmap(self.file.fileno(), self.size, access=mmap.ACCESS_READ)
        return memoryview(self._map)[offset : offset + nbytes]


class LongText:
    """The text of a long stream output, as UTF-8 segments outside Python strings.

    Segments live in a spill file while the cell records, and in the buffers the store read once
    restored. Immutable: extending returns a new one. ``str()`` gives the whole text; `chunks`
    yields it piece by piece, which is how it is replayed.
    """

    __slots__ = ("_parts", "chars")

    def __init__(self, parts: Iterable[tuple[Any, int, int]] = (), chars: int = 0) -> None:
        self._parts: tuple[tuple[Any, int, int], ...] = tuple(parts)  # (source, offset, nbytes)
        self.chars = chars

    def __len__(self) -> int:
        return self.chars

    def __str__(self) -> str:
        return "".join(self.chunks())

    def __repr__(self) -> str:
        return f"LongText({self.chars:,} characters)"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, LongText)):
            return len(self) == len(other) and str(self) == str(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __copy__(self) -> LongText:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> LongText:
        return self

    def extended(self, source: Any, offset: int, nbytes: int, chars: int) -> LongText:
        parts = list(self._parts)
        if parts and parts[-1][0] is source and parts[-1][1] + parts[-1][2] == offset:
            parts[-1] = (source, parts[-1][1], parts[-1][2] + nbytes)  # contiguous: one part
        else:
            parts.append((source, offset, nbytes))
        return LongText(parts, self.chars + chars)

    def __add__(self, other: object) -> LongText:
        if not isinstance(other, (str, LongText)):
            return NotImplemented
        return LongText.join([self, other])

    def __radd__(self, other: object) -> LongText:
        if not isinstance(other, str):
            return NotImplemented
        return LongText.join([other, self])

    @staticmethod
    def join(texts: Iterable[str | LongText]) -> LongText:
        """One text of several, in one pass (adjacent parts of one file become one part)."""
        parts: list[tuple[Any, int, int]] = []
        chars = 0
        strings: list[str] = []

        def add(source: Any, offset: int, nbytes: int) -> None:
            if parts and parts[-1][0] is source and parts[-1][1] + parts[-1][2] == offset:
                parts[-1] = (source, parts[-1][1], parts[-1][2] + nbytes)
            else:
                parts.append((source, offset, nbytes))

        def add_strings() -> None:
            if strings:
                data = "".join(strings).encode(ENCODING, ERRORS)
                strings.clear()
                add(memoryview(data), 0, len(data))

        for text in texts:
            chars += len(text)
            if isinstance(text, str):
                strings.append(text)
                continue
            add_strings()
            for part in text._parts:
                add(*part)
        add_strings()
        return LongText(parts, chars)

    def _views(self) -> Iterator[memoryview]:
        for source, offset, nbytes in self._parts:
            if isinstance(source, _SpillFile):
                yield source.view(offset, nbytes)
            else:
                yield memoryview(source).cast("B")[offset : offset + nbytes]

    def chunks(self, size: int = REPLAY_BYTES) -> Iterator[str]:
        """The text in pieces of about ``size`` bytes (never splitting a character)."""
        decoder = codecs.getincrementaldecoder(ENCODING)(ERRORS)
        for view in self._views():
            for start in range(0, len(view), size):
                text = decoder.decode(view[start : start + size])
                if text:
                    yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        # NB. out of band under protocol 5: the store writes the spill file's pages straight to
        # the entry and reads them back into buffers, never into one big bytes object
        buffers = [pickle.PickleBuffer(view) for view in self._views()]
        return (_long_text, (self.chars, *buffers))


def _long_text(chars: int, *buffers: Any) -> LongText:
    parts = []
    for buffer in buffers:
        view = memoryview(buffer).cast("B")
        parts.append((view, 0, len(view)))
    return LongText(parts, chars)


def join_texts(texts: list[Any]) -> Any:
    """Consecutive texts of one stream as one (a `LongText` if any is, or the result is long)."""
    if all(isinstance(t, str) for t in texts):
        return "".join(texts)
    return LongText.join(texts)


def merge_streams(outputs: list[Output]) -> list[Output]:
    """Consecutive outputs of one stream as one output, joined once (linear in the text)."""
    merged: list[Output] = []
    run: list[Any] = []

    def close() -> None:
        if len(run) > 1:
            merged[-1] = {**merged[-1], "text": join_texts(run)}
        run.clear()

    for output in outputs:
        last = merged[-1] if merged else None
        if (
            last is not None
            and output["output_type"] == "stream"
            and last["output_type"] == "stream"
            and last["name"] == output["name"]
        ):
            run.append(output["text"])
            continue
        close()
        merged.append(output)
        if output["output_type"] == "stream":
            run.append(output["text"])
    close()
    return merged


# -- recording ----------------------------------------------------------------------------------


class Recorder:
    """Record what a cell shows, in order, while it is shown."""

    def __init__(
        self,
        display_pub: Any,
        initial: list[Output] | None = None,
        *,
        spill_dir: Path | None = None,
    ) -> None:
        self._display_pub = display_pub
        self._outputs: list[Output] = initial or []
        self._sealed = len(self._outputs)  # outputs before this index are never merged into
        self._pending_clear = False
        self._by_id: dict[str, list[Output]] = {}
        self._undo: list[tuple[Any, str, bool, Any]] = []
        self._busy = 0  # >0 while a display call runs: the terminal prints text, don't record twice
        self.before_output: Any = None  # called before each recorded output (loop boundaries)
        self.paused = 0  # >0 while nbresume shows its own notes and widgets
        # the open stream output (the last one) and the writes not yet joined into its text
        self._open: Output | None = None
        self._open_name: str | None = None  # the open output's stream, while writes may merge
        self._pieces: list[str] = []
        self._pieces_chars = 0
        self._held = 0  # characters of stream text held in memory
        self._spill_dir = spill_dir
        self._spill: _SpillFile | None = None
        self.joined_chars = 0  # characters copied while joining (linear: about the text's size)
        # whose outputs are the cell's: its thread, ipykernel's fd watchers, its request
        self._threads: set[int] = set()
        self._parent: Any = None
        self._parent_id: Any = None

    @property
    def outputs(self) -> list[Output]:
        """The recorded outputs, up to the last write."""
        self._settle()
        self._open_name = None  # the caller may change the list: check before merging again
        return self._outputs

    @outputs.setter
    def outputs(self, value: list[Output]) -> None:
        self._settle()
        self._set_open(None)
        self._outputs = value

    def _set_open(self, output: Output | None) -> None:
        self._open = output
        self._open_name = None if output is None else output["name"]

    # -- normalisation ----------------------------------------------------------------------

    def _clear(self) -> None:
        self._settle()
        self._set_open(None)
        self._outputs.clear()
        self._by_id.clear()
        self._sealed = 0
        self._held = 0

    def _settle(self) -> None:
        """Join the pending writes into the open output's text; spill it if it is long."""
        output = self._open
        if output is None:
            return
        pieces = self._pieces[:]
        self._pieces.clear()
        added, self._pieces_chars = self._pieces_chars, 0
        text = output["text"]
        size = len(text) + added
        if isinstance(text, LongText) or size >= SPILL_CHARS or self._held + added >= HELD_CHARS:
            self._to_spill(output, pieces, added)
        elif pieces:
            output["text"] = text + "".join(pieces)
            self.joined_chars += size
            self._held += added

    def _to_spill(self, output: Output, pieces: list[str], added: int) -> None:
        text = output["text"]
        if not isinstance(text, LongText):
            self._held -= len(text)
            pieces.insert(0, text)
            text = LongText()
        data = "".join(pieces).encode(ENCODING, ERRORS)
        self.joined_chars += added
        if data:
            if self._spill is None:
                self._spill = _SpillFile(self._spill_dir)
            offset = self._spill.append(data)
            text = text.extended(self._spill, offset, len(data), sum(map(len, pieces)))
        output["text"] = text

    def _append(self, output: Output, notify: bool = True) -> None:
        if notify and self.before_output is not None:
            self.before_output()
        if self._pending_clear:
            self._clear()
            self._pending_clear = False
        output[STAMP] = time.monotonic()  # NB. only new outputs: a merged write keeps the first's
        open_ = self._open
        if output["output_type"] == "stream":
            if (
                open_ is not None
                and open_["name"] == output["name"]
                and len(self._outputs) > self._sealed
                and self._outputs[-1] is open_
            ):
                self._open_name = open_["name"]
                self._pieces.append(output["text"])
                self._pieces_chars += len(output["text"])
                if self._pieces_chars >= JOIN_CHARS:
                    self._settle()
                return
            self._settle()
            self._set_open(output)
            self._held += len(output["text"])
            self._outputs.append(output)
            return
        self._settle()
        self._set_open(None)
        self._outputs.append(output)
        display_id = output.get("transient", {}).get("display_id")
        if display_id:
            self._by_id.setdefault(display_id, []).append(output)

    def add_stream(self, name: str, text: str) -> None:
        if not self.paused:
            self._append({"output_type": "stream", "name": name, "text": text})

    def add_display(self, data: Any, metadata: Any, transient: Any, update: bool) -> None:
        if self.paused or (isinstance(metadata, dict) and NOTE_KEY in metadata):
            return
        data, metadata = copy.deepcopy(dict(data)), copy.deepcopy(dict(metadata or {}))
        transient = dict(transient or {})
        if update:
            for output in self._by_id.get(transient.get("display_id", ""), []):
                output["data"], output["metadata"] = data, metadata
            return
        self._append(
            {
                "output_type": "display_data",
                "data": data,
                "metadata": metadata,
                "transient": transient,
            }
        )

    def add_result(self, data: Any, metadata: Any) -> None:
        """The cell's execute_result (shown by the displayhook, which the recorder does not see)."""
        if self.paused:
            return
        self._append(
            {
                "output_type": "execute_result",
                "data": copy.deepcopy(dict(data)),
                "metadata": copy.deepcopy(dict(metadata or {})),
            }
        )

    def add_clear(self, wait: bool) -> None:
        if self.paused:
            return
        if wait:
            self._pending_clear = True
            self._open_name = None  # the next write clears first
        else:
            self._clear()

    def mark(self) -> int:
        """The current number of outputs; later writes never merge into earlier outputs."""
        self._settle()
        self._set_open(None)
        self._sealed = len(self._outputs)
        return self._sealed

    @contextlib.contextmanager
    def silent(self) -> Iterator[None]:
        """Let the shell show something (a result) without recording what it prints."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    # -- whose output -----------------------------------------------------------------------

    def _own(self, stream: Any) -> bool:
        """Whether a write or display now is the cell's own."""
        if threading.get_ident() not in self._threads:
            return False
        return self._parent_id is None or self._same_request(stream)

    def _same_request(self, stream: Any) -> bool:
        try:
            parent = stream.parent_header
        except Exception:  # not ipykernel's, or closed
            return True
        if parent is self._parent:
            return True
        return not isinstance(parent, dict) or parent.get("msg_id") == self._parent_id

    def _watch_owners(self) -> None:
        self._threads.clear()
        self._threads.add(threading.get_ident())
        for name in ("stdout", "stderr"):
            watcher = getattr(getattr(sys, name), "watch_fd_thread", None)
            ident = getattr(watcher, "ident", None)
            if ident is not None:  # C-level output and subprocesses that inherit fd 1/2
                self._threads.add(ident)
        header = getattr(sys.stdout, "parent_header", None)
        self._parent = header
        self._parent_id = header.get("msg_id") if isinstance(header, dict) else None

    # -- patching ---------------------------------------------------------------------------

    def _patch(self, obj: Any, attr: str, make: Any) -> None:
        had = attr in getattr(obj, "__dict__", {})
        old = obj.__dict__[attr] if had else None
        setattr(obj, attr, make(getattr(obj, attr)))
        self._undo.append((obj, attr, had, old))

    def __enter__(self) -> Recorder:
        self._watch_owners()
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            self._patch(stream, "write", self._wrap_write(name, stream))
        self._patch(self._display_pub, "publish", self._wrap_publish)
        self._patch(self._display_pub, "clear_output", self._wrap_clear)
        return self

    def __exit__(self, *exc: object) -> None:
        while self._undo:
            obj, attr, had, old = self._undo.pop()
            if had:
                setattr(obj, attr, old)
            else:
                with contextlib.suppress(AttributeError):
                    delattr(obj, attr)
        self._settle()

    def _wrap_write(self, name: str, stream: Any) -> Callable[[Any], Any]:
        get_ident = threading.get_ident
        threads = self._threads
        pieces = self._pieces

        def wrap(original: Any) -> Any:
            def write(text: str) -> Any:  # NB. one argument: star-args cost more than the rest
                result = original(text)
                # NB. every print passes here twice: the common case is a few attribute reads
                if (
                    get_ident() in threads
                    and type(text) is str
                    and text
                    and not (self._busy or self.paused)
                    and (self._parent_id is None or self._same_request(stream))
                ):
                    before = self.before_output
                    if before is not None:
                        before()
                    if self._open_name == name:
                        pieces.append(text)
                        self._pieces_chars += len(text)
                        if self._pieces_chars >= JOIN_CHARS:
                            self._settle()
                    else:
                        self._append({"output_type": "stream", "name": name, "text": text}, False)
                return result

            return write

        return wrap

    def _wrap_publish(self, original: Any) -> Any:
        def publish(
            data: Any,
            metadata: Any = None,
            *args: Any,
            transient: Any = None,
            update: bool = False,
            **kwargs: Any,
        ) -> Any:
            if self._own(self._display_pub):
                self.add_display(data, metadata, transient, update)
            self._busy += 1
            try:
                return original(data, metadata, *args, transient=transient, update=update, **kwargs)
            finally:
                self._busy -= 1

        return publish

    def _wrap_clear(self, original: Any) -> Any:
        def clear_output(wait: bool = False) -> Any:
            if self._own(self._display_pub):
                self.add_clear(wait)
            self._busy += 1
            try:
                return original(wait)
            finally:
                self._busy -= 1

        return clear_output


# -- saving and replaying -------------------------------------------------------------------


def strip_for_replay(outputs: list[Output]) -> list[Output]:
    """Outputs as they are saved: live widget views become their text form, ids are dropped."""
    saved = []
    for recorded in outputs:
        output = dict(recorded)
        output.pop(STAMP, None)
        if output["output_type"] in ("display_data", "execute_result"):
            data = dict(output["data"])
            model = data.pop(WIDGET_MIME, None)
            if model is not None:
                text = _widget_text(model)
                if text is not None:
                    data["text/plain"] = text
            output["data"] = data
            if output["output_type"] == "display_data":
                output["transient"] = {}
        saved.append(output)
    return saved


def _widget_text(model: Any) -> str | None:
    """The current text form of a live widget (its repr), if it still exists."""
    widgets = sys.modules.get("ipywidgets.widgets.widget")
    if widgets is None or not isinstance(model, dict):
        return None
    widget = getattr(widgets, "_instances", {}).get(model.get("model_id"))
    return None if widget is None else repr(widget)


def _write(stream: Any, text: Any) -> None:
    if isinstance(text, LongText):
        for chunk in text.chunks():
            stream.write(chunk)
            stream.flush()  # NB. one message per chunk, not one of the whole text
    else:
        stream.write(text)
        stream.flush()


def replay(
    outputs: list[Output],
    display_pub: Any,
    on_result: Callable[[Output], None] | None = None,
) -> None:
    """Show recorded outputs again, in order: streams byte-identical, display data identical.

    The execute_result goes to ``on_result`` (through the displayhook, which sets ``Out[n]``);
    without one it is left to the caller.
    """
    for output in outputs:
        kind = output["output_type"]
        if kind == "stream":
            _write(sys.stdout if output["name"] == "stdout" else sys.stderr, output["text"])
        elif kind == "display_data":
            sys.stdout.flush()
            sys.stderr.flush()
            display_pub.publish(
                data=output["data"], metadata=output.get("metadata") or {}, transient=None
            )
        elif kind == "execute_result" and on_result is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            on_result(output)


def has_result(outputs: list[Output]) -> bool:
    """Whether the recorded outputs hold the cell's execute_result (entries saved since 0.2)."""
    return any(o["output_type"] == "execute_result" for o in outputs)


def emit_execute_result(
    shell: Any, data: dict[str, Any], metadata: dict[str, Any], value: Any = None
) -> None:
    """Show a recorded result through the displayhook, as ``DisplayHook.__call__`` would;
    ``Out[n]`` and ``_`` get ``value`` unless it is None (a result that could not be saved)."""
    hook = shell.displayhook
    hook.check_for_underscore()
    hook.start_displayhook()
    hook.write_output_prompt()
    if value is not None:
        hook.update_user_ns(value)
        hook.fill_exec_result(value)
    hook.write_format_data(data, metadata)
    if value is not None:
        with contextlib.suppress(Exception):  # history logging is best effort, as in IPython
            hook.log_output(data)
    hook.finish_displayhook()


def spill_directory(path: Any) -> Path | None:
    """Where a recorder spills long outputs: the store's folder, if it is a folder we can write."""
    try:
        folder = Path(path)
    except TypeError:
        return None
    return folder if os.access(folder, os.W_OK) else None
