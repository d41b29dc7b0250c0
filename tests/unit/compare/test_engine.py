"""Comparison engine and failure message: unit tests and Hypothesis properties."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_edgeort.compare.engine import compare_output, compare_outputs
from pytest_edgeort.compare.render import format_comparison, round_sig
from pytest_edgeort.compare.tolerance import PRECISIONS, Tolerance, default_tolerance

DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.uint8,
    np.int16,
    np.uint16,
    np.int32,
    np.int64,
    np.uint64,
    np.bool_,
]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)


def finite_floats(shape, lo=-1e3, hi=1e3):
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False))


def quantized(rng, shape, scale, lo=-128, hi=127):
    """Dequantized float32 values on the grid of ``scale``, as a QDQ model outputs them."""
    return rng.integers(lo, hi + 1, size=shape).astype(np.float32) * np.float32(scale)


# ----------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=SHAPES, data=st.data(), scale=st.one_of(st.none(), st.floats(1e-4, 1.0)))
def test_identical_arrays_pass_every_default(dtype, shape, data, scale):
    x = data.draw(hnp.arrays(dtype, shape))  # floats include NaN and +-Inf
    for precision in PRECISIONS:
        for accelerator in (True, False):
            for depth, out_shape in ((None, ()), (3, (1, 10))):  # deep, shallow classifier
                tol = default_tolerance(precision, accelerator, depth, out_shape, scale is not None)
                res = compare_output("y", x, x.copy(), tol, scale)
                assert res.passed, (precision, accelerator, depth, res.failures)
                assert res.max_abs == 0.0
    every_rule = Tolerance(atol=0, lsb=0, min_snr_db=1e9, min_cosine=1.0, topk=1)
    res = compare_output("y", x, x.copy(), every_rule, scale)
    assert res.passed or res.failures == [
        "lsb tolerance needs a quantized output; this output has no quantization scale"
    ]


@settings(max_examples=200, deadline=None)
@given(
    e=finite_floats(hnp.array_shapes(max_dims=3, max_side=5)),
    data=st.data(),
    atol=st.floats(0, 10),
    rtol=st.floats(0, 1),
    over=st.floats(1e-6, 10),
)
def test_single_element_over_bound_fails(e, data, atol, rtol, over):
    idx = data.draw(st.integers(0, e.size - 1))
    a = e.copy()
    flat = a.reshape(-1)
    bound = atol + rtol * abs(flat[idx])
    flat[idx] = flat[idx] + bound + over * max(1.0, bound)
    assume(abs(flat[idx] - e.reshape(-1)[idx]) > bound)
    res = compare_output("y", a, e, Tolerance(atol=atol, rtol=rtol))
    assert not res.passed
    assert res.failures == [
        f"1 of {e.size} elements ({1 / e.size:.2%}) outside |err| <= " + res.failures[0].split("|err| <= ")[1]
    ]
    assert res.worst[0].index == tuple(int(i) for i in np.unravel_index(idx, e.shape))
    # the same array within the bound passes
    assert compare_output("y", e.copy(), e, Tolerance(atol=atol, rtol=rtol)).passed


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.floats(0, 8),
    scale=st.floats(1e-4, 2.0),
    stat=st.sampled_from(["elemwise", "max", "mean", "median", "quantile"]),
    mism=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_lsb_equals_atol_times_scale(seed, k, scale, stat, mism):
    rng = np.random.default_rng(seed)
    e = quantized(rng, (3, 7), scale)
    a = e + quantized(rng, (3, 7), scale, -6, 6) + rng.choice([0, scale / 3], size=(3, 7))
    a = a.astype(np.float32)
    via_lsb = compare_output("y", a, e, Tolerance(lsb=k, stat=stat, max_mismatch=mism), scale)
    via_atol = compare_output("y", a, e, Tolerance(atol=k * scale, stat=stat, max_mismatch=mism), scale)
    assert via_lsb.passed == via_atol.passed
    assert via_lsb.frac_within == via_atol.frac_within


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    key=st.sampled_from(["lsb", "atol"]),
    stat=st.sampled_from(["elemwise", "max", "mean", "median", "quantile"]),
    mism=st.sampled_from([0.0, 0.05, 0.3]),
    rtol=st.sampled_from([None, 0.01]),
    quantized_grid=st.booleans(),
)
def test_smallest_passing_bound_is_tight(seed, key, stat, mism, rtol, quantized_grid):
    rng = np.random.default_rng(seed)
    scale = 0.05
    if quantized_grid:
        e = quantized(rng, (4, 9), scale)
        a = e + quantized(rng, (4, 9), scale, -20, 20)
    else:
        e = rng.normal(0, 3, (4, 9)).astype(np.float32)
        a = (e + rng.normal(0, 0.5, (4, 9))).astype(np.float32)
    tol = Tolerance(stat=stat, max_mismatch=mism, rtol=rtol if key == "atol" else None, **{key: 0.0})
    res = compare_output("y", a, e, tol, scale)
    value = res.smallest_passing[key]
    assert compare_output("y", a, e, replace(tol, **{key: value}), scale).passed
    assume(value > 0)
    smaller = value * (1 - 1e-6) - 1e-12
    assert not compare_output("y", a, e, replace(tol, **{key: max(smaller, 0.0)}), scale).passed
    # the rounded value the report prints still passes
    assert compare_output("y", a, e, replace(tol, **{key: round_sig(value, up=True)}), scale).passed


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 6), width=st.integers(2, 12), mism=st.sampled_from([0.0, 0.25])
)
def test_smallest_passing_topk_snr_cosine(seed, rows, width, mism):
    rng = np.random.default_rng(seed)
    e = rng.normal(0, 1, (rows, width))
    a = e + rng.normal(0, 0.7, (rows, width))
    tol = Tolerance(topk=1, min_snr_db=60, min_cosine=1.0, max_mismatch=mism)
    res = compare_output("y", a, e, tol)
    sp = res.smallest_passing
    fed = replace(tol, topk=sp["topk"], min_snr_db=sp["min_snr_db"], min_cosine=sp["min_cosine"])
    assert compare_output("y", a, e, fed).passed
    assert not compare_output("y", a, e, replace(fed, min_snr_db=sp["min_snr_db"] + 1e-6)).passed
    if sp["topk"] > 1:
        assert not compare_output("y", a, e, replace(fed, topk=sp["topk"] - 1)).passed


def _ort_rule(f, cpu, qnn, tolerance):
    """TestQDQModelAccuracy's per-element check, written as in qnn_test_utils.h."""
    rmin, rmax = float(f.min()), float(f.max())
    rmax = max(rmax, rmin + 0.0001)
    rmin, rmax = min(rmin, 0.0), max(rmax, 0.0)
    output_range = rmax - rmin
    cpu_err_norm = np.abs(f - cpu) / output_range
    qnn_err_norm = np.abs(f - qnn) / output_range
    return (qnn_err_norm <= cpu_err_norm) | (np.abs(qnn_err_norm - cpu_err_norm) <= tolerance)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    tol_value=st.sampled_from([0.0, 0.004, 0.02]),
    offset=st.sampled_from([0.0, 10.0, -50.0]),
)
def test_vs_float_matches_ort_rule(seed, tol_value, offset):
    rng = np.random.default_rng(seed)
    f = rng.normal(offset, 2, 30)  # with an offset the range must still include 0, as in ORT
    cpu = f + rng.normal(0, 0.05, 30)
    qnn = f + rng.normal(0, 0.08, 30)
    ort_ok = _ort_rule(f, cpu, qnn, tol_value)
    res = compare_output("y", qnn, cpu, Tolerance(vs_float=tol_value), baseline=f)
    assert res.passed == bool(ort_ok.all())
    assert res.vs_float["frac_ok"] == pytest.approx(ort_ok.mean())


