"""Tolerance validation, defaults and resolution."""

import pytest

from pytest_edgeort.compare.tolerance import (
    PRECISIONS,
    SHALLOW_DEPTH,
    TOLERANCE_KEYS,
    Tolerance,
    ToleranceSpec,
    default_tolerance,
    is_classifier_shape,
    parse_tolerance,
)

WHERE = "edge_tolerance in tests/test_x.py::test_a"
VALID = (
    "atol, bias_lsb, gain, lsb, max_mismatch, min_cosine, min_snr_db, outputs, quantile, rtol, stat, "
    "tie_lsb, topk, vs_float"
)


def test_keys():
    assert TOLERANCE_KEYS == {
        "atol",
        "rtol",
        "lsb",
        "stat",
        "quantile",
        "max_mismatch",
        "min_snr_db",
        "min_cosine",
        "topk",
        "tie_lsb",
        "bias_lsb",
        "gain",
        "vs_float",
    }


def resolve_tolerance(default: Tolerance, *layers: dict) -> Tolerance:
    """``default`` under the layers, each parsed into a spec and stacked over the one before."""
    spec = ToleranceSpec()
    for layer in layers:
        spec = spec.over(parse_tolerance(layer, WHERE))
    return spec.for_output("y", default)


def test_parse_splits_global_and_per_output():
    spec = parse_tolerance({"lsb": 2, "min_snr_db": 30, "outputs": {"logits": {"topk": 5, "stat": "mean"}}}, WHERE)
    rules, per = spec.rules, spec.outputs
    assert rules == {"lsb": 2.0, "min_snr_db": 30.0}
    assert per == {"logits": {"topk": 5, "stat": "mean"}}
    assert isinstance(rules["lsb"], float) and isinstance(per["logits"]["topk"], int)


def test_parse_none_clears_optional_rule():
    assert parse_tolerance({"min_snr_db": None}, WHERE) == ToleranceSpec({"min_snr_db": None}, {})


def test_unknown_key_message_is_one_line():
    with pytest.raises(ValueError) as info:
        parse_tolerance({"lbs": 2}, WHERE)
    assert str(info.value) == (f"{WHERE}: unknown tolerance key 'lbs' (did you mean 'lsb'? valid: {VALID})")


def test_unknown_key_without_close_match():
    with pytest.raises(ValueError) as info:
        parse_tolerance({"zzz": 1}, "edge_suite.toml [tolerance]")
    assert str(info.value) == (f"edge_suite.toml [tolerance]: unknown tolerance key 'zzz' (valid: {VALID})")


def test_a_typo_of_the_calls_own_keyword_is_named():
    """``edge_compare(..., lable="x")``: the typo is of edge_compare's ``label``, not of a tolerance key."""
    with pytest.raises(ValueError) as info:
        parse_tolerance({"lable": "x"}, WHERE, keywords=("baseline", "label"))
    assert str(info.value) == (
        f"{WHERE}: unknown tolerance key 'lable' (did you mean 'label'? valid: {VALID}; and the call's own "
        "baseline, label)"
    )


def test_every_bad_key_is_reported_at_once():
    with pytest.raises(ValueError) as info:
        parse_tolerance({"lbs": 2, "min_snr": 3, "zzz": 1, "topk": 0, "lsb": -1}, WHERE)
    assert str(info.value) == (
        f"{WHERE}: unknown tolerance keys 'lbs' (did you mean 'lsb'?), 'min_snr' (did you mean 'min_snr_db'?), "
        f"'zzz' (valid: {VALID}); tolerance key 'topk' must be an integer >= 1 (or false to switch it off), got 0; "
        "tolerance key 'lsb' must be a non-negative number (or false to switch it off), got -1"
    )


