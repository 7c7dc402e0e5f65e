"""Keys: which names a cell reads and assigns, content fingerprints, why a key changed."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import CellRun, runs
from nbresume._keys import (
    analyze_cell,
    cell_key,
    describe_change,
    fingerprint,
    hash_text,
    normalize_source,
)

# -- analyze_cell ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "inputs", "outputs"),
    [
        pytest.param("x = y + 1", {"y"}, {"x"}, id="assignment"),
        pytest.param("x = x + 1", {"x"}, {"x"}, id="reassignment-reads-first"),
        pytest.param("a, (b, *c) = pair", {"pair"}, {"a", "b", "c"}, id="unpacking"),
        pytest.param("x: int = compute()", {"compute", "int"}, {"x"}, id="annotated"),
        pytest.param("total += step", {"total", "step"}, {"total"}, id="aug-assign"),
        pytest.param("total = 0\ntotal += 1", set(), {"total"}, id="aug-assign-after-assign"),
        pytest.param(
            "for i, row in enumerate(rows):\n    acc = row\nelse:\n    finished = True",
            {"enumerate", "rows"},
            {"i", "row", "acc", "finished"},
            id="for-targets",
        ),
        pytest.param(
            "async def main():\n    async for item in feed:\n        pass",
            {"feed"},
            {"main"},
            id="async-for-in-function",
        ),
        pytest.param(
            "with open(path) as f, lock:\n    data = f.read()",
            {"open", "path", "lock"},
            {"f", "data"},
            id="with-targets",
        ),
        pytest.param(
            "import numpy as np\nimport os.path\nfrom math import sqrt as root, pi",
            set(),
            {"np", "os", "root", "pi"},
            id="imports",
        ),
        pytest.param(
            "def f(a, b=default):\n    c = a * scale\n    return c + b",
            {"default", "scale"},
            {"f"},
            id="def-reads-globals-not-locals",
        ),
        pytest.param(
            "@register\nclass Model(Base, metaclass=Meta):\n    rate = base_rate\n"
            "    def step(self, x):\n        return x * self.rate + offset",
            {"register", "Base", "Meta", "base_rate", "offset"},
            {"Model"},
            id="class",
        ),
        pytest.param(
            "squares = [v * k for v in values if v > lo]",
            {"values", "k", "lo"},
            {"squares"},
            id="list-comprehension-variable-does-not-leak",
        ),
        pytest.param(
            "d = {k: v for k, v in pairs}\ng = (q * w for q in gen)\ns = {t for t in ts}",
            {"pairs", "gen", "w", "ts"},
            {"d", "g", "s"},
            id="dict-set-generator-comprehensions",
        ),
        pytest.param("f = lambda v, w=width: v + offset", {"width", "offset"}, {"f"}, id="lambda"),
        pytest.param(
            "if (n := len(items)) > 3:\n    big = n",
            {"len", "items"},
            {"n", "big"},
            id="walrus",
        ),
        pytest.param(
            "def outer():\n    def inner():\n        return threshold\n    return inner",
            {"threshold"},
            {"outer"},
            id="nested-function-reads-global",
        ),
        pytest.param(
            "def train():\n    for lr in grid:\n        fit(lr)\n    return lr",
            {"grid", "fit"},
            {"train"},
            id="function-local-loop-variable",
        ),
        pytest.param(
            "results = []\nfor lr in grid:\n    results.append(fit(lr))",
            {"grid", "fit"},
            {"results", "lr"},
            id="spec-example",
        ),
        pytest.param(
            "try:\n    r = risky()\nexcept ValueError:\n    r = None",
            {"risky", "ValueError"},
            {"r"},
            id="try-except",
        ),
    ],
)
def test_analyze_cell_finds_inputs_and_outputs(
    source: str, inputs: set[str], outputs: set[str]
) -> None:
    names = analyze_cell(source)
    assert set(names.inputs) == inputs
    assert set(names.outputs) == outputs


@pytest.mark.parametrize(
    ("source", "outputs"),
    [
        # PEP 572: a walrus inside a comprehension binds in the containing (cell) scope.
        pytest.param("[last := v for v in data]", {"last"}, id="walrus-in-comprehension"),
        # match captures bind names at the top level like assignments do.
        pytest.param(
            "match point:\n    case [px, py]:\n        pass\n    case {'x': qx, **rest}:\n"
            "        pass\n    case other:\n        pass",
            {"px", "py", "qx", "rest", "other"},
            id="match-captures",
        ),
        # `results['a'] = v` / `model.w = v` change the variable through an assignment target;
        # a hit that does not restore it leaves the pre-cell value in the namespace.
        pytest.param("results['a'] = compute()", {"results"}, id="subscript-target"),
        pytest.param("model.weights = fit()", {"model"}, id="attribute-target"),
        pytest.param("table[i] += 1", {"table"}, id="subscript-aug-assign"),
    ],
)
def test_every_name_a_cell_binds_or_assigns_through_is_an_output(
    source: str, outputs: set[str]
) -> None:
    assert outputs <= set(analyze_cell(source).outputs)


@pytest.mark.parametrize(
    ("source", "global_name"),
    [
        # `x` is local to g only; in f it is the global.
        pytest.param(
            "def f():\n    def g():\n        x = 1\n    return x",
            "x",
            id="name-local-to-an-inner-function",
        ),
        # a class body's names are not visible inside its methods.
        pytest.param(
            "class A:\n    y = 1\n    def m(self):\n        return y",
            "y",
            id="method-reads-global-shadowed-by-class-attribute",
        ),
        # a comprehension variable is local to the comprehension.
        pytest.param(
            "def f():\n    s = [x for x in range(3)]\n    return x",
            "x",
            id="name-local-to-a-comprehension",
        ),
    ],
)
def test_a_global_read_inside_a_function_is_an_input_whatever_inner_scopes_bind(
    source: str, global_name: str
) -> None:
    assert global_name in analyze_cell(source).inputs


def test_analyze_cell_lists_inputs_in_reading_order() -> None:
    assert analyze_cell("c = b + a\nd = a").inputs == ("b", "a")


# -- normalize_source -------------------------------------------------------------------------


def test_normalize_source_ignores_trailing_whitespace_and_blank_edges() -> None:
    assert normalize_source("\n\nx = 1   \nprint(x)\t\n\n") == normalize_source("x = 1\nprint(x)")
    assert normalize_source("x = 1") != normalize_source("x = 2")
    assert normalize_source("if a:\n    b") != normalize_source("if a:\nb")


# -- fingerprints: equality and difference ----------------------------------------------------

STABLE_VALUES = textwrap.dedent(
    """
    import pathlib
    import numpy as np
    import pandas as pd

    def values():
        ns = {"__name__": "__main__"}
        exec(
            "offset = 3\\n"
            "def shift(x, by=2):\\n"
            "    return x + by + offset\\n",
            ns,
        )
        return {
            "str": "héllo wörld",
            "bytes": b"\\x00\\xffabc",
            "tuple": ("a", 1, 2.5, None, True),
            "set-of-str": {"alpha", "beta", "gamma", "delta", "epsilon"},
            "frozenset": frozenset({"p", "q", ("r", 1)}),
            "dict": {"b": [1, 2, {"c"}], "a": ("x", "y")},
            "nested-sets": {"k": {frozenset({"u", "v"}), "w"}},
            "path": pathlib.PurePosixPath("/data/run-1"),
            "ndarray": np.arange(24, dtype=np.float64).reshape(4, 6),
            "ndarray-fortran": np.asfortranarray(np.arange(12).reshape(3, 4)),
            "ndarray-object": np.array(["a", "bc", None], dtype=object),
            "dataframe": pd.DataFrame(
                {"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, None, 2.0]},
                index=["r1", "r2", "r3"],
            ),
            "series-categorical": pd.Series(["lo", "hi", "lo"], dtype="category", name="s"),
            "function": ns["shift"],
            "masked-array": np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]),
            "multiindex-frame": pd.DataFrame(
                {"v": [1.5, 2.5]}, index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")])
            ),
            "nullable-and-sparse": pd.DataFrame(
                {"n": pd.array([1, None], dtype="Int64"), "s": pd.arrays.SparseArray([0, 1])}
            ),
            "list-of-ints-in-bulk": list(range(1000)),
            "set-of-str-in-bulk": {f"s{i}" for i in range(1000)},
            "dict-of-str-to-float": {f"k{i}": i / 3 for i in range(1000)},
            "rows": [(i, str(i), None) for i in range(100)],
        }
    """
)


@pytest.fixture(scope="module")
def stable_values_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fingerprints")
    (folder / "stable_values.py").write_text(STABLE_VALUES)
    return folder


def _fingerprints_in_subprocess(folder: Path, hashseed: str) -> dict[str, str]:
    script = (
        "import json, stable_values\n"
        "from nbresume._keys import fingerprint\n"
        "print(json.dumps({k: fingerprint(v) for k, v in stable_values.values().items()}))\n"
    )
    # NB. the PYTHONPATH the tests run under comes too: the subprocess imports the code under test
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_fingerprints_are_stable_across_processes_and_hash_seeds(
    stable_values_module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(stable_values_module))
    import stable_values

    here = {k: fingerprint(v) for k, v in stable_values.values().items()}
    for seed in ("1", "4242"):
        assert _fingerprints_in_subprocess(stable_values_module, seed) == here, seed


NOTEBOOK_DEFINED = textwrap.dedent(
    """
    import json
    from dataclasses import dataclass
    from nbresume._keys import fingerprint

    ns = {"__name__": "__main__"}
    exec(
        '''
    from dataclasses import dataclass

    def is_known(name):
        return name in {"alpha", "beta", "gamma", "delta", "epsilon"}

    @dataclass
    class Config:
        lr: float
        layers: int

    class Tagged:
        def __init__(self):
            self.tags = {"red", "green", "blue", "cyan", "magenta"}
    ''',
        ns,
    )
    values = {
        "function-with-a-set-literal": ns["is_known"],
        "dataclass-instance-defined-in-the-notebook": ns["Config"](0.1, 3),
        "object-holding-a-set": ns["Tagged"](),
    }
    print(json.dumps({k: fingerprint(v) for k, v in values.items()}))
    """
)


@pytest.mark.parametrize(
    "name",
    [
        "function-with-a-set-literal",
        "dataclass-instance-defined-in-the-notebook",
        "object-holding-a-set",
    ],
)
def test_fingerprints_of_notebook_defined_values_are_stable_across_processes(name: str) -> None:
    """After a kernel restart the same cell defines the same values: their inputs must match."""

    def fingerprints(seed: str) -> dict[str, str]:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", NOTEBOOK_DEFINED],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout)

    assert fingerprints("1")[name] == fingerprints("2")[name]


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner), max_leaves=4)
values = st.recursive(
    hashables | st.frozensets(hashables, max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.sets(hashables, max_size=5)
    ),
    max_leaves=12,
)


def canonical(value: Any) -> Any:
    """What a fingerprint must tell apart: types, order of sequences and dicts, float signs."""
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(canonical(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((canonical(k), canonical(v)) for k, v in value.items()))
    if isinstance(value, set | frozenset):
        return (type(value).__name__, tuple(sorted(repr(canonical(v)) for v in value)))
    return (type(value).__name__, repr(value))


@settings(max_examples=150, deadline=None, database=None)
@given(values)
def test_equal_values_have_equal_fingerprints(value: Any) -> None:
    rebuilt = pickle.loads(pickle.dumps(value))
    assert fingerprint(value) == fingerprint(copy.deepcopy(value)) == fingerprint(rebuilt)


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(hashables, max_size=12, unique_by=canonical))
@example([False, 0])  # equal but distinguishable: set() keeps whichever came first
@example([1.0, True, 1])
def test_set_fingerprints_do_not_depend_on_insertion_order(items: list[Any]) -> None:
    forwards = set(items)
    # NB. the same elements in another order: a set of `items` reversed could hold 0, not False
    backwards: set[Any] = set()
    for item in reversed(list(forwards)):
        backwards.add(item)
    assert {id(x) for x in forwards} == {id(x) for x in backwards}
    assert fingerprint(forwards) == fingerprint(backwards)
    assert fingerprint(frozenset(forwards)) == fingerprint(frozenset(backwards))


def test_sets_of_equal_but_distinguishable_elements_have_different_fingerprints() -> None:
    assert fingerprint({False}) != fingerprint({0}) != fingerprint({0.0})
    assert fingerprint(frozenset({1, "a"})) != fingerprint(frozenset({True, "a"}))


@settings(max_examples=200, deadline=None, database=None)
@given(values, values)
def test_fingerprints_are_equal_exactly_when_values_are_indistinguishable(a: Any, b: Any) -> None:
    if canonical(a) == canonical(b):
        assert fingerprint(a) == fingerprint(b)
    else:
        assert fingerprint(a) != fingerprint(b)


array_dtypes = st.sampled_from([np.int8, np.int64, np.uint16, np.float32, np.float64, np.bool_])
arrays = array_dtypes.flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
        elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False),
    )
)


@settings(max_examples=150, deadline=None, database=None)
@given(arrays, arrays)
def test_different_numpy_arrays_have_different_fingerprints(a: np.ndarray, b: np.ndarray) -> None:
    assume(a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes())
    assert fingerprint(a) != fingerprint(b)


@settings(max_examples=100, deadline=None, database=None)
@given(arrays)
def test_equal_numpy_arrays_have_equal_fingerprints_whatever_their_memory_layout(
    a: np.ndarray,
) -> None:
    assert fingerprint(a) == fingerprint(a.copy()) == fingerprint(np.array(a, order="F"))
    if a.ndim >= 2:
        assert fingerprint(a.T) == fingerprint(np.ascontiguousarray(a.T))
    if a.ndim == 1 and a.size > 1:
        assert fingerprint(a[::2]) == fingerprint(a[::2].copy())


def test_a_changed_array_element_changes_the_fingerprint() -> None:
    a = np.zeros((100, 100))
    before = fingerprint(a)
    a[57, 3] = 1e-12
    assert fingerprint(a) != before


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(np.array(["2024-01-01", "2024-03-01"], dtype="M8[ns]"), id="datetime64"),
        pytest.param(np.array([1, 90], dtype="m8[s]"), id="timedelta64"),
        pytest.param(np.array([1 + 2j, 3j]), id="complex"),
        pytest.param(
            np.array([(1, 0.5), (2, 0.5)], dtype=[("a", "i4"), ("b", "f8")]), id="structured"
        ),
        pytest.param(np.array(["ab", "c"]), id="unicode"),
        pytest.param(np.array([0.5, 2.0], dtype=np.float16), id="float16"),
    ],
)
def test_arrays_of_every_fixed_size_dtype_are_fingerprinted_by_content(values: np.ndarray) -> None:
    """Buffer formats that a memoryview cannot cast (datetime64: "M") are hashed as bytes too."""
    changed = values.copy()
    changed[1] = changed[0]
    assert fingerprint(values) == fingerprint(values.copy())
    assert fingerprint(changed) != fingerprint(values)
    frame = pd.DataFrame({"t": values}) if values.dtype.names is None else None
    if frame is not None:  # a column of the dtype, and an index of it (none for float16)
        assert fingerprint(frame) != fingerprint(pd.DataFrame({"t": changed}))
    if frame is not None and values.dtype != np.float16:
        assert fingerprint(frame.set_index("t")) == fingerprint(frame.copy().set_index("t"))


def test_timezone_aware_and_period_columns_are_fingerprinted_by_content() -> None:
    stamps = pd.to_datetime(["2024-01-01", "2024-01-02"]).tz_localize("UTC")
    df = pd.DataFrame({"z": stamps, "p": pd.period_range("2024-01", periods=2, freq="M")})
    assert fingerprint(df) == fingerprint(df.copy(deep=True))
    assert fingerprint(df.assign(z=stamps.tz_convert("Europe/Paris"))) != fingerprint(df)
    assert fingerprint(df.assign(p=df["p"] + 1)) != fingerprint(df)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda df: df.assign(b=df["b"].replace("y", "Y")), id="string-cell"),
        pytest.param(lambda df: df.assign(a=df["a"] + 1), id="int-column"),
        pytest.param(lambda df: df.rename(columns={"a": "A"}), id="column-name"),
        pytest.param(lambda df: df.set_axis(["r1", "r2", "rX"]), id="index-label"),
        pytest.param(lambda df: df.astype({"a": "float64"}), id="dtype"),
        pytest.param(lambda df: df.iloc[::-1], id="row-order"),
        pytest.param(lambda df: df.assign(c=pd.Categorical(["u", "v", "u"])), id="categorical"),
        pytest.param(
            lambda df: df.assign(c=df["c"].cat.rename_categories({"u": "U"})),
            id="categorical-labels",
        ),
    ],
)
def test_pandas_frames_are_fingerprinted_by_content(
    change: Callable[[pd.DataFrame], pd.DataFrame],
) -> None:
    df = pd.DataFrame(
        {"a": [1, 2, 3], "b": ["x", "y", "z"], "c": pd.Categorical(["u", "u", "v"])},
        index=["r1", "r2", "r3"],
    )
    assert fingerprint(df) == fingerprint(df.copy(deep=True))
    assert fingerprint(change(df)) != fingerprint(df)


# -- fingerprints of functions ----------------------------------------------------------------


def _define(source: str, **globals_: Any) -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "__main__", **globals_}
    exec(textwrap.dedent(source), ns)
    return ns


def test_the_same_function_defined_twice_has_one_fingerprint() -> None:
    source = "def f(x, y=2):\n    return x * y + k\n"
    assert fingerprint(_define(source, k=1)["f"]) == fingerprint(_define(source, k=1)["f"])


def test_a_function_fingerprint_changes_with_its_code() -> None:
    a = _define("def f(x):\n    return x + 1\n")["f"]
    b = _define("def f(x):\n    return x + 2\n")["f"]
    c = _define("def f(x):\n    return x - 1\n")["f"]
    assert len({fingerprint(a), fingerprint(b), fingerprint(c)}) == 3


def test_a_function_fingerprint_changes_with_its_defaults() -> None:
    a = _define("def f(x, scale=1):\n    return x * scale\n")["f"]
    b = _define("def f(x, scale=2):\n    return x * scale\n")["f"]
    assert fingerprint(a) != fingerprint(b)


def test_a_function_fingerprint_changes_with_its_closure() -> None:
    ns = _define(
        """
        def make(step):
            def add(x):
                return x + step
            return add
        """
    )
    assert fingerprint(ns["make"](1)) == fingerprint(ns["make"](1))
    assert fingerprint(ns["make"](1)) != fingerprint(ns["make"](2))


def test_a_function_fingerprint_changes_with_a_global_it_reads() -> None:
    ns = _define("def loss(y):\n    return (y - target) ** 2 * weights.sum()\n", target=1.0)
    ns["weights"] = np.ones(3)
    before = fingerprint(ns["loss"])
    ns["target"] = 2.0
    after_target = fingerprint(ns["loss"])
    ns["weights"][1] = 5.0
    after_weights = fingerprint(ns["loss"])
    assert len({before, after_target, after_weights}) == 3


def test_a_function_fingerprint_follows_the_functions_it_calls() -> None:
    ns = _define(
        """
        def helper(x):
            return x * factor
        def main(x):
            return helper(x) + 1
        """,
        factor=2,
    )
    before = fingerprint(ns["main"])
    ns["factor"] = 3
    assert fingerprint(ns["main"]) != before
    ns["factor"] = 2
    assert fingerprint(ns["main"]) == before


def test_a_function_fingerprint_ignores_globals_it_does_not_read() -> None:
    ns = _define("def f(x):\n    return x + 1\n", unrelated=1)
    before = fingerprint(ns["f"])
    ns["unrelated"] = 2
    assert fingerprint(ns["f"]) == before


def test_a_class_fingerprint_changes_with_its_methods() -> None:
    """A cell that uses a class defined in an earlier cell must re-run when that class changes."""
    a = _define("class Model:\n    def fit(self):\n        return 1\n")["Model"]
    b = _define("class Model:\n    def fit(self):\n        return 2\n")["Model"]
    assert fingerprint(a) != fingerprint(b)


def test_recursive_and_self_referencing_values_have_a_fingerprint() -> None:
    ns = _define("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n")
    loop: list[Any] = [1]
    loop.append(loop)
    assert fingerprint(ns["fact"]) == fingerprint(ns["fact"])
    assert fingerprint(loop) == fingerprint(loop)


# -- cell keys --------------------------------------------------------------------------------


def test_cell_key_is_readable_and_depends_on_name_source_and_inputs() -> None:
    source = hash_text("y = x + 1")
    key = cell_key("train", source, {"x": "f1"})
    assert key.startswith("cell:train:")
    assert key == cell_key("train", source, {"x": "f1"})
    assert key != cell_key("train2", source, {"x": "f1"})
    assert key != cell_key("train", hash_text("y = x + 2"), {"x": "f1"})
    assert key != cell_key("train", source, {"x": "f2"})
    assert key != cell_key("train", source, {"x": "f1", "z": "f1"})
    assert cell_key("t", source, {"a": "1", "b": "2"}) == cell_key(
        "t", source, {"b": "2", "a": "1"}
    )


def _checkpoint_key(run: CellRun) -> str:
    (note,) = [n for n in run.notes if n.metadata["nbresume"].get("kind") == "restored"]
    return str(note.metadata["nbresume"]["key"])


def test_cell_keys_do_not_depend_on_execution_counts(
    shell: Any, run_cell: Callable[..., CellRun]
) -> None:
    """The same cells run at other execution counts (other `<ipython-input-N>` file names)."""
    helper = "def scale(v):\n    return [x * 10 for x in v]\n"
    cell = "%%checkpoint scaled\ntick()\nscaled = scale(data)\n"
    run_cell("data = [1, 2, 3]", store_history=True)
    run_cell(helper, store_history=True)
    assert run_cell(cell, store_history=True).error is None
    for _ in range(3):
        run_cell("pass", store_history=True)
    run_cell(helper, store_history=True)  # a new function object, compiled under a new count
    del shell.user_ns["scaled"]
    again = run_cell(cell, store_history=True)
    assert again.error is None
    assert runs() == 1
    assert shell.user_ns["scaled"] == [10, 20, 30]
    assert _checkpoint_key(again).startswith("cell:scaled:")


# -- describe_change --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old_source", "old_inputs", "new_source", "new_inputs", "reason"),
    [
        ("s1", {"lr": "1"}, "s2", {"lr": "2"}, "source changed"),
        ("s1", {"lr": "1"}, "s1", {"lr": "2"}, "input 'lr' changed"),
        ("s", {"a": "1", "b": "1"}, "s", {"a": "2", "b": "2"}, "inputs 'a', 'b' changed"),
        ("s", {"a": "1"}, "s", {"a": "1", "b": "1"}, "input 'b' is new"),
        ("s", {"a": "1", "b": "1"}, "s", {"a": "1"}, "input 'b' no longer defined"),
    ],
)
def test_describe_change_says_why_in_a_few_words(
    old_source: str,
    old_inputs: dict[str, str],
    new_source: str,
    new_inputs: dict[str, str],
    reason: str,
) -> None:
    assert describe_change(old_source, old_inputs, new_source, new_inputs) == reason


def test_describe_change_is_a_single_short_line() -> None:
    reason = describe_change("s", {f"v{i}": "1" for i in range(50)}, "s", {})
    assert "\n" not in reason
    assert len(reason) < 80