# ----------------------------------------------------------------------------- unit tests


def test_shape_mismatch_message():
    res = compare_output("logits", np.zeros((1, 10), np.float32), np.zeros((1, 1000), np.float32), Tolerance(atol=0.1))
    assert not res.passed
    assert res.failures == ["shape mismatch: actual (1, 10) vs expected (1, 1000)"]
    assert res.max_abs is None and res.snr_db is None


@pytest.mark.parametrize(
    "a_dtype, e_dtype, reason",
    [
        (np.float16, np.float32, "dtype mismatch: actual float16 vs expected float32"),
        (np.int64, np.float32, "dtype mismatch: actual int64 vs expected float32 (integer vs float)"),
        (np.int8, np.uint8, "dtype mismatch: actual int8 vs expected uint8"),
        (np.bool_, np.int8, "dtype mismatch: actual bool vs expected int8 (bool vs integer)"),
    ],
)
def test_dtype_mismatch_fails_even_with_equal_values(a_dtype, e_dtype, reason):
    x = np.array([0, 1, 1, 0])
    res = compare_output("y", x.astype(a_dtype), x.astype(e_dtype), Tolerance(atol=1.0))
    assert res.failures == [reason]
    assert res.max_abs == 0.0  # metrics are still computed for diagnosis


def test_nan_same_positions_ok_and_one_sided_fails():
    e = np.array([1.0, np.nan, np.inf, -np.inf, 2.0], np.float32)
    assert compare_output("y", e.copy(), e, Tolerance(atol=0.0, min_snr_db=100)).passed
    a = e.copy()
    a[0] = np.nan
    a[2] = -np.inf
    res = compare_output("y", a, e, Tolerance(atol=1e6))
    assert not res.passed
    assert res.failures[0] == ("non-finite values differ at 2 positions (actual: 2 NaN, 2 Inf; expected: 1 NaN, 2 Inf)")
    assert (res.nan_actual, res.nan_expected, res.inf_actual, res.inf_expected) == (2, 1, 2, 2)
    assert res.nonfinite_mismatch == 2
    assert res.max_abs == 0.0  # over the elements finite on both sides
    assert {w.index for w in res.worst} == {(0,), (2,)}


