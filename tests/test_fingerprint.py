"""Fingerprints never crash and never hang: every value gets a content hash or a clear refusal.

A refusal is a `FingerprintError` whose message the engine shows as its note: "cannot fingerprint
X (type T): the cell re-runs every time; --exclude X if it does not matter".
"""

from __future__ import annotations

import array
import collections
import functools
import gc
import textwrap
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbresume._keys import FingerprintError, fingerprint, fingerprint_input

# -- every value type: equal values agree, a changed value differs ----------------------------


def _masked(data: list[float], mask: list[bool]) -> Any:
    return np.ma.masked_array(data, mask=mask, fill_value=-1.0)


def _multi(labels: list[tuple[int, str]]) -> pd.MultiIndex:
    return pd.MultiIndex.from_tuples(labels, names=["n", "s"])


def _with_attrs(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.attrs["unit"] = "m"
    return out


S = np.dtypes.StringDType()
# (make, change): make() twice gives equal values, change(make()) a different one
CASES: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
    "masked-array-data": (
        lambda: _masked([1.0, 2.0, 3.0], [False, True, False]),
        lambda m: _masked([1.0, 2.0, 4.0], [False, True, False]),
    ),
    "masked-array-mask": (
        lambda: _masked([1.0, 2.0, 3.0], [False, True, False]),
        lambda m: _masked([1.0, 2.0, 3.0], [False, False, False]),
    ),
    "masked-array-2d": (
        lambda: np.ma.masked_greater(np.arange(12.0).reshape(3, 4), 7),
        lambda m: np.ma.masked_greater(np.arange(12.0).reshape(3, 4), 8),
    ),
    "masked-array-of-records": (
        lambda: np.ma.masked_array(
            np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i4"), ("b", "f8")]),
            mask=[(False, True), (False, False)],
        ),
        lambda m: np.ma.masked_array(
            np.array([(1, 2.0), (3, 5.0)], dtype=[("a", "i4"), ("b", "f8")]),
            mask=[(False, True), (False, False)],
        ),
    ),
    "multiindex-frame": (
        lambda: pd.DataFrame({"v": [1, 2]}, index=_multi([(1, "a"), (2, "b")])),
        lambda df: pd.DataFrame({"v": [1, 2]}, index=_multi([(1, "a"), (2, "c")])),
    ),
    "multiindex-columns": (
        lambda: pd.DataFrame([[1, 2]], columns=_multi([(1, "a"), (1, "b")])),
        lambda df: pd.DataFrame([[1, 2]], columns=_multi([(1, "a"), (2, "b")])),
    ),
    "multiindex-level-names": (
        lambda: pd.Series([1, 2], index=_multi([(1, "a"), (2, "b")])),
        lambda s: s.rename_axis(["n", "t"]),
    ),
    "categorical-index": (
        lambda: pd.Series([1, 2], index=pd.CategoricalIndex(["x", "y"])),
        lambda s: pd.Series([1, 2], index=pd.CategoricalIndex(["x", "z"])),
    ),
    "interval-index": (
        lambda: pd.Series([1, 2, 3], index=pd.interval_range(0, 3)),
        lambda s: pd.Series([1, 2, 3], index=pd.interval_range(0, 3, closed="left")),
    ),
    "period-index": (
        lambda: pd.Series([1, 2], index=pd.period_range("2024-01", periods=2, freq="M")),
        lambda s: pd.Series([1, 2], index=pd.period_range("2024-01", periods=2, freq="D")),
    ),
    "datetime-tz-index": (
        lambda: pd.Series([1, 2], index=pd.date_range("2024", periods=2, tz="UTC")),
        lambda s: pd.Series([1, 2], index=pd.date_range("2024", periods=2, tz="Asia/Tokyo")),
    ),
    "timedelta-index": (
        lambda: pd.Series([1, 2], index=pd.timedelta_range("1D", periods=2)),
        lambda s: pd.Series([1, 2], index=pd.timedelta_range("2D", periods=2)),
    ),
    "range-index": (
        lambda: pd.Series([1, 2], index=pd.RangeIndex(0, 4, 2)),
        lambda s: pd.Series([1, 2], index=pd.RangeIndex(0, 6, 3)),
    ),
    "index-name": (
        lambda: pd.Series([1, 2], index=pd.Index([5, 6], name="a")),
        lambda s: pd.Series([1, 2], index=pd.Index([5, 6], name="b")),
    ),
    "sparse-column": (
        lambda: pd.DataFrame({"s": pd.arrays.SparseArray([0, 0, 1, 0])}),
        lambda df: pd.DataFrame({"s": pd.arrays.SparseArray([0, 1, 1, 0])}),
    ),
    "sparse-fill-value": (
        lambda: pd.Series(pd.arrays.SparseArray([0.0, 1.0], fill_value=0.0)),
        lambda s: pd.Series(pd.arrays.SparseArray([0.0, 1.0], fill_value=np.nan)),
    ),
    "nullable-int-column": (
        lambda: pd.Series([1, None, 3], dtype="Int64"),
        lambda s: pd.Series([1, 2, 3], dtype="Int64"),
    ),
    "nullable-int-hidden-value": (  # the value under a mask is not data; the mask is
        lambda: pd.Series([1, None], dtype="Int64"),
        lambda s: pd.Series([1, 0], dtype="Int64"),
    ),
    "nullable-boolean-column": (
        lambda: pd.Series([True, None], dtype="boolean"),
        lambda s: pd.Series([True, False], dtype="boolean"),
    ),
    "nullable-float-column": (
        lambda: pd.Series([0.5, None], dtype="Float64"),
        lambda s: pd.Series([0.5, 1.5], dtype="Float64"),
    ),
    "string-dtype-column": (
        lambda: pd.Series(["a", None, "c"], dtype="string"),
        lambda s: pd.Series(["a", "b", "c"], dtype="string"),
    ),
    "default-str-column": (
        lambda: pd.Series(["a", None, "c"]),
        lambda s: pd.Series(["a", "None", "c"]),
    ),
    "object-column-mixed-types": (
        lambda: pd.Series([1, "a", None], dtype=object),
        lambda s: pd.Series(["1", "a", None], dtype=object),
    ),
    "object-column-of-lists": (
        lambda: pd.Series([[1, 2], [3]], dtype=object),
        lambda s: pd.Series([[1, 2], [4]], dtype=object),
    ),
    "object-column-int-vs-float": (
        lambda: pd.Series([1, 2], dtype=object),
        lambda s: pd.Series([1.0, 2], dtype=object),
    ),
    "interval-column": (
        lambda: pd.DataFrame({"i": pd.interval_range(0, 2)}),
        lambda df: pd.DataFrame({"i": pd.interval_range(0, 2, closed="both")}),
    ),
    "period-column": (
        lambda: pd.DataFrame({"p": pd.period_range("2024-01", periods=2, freq="M")}),
        lambda df: pd.DataFrame({"p": pd.period_range("2024-02", periods=2, freq="M")}),
    ),
    "categorical-column-order": (
        lambda: pd.Series(pd.Categorical(["a", "b"], ordered=True)),
        lambda s: pd.Series(pd.Categorical(["a", "b"], ordered=False)),
    ),
    "frame-attrs": (
        lambda: pd.DataFrame({"a": [1]}),
        _with_attrs,
    ),
    "non-contiguous-array": (
        lambda: np.arange(20)[::3],
        lambda a: np.arange(1, 21)[::3],
    ),
    "fortran-3d-array": (
        lambda: np.asfortranarray(np.arange(24).reshape(2, 3, 4)),
        lambda a: np.asfortranarray(np.arange(24).reshape(2, 4, 3)),
    ),
    "structured-field-names": (
        lambda: np.zeros(2, dtype=[("a", "i4"), ("b", "f4")]),
        lambda a: np.zeros(2, dtype=[("c", "i4"), ("d", "f4")]),
    ),
    "structured-field-types": (
        lambda: np.zeros(2, dtype=[("a", "i4"), ("b", "f4")]),
        lambda a: np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]),
    ),
    "structured-with-object-field": (
        lambda: np.array([(1, "x")], dtype=[("a", "i4"), ("o", "O")]),
        lambda a: np.array([(1, "y")], dtype=[("a", "i4"), ("o", "O")]),
    ),
    "object-array-of-arrays": (
        lambda: np.array([np.arange(3), np.arange(2)], dtype=object),
        lambda a: np.array([np.arange(3), np.arange(1, 3)], dtype=object),
    ),
    "numpy-stringdtype-long": (
        lambda: np.array(["ab" * 20, "cd" * 20], dtype=S),
        lambda a: np.array(["ab" * 20, "dc" * 20], dtype=S),
    ),
    "numpy-stringdtype-short": (
        lambda: np.array(["ab", "cd"], dtype=S),
        lambda a: np.array(["ab", "dc"], dtype=S),
    ),
    "numpy-recarray": (
        lambda: np.rec.array([(1, 2.0)], names="a,b"),
        lambda r: np.rec.array([(1, 3.0)], names="a,b"),
    ),
    "numpy-scalar": (lambda: np.float32(1.5), lambda x: np.float32(2.5)),
    "zero-size-array": (lambda: np.zeros((0, 3)), lambda a: np.zeros((3, 0))),
    "bytearray": (lambda: bytearray(b"abc"), lambda b: bytearray(b"abd")),
    "memoryview": (lambda: memoryview(b"abc"), lambda m: memoryview(b"abd")),
    "array-module": (lambda: array.array("i", [1, 2]), lambda a: array.array("i", [1, 3])),
    "defaultdict-factory": (
        lambda: collections.defaultdict(list, {"a": [1]}),
        lambda d: collections.defaultdict(set, {"a": [1]}),
    ),
    "ordered-dict": (
        lambda: collections.OrderedDict(a=1, b=2),
        lambda d: collections.OrderedDict(b=2, a=1),
    ),
    "deque": (lambda: collections.deque([1, 2]), lambda d: collections.deque([1, 2, 3])),
    "slots-object": (lambda: _Slots(1), lambda s: _Slots(2)),
    "unpicklable-object-with-dict": (lambda: _NoPickle(1), lambda s: _NoPickle(2)),
    "object-holding-a-lock": (lambda: _WithLock(1), lambda s: _WithLock(2)),
    "int-vs-bool-in-list": (lambda: [1, 0] * 40, lambda v: [True, False] * 40),
    "int-vs-float-in-list": (lambda: [1, 0] * 40, lambda v: [1.0, 0.0] * 40),
    "zero-vs-minus-zero-in-list": (lambda: [0.0] * 80, lambda v: [0.0] * 79 + [-0.0]),
    "str-vs-bytes-in-list": (lambda: ["a"] * 80, lambda v: ["a"] * 79 + [b"a"]),
    "bytes-vs-bytearray-in-list": (
        lambda: [b"a"] * 80,
        lambda v: [b"a"] * 79 + [bytearray(b"a")],
    ),
    "big-int-in-list": (lambda: [2**70] * 80, lambda v: [2**70] * 79 + [2**70 + 1]),
    "surrogate-str-in-list": (
        lambda: ["\ud83d\ude00"] * 80,
        lambda v: ["\U0001f600"] * 80,
    ),
    "str-boundaries-in-list": (lambda: ["ab", "c"] * 40, lambda v: ["a", "bc"] * 40),
    "dict-of-str-to-float": (
        lambda: {f"k{i}": float(i) for i in range(100)},
        lambda d: {**d, "k50": 50.5},
    ),
    "set-of-ints": (lambda: set(range(100)), lambda s: set(range(1, 101))),
    "set-int-vs-bool": (lambda: {0, 1, 2}, lambda s: {False, True, 2}),
    "dict-keys-view": (lambda: {"a": 1}.keys(), lambda k: {"b": 1}.keys()),  # noqa: PLW0108
    "dict-items-view": (lambda: {"a": 1}.items(), lambda k: {"a": 2}.items()),  # noqa: PLW0108
    "weakref": (lambda: weakref.ref(_TARGETS[0]), lambda r: weakref.ref(_TARGETS[1])),
    "code-object": (
        lambda: compile("x + 1", "<a>", "eval"),
        lambda c: compile("x + 2", "<a>", "eval"),
    ),
    "closure-cell": (lambda: types.CellType([1]), lambda c: types.CellType([2])),
}


