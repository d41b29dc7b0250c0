"""The default tolerances against faults of known size (issue 11): what they catch, what they let pass.

Shallow u8/u16 classifier: the digits CNN of example_suites/digits_cnn with faults injected in front of a
final QuantizeLinear (exact LSB offsets, ``tests.models.with_output_faults``), run on the QNN HTP
simulator and compared per example with the healthy model on the CPU EP, over 40 inputs (16 real
digits, 24 generated). Deep outputs, near-zero references, u16 and float: numpy models of the measured
error structure (benchmarks/sensitivity.py measures the real PP-OCR det).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

from pytest_edgeort.compare.engine import OutputComparison, compare_output
from pytest_edgeort.compare.render import format_details
from pytest_edgeort.compare.tolerance import default_tolerance
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs, load_npz, split_examples
from tests.support.models import with_output_faults
from tests.support.runs import require_qnn

ROOT = Path(__file__).resolve().parents[3]
DIGITS = {
    "u8": ROOT / "example_suites/digits_cnn/digits_cnn_qdq.onnx",
    "u16": ROOT / "example_suites/digits_cnn_a16w8/digits_cnn_a16w8.onnx",
}
STEP = {"u8": 1, "u16": 256}  # output LSB per u8 step of the same range
SHALLOW_FAULTS = {  # name: (fault in u8 steps, expected pattern)
    "shift3": (("add", 3), "constant offset"),
    "shift-3": (("add", -3), "constant offset"),
    "gain5": (("mul", 1.05), "gain"),
    "gain-5": (("mul", 0.95), "gain"),
    **{
        f"one{sign}{k}_{j}": (("add", np.eye(10, dtype=np.int64)[j][None] * int(f"{sign}{k}")), "outliers")
        for sign in "+-"
        for k in (3, 4, 6)
        for j in range(10)
    },
}


def _scaled(fault: Tuple[str, object], step: int) -> Tuple[str, object]:
    kind, value = fault
    return (kind, np.asarray(value) * step) if kind == "add" else fault


@pytest.fixture(scope="module", params=["u8", "u16"])
def digits_runs(request, tmp_path_factory) -> Tuple[str, List[Tuple[Dict[str, np.ndarray], np.ndarray]], float]:
    """Per input: {fault name or "healthy": HTP output} and the CPU output of the healthy model."""
    require_qnn()
    from tools.measure_suite import session

    width = request.param
    base = DIGITS[width]
    faults = {name: _scaled(fault, STEP[width]) for name, (fault, _) in SHALLOW_FAULTS.items()}
    faulty = with_output_faults(base, tmp_path_factory.mktemp("faults") / "digits_faults.onnx", "logits", faults)
    info = model_info(base)
    feeds = split_examples(info, load_npz(base.parent / "inputs.npz"), "inputs.npz")
    feeds += [generate_inputs(info, 20240607, i) for i in range(40 - len(feeds))]
    cpu, htp = session(base, False), session(faulty, True)
    names = [o.name for o in htp.get_outputs()]
    runs = []
    for feed in feeds:
        outs = dict(zip(names, htp.run(None, feed)))
        variants = {"healthy": outs["logits"], **{k: outs[f"logits_{k}"] for k in faults}}
        runs.append((variants, cpu.run(["logits"], feed)[0]))
    return width, runs, info.scale("logits")


def _default(width: str) -> object:
    info = model_info(DIGITS[width])
    return default_tolerance(width, True, info.depth("logits"), info.shape("logits"))


def _results(digits_runs, name: str) -> List[Tuple[OutputComparison, np.ndarray, np.ndarray]]:
    """Comparisons of fault ``name`` on the inputs where it is visible (its output differs from healthy)."""
    width, runs, scale = digits_runs
    tol = _default(width)
    return [
        (compare_output("logits", v[name], e, tol, scale), v[name], e)
        for v, e in runs
        if name == "healthy" or not np.array_equal(v[name], v["healthy"])
    ]


def test_digits_is_a_shallow_classifier_output():
    for width, path in DIGITS.items():
        info = model_info(path)
        assert info.depth("logits") == 5 and info.shape("logits") == (1, 10)
        tol = _default(width)
        assert tol.lsb == 3 * STEP[width] and tol.topk == 1 and tol.bias_lsb == 2 * STEP[width]


def test_no_false_alarm_on_40_healthy_inputs(digits_runs):
    results = _results(digits_runs, "healthy")
    assert len(results) == 40
    assert [r.failures for r, _, _ in results if not r.passed] == []


@pytest.mark.parametrize("name", ["shift3", "shift-3", "gain5", "gain-5"])
def test_uniform_shift_of_3_lsb_and_5_percent_gain_are_caught(digits_runs, name):
    results = _results(digits_runs, name)
    assert len(results) >= 38  # visible on (almost) every input
    caught = [r for r, _, _ in results if not r.passed]
    assert len(caught) >= 0.95 * len(results)
    expected = SHALLOW_FAULTS[name][1]
    assert sum(r.pattern == expected for r in caught) >= 0.9 * len(caught), [r.pattern_text for r in caught[:3]]


def test_single_element_off_by_4_lsb_is_caught(digits_runs):
    width, _, scale = digits_runs
    step = STEP[width] * scale
    off_by_4 = [
        (r, a, e)
        for sign in "+-"
        for k in (3, 4, 6)
        for j in range(10)
        for r, a, e in _results(digits_runs, f"one{sign}{k}_{j}")
        if np.abs(a.astype(np.float64) - e).max() >= 3.5 * step
    ]  # >= 4 LSB against the CPU
    assert len(off_by_4) > 600
    assert [r.max_lsb for r, _, _ in off_by_4 if r.passed] == []
    assert sum(r.pattern == "outliers" for r, _, _ in off_by_4) >= 0.9 * len(off_by_4)


def test_top1_change_beyond_a_near_tie_is_caught(digits_runs):
    width, _, scale = digits_runs
    tie = 2 * STEP[width] * scale
    changed = []
    for name in SHALLOW_FAULTS:
        for r, a, e in _results(digits_runs, name):
            top2 = np.sort(e.reshape(-1))[-2:]
            if np.argmax(a) != np.argmax(e) and top2[1] - top2[0] > tie * 1.001:
                changed.append(r)
    assert changed, "no fault changed a clear top-1"
    assert [r.passed for r in changed] == [False] * len(changed)


# ------------------------------------------------------------------- deep outputs (numpy models)


def _deep_map(rng: np.random.Generator, shape=(1, 1, 96, 320)) -> Tuple[np.ndarray, np.ndarray]:
    """PP-OCR-det-like healthy error in LSB: exact background, text lines with heavy-tailed errors of tens
    to ~150 LSB, and one text row systematically 61 LSB low (all measured on the real model)."""
    e = np.zeros(shape)
    d = np.zeros(shape)
    for top in (10, 40, 70):
        e[..., top : top + 12, 20:300] = rng.integers(150, 256, size=(12, 280))
        d[..., top : top + 12, 20:300] = np.rint(rng.standard_t(2, size=(12, 280)) * 12).clip(-157, 157)
    d[..., 43, 20:300] = -61
    return e, d


def _lsb_ratio(res: OutputComparison) -> float:
    return res.smallest_passing["bias_lsb"] / res.tolerance.bias_lsb


def test_deep_healthy_bursty_error_passes():
    e, d = _deep_map(np.random.default_rng(0))
    res = compare_output("map", e + d, e, default_tolerance("u8", True, depth=122, shape=(1, 1, 96, 320)), 1.0)
    assert res.passed, res.failures
    assert res.max_lsb >= 100  # far beyond any LSB bound


@pytest.mark.parametrize("where", ["channel", "box", "band"])
def test_deep_offset_of_20_lsb_on_a_channel_or_5_percent_region_fails_with_margin(where):
    e, d = _deep_map(np.random.default_rng(1), shape=(1, 4, 96, 320))
    fault = np.zeros_like(d)
    if where == "channel":
        fault[0, 2] = 20
    elif where == "box":
        fault[0, 1, 30:53, 60:134] = 20  # 23 % x 23 % = 5.3 % of the plane, over a text line
    else:
        fault[0, 3, 50:55, :] = 20  # 5 of 96 rows
    res = compare_output(
        "map", np.clip(e + d + fault, 0, 255), e, default_tolerance("u8", True, depth=122, shape=(1, 4, 96, 320)), 1.0
    )
    assert not res.passed
    assert any(f.startswith("systematic offset: median error +") for f in res.failures)
    assert _lsb_ratio(res) >= 1.5
    assert res.pattern == ("channel offset" if where == "channel" else "region offset"), res.pattern_text


def test_ddddocr_like_offset_on_two_of_six_head_channels():
    # the real defect of MEASUREMENTS.md: objectness/class columns of a [1, anchors, 6] head 59 LSB off
    rng = np.random.default_rng(2)
    e = rng.integers(-30, 30, size=(1, 10647, 6)).astype(np.float64)
    a = e + rng.integers(-1, 2, size=e.shape)
    a[..., 4:] -= 59
    res = compare_output("det", a, e, default_tolerance("u8", True, depth=60, shape=(1, 10647, 6)), 1.0)
    assert not res.passed and _lsb_ratio(res) > 5
    assert res.pattern == "channel offset"
    assert res.pattern_text == (
        "channel offset: median error -59 LSB on index 4 on axis 2 (10647 elements); "
        "also index 5: -59 LSB; elsewhere median +0 LSB"
    )


def test_near_zero_reference_is_no_false_alarm():
    # PP-OCR det on generated inputs: the map is all 0 on CPU, the HTP has a few 1-LSB elements
    scale = 1 / 255
    e = np.zeros((1, 1, 96, 320), np.float32)
    a = e.copy()
    a[0, 0, [3, 50, 77], [9, 100, 300]] = np.float32(scale)
    old = compare_output("map", a, e, default_tolerance("u8", True))  # no scale: the plain SNR of the old rule
    assert old.snr_db == -np.inf
    res = compare_output("map", a, e, default_tolerance("u8", True, depth=122), scale)
    assert res.passed and res.snr_q_db == np.inf, res.failures
    # the noise floor does not blind it: 30 LSB over 5 % of the map still fails
    a[0, 0, 30:35, :] = np.float32(30 * scale)
    assert not compare_output("map", a, e, default_tolerance("u8", True, depth=122), scale).passed


def test_float_accelerator_near_zero_output_and_real_error():
    rng = np.random.default_rng(3)
    e = (rng.normal(0, 1e-4, (4, 256))).astype(np.float32)  # a near-zero fp32 output
    a = e.astype(np.float16).astype(np.float32) + np.float32(2e-4)
    tol = default_tolerance("fp32", accelerator=True)
    res = compare_output("y", a, e, tol)
    assert res.passed and res.snr_db < 0 < res.snr_q_db, res.failures  # plain SNR alone would fail it
    wrong = e.copy()
    wrong[1, :40] += 0.5
    assert not compare_output("y", wrong, e, tol).passed


# ------------------------------------------------------------------------------------- messages


def test_message_names_the_pattern_and_does_not_offer_the_fix_for_a_systematic_error():
    e, d = _deep_map(np.random.default_rng(4), shape=(1, 4, 96, 320))
    d[0, 2] += 20
    res = compare_output("map", e + d, e, default_tolerance("u8", True, depth=122), 1.0)
    text = format_details(res)
    assert "  error pattern: channel offset: median error +20 LSB on index 2 on axis 1" in text
    assert "(information only: a channel offset is a defect to fix, not noise to tolerate)" in text
    noise_e = np.random.default_rng(5).integers(0, 255, (1, 4096)).astype(np.float64)
    noisy = compare_output(
        "y", noise_e + np.random.default_rng(6).normal(0, 80, (1, 4096)), noise_e, default_tolerance("u8", True), 1.0
    )
    assert noisy.pattern == "noise" and "information only" not in format_details(noisy)
    assert "  smallest tolerance that would pass: min_snr_db=" in format_details(noisy)


def test_u16_rules_are_the_u8_rules_in_256_step_units():
    rng = np.random.default_rng(7)
    e = rng.integers(0, 65535, (1, 10)).astype(np.float64)
    healthy = e + rng.integers(-228, 229, e.shape)  # measured a16w8 HTP vs CPU: up to 228 u16 LSB
    tol = default_tolerance("u16", True, depth=5, shape=(1, 10))
    assert compare_output("y", healthy, e, tol, 1.0).passed
    assert compare_output("y", healthy + 3 * 256, e, tol, 1.0).pattern == "constant offset"