def test_nan_fails_even_without_bound_rules():
    res = compare_output("y", np.array([np.nan, 1.0]), np.array([0.0, 1.0]), Tolerance(min_snr_db=None))
    assert not res.passed and res.failures[0].startswith("non-finite values differ at 1 position ")


def test_integer_outputs_compare_in_wide_type():
    res = compare_output("q", np.array([255, 0], np.uint8), np.array([0, 255], np.uint8), Tolerance(lsb=254))
    assert res.max_abs == 255.0 and res.max_lsb == 255.0 and res.scale == 1.0
    assert not res.passed and res.smallest_passing["lsb"] == 255.0
    big = np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min], np.int64)
    res = compare_output("i", big, big[::-1].copy(), Tolerance(atol=0.0))
    assert res.max_abs == pytest.approx(2.0**64) and not res.passed
    exact = compare_output("i", np.array([2**62 + 1], np.int64), np.array([2**62], np.int64), Tolerance(atol=0.0))
    assert exact.max_abs == 1.0 and not exact.passed  # float64 would round this to 0


def test_lsb_without_scale_is_reported_not_raised():
    res = compare_output("y", np.ones(3, np.float32), np.ones(3, np.float32), Tolerance(lsb=2))
    assert res.failures == ["lsb tolerance needs a quantized output; this output has no quantization scale"]


def test_largest_bound_wins():
    e = np.zeros(4, np.float32)
    a = np.array([0, 0.03, 0.05, 0.1], np.float32)
    both = Tolerance(atol=0.06, lsb=1)
    assert compare_output("y", a, e, both, scale=0.01).frac_within == 0.75
    assert compare_output("y", a, e, replace(both, lsb=10), scale=0.01).passed


def test_dequantized_rounding_is_snapped_to_lsb():
    scale = np.float32(0.0078125 * 3)
    e = np.float32(200) * scale
    a = np.float32(202) * scale  # |a - e| / scale is 2 only up to float32 rounding
    res = compare_output("y", np.array([a]), np.array([e]), Tolerance(lsb=2), float(scale))
    assert res.passed and res.max_lsb == 2.0 and res.smallest_passing["lsb"] == 2.0


def test_max_mismatch_fraction():
    e = np.zeros(100)
    a = e.copy()
    a[:3] = 1.0
    assert not compare_output("y", a, e, Tolerance(atol=0.5, max_mismatch=0.02)).passed
    res = compare_output("y", a, e, Tolerance(atol=0.5, max_mismatch=0.03))
    assert res.passed and res.frac_within == 0.97