class _Target:
    def __init__(self, v: int) -> None:
        self.v = v


_TARGETS = [_Target(1), _Target(2)]  # alive for the weak references of CASES


class _Slots:
    __slots__ = ("v",)

    def __init__(self, v: int) -> None:
        self.v = v


class _NoPickle:
    def __init__(self, v: int) -> None:
        self.v = v

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("no pickling")


class _WithLock:
    def __init__(self, v: int) -> None:
        self.v = v
        self.lock = threading.Lock()


@pytest.mark.parametrize("case", list(CASES))
def test_every_value_type_is_fingerprinted_by_content(case: str) -> None:
    make, change = CASES[case]
    assert fingerprint(make()) == fingerprint(make())
    assert fingerprint(change(make())) != fingerprint(make())


# -- refusals: a clear note, never a stale hit -------------------------------------------------


def _gen() -> Iterator[int]:
    yield from range(3)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(_gen(), id="generator"),
        pytest.param((i for i in range(3)), id="generator-expression"),
        pytest.param({"batches": _gen()}, id="generator-inside-a-dict"),
    ],
)
def test_a_generator_input_is_refused_with_the_note(value: Any) -> None:
    with pytest.raises(FingerprintError) as info:
        fingerprint_input("batches", value)
    message = str(info.value)
    assert message.startswith("cannot fingerprint batches (type ")
    assert "the cell re-runs every time; --exclude batches if it does not matter" in message
    assert info.value.name == "batches"
    assert "\n" not in message


