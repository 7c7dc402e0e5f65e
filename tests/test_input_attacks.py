"""Second round of stale-restore probes: reads the analysis missed, values whose fingerprint hid a
difference, and objects whose pickled state hides what the cell reads.

Every case here restored a stale result (or fingerprinted two different values alike) before the
fix; tests/test_stale_probes.py holds the first round.
"""

from __future__ import annotations

import io
import re
import textwrap
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import CellRun, runs
from nbresume._keys import FingerprintError, analyze_cell, fingerprint, fingerprint_input
from nbresume.errors import CheckpointWarning

# -- the analysis ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "y = getattr(__import__('__main__'), 'K')",
        "import importlib\ny = importlib.import_module('__main__').K",
        "import sys\ny = sys.modules.get('__main__').K",
        "def f():\n    return __import__('__main__').K\ny = f()",
    ],
)
def test_the_notebook_module_reached_by_a_call_is_refused(source: str) -> None:
    note = analyze_cell(source).dynamic
    assert note == "reads __main__ dynamically: use --force or --no-deps"


def test_a_main_guard_is_not_a_dynamic_read() -> None:
    assert analyze_cell("if __name__ == '__main__':\n    y = 1").dynamic is None


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("def f(x: K) -> int:\n    return x\ny = f.__annotations__", "K"),
        ("def f(x) -> R:\n    return x", "R"),
        ("def f(*, x: K = 1):\n    return x", "K"),
        ("x: K = 1", "K"),
        ("class D:\n    x: K = 1", "K"),
        ("async def f(x: K):\n    return x", "K"),
    ],
)
def test_annotations_are_read_where_python_evaluates_them(source: str, name: str) -> None:
    assert name in analyze_cell(source).inputs


# -- values that were fingerprinted alike ------------------------------------------------------


class Hidden:
    """A notebook class whose pickled state leaves out what its methods read."""

    def __init__(self, scale: int) -> None:
        self.scale = scale

    def __getstate__(self) -> dict[str, Any]:
        return {}


class Reduced:
    __slots__ = ("scale",)

    def __init__(self, scale: int) -> None:
        self.scale = scale

    def __reduce__(self) -> tuple[Any, ...]:
        return (Reduced, (0,))


Hidden.__module__ = Reduced.__module__ = "__main__"  # as if defined in the notebook


def _read(buffer: io.StringIO) -> io.StringIO:
    buffer.read(1)
    return buffer


def _frame_without_duplicates() -> pd.DataFrame:
    return pd.DataFrame({"a": [1]}).set_flags(allows_duplicate_labels=False)


@pytest.mark.parametrize(
    ("make_a", "make_b"),
    [
        pytest.param(lambda: Hidden(1), lambda: Hidden(2), id="getstate-hides-an-attribute"),
        pytest.param(lambda: Reduced(1), lambda: Reduced(2), id="reduce-hides-a-slot"),
        pytest.param(lambda: pd.DataFrame({"a": [1]}), _frame_without_duplicates, id="frame-flags"),
        pytest.param(
            lambda: type("A", (), {"x": 1}).__dict__,
            lambda: type("A", (), {"x": 2}).__dict__,
            id="mappingproxy",
        ),
        pytest.param(lambda: np.add, lambda: np.multiply, id="ufuncs"),
        pytest.param(
            lambda: pd.Series([1, 2], index=pd.date_range("2020", periods=2, freq="D")),
            lambda: pd.Series([1, 2], index=pd.DatetimeIndex(["2020-01-01", "2020-01-02"])),
            id="datetime-index-freq",
        ),
        pytest.param(lambda: io.StringIO("a\n1\n"), lambda: io.StringIO("a\n2\n"), id="stringio"),
        pytest.param(lambda: io.BytesIO(b"1"), lambda: io.BytesIO(b"2"), id="bytesio"),
        pytest.param(lambda: io.StringIO("ab"), lambda: _read(io.StringIO("ab")), id="position"),
    ],
)
def test_values_that_differ_get_other_fingerprints(
    make_a: Callable[[], Any], make_b: Callable[[], Any]
) -> None:
    assert fingerprint(make_a()) == fingerprint(make_a())
    assert fingerprint(make_a()) != fingerprint(make_b())


def test_a_ufunc_from_frompyfunc_is_refused_with_a_note() -> None:
    def shift(x: int) -> int:
        return x + 1

    with pytest.raises(FingerprintError) as info:
        fingerprint_input("v", np.frompyfunc(shift, 1, 1))
    assert str(info.value) == (
        "cannot fingerprint v (type numpy.ufunc: 'shift (vectorized)' comes from np.frompyfunc, "
        "whose function cannot be read): the cell re-runs every time; --exclude v if it does "
        "not matter"
    )