def test_unknown_key_in_outputs_names_the_output():
    with pytest.raises(ValueError) as info:
        parse_tolerance({"outputs": {"logits": {"outputs": {}}}}, WHERE)
    assert str(info.value).startswith(
        f"{WHERE} (outputs.logits): unknown tolerance key 'outputs' (valid: atol, bias_lsb,"
    )


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("atol", "abc", "a non-negative number, got 'abc'"),
        ("atol", -1, "a non-negative number, got -1"),
        ("lsb", True, "a non-negative number, got True"),
        ("rtol", float("nan"), "a non-negative number, got nan"),
        ("stat", "avg", "one of elemwise, max, mean, median, quantile, got 'avg'"),
        ("quantile", 1.5, "a number in [0, 1], got 1.5"),
        ("max_mismatch", None, "a number in [0, 1], got None"),
        ("min_cosine", 2, "a number in [-1, 1], got 2"),
        ("topk", 0, "an integer >= 1, got 0"),
        ("topk", 2.5, "an integer >= 1, got 2.5"),
        ("vs_float", "0.1", "a non-negative number, got '0.1'"),
    ],
)
def test_bad_values(key, value, expected):
    with pytest.raises(ValueError) as info:
        parse_tolerance({key: value}, WHERE)
    if key not in ("stat", "quantile", "max_mismatch"):  # rules that can be switched off say how
        text, got = expected.rsplit(", got ", 1)
        expected = f"{text} (or false to switch it off), got {got}"
    assert str(info.value) == f"{WHERE}: tolerance key {key!r} must be {expected}"


def test_false_switches_a_default_rule_off():
    """TOML has no null: ``min_snr_db = false`` removes the default SNR floor."""
    spec = parse_tolerance({"min_snr_db": False, "lsb": 3}, WHERE)
    tol = spec.for_output("y", default_tolerance("u8", accelerator=True))
    assert tol.min_snr_db is None and tol.lsb == 3


def test_outputs_must_be_mapping():
    with pytest.raises(ValueError, match=r"tolerance key 'outputs' must be a mapping"):
        parse_tolerance({"outputs": ["logits"]}, WHERE)
    with pytest.raises(ValueError, match=r"\(outputs.logits\): expected a mapping"):
        parse_tolerance({"outputs": {"logits": 3}}, WHERE)


def test_tolerance_constructor_validates_and_normalizes():
    assert Tolerance(atol=1).atol == 1.0 and isinstance(Tolerance(atol=1).atol, float)
    with pytest.raises(ValueError, match="Tolerance: tolerance key 'stat'"):
        Tolerance(stat="mode")


def test_resolve_later_wins_and_none_clears():
    base = default_tolerance("u8", accelerator=True)
    tol = resolve_tolerance(base, {"lsb": 2, "min_snr_db": 20}, {}, {"lsb": 3}, {"min_snr_db": None})
    assert tol.lsb == 3.0 and tol.min_snr_db is None
    assert base.lsb is None  # defaults are not mutated
    with pytest.raises(ValueError, match="unknown tolerance key 'lbs'"):
        resolve_tolerance(base, {"lbs": 1})


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("accelerator", [True, False])
def test_every_precision_has_rules(precision, accelerator):
    tol = default_tolerance(precision, accelerator)
    assert tol.has_bound or tol.min_snr_db is not None


def test_defaults_follow_measurements():
    deep, shallow = default_tolerance("u8", True), default_tolerance("u8", True, depth=5, shape=(1, 64, 8, 8))
    assert (deep.lsb, deep.bias_lsb, deep.gain, deep.min_snr_db, deep.topk) == (None, 3.0, None, 10.0, None)
    assert (shallow.lsb, shallow.bias_lsb, shallow.gain, shallow.min_snr_db, shallow.topk) == (
        3.0,
        2.0,
        0.03,
        10.0,
        None,
    )
    assert default_tolerance("u8", True, depth=SHALLOW_DEPTH + 1, shape=(1, 10)) == deep
    classifier = default_tolerance("i8", False, depth=5, shape=(1, 10))
    assert (classifier.topk, classifier.tie_lsb, classifier.lsb) == (1, 2.0, 3.0)
    u16 = default_tolerance("u16", True, depth=5, shape=(1, 10))  # the u8 rules, one LSB read as 256 u16 steps
    assert (u16.lsb, u16.bias_lsb, u16.tie_lsb, u16.min_snr_db) == (768.0, 512.0, 512.0, 20.0)
    assert default_tolerance("u16", True).bias_lsb == 768.0
    assert default_tolerance("u8", True, depth=5, scale_known=False) == Tolerance(min_snr_db=10.0)
    fp16 = default_tolerance("fp16", True)
    assert fp16 == default_tolerance("fp32", True)  # real HTP computes float in fp16
    assert fp16.atol == fp16.rtol == 1e-2 and fp16.min_snr_db == 30.0
    cpu = default_tolerance("fp32", False)
    assert (cpu.atol, cpu.rtol, cpu.max_mismatch) == (1e-5, 1e-4, 0.0)
    for exact in ("int", "bool"):
        tol = default_tolerance(exact, True)
        assert tol.atol == 0.0 and tol.rtol is None and tol.max_mismatch == 0.0
    with pytest.raises(ValueError, match="unknown output precision 'fp8'"):
        default_tolerance("fp8", True)