@pytest.mark.parametrize(
    "stat, value", [("max", 9.0), ("mean", 1.0), ("median", 0.0), ("quantile", 5.4)]
)  # 0.95-quantile: 1+0.55*8
def test_statistic_modes(stat, value):
    e = np.zeros(10)
    a = np.array([0.0] * 8 + [1.0, 9.0])
    tol = Tolerance(atol=value, stat=stat, quantile=0.95)
    res = compare_output("y", a, e, tol)
    assert res.passed, res.failures
    assert res.smallest_passing["atol"] == pytest.approx(value)
    if value > 0:
        res = compare_output("y", a, e, replace(tol, atol=value * 0.99))
        label = "quantile(0.95)" if stat == "quantile" else stat
        assert not res.passed and res.failures[0].startswith(f"{label} |err| ")


def test_rtol_uses_same_statistic_of_expected():
    e = np.array([10.0, 10.0, 10.0, 10.0])
    a = e + np.array([0.0, 0.0, 0.0, 2.0])  # mean |err| 0.5, mean |e| 10
    assert compare_output("y", a, e, Tolerance(rtol=0.05, stat="mean")).passed
    assert not compare_output("y", a, e, Tolerance(rtol=0.049, stat="mean")).passed


def test_snr_and_cosine():
    e = np.array([3.0, 4.0])
    a = np.array([3.0, 4.1])
    res = compare_output("y", a, e, Tolerance(min_snr_db=40))
    assert res.snr_db == pytest.approx(10 * math.log10(25 / 0.01))
    assert res.failures == ["SNR 34.0 dB < min_snr_db 40"]
    assert compare_output("y", e, e, Tolerance(min_snr_db=1e9)).snr_db == math.inf
    res = compare_output("y", -e, e, Tolerance(min_cosine=0.0))
    assert res.cosine == -1.0 and res.failures == ["cosine -1.000000 < min_cosine 0"]


def test_topk_rows_along_last_axis():
    e = np.array(
        [
            [0.1, 0.5, 0.3, 0.2],  # top-1 1, top-2 {1, 2}
            [0.9, 0.0, 0.0, 0.1],
        ]
    )
    a = np.array(
        [
            [0.1, 0.3, 0.5, 0.2],  # top-1 2: in expected top-2, not top-1
            [0.9, 0.0, 0.0, 0.1],
        ]
    )
    res = compare_output("y", a, e, Tolerance(topk=1))
    assert res.topk_agreement == 0.5 and not res.passed
    assert res.failures == ["top-1 of actual outside expected top-1 in 1 of 2 rows (agreement 50.0%)"]
    assert res.smallest_passing["topk"] == 2
    assert compare_output("y", a, e, Tolerance(topk=2)).passed
    assert compare_output("y", a, e, Tolerance(topk=1, max_mismatch=0.5)).passed


def test_topk_ties_in_expected_count_as_inside():
    e = np.array([[1.0, 1.0, 0.0]])
    a = np.array([[0.0, 1.0, 0.0]])
    assert compare_output("y", a, e, Tolerance(topk=1)).passed


def test_vs_float_example_and_missing_baseline():
    f = np.array([0.0, 1.0, 2.0, 4.0])  # range 4
    cpu = np.array([0.0, 1.1, 2.0, 4.0])  # cpu err 0.1 at [1]
    qnn = np.array([0.0, 1.1, 2.2, 4.0])  # extra 0.2 at [2] = 0.05 * range
    tol = Tolerance(vs_float=0.04)
    res = compare_output("y", qnn, cpu, tol, baseline=f)
    assert not res.passed and res.vs_float["output_range"] == 4.0
    assert res.smallest_passing["vs_float"] == pytest.approx(0.05)
    assert compare_output("y", qnn, cpu, replace(tol, vs_float=0.051), baseline=f).passed
    assert compare_output("y", qnn, cpu, replace(tol, stat="mean"), baseline=f).passed
    res = compare_output("y", qnn, cpu, tol)
    assert res.failures == ["vs_float needs the float model's outputs (float_model / reference_model); none were given"]


