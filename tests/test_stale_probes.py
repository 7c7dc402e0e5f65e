"""One probe per way a checkpoint cell could restore a stale result (issue 15).

Each probe defines things in a notebook namespace, computes the cell's inputs as the engine does
(the names `analyze_cell` finds, fingerprinted), changes one thing, and computes them again: the
inputs must differ and `describe_change` must name the changed input. A probe whose input cannot
be compared by content must be refused instead (a `FingerprintError`, or `CellNames.dynamic`).
"""

from __future__ import annotations

import re
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import CellRun, runs
from nbresume._keys import (
    FingerprintError,
    analyze_cell,
    describe_change,
    file_inputs,
    fingerprint_input,
)
from nbresume.errors import CheckpointWarning


@dataclass(frozen=True)
class Probe:
    setup: str  # run in the notebook before the checkpoint cell
    cell: str  # the checkpoint cell (after IPython's transforms)
    change: str  # run between the two runs of the cell
    changed: str  # the input the note must name; "" when the cell must be refused instead


PROBES: dict[str, Probe] = {
    "method-reads-a-global": Probe(
        "K = 1\nclass M:\n    def f(self):\n        return K\nm = M()",
        "y = m.f()",
        "K = 2",
        "m",
    ),
    "property-reads-a-global": Probe(
        "K = 1\nclass P:\n    @property\n    def v(self):\n        return K\np = P()",
        "y = p.v",
        "K = 2",
        "p",
    ),
    "method-default-argument": Probe(
        "class M:\n    def f(self, s=1):\n        return s",
        "y = M().f()",
        "class M:\n    def f(self, s=2):\n        return s",
        "M",
    ),
    "method-calls-a-changed-helper": Probe(
        "def helper():\n    return 1\nclass M:\n    def f(self):\n        return helper()",
        "y = M().f()",
        "def helper():\n    return 2",
        "M",
    ),
    "call-chain-deeper-than-3": Probe(
        "K = 1\ndef f0():\n    return K\n"
        + "".join(f"def f{i}():\n    return f{i - 1}()\n" for i in range(1, 9)),
        "y = f8()",
        "K = 2",
        "f8",
    ),
    "decorated-function": Probe(
        "import functools\nK = 1\ndef deco(fn):\n    @functools.wraps(fn)\n"
        "    def wrapper(*a):\n        return fn(*a)\n    return wrapper\n"
        "@deco\ndef f():\n    return K",
        "y = f()",
        "K = 2",
        "f",
    ),
    "wrapped-reached-only-through-__wrapped__": Probe(
        "import functools\nK = 1\n"
        "def deco(fn):\n    return functools.update_wrapper(functools.partial(print), fn)\n"
        "def f():\n    return K\ng = deco(f)\ndel f",
        "y = g()",
        "K = 2",
        "g",
    ),
    "functools-cache-redefined": Probe(
        "import functools\n@functools.cache\ndef f(x):\n    return x + 1",
        "y = f(1)",
        "@functools.cache\ndef f(x):\n    return x + 2",
        "f",
    ),
    "lru-cache-reads-a-global": Probe(
        "import functools\nK = 1\n@functools.lru_cache(maxsize=None)\ndef f(x):\n    return x + K",
        "y = f(1)",
        "K = 2",
        "f",
    ),
    "closure": Probe(
        "def make(k):\n    def g():\n        return k\n    return g\ng = make(1)",
        "y = g()",
        "g = make(2)",
        "g",
    ),
    "closure-over-a-mutable-object": Probe(
        "def make(conf):\n    def g():\n        return conf['lr']\n    return g\n"
        "conf = {'lr': 1}\ng = make(conf)",
        "y = g()",
        "conf['lr'] = 2",
        "g",
    ),
    "class-attribute": Probe(
        "class C:\n    rate = 1\n    def f(self):\n        return self.rate",
        "y = C().f()",
        "C.rate = 2",
        "C",
    ),
    "class-method-code": Probe(
        "class C:\n    def f(self):\n        return 1\nc = C()",
        "y = c.f()",
        "class C:\n    def f(self):\n        return 2\nc = C()",
        "c",
    ),
    "staticmethod-reads-a-global": Probe(
        "K = 1\nclass C:\n    @staticmethod\n    def f():\n        return K",
        "y = C.f()",
        "K = 2",
        "C",
    ),
    "inherited-method-reads-a-global": Probe(
        "K = 1\nclass Base:\n    def f(self):\n        return K\nclass C(Base):\n    pass\nc = C()",
        "y = c.f()",
        "K = 2",
        "c",
    ),
    "global-declared-in-a-function-in-the-cell": Probe(
        "K = 1",
        "def bump():\n    global K\n    return K * 2\ny = bump()",
        "K = 2",
        "K",
    ),
    "global-assigned-in-a-function-in-the-cell": Probe(
        "K = 1",
        "def bump():\n    global K\n    K = K + 1\nbump()\ny = K",
        "K = 5",
        "K",
    ),
    "name-assigned-only-in-a-branch-not-taken": Probe(
        "debug = False\nn_samples = 5",
        "if debug:\n    n_samples = 10\ny = n_samples * 2",
        "n_samples = 6",
        "n_samples",
    ),
    "name-assigned-only-in-a-loop-body": Probe(
        "items = []\nlast = 1",
        "for last in items:\n    pass\ny = last",
        "last = 2",
        "last",
    ),
    "name-assigned-only-in-a-try-body": Probe(
        "x = 1",
        "try:\n    x = int('nope')\nexcept ValueError:\n    pass\ny = x",
        "x = 2",
        "x",
    ),
    "globals-subscript": Probe("K = 1", "y = globals()['K']", "K = 2", ""),
    "eval-of-a-name": Probe("K = 1", "y = eval('K')", "K = 2", ""),
    "vars-without-argument": Probe("K = 1", "y = vars()['K']", "K = 2", ""),
    "globals-in-a-function-in-the-cell": Probe(
        "K = 1", "def f():\n    return globals()['K']\ny = f()", "K = 2", ""
    ),
    "notebook-function-reading-globals-dynamically": Probe(
        "K = 1\ndef f():\n    return globals()['K']", "y = f()", "K = 2", ""
    ),
    # NB. next(), not list(): a generator the first run used up is a finished one, an input with
    # a fingerprint (tests/test_notebook_runs.py)
    "generator-input": Probe("batches = (b for b in range(3))", "y = next(batches)", "pass", ""),
    "object-graph-that-never-ends": Probe(
        "class Slow:\n    def __reduce_ex__(self, protocol):\n"
        "        return (Slow, (), {'children': [Slow() for _ in range(4)]})\ntree = Slow()",
        "y = 1 if tree else 0",
        "pass",
        "",
    ),
    "run-script": Probe(
        "Path('script.py').write_text('A = 1\\n')",
        "get_ipython().run_line_magic('run', 'script.py')\ny = A",
        "Path('script.py').write_text('A = 2\\n')",
        "%run script.py",
    ),
    "run-script-with-options": Probe(
        "Path('job.py').write_text('A = 1\\n')",
        "get_ipython().run_line_magic('run', '-t -N 2 job.py --fast')",
        "Path('job.py').write_text('A = 2\\n')",
        "%run job.py",
    ),
    "run-script-in-the-notebook-namespace": Probe(
        "Path('job.py').write_text('A = K\\n')\nK = 1",
        "get_ipython().run_line_magic('run', '-i job.py')",
        "K = 2",
        "",
    ),
}


