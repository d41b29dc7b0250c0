"""What a worker's reply may declare: its arrays checked against what the request can produce, before any is allocated.

A reply header names the arrays that follow; the host allocates what it declares. A broken or hostile board
could declare arrays of any size and number, so every reply is held to a :data:`ReplyCheck`: none for most
requests, the arrays sent for ``echo``, the model's outputs (each once, in its dtype, up to a cap or its static
shape's size) for ``run``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

Meta = Mapping[str, Any]  # one entry of a frame's "arrays": name, dtype, shape, nbytes (already validated)
ReplyCheck = Callable[[Sequence[Meta]], Optional[str]]  # None when the reply may declare these arrays


Bound = Tuple[Optional[str], int]  # (the wire dtype string, None: any; the most bytes)


def _listed(bounds: Mapping[str, Bound]) -> str:
    return (
        ", ".join(f"{name!r} ({dtype or 'any dtype'}, up to {limit} bytes)" for name, (dtype, limit) in bounds.items())
        or "none"
    )


def within(bounds: Mapping[str, Bound], what: str) -> ReplyCheck:
    """A check allowing each of ``bounds`` (name -> (numpy dtype str or None, most bytes)) at most once."""

    def check(arrays: Sequence[Meta]) -> Optional[str]:
        seen = set()
        for meta in arrays:
            name = meta["name"]
            bound = bounds.get(name)
            wrong_dtype = bound is not None and bound[0] is not None and meta["dtype"] != bound[0]
            if bound is None or name in seen or wrong_dtype or meta["nbytes"] > bound[1]:
                return (
                    f"the reply declares array {name!r:.100} ({meta['dtype']}, {meta['nbytes']} bytes), "
                    f"but {what} can only produce: {_listed(bounds)}"
                )
            seen.add(name)
        return None

    return check


NO_ARRAYS: ReplyCheck = within({}, "this request")


def like(arrays: Sequence[Tuple[str, np.ndarray]]) -> ReplyCheck:
    """The arrays of a request that come back as they went (``echo``)."""
    return within({name: (_wire_dtype(a.dtype), a.nbytes) for name, a in arrays}, "the request")


def files_bound(max_files: int, max_bytes: int, what: str) -> ReplyCheck:
    """Up to ``max_files`` files of any name as bytes (``|u1``), each up to ``max_bytes`` (``profile``)."""

    def check(arrays: Sequence[Meta]) -> Optional[str]:
        names = [meta["name"] for meta in arrays]
        if len(arrays) > max_files or len(set(names)) != len(names):
            return f"the reply declares {len(arrays)} arrays, but {what} can only produce {max_files} distinct files"
        for meta in arrays:
            if meta["dtype"] != "|u1" or meta["nbytes"] > max_bytes:
                return (
                    f"the reply declares array {meta['name']!r:.100} ({meta['dtype']}, {meta['nbytes']} bytes), "
                    f"but {what} can only produce files as bytes of up to {max_bytes} bytes each"
                )
        return None

    return check


def outputs_bound(outputs: Sequence[Any], max_bytes: int, model: str) -> ReplyCheck:
    """A model's outputs (``TensorInfo``: name, dtype, shape with ``str`` for a dynamic dimension), each in its
    dtype (any, when numpy does not name it) and up to ``max_bytes`` or its static shape's size if that is more
    (onnxruntime may return another shape than the model declares: a wrong result to report, not a protocol
    error)."""
    bounds: Dict[str, Bound] = {}
    for output in outputs:
        try:
            dtype: Optional[np.dtype] = np.dtype(output.dtype)
        except TypeError:
            dtype = None
        static = dtype is not None and all(isinstance(d, int) and d >= 0 for d in output.shape)
        size = int(np.prod(output.shape)) * dtype.itemsize if static and dtype is not None else 0
        bounds[output.name] = (_wire_dtype(dtype) if dtype is not None else None, max(size, max_bytes))
    return within(bounds, f"{model}'s outputs")


def _wire_dtype(dtype: np.dtype) -> str:
    """The dtype string an array has on the wire (little-endian)."""
    return dtype.newbyteorder("<").str if dtype.byteorder == ">" else dtype.str