def test_compare_outputs_missing_extra_and_to_dict():
    e = {"a": np.ones(3, np.float32), "b": np.zeros(2, np.int64)}
    act = {"a": np.ones(3, np.float32), "c": np.zeros(1)}
    tols = {"a": default_tolerance("fp32", False), "b": default_tolerance("int", True)}
    cmp = compare_outputs(act, e, tols)
    assert not cmp.passed and cmp.missing == ["b"] and cmp.extra == ["c"]
    assert [o.name for o in cmp.outputs] == ["a"] and cmp.outputs[0].passed
    d = json.loads(json.dumps(cmp.to_dict(), allow_nan=False))
    assert d["outputs"][0]["snr_db"] == "inf" and d["missing"] == ["b"]
    with pytest.raises(ValueError, match="no tolerance given for output"):
        compare_outputs(act, e, {"a": tols["a"]})


# ------------------------------------------------- defaults against the measured situations


def _deep_model_noise(rng, shape, scale, snr_db):
    """A u8 output and an HTP-like result deviating by many LSB at the given SNR."""
    e = quantized(rng, shape, scale, 0, 255)
    sigma = math.sqrt(float(np.mean(e.astype(np.float64) ** 2)) / 10 ** (snr_db / 10))
    noise = np.round(rng.normal(0, sigma / scale, shape)) * scale
    return (e + noise).astype(np.float32), e


@pytest.mark.parametrize("snr_db", [17.0, 19.0, 24.0, 30.0])
def test_u8_default_passes_healthy_deep_models(snr_db):
    # PP-OCR det u8: ~200 LSB max deviation, 17-19 dB; silero 24 dB; magika 30.6 dB.
    rng = np.random.default_rng(1)
    a, e = _deep_model_noise(rng, (1, 1, 96, 320), 1 / 255, snr_db)
    res = compare_output("map", a, e, default_tolerance("u8", True), scale=1 / 255)
    assert res.passed, res.failures
    if snr_db < 20:
        assert res.max_lsb > 30  # far beyond any sensible LSB bound


def test_u8_default_fails_ddddocr_like_channel_offset():
    # ddddocr det u8: objectness/class channels offset by ~-1.07 (~59 LSB), 10 dB overall.
    rng = np.random.default_rng(2)
    scale = 1.07 / 59
    e = quantized(rng, (1, 8, 52, 52), scale, -30, 30)
    a = e.copy()
    a[0, 4:] -= np.float32(59 * scale)
    res = compare_output("det", a, e, default_tolerance("u8", True), scale=scale)
    assert not res.passed and res.failures[0].startswith("SNR ")
    assert res.snr_db < 12


@pytest.mark.parametrize("precision", ["u8", "u16"])
def test_quantized_default_fails_wrong_weight_channel(precision):
    rng = np.random.default_rng(3)
    scale = 0.02
    e = quantized(rng, (1, 16, 20, 20), scale)
    a = e.copy()
    a[0, 5] = quantized(rng, (20, 20), scale)  # one channel computed with wrong weights
    res = compare_output("feat", a, e, default_tolerance(precision, True), scale=scale)
    assert not res.passed


def test_u16_default_passes_silero_like_a16w8():
    rng = np.random.default_rng(4)
    a, e = _deep_model_noise(rng, (1, 512), 1 / 65535, 22.7)
    assert compare_output("p", a, e, default_tolerance("u16", True), 1 / 65535).passed


def test_fp16_default_accepts_fp16_rounding_and_rejects_real_errors():
    rng = np.random.default_rng(5)
    e = rng.normal(0, 4, (8, 1000)).astype(np.float32)
    a = e.astype(np.float16).astype(np.float32)
    tol = default_tolerance("fp32", accelerator=True)
    assert compare_output("y", a, e, tol).passed
    assert not compare_output("y", a, e, default_tolerance("fp32", accelerator=False)).passed
    wrong = a.copy()
    wrong[2, 17:26] += 1.0  # 9 of 8000 elements: above the 0.1% budget
    res = compare_output("y", wrong, e, tol)
    assert res.failures == ["9 of 8000 elements (0.11%) outside |err| <= 0.01 + 0.01*|expected|, max_mismatch allows 8"]
    wrong = a.copy()
    wrong[2, 17] = 100.0  # a single garbage value is caught by the SNR floor
    assert compare_output("y", wrong, e, tol).failures[0].startswith("SNR ")