@pytest.mark.parametrize(
    "shape, classifier",
    [
        ((10,), True),
        ((1, 10), True),
        ((1, 1, 2), True),
        ((1,), False),
        ((1, 1), False),
        ((2, 10), False),
        ((1, 1, 96, 320), False),
        (("N", 10), False),
    ],
)
def test_classifier_shape(shape, classifier):
    assert is_classifier_shape(shape) == classifier


def test_describe():
    assert Tolerance(lsb=2, min_snr_db=15).describe() == "lsb=2 min_snr_db=15"
    assert Tolerance(stat="quantile", lsb=1).describe() == "lsb=1 stat=quantile quantile=0.99"
    assert Tolerance().describe() == "(no rules)"


def test_default_lsb_bound_yields_to_a_user_bound():
    shallow = default_tolerance("u8", True, depth=5, shape=(1, 10))
    assert resolve_tolerance(shallow, {"atol": 0}).lsb is None  # atol=0 tightens, not max(atol, 3 LSB)
    assert resolve_tolerance(shallow, {}, {"lsb": 5}).lsb == 5.0
    kept = resolve_tolerance(shallow, {"max_mismatch": 0.1, "min_snr_db": 20})
    assert kept.lsb == 3.0 and kept.bias_lsb == 2.0  # other rules leave the bound alone
    assert resolve_tolerance(default_tolerance("fp16", True), {"rtol": 0.1}).atol == 1e-2  # float defaults unchanged


def test_spec_precedence_is_named_not_list_order():
    """default < rules < outputs[name]; a later layer's rule for every output replaces an earlier per-output one."""
    marker = parse_tolerance({"lsb": 2, "outputs": {"y": {"lsb": 5, "min_snr_db": 3}}}, WHERE)
    base = default_tolerance("u8", accelerator=True)
    assert marker.for_output("y", base).lsb == 5.0 and marker.for_output("z", base).lsb == 2.0
    call = parse_tolerance({"lsb": 1, "outputs": {"z": {"topk": 2}}}, WHERE)
    stacked = marker.over(call)
    assert stacked.for_output("y", base).lsb == 1.0 and stacked.for_output("y", base).min_snr_db == 3.0
    assert stacked.for_output("z", base).topk == 2
    assert marker.over(ToleranceSpec()) is marker


def test_spec_needs_float_baseline_and_names_unknown_outputs():
    assert not parse_tolerance({"lsb": 2}, WHERE).needs_float_baseline
    assert parse_tolerance({"vs_float": 0.004}, WHERE).needs_float_baseline
    assert parse_tolerance({"outputs": {"y": {"vs_float": 0.01}}}, WHERE).needs_float_baseline
    assert not parse_tolerance({"vs_float": None}, WHERE).needs_float_baseline
    with pytest.raises(ValueError) as info:
        parse_tolerance({"outputs": {"logit": {"lsb": 1}}}, WHERE).check_outputs(["logits", "box"], WHERE)
    assert str(info.value) == f"{WHERE}: tolerance for unknown output 'logit'; model outputs: logits, box"