# -- through a checkpoint cell (in-process shell) ----------------------------------------------


@pytest.mark.parametrize(
    ("setup", "cell", "change", "changed"),
    [
        pytest.param(
            "class Model:\n    def __init__(self):\n        self.scale = 1\n"
            "    def __getstate__(self):\n        return {}\nm = Model()",
            "y = m.scale * 10",
            "m.scale = 2",
            "m",
            id="getstate-hides-an-attribute",
        ),
        pytest.param(
            "import io\nbuf = io.StringIO('a\\n1\\n')",
            "import pandas as pd\ndf = pd.read_csv(buf)",
            "buf = io.StringIO('a\\n2\\n')",
            "buf",
            id="in-memory-csv",
        ),
        pytest.param(
            "K = int",
            "def f(x: K = 1):\n    return x\ny = f.__annotations__['x'].__name__",
            "K = float",
            "K",
            id="annotation-of-a-function-the-cell-defines",
        ),
    ],
)
def test_a_checkpoint_cell_runs_again_when_a_hidden_input_changes(
    setup: str, cell: str, change: str, changed: str, run_cell: Callable[..., CellRun]
) -> None:
    assert run_cell(textwrap.dedent(setup)).error is None
    source = f"%%checkpoint probe\ntick()\n{cell}\n"
    assert run_cell(source).error is None
    assert run_cell(textwrap.dedent(setup)).error is None  # the notebook again from the top
    assert run_cell(source).error is None
    assert runs() == 1
    assert run_cell(change).error is None
    again = run_cell(source)
    assert again.error is None
    assert runs() == 2
    assert repr(changed) in again.note_text, again.note_text


def test_a_cell_reading_the_notebook_module_runs_every_time(
    shell: Any, run_cell: Callable[..., CellRun]
) -> None:
    run_cell("K = 1")
    cell = "%%checkpoint main\ntick()\ny = getattr(__import__('__main__'), 'K')\n"
    for _ in range(2):
        with pytest.warns(CheckpointWarning, match=re.escape("reads __main__ dynamically")):
            assert run_cell(cell).error is None
    assert runs() == 2


def test_a_frompyfunc_input_runs_every_time_with_a_note(
    shell: Any, run_cell: Callable[..., CellRun]
) -> None:
    run_cell("import numpy as np\nK = 1\ndef f(x):\n    return x + K\nv = np.frompyfunc(f, 1, 1)")
    cell = "%%checkpoint ufunc\ntick()\ny = v(1)\n"
    for _ in range(2):
        with pytest.warns(CheckpointWarning, match=re.escape("cannot fingerprint v (type numpy")):
            assert run_cell(cell).error is None
    assert runs() == 2
    assert isinstance(shell.user_ns["v"], np.ufunc)
    assert not isinstance(shell.user_ns["v"], types.FunctionType)


# -- values restored from a checkpoint keep their fingerprints ---------------------------------


def test_a_restored_sklearn_dataset_has_the_fingerprint_of_the_one_saved() -> None:
    """A Bunch drops its attributes when unpickled: cells reading a restored dataset re-ran."""
    import pickle

    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    assert fingerprint(pickle.loads(pickle.dumps(digits))) == fingerprint(digits)


def test_attributes_of_a_container_subclass_still_count() -> None:
    class Tagged(dict[str, int]):
        pass

    a, b = Tagged(x=1), Tagged(x=1)
    a.tag, b.tag = "train", "test"  # type: ignore[attr-defined]
    assert fingerprint(a) != fingerprint(b)


def _figures() -> dict[str, Callable[[], Any]]:
    import matplotlib.pyplot as plt

    def log_axes() -> Any:
        plt.figure()
        ax = plt.axes(xscale="log", yscale="log")
        ax.grid()
        return ax

    def grid() -> Any:
        _, axes = plt.subplots(2, 3, sharex="col", sharey="row")
        for i, ax in enumerate(axes.flat):
            ax.text(0.5, 0.5, str(i), ha="center")
        return axes

    def hist() -> Any:
        _, ax = plt.subplots()
        return ax.hist(np.arange(100.0) % 7, bins=5)[2]  # the patches

    def image_and_colorbar() -> Any:
        fig, ax = plt.subplots()
        im = ax.imshow(np.arange(12.0).reshape(3, 4))
        fig.colorbar(im)
        ax.legend(["a"])
        ax.annotate("peak", xy=(1, 1), xytext=(2, 2), arrowprops={"arrowstyle": "->"})
        return fig

    def three_d() -> Any:
        plt.figure()
        ax = plt.axes(projection="3d")
        ax.plot3D([0, 1, 2], [0, 1, 4], [0, 1, 8])
        ax.view_init(60, 35)
        return ax

    return {f.__name__: f for f in (log_axes, grid, hist, image_and_colorbar, three_d)}