# ----------------------------------------------------------------------------- report


def _failing_comparison():
    rng = np.random.default_rng(0)
    scale = 0.01
    e = quantized(rng, (1, 8, 16, 16), scale)
    a = e.copy()
    a[0, 3] += np.float32(59 * scale)
    logits = rng.normal(0, 3, (4, 1000)).astype(np.float32)
    return compare_outputs(
        {"feature_map": a, "logits": logits.copy()},
        {"feature_map": e, "logits": logits},
        {"feature_map": Tolerance(lsb=2, min_snr_db=15), "logits": Tolerance(topk=5, atol=0.0)},
        {"feature_map": scale},
    )


def test_format_comparison_shows_table_worst_histogram_and_smallest():
    text = format_comparison(_failing_comparison(), title="edge_compare [local-qnn-htp]")
    lines = text.splitlines()
    assert lines[0] == "edge_compare [local-qnn-htp]: 1 of 2 outputs failed"
    assert lines[1].split() == [
        "output",
        "shape",
        "verdict",
        "max|err|",
        "mean|err|",
        "max",
        "LSB",
        "within",
        "SNR",
        "dB",
        "cosine",
        "top-k",
    ]
    row = next(line for line in lines if line.startswith("feature_map "))
    cells = row.split()
    assert cells[:4] == ["feature_map", "1x8x16x16", "FAIL", "0.59"] and cells[5] == "59"
    assert float(cells[4]) == pytest.approx(256 * 0.59 / 2048, abs=1e-4)
    assert next(line for line in lines if line.startswith("logits ")).split()[2] == "ok"
    assert "feature_map: FAILED  (rules: lsb=2 min_snr_db=15, LSB = 0.01, dtype float32)" in lines
    assert "  - 256 of 2048 elements (12.50%) outside |err| <= 2 LSB (0.02)" in lines
    assert "  - SNR 11.1 dB (errors within 1 LSB not counted; plain SNR 10.9 dB) < min_snr_db 15" in lines
    assert lines[lines.index(next(x for x in lines if x.startswith("  error pattern:"))) :][:2] == [
        "  error pattern: channel offset: median error +59 LSB on index 3 on axis 1 (256 elements); elsewhere",
        "    median +0 LSB",
    ]
    worst_header = lines.index("  worst elements:")
    assert lines[worst_header + 1].split() == ["index", "actual", "expected", "|err|", "err", "LSB"]
    assert lines[worst_header + 2].split()[-2:] == ["0.59", "59"]
    hist = lines.index("  |err| histogram in LSB:")
    assert lines[hist + 1].split()[0] == "0" and lines[hist + 1].endswith("1792  87.5%")
    assert lines[hist + 8].split()[0] == ">32" and lines[hist + 8].endswith("256  12.5%")
    assert lines[-2:] == [
        "  smallest tolerance that would pass: lsb=59 or max_mismatch=0.125; min_snr_db=11",
        "    (information only: a channel offset is a defect to fix, not noise to tolerate)",
    ]
    assert "logits: " not in text  # passing outputs get no details
    assert max(len(line) for line in lines) <= 100


def test_format_comparison_all_passed_and_missing():
    x = {"y": np.ones(2, np.float32)}
    cmp = compare_outputs(x, x, {"y": default_tolerance("fp32", False)})
    assert format_comparison(cmp).splitlines()[0] == "all 1 output passed"
    cmp = compare_outputs({}, x, {"y": default_tolerance("fp32", False)})
    assert format_comparison(cmp).splitlines()[:2] == [
        "1 of 1 outputs failed",
        "missing outputs (expected but not produced): y",
    ]


# ------------------------------------------------------------- rules of the new defaults