class _BrokenDict:
    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        raise ValueError("boom")


def test_an_object_that_raises_when_read_is_refused_not_crashed() -> None:
    with pytest.raises(FingerprintError, match=r"cannot fingerprint obj \(type .*_BrokenDict: "):
        fingerprint_input("obj", _BrokenDict())


class _Slow:
    """Every attribute read builds a fresh subtree: a walk of it never ends."""

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_Slow, (), {"children": [_Slow(self.depth + 1) for _ in range(4)]})


def test_a_pathological_object_ends_in_a_note_within_the_budget() -> None:
    with pytest.raises(FingerprintError) as info:
        fingerprint_input("tree", _Slow(), budget=0.2)
    assert "tree" in str(info.value)
    assert "_Slow" in str(info.value)


def test_a_value_nested_deeper_than_the_interpreter_allows_ends_in_a_note() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep, 1]
    with pytest.raises(FingerprintError, match="nested too deeply"):
        fingerprint_input("deep", deep)


def test_fingerprint_without_a_name_raises_the_same_error_type() -> None:
    with pytest.raises(FingerprintError):
        fingerprint(_gen())


# -- shared subgraphs and cycles are walked once -------------------------------------------


class _Node:
    def __init__(self, children: list[Any]) -> None:
        self.children = children


