"""Arrow arrays as numpy and back without pandas: pyarrow's own ``to_numpy``, ``pa.array``
and ``pa.scalar`` import pandas on first use (0.2 s and 50 MB that ``data add`` needs
nothing of), so the profile's hot paths convert through DLPack and Arrow buffers instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["arrow_values", "numpy_values"]


def numpy_values(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of an Arrow array without missing values, as numpy: a read-only view of
    its buffer for numbers; a copy for booleans and for several chunks. Dates and times are
    their integers (days, or units since the epoch).

    Raises
    ------
    ValueError
        The array has missing values (drop them first), or a type without a numpy one
        (strings).

    Examples
    --------
    >>> import pyarrow as pa
    >>> numpy_values(pa.array([3, 1, 2]).slice(1)).tolist()
    [1, 2]
    >>> numpy_values(pa.chunked_array([[True], [False]])).tolist()
    [True, False]
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    if array.null_count:
        raise ValueError("drop the missing values before converting to numpy")
    kind = array.type
    if pa.types.is_boolean(kind):
        return np.from_dlpack(pc.cast(array, pa.uint8())).view(np.bool_)
    if pa.types.is_temporal(kind):
        width = pa.int32() if kind.bit_width == 32 else pa.int64()
        array = array.view(width)
    return np.from_dlpack(array)


def arrow_values(values: np.ndarray) -> pa.Array:
    """A one-dimensional numpy array of numbers as an Arrow array (no missing values),
    sharing its memory.

    Examples
    --------
    >>> import numpy as np
    >>> arrow_values(np.array([2, 0, 1])).to_pylist()
    [2, 0, 1]
    """
    values = np.ascontiguousarray(values)
    if values.ndim != 1 or values.dtype.kind not in "iuf":
        raise ValueError(f"expected one dimension of numbers, got {values.dtype} {values.shape}")
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])