def test_snr_counts_errors_beyond_one_lsb_and_floors_the_signal():
    scale = 0.1
    e = np.zeros(1000, np.float32)
    a = e.copy()
    a[:3] = np.float32(scale)  # a near-zero reference, three 1-LSB differences
    res = compare_output("y", a, e, Tolerance(min_snr_db=10), scale)
    assert res.snr_db == -math.inf and res.snr_q_db == math.inf and res.passed
    a[:3] = np.float32(3 * scale)  # 2 LSB beyond the step each, signal floored at 1000 LSB^2
    res = compare_output("y", a, e, Tolerance(min_snr_db=10), scale)
    assert res.snr_q_db == pytest.approx(10 * math.log10(1000 / (3 * 4)), abs=1e-6)
    assert res.failures == [] and res.smallest_passing["min_snr_db"] == res.snr_q_db


def test_tie_lsb_lets_near_ties_swap_and_nothing_else():
    scale = 1.0
    e = np.array([[10.0, 8.0, 0.0], [10.0, 7.0, 0.0]])
    a = np.array([[8.0, 9.0, 0.0], [8.0, 9.0, 0.0]])  # both rows swap top-1
    res = compare_output("y", a, e, Tolerance(topk=1, tie_lsb=2), scale)
    assert res.topk_agreement == 0.5  # margin 2 LSB: a near tie; margin 3 LSB: a real change
    assert res.failures == [
        "top-1 of actual outside expected top-1 (near ties within 2 LSB count as inside) "
        "in 1 of 2 rows (agreement 50.0%)"
    ]


@pytest.mark.parametrize(
    "where, region, expected",
    [
        ("whole", (slice(None),) * 4, "the whole output"),
        ("channel", (0, 2), "index 2 on axis 1"),
        ("box", (0, 1, slice(8, 20), slice(16, 40)), "region [8:"),
        ("band", (0, 3, slice(30, 32), slice(None)), "region [30:32, 0:64]"),
    ],
)
def test_bias_lsb_finds_an_offset_group(where, region, expected):
    rng = np.random.default_rng(11)
    e = quantized(rng, (1, 4, 40, 64), 1.0, 0, 200).astype(np.float64)
    a = e + rng.integers(-1, 2, e.shape)
    a[region] += 9
    res = compare_output("y", a, e, Tolerance(bias_lsb=4), 1.0)
    assert res.bias["where"].startswith(expected) and res.bias["median_lsb"] == pytest.approx(9, abs=1)
    assert res.failures[0].startswith("systematic offset: median error +")
    assert res.pattern in ("constant offset", "channel offset", "region offset")


def test_bias_lsb_ignores_thin_slices_and_allows_for_noise():
    rng = np.random.default_rng(12)
    e = np.full((1, 1, 96, 320), 100.0)
    a = e.copy()
    a[0, 0, 43] -= 61  # one row (1 % of the map) off: a healthy PP-OCR det text row
    assert compare_output("y", a, e, Tolerance(bias_lsb=8), 1.0).passed
    noisy = e + np.rint(rng.normal(0, 40, e.shape))  # the allowance grows with noise, shrinks with size
    res = compare_output("y", noisy + 9, e, Tolerance(bias_lsb=8), 1.0)
    assert 0 < res.bias["noise_allowance_lsb"] < 9 and not res.passed
    assert compare_output("y", np.array([[5.0]]), np.array([[0.0]]), Tolerance(bias_lsb=2), 1.0).passed  # 1 value
    assert compare_output("y", a, e, Tolerance(bias_lsb=2)).failures == [
        "bias_lsb tolerance needs a quantized output; this output has no quantization scale"
    ]


def test_gain_rule_counts_only_a_gain_that_explains_the_error():
    e = np.linspace(-60, 60, 40).reshape(1, 40)
    tol = Tolerance(gain=0.03, bias_lsb=2)
    res = compare_output("y", np.rint(e * 1.05), e, tol, 1.0)  # 5 %: 3 LSB at the peak
    assert res.failures[0].startswith("gain +5.") and res.pattern == "gain"
    outlier = e.copy()
    outlier[0, -1] += 6  # one element off: correlates with e, but no gain explains it
    res = compare_output("y", outlier, e, tol, 1.0)
    assert res.passed and res.smallest_passing["gain"] == 0.0
    tiny = np.linspace(-20, 20, 40).reshape(1, 40)  # 5 % of 20 LSB is rounding, not a visible gain
    assert compare_output("y", np.rint(tiny * 1.05), tiny, tol, 1.0).passed
