"""ipywidgets widgets in saved values: a widget holds the kernel's comm (a lock, a socket) and
cannot be pickled in a kernel, so a hit in a new kernel deleted ``w = widgets.IntSlider()`` and
every later cell using ``w`` failed with NameError. A widget is saved as its class and the traits
it syncs (``value``, ``description``, ``layout``...) and a hit makes a new widget with them: its
value is the one the run left, and a ``jslink`` links the widgets again; Python callbacks
(``observe``) are not kept; ``interactive(f, ...)`` is not made from its traits alone: it is not
saved (a hit in another kernel deletes its name, with a warning).
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

__all__ = ["rebuild_widget", "widget_reduction"]


def widget_reduction(obj: Any) -> tuple[Any, ...] | None:
    """``(rebuild_widget, (class, traits))`` for a widget made from keywords; None otherwise."""
    ipywidgets = sys.modules.get("ipywidgets")
    if ipywidgets is None or not isinstance(obj, ipywidgets.Widget):
        return None
    try:
        parameters = list(inspect.signature(type(obj).__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    traits = obj.traits()
    if any(
        p.default is p.empty
        and (
            p.kind is p.POSITIONAL_ONLY
            or (p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in traits)
        )
        for p in parameters
    ):
        return None  # `interactive(f, ...)`: not made from its traits alone (`jslink`'s are)
    state = {
        name: getattr(obj, name)
        for name in obj.keys
        if (not name.startswith("_") or name == "_dom_classes") and not traits[name].read_only
    }
    return rebuild_widget, (type(obj), state)


def rebuild_widget(cls: type, state: dict[str, Any]) -> Any:
    return cls(**state)
