"""Hypothesis strategies that generate valid feeds for a model from its input metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .info import ModelInfo, TensorInfo, model_info
from .inputs import check_input_names, static_shape, value_range


def _elements(
    model: ModelInfo, tensor: TensorInfo, ranges: Optional[Mapping[str, Sequence[float]]]
) -> st.SearchStrategy:
    dtype = np.dtype(tensor.dtype)
    if dtype == np.bool_:
        return st.booleans()
    low, high = value_range(model, tensor, ranges)
    if np.issubdtype(dtype, np.integer):
        return st.integers(int(np.ceil(low)), int(np.ceil(high)) - 1)
    width = 16 if dtype == np.float16 else 32 if dtype == np.float32 else 64
    top = float(np.nextafter(dtype.type(high), dtype.type(low)))
    return st.floats(low, top, width=width, allow_nan=False, allow_infinity=False)


def inputs_for(
    model: Union[str, Path, ModelInfo],
    ranges: Optional[Mapping[str, Sequence[float]]] = None,
    shapes: Optional[Mapping[str, Sequence[int]]] = None,
) -> st.SearchStrategy[Dict[str, np.ndarray]]:
    """Feeds ``{input name: array}`` with the model's dtypes and shapes, values within the input ranges.

    Ranges default to what the input's QuantizeLinear can represent (QDQ models), else [0, 1) for
    floats and [0, 128) for integers; ``ranges={"x": (low, high)}`` overrides per input.
    """
    info = model if isinstance(model, ModelInfo) else model_info(model)
    check_input_names(info, ranges, shapes)
    fields = {
        t.name: hnp.arrays(np.dtype(t.dtype), static_shape(info, t, shapes), elements=_elements(info, t, ranges))
        for t in info.inputs
    }
    return st.fixed_dictionaries(fields)