def test_a_deeply_shared_object_graph_is_walked_once() -> None:
    """2**60 paths through 60 nodes: a walk without a memo would never end."""
    node: Any = _Node([])
    for _ in range(60):
        node = _Node([node, node])
    assert fingerprint(node) == fingerprint(node)
    lists: Any = []
    for _ in range(60):
        lists = [lists, lists]
    assert fingerprint(lists) == fingerprint(lists)


def test_cycles_through_objects_dicts_and_lists_have_a_fingerprint() -> None:
    a = _Node([])
    b = _Node([a])
    a.children.append(b)
    d: dict[str, Any] = {"self": None}
    d["self"] = d
    assert fingerprint(a) == fingerprint(a)
    assert fingerprint(d) == fingerprint(d)
    c = _Node([])
    e = _Node([c, 1])
    c.children.append(e)
    assert fingerprint(a) != fingerprint(c)


def test_shared_and_copied_subvalues_have_the_same_fingerprint() -> None:
    part = [1, 2, 3]
    assert fingerprint([part, part]) == fingerprint([part, list(part)])


def test_a_matplotlib_histogram_and_figure_are_fingerprinted_quickly() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        fig = plt.figure()
        counts, edges, patches = plt.hist(np.arange(100) % 7, bins=5)
        for value in (counts, edges, patches, fig, fig.axes[0], list(patches)):
            assert fingerprint(value) == fingerprint(value)
    finally:
        plt.close("all")