class Refused(Exception):
    """The engine's refusal of a cell that reads names dynamically (`CellNames.dynamic`)."""


def _inputs(cell: str, ns: dict[str, Any]) -> dict[str, str]:
    """The cell's inputs as the engine collects them (modules by name are left out)."""
    names = analyze_cell(cell)
    if names.dynamic is not None:
        raise Refused(names.dynamic)
    inputs = {
        n: fingerprint_input(n, ns[n])
        for n in names.inputs
        if n in ns and not isinstance(ns[n], types.ModuleType)
    }
    return {**inputs, **file_inputs(names.run_files)}


@pytest.mark.parametrize("probe", list(PROBES))
def test_a_changed_input_is_noticed_and_named(
    probe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    p = PROBES[probe]
    ns: dict[str, Any] = {"__name__": "__main__", "Path": Path}
    exec(textwrap.dedent(p.setup), ns)
    if not p.changed:
        with pytest.raises((FingerprintError, Refused)) as info:
            _inputs(p.cell, ns)
        assert "\n" not in str(info.value)
        return
    before = _inputs(p.cell, ns)
    exec(textwrap.dedent(p.change), ns)
    after = _inputs(p.cell, ns)
    assert after != before
    why = describe_change("s", before, "s", after)
    assert repr(p.changed) in why, why


def test_unchanged_inputs_of_every_probe_keep_their_fingerprints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other half of each probe: without the change, nothing moves (a cache that hits)."""
    monkeypatch.chdir(tmp_path)
    for name, p in PROBES.items():
        if not p.changed:
            continue
        ns: dict[str, Any] = {"__name__": "__main__", "Path": Path}
        exec(textwrap.dedent(p.setup), ns)
        assert _inputs(p.cell, ns) == _inputs(p.cell, ns), name


# -- the same probes through a real checkpoint cell (in-process shell) -------------------------

ENGINE_PROBES = [
    "method-reads-a-global",
    "method-calls-a-changed-helper",
    "functools-cache-redefined",
    "global-declared-in-a-function-in-the-cell",
    "name-assigned-only-in-a-branch-not-taken",
    "call-chain-deeper-than-3",
]


@pytest.mark.parametrize("probe", ENGINE_PROBES)
def test_a_checkpoint_cell_runs_again_and_names_the_change(
    probe: str, shell: Any, run_cell: Callable[..., CellRun]
) -> None:
    p = PROBES[probe]
    run_cell(textwrap.dedent(p.setup))
    cell = f"%%checkpoint probe\ntick()\n{p.cell}\n"
    assert run_cell(cell).error is None
    assert run_cell(cell).error is None
    assert runs() == 1  # the second run restored
    changed = run_cell(textwrap.dedent(p.change))
    assert changed.error is None
    again = run_cell(cell)
    assert again.error is None
    assert runs() == 2
    assert repr(p.changed) in again.note_text, again.note_text


def test_a_hit_after_a_branch_not_taken_keeps_the_users_value(
    shell: Any, run_cell: Callable[..., CellRun]
) -> None:
    """The issue's probe: the hit also reset the user's `n_samples` to the old value."""
    run_cell("debug = False\nn_samples = 5")
    cell = "%%checkpoint branch\ntick()\nif debug:\n    n_samples = 10\ny = n_samples * 2\n"
    run_cell(cell)
    run_cell("n_samples = 6")
    run_cell(cell)
    assert shell.user_ns["n_samples"] == 6
    assert shell.user_ns["y"] == 12
    assert runs() == 2


@pytest.mark.parametrize(
    ("probe", "note"),
    [
        ("generator-input", "cannot fingerprint batches (type generator"),
        ("globals-subscript", "reads globals() dynamically: use --force or --no-deps"),
        ("notebook-function-reading-globals-dynamically", "cannot fingerprint f (type function"),
        (
            "object-graph-that-never-ends",
            "cannot fingerprint tree (type Slow: ",
        ),
    ],
)
def test_a_cell_whose_input_cannot_be_compared_runs_every_time_with_a_note(
    probe: str, note: str, shell: Any, run_cell: Callable[..., CellRun]
) -> None:
    p = PROBES[probe]
    run_cell(textwrap.dedent(p.setup))
    cell = f"%%checkpoint refused\ntick()\n{p.cell}\n"
    for _ in range(2):
        with pytest.warns(CheckpointWarning, match=re.escape(note)):
            assert run_cell(cell).error is None
    assert runs() == 2


def test_a_cell_running_a_script_runs_again_when_the_script_changes(
    shell: Any, run_cell: Callable[..., CellRun]
) -> None:
    Path("script.py").write_text("B = 1\n")
    cell = "%%checkpoint script\ntick()\n%run script.py\n"
    assert run_cell(cell).error is None
    assert run_cell(cell).error is None
    assert runs() == 1
    Path("script.py").write_text("B = 2\n")
    again = run_cell(cell)
    assert again.error is None
    assert runs() == 2
    assert "'%run script.py'" in again.note_text, again.note_text
    assert shell.user_ns["B"] == 2