@pytest.mark.parametrize("kind", ["log_axes", "grid", "hist", "image_and_colorbar", "three_d"])
def test_a_restored_figure_has_the_fingerprint_of_the_one_saved(kind: str) -> None:
    """matplotlib objects held ids, figure numbers and callbacks of their session: after a restart
    every cell reading a restored `ax` ran again ("input 'ax' changed")."""
    import io
    import pickle

    import matplotlib.pyplot as plt

    value = _figures()[kind]()
    plt.gcf().savefig(io.BytesIO(), format="png")  # what the inline backend does after a cell
    try:
        restored = pickle.loads(pickle.dumps(value))
        assert fingerprint(restored) == fingerprint(value)
    finally:
        plt.close("all")


def test_what_a_figure_shows_still_counts() -> None:
    import matplotlib.pyplot as plt

    try:
        _, ax = plt.subplots()
        ax.plot([1, 2, 3])
        before = fingerprint(ax)
        ax.set_xlim(0, 10)
        limits = fingerprint(ax)
        ax.set_title("loss")
        titled = fingerprint(ax)
        ax.lines[0].set_ydata([3, 2, 1])
        assert len({before, limits, titled, fingerprint(ax)}) == 4
    finally:
        plt.close("all")


@pytest.mark.parametrize(
    ("read", "name"),
    [("_ * 10", "_"), ("Out[max(Out)] * 10", "Out"), ("__ * 10", "__"), ("len(_oh)", "_oh")],
)
def test_a_cell_reading_ipythons_output_history_runs_every_time(
    read: str, name: str, shell: Any, run_cell: Callable[..., CellRun]
) -> None:
    """`_`, `Out[n]` hold earlier cells' results: never inputs, they restored a stale value."""
    run_cell("1 + 1")
    run_cell("2 + 2")
    cell = f"%%checkpoint history\ntick()\ny = {read}\n"
    for _ in range(2):
        with pytest.warns(CheckpointWarning, match=re.escape(f"output history ({name})")):
            assert run_cell(cell).error is None
    assert runs() == 2


def test_a_throwaway_underscore_is_not_history(
    shell: Any, run_cell: Callable[..., CellRun]
) -> None:
    cell = "%%checkpoint loop\ntick()\nfor _ in range(2):\n    pass\n_, b = 1, 2\n"
    assert run_cell(cell).error is None
    assert run_cell(cell).error is None
    assert runs() == 1


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("y = df.query('a > @threshold')", {"df", "threshold"}),
        ("y = df.eval('c = a + @offset')", {"df", "offset"}),
        ("y = pd.eval('left + right')", {"pd", "left", "right"}),
        ("y = numexpr.evaluate('x * scale')", {"numexpr", "x", "scale"}),
    ],
)
def test_names_inside_expression_strings_are_read(source: str, names: set[str]) -> None:
    assert names <= set(analyze_cell(source).inputs)


def test_a_query_cell_runs_again_when_its_at_variable_changes(
    shell: Any, run_cell: Callable[..., CellRun]
) -> None:
    run_cell("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})\nthreshold = 1")
    cell = "%%checkpoint query\ntick()\nbig = df.query('a > @threshold')\n"
    assert run_cell(cell).error is None
    assert run_cell(cell).error is None
    assert runs() == 1
    run_cell("threshold = 2")
    again = run_cell(cell)
    assert runs() == 2
    assert len(shell.user_ns["big"]) == 1
    assert "input 'threshold' changed" in again.note_text, again.note_text


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("y = df.query('`my col` > @limit')", {"df", "limit"}),
        ("m = smf.ols('price ~ area + np.log(rooms) + scale', data=df)", {"scale", "df"}),
        ("X = patsy.dmatrix('C(group) + I(w ** 2)', data)", {"w", "data"}),
    ],
)
def test_names_inside_query_and_formula_strings_are_read(source: str, names: set[str]) -> None:
    inputs = set(analyze_cell(source).inputs)
    assert names <= inputs
    assert "_" not in inputs


def test_a_notebook_functions_annotations_count() -> None:
    """typing.get_type_hints, dataclasses and pydantic read them, also as strings."""
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec("K = int\ndef f(x: 'K') -> None:\n    pass\ndef g(x: K) -> None:\n    pass", ns)
    f_before, g_before = fingerprint(ns["f"]), fingerprint(ns["g"])
    exec("K = float\ndef g(x: K) -> None:\n    pass", ns)
    assert fingerprint(ns["f"]) != f_before
    assert fingerprint(ns["g"]) != g_before