# -- arbitrary nested values never crash ------------------------------------------------------


class _Box:
    def __init__(self, value: Any) -> None:
        self.value = value


leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.complex_numbers()
    | st.text(max_size=6)
    | st.binary(max_size=6)
    | st.builds(bytearray, st.binary(max_size=4))
    | st.builds(np.array, st.lists(st.integers(-9, 9), max_size=4))
    | st.builds(lambda xs: pd.Series(xs, dtype=object), st.lists(st.integers(), max_size=3))
    | st.just(threading.Lock())
    | st.just(functools.partial(int, base=2))
)
nested = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        | st.builds(_Box, inner)
        | st.builds(lambda xs: np.array([*xs, None], dtype=object), st.lists(inner, max_size=3))
    ),
    max_leaves=15,
)


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(nested, st.booleans())
def test_arbitrary_nested_values_have_a_stable_fingerprint(value: Any, cyclic: bool) -> None:
    if cyclic:
        holder = [value]
        holder.append(holder)
        value = holder
    first = fingerprint(value)
    gc.collect()
    assert fingerprint(value) == first


# -- functions reached through C wrappers ----------------------------------------------------


def _define(source: str, **globals_: Any) -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "__main__", **globals_}
    exec(textwrap.dedent(source), ns)
    return ns


def test_a_cached_function_redefined_has_a_new_fingerprint() -> None:
    source = "import functools\n@functools.{deco}\ndef f(x):\n    return x + {k}\n"
    for deco in ("cache", "lru_cache(maxsize=8)"):
        one = _define(source.format(deco=deco, k=1))["f"]
        two = _define(source.format(deco=deco, k=2))["f"]
        assert fingerprint(one) == fingerprint(_define(source.format(deco=deco, k=1))["f"])
        assert fingerprint(one) != fingerprint(two), deco


# -- large containers: hashed whole, not item by item ----------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(list(range(200_000)), id="list-of-ints"),
        pytest.param([i * 0.5 for i in range(200_000)], id="list-of-floats"),
        pytest.param({f"k{i}": i * 0.5 for i in range(50_000)}, id="dict-of-str-to-float"),
        pytest.param([(i, str(i), None) for i in range(50_000)], id="list-of-rows"),
        pytest.param(tuple(f"s{i}" for i in range(50_000)), id="tuple-of-str"),
        pytest.param(set(range(50_000)), id="set-of-ints"),
    ],
)
def test_large_containers_of_scalars_are_hashed_in_bulk(
    value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 200 MB/s of issue 15 (measured in benchmarks/): no Python step per item."""
    from nbresume import _fingerprint

    steps = 0
    feed = _fingerprint.Walk.feed

    def counting(self: Any, h: Any, item: Any) -> None:
        nonlocal steps
        steps += 1
        feed(self, h, item)

    monkeypatch.setattr(_fingerprint.Walk, "feed", counting)
    fingerprint(value)
    assert steps == 1


def test_a_bulk_hashed_list_differs_from_the_same_items_in_another_container() -> None:
    items = list(range(100))
    assert len({fingerprint(items), fingerprint(tuple(items)), fingerprint(set(items))}) == 3
    assert fingerprint(items) != fingerprint([*items[:-1], 99.0])
    assert fingerprint([*items, [1]]) != fingerprint([*items, (1,)])


def test_a_widget_input_follows_its_value() -> None:
    """`n = slider.value` in a checkpoint cell: moving the slider must change the key."""
    widgets = pytest.importorskip("ipywidgets")
    slider = widgets.IntSlider(value=3)
    try:
        before = fingerprint_input("slider", slider)
        assert fingerprint_input("slider", slider) == before
        slider.value = 4
        assert fingerprint_input("slider", slider) != before
    finally:
        slider.close()
