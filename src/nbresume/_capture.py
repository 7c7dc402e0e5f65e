"""Tee a cell's outputs while they display live, and replay recorded outputs.

Recording patches instance attributes (``sys.stdout.write``, ``sys.stderr.write``,
``display_pub.publish``, ``display_pub.clear_output``) for the duration of the cell and restores them
in reverse order. Outputs still go out live, unchanged; this works in ipykernel and terminal IPython.

The recorded list is kept normalised as a frontend's output area would be: ``clear_output`` empties it
(``wait=True`` before the next output), ``update_display_data`` rewrites the earlier output with the
same display id, consecutive writes to one stream are merged.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from typing import Any, Protocol

__all__ = ["NOTE_KEY", "WIDGET_MIME", "Recorder", "replay", "strip_for_replay"]

NOTE_KEY = "nbresume"  # metadata key marking nbresume's own notes; never part of a cell's output
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

Output = dict[str, Any]


class DisplayPublisher(Protocol):
    def publish(self, data: Any, metadata: Any = None, **kwargs: Any) -> None: ...
    def clear_output(self, wait: bool = False) -> None: ...


class Recorder:
    """Record what a cell shows, in order, while it is shown."""

    def __init__(self, display_pub: Any, initial: list[Output] | None = None) -> None:
        self._display_pub = display_pub
        self.outputs: list[Output] = initial or []
        self._sealed = len(self.outputs)  # outputs before this index are never merged into
        self._pending_clear = False
        self._by_id: dict[str, list[Output]] = {}
        self._undo: list[tuple[Any, str, bool, Any]] = []
        self._busy = 0  # >0 while a display call runs: the terminal prints text, don't record twice
        self.before_output: Any = None  # called before each recorded output (loop boundaries)
        self.paused = 0  # >0 while nbresume shows its own notes and widgets

    # -- normalisation ----------------------------------------------------------------------

    def _clear(self) -> None:
        self.outputs.clear()
        self._by_id.clear()
        self._sealed = 0

    def _append(self, output: Output) -> None:
        if self.before_output is not None:
            self.before_output()
        if self._pending_clear:
            self._clear()
            self._pending_clear = False
        if (
            output["output_type"] == "stream"
            and len(self.outputs) > self._sealed
            and self.outputs[-1]["output_type"] == "stream"
            and self.outputs[-1]["name"] == output["name"]
        ):
            self.outputs[-1]["text"] += output["text"]
            return
        self.outputs.append(output)
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

    def add_clear(self, wait: bool) -> None:
        if self.paused:
            return
        if wait:
            self._pending_clear = True
        else:
            self._clear()

    def mark(self) -> int:
        """The current number of outputs; later writes never merge into earlier outputs."""
        self._sealed = len(self.outputs)
        return self._sealed

    # -- patching ---------------------------------------------------------------------------

    def _patch(self, obj: Any, attr: str, make: Any) -> None:
        had = attr in getattr(obj, "__dict__", {})
        old = obj.__dict__[attr] if had else None
        setattr(obj, attr, make(getattr(obj, attr)))
        self._undo.append((obj, attr, had, old))

    def __enter__(self) -> Recorder:
        for name in ("stdout", "stderr"):
            self._patch(getattr(sys, name), "write", self._wrap_write(name))
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

    def _wrap_write(self, name: str) -> Any:
        def wrap(original: Any) -> Any:
            def write(text: str, *args: Any, **kwargs: Any) -> Any:
                result = original(text, *args, **kwargs)
                if text and not self._busy and isinstance(text, str):
                    self.add_stream(name, text)
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
            self.add_display(data, metadata, transient, update)
            self._busy += 1
            try:
                return original(data, metadata, *args, transient=transient, update=update, **kwargs)
            finally:
                self._busy -= 1

        return publish

    def _wrap_clear(self, original: Any) -> Any:
        def clear_output(wait: bool = False) -> Any:
            self.add_clear(wait)
            self._busy += 1
            try:
                return original(wait)
            finally:
                self._busy -= 1

        return clear_output


def strip_for_replay(outputs: list[Output]) -> list[Output]:
    """Outputs as they are saved: live widget views become their text form, ids are dropped."""
    saved = []
    for recorded in outputs:
        output = dict(recorded)
        if output["output_type"] == "display_data":
            data = dict(output["data"])
            model = data.pop(WIDGET_MIME, None)
            if model is not None:
                text = _widget_text(model)
                if text is not None:
                    data["text/plain"] = text
            output["data"] = data
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


def replay(outputs: list[Output], display_pub: Any) -> None:
    """Show recorded outputs again, in order: streams byte-identical, display data identical."""
    for output in outputs:
        kind = output["output_type"]
        if kind == "stream":
            stream = sys.stdout if output["name"] == "stdout" else sys.stderr
            stream.write(output["text"])
            stream.flush()
        elif kind == "display_data":
            sys.stdout.flush()
            sys.stderr.flush()
            display_pub.publish(
                data=output["data"], metadata=output.get("metadata") or {}, transient=None
            )
