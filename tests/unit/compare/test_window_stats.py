"""Region windows of a big map: their statistics counted per line are ``np.median``'s bit for bit, and
comparing a 640 x 640 map costs a few copies of it, not hundreds of MB."""

from __future__ import annotations

import tracemalloc
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_edgeort.compare import patterns
from pytest_edgeort.compare.engine import compare_output
from pytest_edgeort.compare.tolerance import default_tolerance


@st.composite
def windows(draw):
    """Planes of integer errors (in LSB: snapped errors of a quantized output) and windows over them: boxes at
    any strides, bands of whole rows or whole columns."""
    count, rows, cols = draw(st.integers(1, 3)), draw(st.integers(1, 30)), draw(st.integers(1, 30))
    low = draw(st.integers(-300, 300))
    high = low + draw(st.sampled_from([0, 1, 2, 5, 40, 600]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    planes = rng.integers(low, high + 1, size=(count, rows, cols)).astype(np.float64)
    if draw(st.booleans()):  # mostly exact, as a healthy quantized output is (snapping leaves some -0.0)
        planes[rng.random(planes.shape) < 0.8] = draw(st.sampled_from([0.0, -0.0]))
    h = draw(st.sampled_from([rows, draw(st.integers(1, rows))]))
    w = draw(st.sampled_from([cols, draw(st.integers(1, cols))]))
    ys = patterns._starts(rows, h, draw(st.integers(1, rows)))
    xs = patterns._starts(cols, w, draw(st.integers(1, cols)))
    return planes, h, w, ys, xs


def reference(planes, h, w, ys, xs):
    """Every window's median and spread straight from numpy (the engine's arithmetic before it counted)."""
    view = np.lib.stride_tricks.sliding_window_view(planes, (h, w), axis=(1, 2))
    values = view[:, np.asarray(ys)[:, None], np.asarray(xs)[None, :]].reshape(len(planes), len(ys), len(xs), -1)
    medians = np.median(values, axis=-1)
    return medians, 1.4826 * np.median(np.abs(values - medians[..., None]), axis=-1)


def assert_same_bits(found, expected):
    for mine, numpys in zip(found, expected):
        assert mine.shape == numpys.shape and mine.dtype == numpys.dtype
        assert mine.tobytes() == numpys.tobytes()


@settings(max_examples=500, deadline=None)
@given(windows(), st.sampled_from([patterns.COUNT_CHUNK, 7]))
def test_counted_window_statistics_are_np_medians_bit_for_bit(case, chunk):
    """Also when the lines are counted, and the windows judged, a few at a time (``chunk`` entries)."""
    with mock.patch.object(patterns, "COUNT_CHUNK", chunk):
        counted = patterns._counted_stats(*case)
    assert counted is not None
    assert_same_bits(counted, reference(*case))


@settings(max_examples=200, deadline=None)
@given(windows(), st.sampled_from([patterns.COPY_CHUNK_VALUES, 50]), st.booleans())
def test_copied_window_statistics_are_the_same_a_few_windows_at_a_time(case, chunk, fractional):
    planes, h, w, ys, xs = case
    if fractional:  # a float output's errors: never counted
        planes = planes + np.random.default_rng(0).uniform(-0.5, 0.5, planes.shape)
    with mock.patch.object(patterns, "COPY_CHUNK_VALUES", chunk):
        assert_same_bits(patterns._copied_stats(planes, h, w, ys, xs), reference(planes, h, w, ys, xs))


@pytest.mark.parametrize(
    "planes",
    [
        np.array([[[0.5, 1.0], [2.0, 3.0]]]),  # not integers: a float output's errors
        np.array([[[0.0, np.inf], [2.0, 3.0]]]),  # an overflowed error
        np.array([[[0.0, 1.0], [2.0, 3.0]]], dtype=np.float32),
        np.array([[[0.0, 1e9], [2.0, 3.0]]]),  # a range too wide to count
    ],
)
def test_errors_that_cannot_be_counted_are_left_to_the_copied_windows(planes):
    assert patterns._counted_stats(planes, 1, 2, [0, 1], [0]) is None


def compared_deep_u8(a, e):
    """``compare_output`` of a deep u8 output (errors in LSB) and the peak memory numpy traced meanwhile."""
    tracemalloc.start()
    try:
        result = compare_output("out", a, e, default_tolerance("u8", True, depth=40), 1.0)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_640_x_640_map_is_compared_in_a_few_copies_of_it_and_its_region_offset_found():
    """A segmentation-size output: the region windows once copied every column start of the chosen box rows
    (600 MB) and every stride-1 band (100 MB each way), and took seconds."""
    rng = np.random.default_rng(0)
    e = np.rint(rng.uniform(0, 200, (1, 1, 640, 640)))
    a = e + np.rint(rng.laplace(0, 1.0, e.shape))
    a[0, 0, 200:240, :] += 6  # a band of rows offset
    res, peak = compared_deep_u8(a, e)
    assert not res.passed and res.pattern == "region offset"
    assert res.bias["where"].startswith("region [") and res.bias["median_lsb"] == 6
    assert peak < 40 * a.nbytes  # a.nbytes: 3.3 MB


def test_a_detector_output_with_a_wide_error_range_is_compared_in_bounded_memory():
    """[1, 8400, 85] (YOLO at 640 x 640, 8,400 anchors): 7,981 bands of 420 rows once meant 285M copied values
    (2.3 GB); errors spanning ~1,000 LSB are still counted, a strip's lines a few at a time."""
    rng = np.random.default_rng(1)
    e = np.rint(rng.uniform(0, 250, (1, 8400, 85)))
    a = e + np.rint(rng.laplace(0, 40.0, e.shape))
    res, peak = compared_deep_u8(a, e)
    assert res.max_lsb > 500 and res.bias is not None
    assert peak < 40 * a.nbytes  # a.nbytes: 5.7 MB


class CopiedValues:
    """Counts the window values the copied path takes (wraps ``patterns._copied_stats``)."""

    def __init__(self):
        self.total = 0

    def __call__(self, planes, h, w, ys, xs):
        self.total += len(planes) * len(ys) * len(xs) * h * w
        return COPIED(planes, h, w, ys, xs)


COPIED = patterns._copied_stats


def test_a_failing_float_detector_output_is_named_within_the_copy_budget():
    """A float [1, 8400, 85] head (fp16 on the HTP) with a band of anchors off: naming the pattern once copied
    285M window values (7.4 s; a [1, 25200, 85] head 2.6G, ~80 s). The bands are now taken at fewer starts, and
    the offset's real extent is still found row by row."""
    rng = np.random.default_rng(2)
    e = rng.uniform(0, 200, (1, 8400, 85)).astype(np.float32)
    a = (e + rng.laplace(0, 0.05, e.shape)).astype(np.float32)
    a[:, 100:1500, :] += 0.8
    copied = CopiedValues()
    with mock.patch.object(patterns, "_copied_stats", copied):
        res = compare_output("out", a, e, default_tolerance("fp32", True, depth=40), None)
    assert not res.passed and res.pattern == "region offset"
    assert "off around it: [100:1500, 0:85]" in res.pattern_text
    assert copied.total <= 3 * patterns.NAMING_COPY_VALUES  # boxes, row bands, column bands: each within it


def test_the_bias_rule_searches_every_window_and_the_pattern_names_what_it_found():
    """The ``bias_lsb`` verdict never takes fewer windows, however small the naming budget; the failure text
    names the group the rule judged."""
    rng = np.random.default_rng(3)
    e = np.rint(rng.uniform(0, 200, (1, 1, 96, 96)))
    a = e + np.rint(rng.laplace(0, 1.0, e.shape))
    a[0, 0, 30:41, :] += 5
    exact = compare_output("out", a, e, default_tolerance("u8", True, depth=40), 1.0)
    with (
        mock.patch.object(patterns, "NAMING_COPY_VALUES", 100),
        mock.patch.object(patterns, "COUNT_FROM_VALUES", 1 << 40),
    ):
        thin = compare_output("out", a, e, default_tolerance("u8", True, depth=40), 1.0)
    assert not exact.passed and exact.pattern == "region offset"
    assert thin.to_dict() == exact.to_dict()
    assert exact.bias["where"] in exact.pattern_text


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 400), st.integers(1, 400), st.integers(1, 400), st.integers(1, 400), st.integers(1, 10**6), st.data()
)
def test_fewer_window_starts_still_put_every_element_in_a_window(rows, cols, h, w, factor, data):
    h, w = min(h, rows), min(w, cols)
    ys = patterns._starts(rows, h, data.draw(st.integers(1, h)))
    xs = patterns._starts(cols, w, data.draw(st.integers(1, w)))
    few_ys, few_xs = patterns._thinned(ys, xs, h, w, factor)
    for starts, few, size, n in ((ys, few_ys, h, rows), (xs, few_xs, w, cols)):
        assert set(few) <= set(starts) and few[0] == starts[0] and few[-1] == starts[-1]
        assert few == sorted(few) and all(b - a <= size for a, b in zip(few, few[1:]))
        covered = np.zeros(n, bool)
        for start in few:
            covered[start : start + size] = True
        assert covered.all()
    assert len(few_ys) * len(few_xs) <= len(ys) * len(xs)
