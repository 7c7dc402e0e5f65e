"""Fingerprints of numpy arrays and pandas objects: their buffers, at memory speed, without a copy.

Imported only once numpy is: a kernel that never imports numpy never pays for it. Every array kind
is taken apart explicitly (masked data and mask, a MultiIndex's levels and codes, a categorical's
codes and labels, sparse values and positions, nullable values and mask), and whatever is not
known is hashed item by item as objects: slower, never wrong.
"""

from __future__ import annotations

import pickle
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ._fingerprint import FingerprintError

if TYPE_CHECKING:
    from ._fingerprint import Sink, Walk

__all__ = ["feed_data"]

BLOCK_BYTES = 64 << 20  # a non-contiguous array is copied this much at a time, never whole


def feed_data(walk: Walk, h: Sink, value: Any) -> bool:
    """Hash numpy arrays and scalars, pandas objects; False if ``value`` is none of them."""
    if isinstance(value, np.ndarray):
        feed_ndarray(walk, h, value)
        return True
    if isinstance(value, np.generic):
        return _feed_scalar(h, value)
    if isinstance(value, np.ufunc):
        _feed_ufunc(h, value)
        return True
    pd = sys.modules.get("pandas")
    if pd is None or not isinstance(value, pd.DataFrame | pd.Series | pd.Index | _extension(pd)):
        return False
    if isinstance(value, pd.DataFrame | pd.Series):
        h.update(b"dup" if value.flags.allows_duplicate_labels else b"nodup")
    if isinstance(value, pd.DataFrame):
        walk.feed(h, value.attrs)
        _feed_index(walk, h, value.columns, pd)
        _feed_index(walk, h, value.index, pd)
        for i in range(value.shape[1]):
            _feed_values(walk, h, value.iloc[:, i].array, pd)
    elif isinstance(value, pd.Series):
        walk.feed(h, value.name)
        walk.feed(h, value.attrs)
        _feed_index(walk, h, value.index, pd)
        _feed_values(walk, h, value.array, pd)
    elif isinstance(value, pd.Index):
        _feed_index(walk, h, value, pd)
    else:
        _feed_values(walk, h, value, pd)
    return True


def _extension(pd: Any) -> type:
    return pd.api.extensions.ExtensionArray  # type: ignore[no-any-return]


def _feed_scalar(h: Sink, value: Any) -> bool:
    if value.dtype.hasobject or value.dtype.kind == "T":
        return False  # walked like any object (its reduce)
    h.update(value.dtype.str.encode())
    h.update(value.tobytes())
    return True


def _feed_ufunc(h: Sink, value: Any) -> None:
    """A ufunc by the module and name pickle finds it by (numpy's, scipy.special's, ...)."""
    try:
        h.update(pickle.dumps(value, protocol=5))
    except Exception:  # NB. np.frompyfunc's wraps a Python function nothing can read back
        why = f"{value.__name__!r} comes from np.frompyfunc, whose function cannot be read"
        raise FingerprintError("", "numpy.ufunc", why) from None


def feed_ndarray(walk: Walk, h: Sink, arr: Any) -> None:
    if isinstance(arr, np.ma.MaskedArray):
        # the data under the mask counts too: `.data` and `.filled()` show it
        feed_ndarray(walk, h, np.ma.getdata(arr))
        feed_ndarray(walk, h, np.ma.getmaskarray(arr))
        walk.feed(h, arr.fill_value)
        return
    if type(arr) is not np.ndarray:
        arr = np.asarray(arr)  # np.matrix, memmap, recarray: the same buffer, as a plain array
    dtype = arr.dtype
    # NB. a structured dtype's str is only its size ('|V8'): its fields name and type the bytes
    described = repr(dtype.descr) if dtype.fields else dtype.str
    h.update(f"{described}{arr.shape}".encode())
    if dtype.hasobject or dtype.kind == "T" or dtype.itemsize == 0:
        # NB. StringDType's buffer holds pointers, not text; tolist() gives the items themselves
        items = arr.ravel().tolist()
        walk.keep.append(items)
        walk.sequence(h, items)
        return
    if arr.size == 0:
        return
    start = time.monotonic()
    if arr.flags.c_contiguous:
        h.update(arr.reshape(-1).view(np.uint8).data)
    else:
        # NB. in C order, as the contiguous copy would be: layouts of equal arrays agree
        rows = max(1, BLOCK_BYTES // max(1, arr.nbytes // arr.shape[0]))
        for i in range(0, arr.shape[0], rows):
            block = np.ascontiguousarray(arr[i : i + rows])
            h.update(block.reshape(-1).view(np.uint8).data)
    if walk.deadline is not None:  # reading data is progress: only the walk has a budget
        walk.deadline += time.monotonic() - start


def _feed_index(walk: Walk, h: Sink, index: Any, pd: Any) -> None:
    h.update(type(index).__name__.encode())
    walk.feed(h, list(index.names))
    if isinstance(index, pd.MultiIndex):
        for level, codes in zip(index.levels, index.codes, strict=True):
            _feed_index(walk, h, level, pd)
            feed_ndarray(walk, h, np.asarray(codes))
    elif isinstance(index, pd.RangeIndex):
        h.update(f"range({index.start},{index.stop},{index.step})".encode())
    else:
        if isinstance(index, pd.DatetimeIndex | pd.TimedeltaIndex):
            # NB. a date_range's freq is not in its dtype: plots, asfreq and statsmodels read it
            h.update(f"freq={index.freq}".encode())
        _feed_values(walk, h, index.array, pd)


def _feed_values(walk: Walk, h: Sink, values: Any, pd: Any) -> None:
    """The values of a column or an index, by their kind of array."""
    h.update(f"{type(values).__name__}:{values.dtype}".encode())
    arrays = pd.arrays
    if isinstance(values, np.ndarray):
        feed_ndarray(walk, h, values)
    elif isinstance(values, arrays.NumpyExtensionArray):  # also StringArray (object items)
        feed_ndarray(walk, h, values.to_numpy(copy=False))
    elif isinstance(values, arrays.Categorical):
        h.update(b"ordered" if values.ordered else b"unordered")
        _feed_index(walk, h, values.categories, pd)
        feed_ndarray(walk, h, values.codes)
    elif isinstance(values, arrays.SparseArray):
        walk.feed(h, values.fill_value)
        h.update(b"%d" % len(values))
        feed_ndarray(walk, h, values.sp_values)
        feed_ndarray(walk, h, values.sp_index.indices)
    elif isinstance(values, arrays.IntervalArray):
        h.update(str(values.closed).encode())
        _feed_values(walk, h, values.left.array, pd)
        _feed_values(walk, h, values.right.array, pd)
    elif isinstance(values, arrays.DatetimeArray | arrays.TimedeltaArray | arrays.PeriodArray):
        feed_ndarray(walk, h, values.asi8)  # the dtype (hashed above) holds unit, tz and a period
    elif isinstance(values, arrays.IntegerArray | arrays.FloatingArray | arrays.BooleanArray):
        mask = values.isna()
        feed_ndarray(walk, h, np.asarray(mask))
        # NB. what lies under the mask is not data: zeros there, whatever the array holds
        zero = values.dtype.numpy_dtype.type(0)
        feed_ndarray(walk, h, values.to_numpy(dtype=values.dtype.numpy_dtype, na_value=zero))
    else:  # arrow-backed and third-party arrays: as objects, with the missing values marked
        feed_ndarray(walk, h, np.asarray(values.isna()))
        feed_ndarray(walk, h, np.asarray(values, dtype=object))
