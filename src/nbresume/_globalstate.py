"""Global state outside the namespace that cells read and change: numpy's and ``random``'s global
generators, matplotlib's rcParams, pandas' options and numpy's print options.

A cell *uses* a generator when its run changed the generator's state (it drew or seeded) and its
code names the generator (``np.random.rand``, ``random.shuffle``); it *reads* rcParams when it
showed a figure, and pandas' options (``display.width``, ``display.max_rows``) and numpy's print
options (``np.set_printoptions``) when it showed anything. The state before the run is then an
input of the cell
(a pseudo-input named like ``np.random state``), except for a cell that seeds: what it leaves
does not depend on what it found. The state after the run is saved with the entry and put back on
a hit, so the next cell draws the same numbers, and figures get the same style, as after a real
run. Nothing is imported here that the notebook has not imported.
"""

from __future__ import annotations

import contextlib
import re
import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from ._keys import fingerprint

__all__ = ["PSEUDO_INPUTS", "capture", "fingerprints", "restore", "seeds", "used"]

NUMPY, RANDOM, RCPARAMS, PANDAS = "np.random state", "random state", "plt.rcParams", "pd.options"
PRINTOPTIONS = "np.printoptions"
# input names no variable can have (a space, a dot)
PSEUDO_INPUTS = (NUMPY, RANDOM, RCPARAMS, PANDAS, PRINTOPTIONS)
_SHOWN = (PANDAS, PRINTOPTIONS)  # how what a cell shows is printed
ABSENT = "absent"  # the fingerprint of state whose module is not imported
_SEEDS = re.compile(r"\b(?:seed|set_state|setstate)\s*\(")
_GENERATORS = (NUMPY, RANDOM)
# the cell's own code names the generator; an import or a library drawing from it behind the
# cell's back does not make it an input: an unseeded state differs in every kernel, and the cell
# would never restore
_NAMED = {
    NUMPY: re.compile(r"\b(?:np|numpy)\.random\b|from\s+numpy(?:\.random)?\s+import\s"),
    RANDOM: re.compile(r"(?<![.\w])random\.\w+|from\s+random\s+import\s"),
}
_NOT_RESTORED = frozenset({"backend", "interactive"})  # switching backends is the notebook's affair


# rcParams that say how figures are shown in this process, not how they look: `interactive`
# turns True at a kernel's first figure; never an input, never put back
_RUNTIME_RC = frozenset({"interactive", "backend", "backend_fallback"})


def _state(name: str) -> Any:
    """The raw state, or None when its module is not imported."""
    if name == NUMPY:
        np = sys.modules.get("numpy")
        return None if np is None else np.random.get_state()
    if name == RANDOM:
        random = sys.modules.get("random")
        return None if random is None else random.getstate()
    if name == PANDAS:
        return _pandas_options()
    if name == PRINTOPTIONS:
        np = sys.modules.get("numpy")
        return None if np is None else np.get_printoptions()
    mpl = sys.modules.get("matplotlib")
    if mpl is None:
        return None
    return {k: v for k, v in mpl.rcParams.items() if k not in _RUNTIME_RC}


def _pandas_options() -> dict[str, Any] | None:
    """pandas' options by their dotted keys; None when pandas is not imported.

    NB. read from pandas' own dict, not with `get_option`: reading a deprecated option warns.
    """
    pd = sys.modules.get("pandas")
    config = getattr(getattr(getattr(pd, "_config", None), "config", None), "_global_config", None)
    if not isinstance(config, dict):
        return None
    flat: dict[str, Any] = {}
    todo: list[tuple[str, dict[str, Any]]] = [("", config)]
    while todo:
        prefix, level = todo.pop()
        for key, value in level.items():
            if isinstance(value, dict):
                todo.append((f"{prefix}{key}.", value))
            else:
                flat[prefix + key] = value
    return dict(sorted(flat.items()))


def fingerprints(names: Iterable[str] = PSEUDO_INPUTS) -> dict[str, str]:
    """The fingerprint of each state now (`ABSENT` if its module is not imported)."""
    out = {}
    for name in names:
        state = _state(name)
        out[name] = ABSENT if state is None else fingerprint(state)
    return out


def seeds(source: str) -> bool:
    """Whether the cell seeds (or sets) a global generator: its state is then no input."""
    return _SEEDS.search(source) is not None


def used(
    before: Mapping[str, str],
    after: Mapping[str, str],
    source: str,
    figures: bool,
    shown: bool = False,
) -> tuple[dict[str, str], list[str]]:
    """-> (the pseudo-inputs of the run, with their fingerprints before it; the states to save).

    ``figures``: whether the run showed a figure (it read rcParams); ``shown``: whether it showed
    anything (a frame prints as pandas' display options say).
    """
    inputs: dict[str, str] = {}
    seeding = seeds(source)
    saved = []
    for name in PSEUDO_INPUTS:
        if before.get(name, ABSENT) == after.get(name, ABSENT):
            continue
        if name in _GENERATORS and not seeding:
            if before.get(name, ABSENT) == ABSENT:
                continue  # imported by the cell, drawn from an unseeded generator: nothing to keep
            if _NAMED[name].search(source):
                inputs[name] = before[name]
        saved.append(name)
    if figures and before.get(RCPARAMS, ABSENT) != ABSENT:
        inputs[RCPARAMS] = before[RCPARAMS]
    for name in _SHOWN:
        if shown and before.get(name, ABSENT) != ABSENT:
            inputs[name] = before[name]
    return inputs, saved


def capture(names: Iterable[str]) -> dict[str, Any]:
    """The raw states to save with an entry."""
    return {n: s for n in names if (s := _state(n)) is not None}


def restore(states: Mapping[str, Any]) -> None:
    """Put saved states back (a hit leaves them as the run left them)."""
    for name, state in states.items():
        if name == NUMPY:
            import numpy as np

            np.random.set_state(state)
        elif name == RANDOM:
            import random

            random.setstate(state)
        elif name == PANDAS:
            _restore_pandas(state)
        elif name == PRINTOPTIONS:
            _restore_printoptions(state)
        elif name == RCPARAMS:
            import matplotlib as mpl

            changed = {}
            for key, value in state.items():
                if key in _NOT_RESTORED:
                    continue
                try:
                    same = bool(mpl.rcParams.get(key) == value)
                except Exception:  # values that do not compare to a bool
                    same = False
                if not same:
                    changed[key] = value
            with warnings.catch_warnings():  # NB. deprecated keys warn when set
                warnings.simplefilter("ignore")
                mpl.rcParams.update(changed)


def _restore_pandas(state: Mapping[str, Any]) -> None:
    import pandas as pd

    now = _pandas_options() or {}
    with warnings.catch_warnings():  # NB. deprecated options warn when set
        warnings.simplefilter("ignore")
        for key, value in state.items():
            if key not in now:
                continue  # an option this pandas does not have
            try:
                if now[key] is value or bool(now[key] == value):
                    continue
                pd.set_option(key, value)
            except Exception:  # a value that does not compare, or that this pandas refuses
                continue


def _restore_printoptions(state: Mapping[str, Any]) -> None:
    import numpy as np

    try:
        np.set_printoptions(**state)
    except (TypeError, ValueError):  # an option this numpy does not have
        known = np.get_printoptions()
        with contextlib.suppress(TypeError, ValueError):
            np.set_printoptions(**{k: v for k, v in state.items() if k in known})
