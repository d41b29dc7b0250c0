"""The comparison's own median is ``np.median``'s bit for bit (signed zeros, infinities, NaN, even and odd counts,
whole arrays and along the last axis) and much cheaper on the few values of a classifier's output."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_edgeort.compare.metrics import median

TRICKY = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, np.inf, -np.inf, np.nan, 1e308, -1e308, 5e-324])
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy warns on overflow and empty arrays, as do we

ARRAYS = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9),
    elements=st.one_of(TRICKY, st.floats(-1e6, 1e6, width=64)),
)


@settings(max_examples=400, deadline=None)
@given(ARRAYS)
def test_the_median_of_a_whole_array_is_numpys(values):
    expected = np.median(values)
    got = median(values)
    assert type(got) is float
    assert np.float64(got).tobytes() == np.float64(expected).tobytes()


@settings(max_examples=400, deadline=None)
@given(ARRAYS)
def test_the_median_along_the_last_axis_is_numpys(values):
    expected = np.median(values, axis=-1)
    got = median(values, axis=-1)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert got.tobytes() == expected.tobytes()


def test_a_median_of_negative_zeros_is_positive_zero_as_numpy_takes_it():
    assert np.float64(median(np.array([-0.0, -0.0]))).tobytes() == np.float64(0.0).tobytes()
    assert np.float64(median(np.array([-0.0]))).tobytes() == np.float64(0.0).tobytes()
