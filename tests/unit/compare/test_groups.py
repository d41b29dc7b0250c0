"""Groups that cover the output (issue 19): windows up to every edge, heads of a Concat, flattened grids,
and the pattern each injected fault is named by."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgeort.compare.engine import Yardstick, compare_output
from pytest_edgeort.compare.layout import Head, Layout
from pytest_edgeort.compare.tolerance import Tolerance, default_tolerance
from pytest_edgeort.model.info import model_info
from tests.support.models import concat_heads, with_output_faults
from tests.support.runs import require_qnn

DEEP = default_tolerance("u8", True, depth=40)
#: ddddocr / YOLOX: [1, anchors, C] with the 52x52, 26x26 and 13x13 grids of a 416 x 416 input
ANCHORS = Layout(1, (Head(0, 2704, (52, 52)), Head(2704, 3380, (26, 26)), Head(3380, 3549, (13, 13))), 3)
#: YOLOv8 style: [1, C, anchors] with the 40x40, 20x20 and 10x10 grids of a 320 x 320 input
GRIDS = Layout(2, (Head(0, 1600, (40, 40)), Head(1600, 2000, (20, 20)), Head(2000, 2100, (10, 10))), 3)


def healthy(shape, seed=0, spread=3.0):
    """A reference and a deep-healthy actual: heavy-tailed (Laplace) errors, median 0."""
    rng = np.random.default_rng(seed)
    e = np.rint(rng.uniform(0, 200, shape))
    return e + np.rint(rng.laplace(0, spread, shape)), e


@pytest.mark.parametrize("seed", range(5))
def test_a_box_flush_against_the_far_corner_is_inside_a_window(seed):
    a, e = healthy((1, 1, 96, 320), seed)
    a[0, 0, 77:96, 256:320] += 9  # a 1/5 x 1/5 box in the bottom-right corner
    res = compare_output("map", a, e, DEEP, 1.0)
    assert not res.passed and res.bias["median_lsb"] == 9
    assert res.bias["where"] == "region [76:96, 256:320] of plane (0, 0)"
    assert res.pattern == "region offset" and "off around it: [77:96, 256:320]: median +9 LSB" in res.pattern_text


def test_a_defect_confined_to_the_last_head_fails_with_the_heads_known():
    a, e = healthy((1, 3549, 8), 1, spread=6.0)
    a[0, 3380:, 4:6] -= 53  # objectness / class channels of the 13x13 head: 338 elements (the ddddocr u8 defect)
    assert compare_output("out", a, e, DEEP, 1.0).passed  # no group of the flat output isolates it
    res = compare_output("out", a, e, DEEP, 1.0, layout=ANCHORS)
    assert not res.passed and res.bias["median_lsb"] == -53
    assert res.bias["where"] == "index 4 on axis 2 of head 2 [3380:3549] on axis 1"
    assert res.pattern == "channel offset"
    assert "also index 5: -53 LSB" in res.pattern_text


def test_a_whole_head_offset_is_named_a_head_offset():
    a, e = healthy((1, 3549, 8), 2)
    a[0, 2704:3380] += 12
    res = compare_output("out", a, e, DEEP, 1.0, layout=ANCHORS)
    assert not res.passed and res.pattern == "head offset"
    assert res.pattern_text.startswith("head offset: median error +12 LSB on head 1 [2704:3380] on axis 1 (5408 ")


def test_a_spatial_box_of_one_class_map_is_found_on_its_grid():
    a, e = healthy((1, 16, 2100), 3)
    grid = a[0, 3, :1600].reshape(40, 40)  # a view: the 40x40 map of class 3
    grid[32:40, 32:40] += 12  # 8 x 8 cells in the corner: 8 scattered runs of the flat anchor axis
    assert compare_output("scores", a, e, DEEP, 1.0).passed
    res = compare_output("scores", a, e, DEEP, 1.0, layout=GRIDS)
    assert not res.passed and res.pattern == "region offset"
    assert res.bias["where"] == "region [32:40, 32:40] of plane (0, 3) of its 40x40 grid of head 0 [0:1600] on axis 2"


def test_an_offset_channel_among_many_is_a_channel_offset_not_outliers():
    a, e = healthy((1, 80, 2100), 4, spread=1.0)
    a[0, 7] += 8
    res = compare_output("scores", a, e, Tolerance(bias_lsb=4), 1.0, layout=GRIDS)
    assert not res.passed and res.pattern == "channel offset"
    assert res.pattern_text.startswith("channel offset: median error +8 LSB on index 7 on axis 1 (2100 elements)")


def test_zero_mean_garbage_on_one_channel_is_named_garbage():
    rng = np.random.default_rng(5)
    a, e = healthy((1, 4, 2100), 5, spread=1.0)
    a[0, 2] += rng.choice([-20, 20], 2100)  # bimodal: box width off by +-20 px
    res = compare_output("boxes", a, e, Tolerance(bias_lsb=2, min_snr_db=30), 1.0, layout=GRIDS)
    assert not res.passed and res.pattern == "garbage"
    assert res.pattern_text.startswith("garbage on index 2 on axis 1 (2100 elements): spread both ways, rms 20")


def test_a_region_offset_reports_the_rows_and_columns_that_are_off():
    a, e = healthy((1, 1, 96, 320), 6, spread=1.0)
    a[0, 0, 10:31, 0:100] -= 20
    res = compare_output("map", a, e, Tolerance(bias_lsb=8), 1.0)
    assert res.pattern == "region offset" and "off around it: [10:31, 0:100]: median -20 LSB" in res.pattern_text


def test_a_deep_classifier_gets_top1_with_a_deep_tie_margin():
    deep = default_tolerance("u8", True, depth=40, shape=(1, 4), computed_by="Gemm")
    assert (deep.topk, deep.tie_lsb, deep.lsb) == (1, 32.0, None)
    state = default_tolerance("u8", True, depth=40, shape=(1, 128), computed_by="Mul")  # an LSTM's hN: no scores
    assert state.topk is None and state == DEEP
    assert default_tolerance("u16", True, depth=40, shape=(1, 4), computed_by="Softmax").tie_lsb == 32 * 256
    e = np.array([[200.0, 160.0, 150.0, 140.0]])  # the class-0 decision, 40 LSB ahead
    a = e.copy()
    a[0, 1] += 41  # the runner-up 1 LSB above: the class changes, the SNR floor and bias groups see nothing
    assert compare_output("logits", a, e, DEEP, 1.0).passed
    res = compare_output("logits", a, e, deep, 1.0)
    assert res.failures == [
        "top-1 of actual outside expected top-1 (near ties within 32 LSB count as inside) in 1 of 1 rows "
        "(agreement 0.0%)"
    ]
    near = np.array([[200.0, 180.0, 150.0, 140.0]])  # a 20-LSB margin: within what a healthy deep HTP moves
    flipped = near.copy()
    flipped[0, 1] += 21
    assert compare_output("logits", flipped, near, deep, 1.0).passed


def test_the_snr_floor_follows_what_quantization_costs_on_this_input():
    rng = np.random.default_rng(7)
    e = np.rint(rng.uniform(0, 40, (1, 1, 96, 320)))
    a = e + np.rint(rng.normal(0, 9, e.shape))  # ~8 dB: a healthy NPU on an input that quantizes badly
    rough = e + rng.normal(0, 6, e.shape)  # the reference itself ~11 dB from the float math
    fine = e + rng.normal(0, 0.1, e.shape)  # ... or exact
    assert not compare_output("map", a, e, DEEP, 1.0).passed  # the fixed 10 dB floor: a false alarm
    res = compare_output("map", a, e, DEEP, 1.0, yardstick=Yardstick(rough, "the QDQ model without rounding"))
    assert res.passed and res.yardstick["snr_floor_db"] == pytest.approx(res.yardstick["reference_snr_db"] - 6)
    res = compare_output("map", a, e, DEEP, 1.0, yardstick=Yardstick(fine, "float_model"))
    assert not res.passed and res.yardstick["snr_floor_db"] == 10
    assert res.failures[0].endswith("< min_snr_db 10")
    worse = e + np.rint(rng.normal(0, 40, e.shape))
    res = compare_output("map", worse, e, DEEP, 1.0, yardstick=Yardstick(rough, "the QDQ model without rounding"))
    assert res.failures[0].startswith("SNR ") and (
        "dB (min_snr_db 10 lowered to what quantization itself costs on this input: the reference is "
        in res.failures[0]
    )
    assert res.failures[0].endswith("dB from the QDQ model without rounding, minus 6 dB)")


def test_a_deep_output_of_one_value_has_no_snr_floor():
    assert default_tolerance("u8", True, depth=27, shape=(1, 1)).min_snr_db is None  # silero's speech probability
    assert default_tolerance("u8", True, depth=27, shape=(1, 2)).min_snr_db == 10
    assert default_tolerance("u8", True, depth=5, shape=(1, 2)).min_snr_db == 10  # shallow: measured, kept


def test_a_fault_on_the_last_head_of_a_real_detector_tail_fails_on_the_htp(tmp_path):
    """Concat'ed heads on the QNN HTP simulator, -8 LSB in front of the output's QuantizeLinear on one channel
    of the last (8x8) head only: 64 of 8064 elements, no group of the flat output sees it."""
    require_qnn()
    from tools.measure_suite import session

    base = concat_heads(tmp_path / "heads.onnx", anchors_last=False, grids=(32, 16, 8), channels=6)
    info = model_info(base)
    layout = info.layout("y")
    assert layout is not None and layout.heads[-1] == Head(1280, 1344, (8, 8))
    fault = np.zeros((1, 1344, 6), np.int64)
    fault[0, 1280:, 4] = -8
    faulty = with_output_faults(base, tmp_path / "faulty.onnx", "y", {"head": ("add", fault)})
    x = {"x": np.random.default_rng(8).uniform(0, 1, (1, 6, 32, 32)).astype(np.float32)}
    expected = session(base, False).run(None, x)[0]
    healthy, broken = session(faulty, True).run(["y", "y_head"], x)
    scale = info.scale("y")
    assert compare_output("y", healthy, expected, DEEP, scale, layout=layout).passed  # no false alarm
    assert compare_output("y", broken, expected, DEEP, scale).passed  # the flat output's blind spot
    res = compare_output("y", broken, expected, DEEP, scale, layout=layout)
    assert not res.passed and res.bias["where"] == "index 4 on axis 2 of head 2 [1280:1344] on axis 1"
    assert res.pattern == "channel offset" and res.bias["median_lsb"] == pytest.approx(-8, abs=1)
