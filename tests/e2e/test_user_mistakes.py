"""Mistakes a new user makes, each tried as a new user would: a typo or a wrong path fails that test (or that
suite item) only, with one line that names it and says what was meant."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.support import models
from tests.support.runs import require_qnn, run

require_qnn()

MARKER_TEST = """
import pytest

@pytest.mark.edge_model("{model}")
@pytest.mark.edge_providers("qnn-htp")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
"""
CHECKS = ("conformance", "no_cpu_fallback", "golden", "latency")  # a suite's items on one provider


def test_a_provider_typo_in_a_marker_fails_that_test_only(pytester, model_dir):
    pytester.makepyfile(f'''
import pytest

pytestmark = pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")

@pytest.mark.edge_providers("qnn-hpt", "cpu")
def test_typo(edge_provider):
    pass

@pytest.mark.edge_providers("qnn-htp")
def test_good(edge_provider):
    assert edge_provider == "qnn-htp"

@pytest.mark.edge_providers("qnn-htp")
@pytest.mark.edge_tolerance(lbs=2, min_snr=3)
def test_two_bad_tolerance_keys(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
''')
    result = run(pytester, "-v")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_typo[[]local-cpu[]] PASSED*",
            "*test_a_provider_typo_in_a_marker_fails_that_test_only.py::test_typo: edge_providers: unknown provider "
            "'qnn-hpt' (did you mean 'qnn-htp'?); use one of cpu, *",
            "*unknown tolerance keys 'lbs' (did you mean 'lsb'?), 'min_snr' (did you mean 'min_snr_db'?) (valid: *",
        ]
    )
    deselected = run(pytester, "-k", "good")
    deselected.assert_outcomes(passed=1, deselected=3)
    assert deselected.ret == 0


def test_arrays_passed_where_a_dict_of_them_belongs_is_one_line(pytester, model_dir):
    """``edge_compare`` and ``edge_session.run`` take and return {tensor name: array}; a bare array or a list
    there was numpy's "truth value of an array is ambiguous" or a TypeError from deep in the plugin; an unknown
    ``edge_compare`` keyword close to its own ``label`` is named as a typo of it."""
    pytester.makepyfile(f'''
import numpy as np
import pytest

pytestmark = [pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}"), pytest.mark.edge_providers("cpu")]

def test_list(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(list(edge_session.run(edge_inputs).values()), edge_reference.run(edge_inputs))

def test_array(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs)["y"])

def test_feed(edge_session):
    edge_session.run([np.zeros((1, 3, 16, 16), np.float32)])

def test_label_typo(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs), lable="cat.png")
''')
    result = run(pytester)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines_random(
        [
            "edge_compare in *test_list[[]local-cpu[]]: actual must be a mapping of tensor name -> array, got list; "
            "e.g. {'y': array}",
            "edge_compare in *test_array[[]local-cpu[]]: expected must be a mapping of tensor name -> array, got "
            "ndarray; e.g. {'y': array}",
            "conv_matmul_qdq.onnx on local/cpu: the feed must be a mapping of tensor name -> array, got list; "
            "e.g. {'x': array}",
            "*unknown tolerance key 'lable' (did you mean 'label'? valid: *; and the call's own baseline, label)",
        ]
    )
    assert "Traceback" not in result.stdout.str() and "ambiguous" not in result.stdout.str()


def test_edge_open_on_a_device_the_inventory_lacks_is_one_line(pytester, model_dir):
    """``edge_open(model, device=...)`` with a typo was a KeyError traceback from the run state."""
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("cpu")
def test_other_device(edge_open):
    edge_open(r"{model_dir / "conv_matmul_qdq.onnx"}", device="lokal")
''')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["unknown edge device 'lokal' (did you mean 'local'?); known devices: local *"])
    assert "KeyError" not in result.stdout.str()


def test_a_model_identical_to_a_prepared_one_is_named_as_the_user_names_it(pytester, model_dir):
    """Sessions are cached by content hash: a marker test whose model file has the bytes of a suite's
    prepared model shares its session, yet every record, title, JUnit property, summary row and golden
    provenance names the user's own model, never ``.edgeort-cache/prepared/<hash>.onnx``."""
    folder = pytester.path / "quant"
    models.quantizing_suite(folder, model_dir / "conv_matmul.onnx", "no_cpu_fallback = true")
    run(pytester, "quant", "--edge-update-golden").assert_outcomes(passed=4)
    provenance = json.loads((folder / "golden" / "qnn-htp.json").read_text())
    # the user's model, relative to the rootdir (goldens are committed and read on other machines)
    assert (provenance["model"], provenance["model_path"]) == ("m.onnx", str(Path("quant", "m.onnx")))

    [prepared] = [
        p for p in (pytester.path / ".edgeort-cache" / "prepared").glob("*.onnx") if b"QuantizeLinear" in p.read_bytes()
    ]
    mine = pytester.path / "model_qdq.onnx"
    shutil.copyfile(prepared, mine)
    pytester.makepyfile(f'''
import pytest

pytestmark = [pytest.mark.edge_model(r"{mine}"), pytest.mark.edge_providers("qnn-htp")]

def test_fully_on_npu(edge_assert_no_fallback):
    edge_assert_no_fallback()

def test_against_arrays(edge_session, edge_inputs, edge_compare):
    actual = edge_session.run(edge_inputs)
    edge_compare(actual, {{name: value + 1.0 for name, value in actual.items()}})
''')
    result = run(pytester, "--edge-report=report.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(["*model_qdq.onnx on local/qnn-htp vs expected outputs: 1 of 1 outputs failed*"])
    records = json.loads((pytester.path / "report.json").read_text())["results"]
    named = {(r["nodeid"].split("::")[-1], r["model"], r["model_path"]) for r in records}
    assert named == {
        ("test_fully_on_npu[local-qnn-htp]", "model_qdq.onnx", str(mine)),
        ("test_against_arrays[local-qnn-htp]", "model_qdq.onnx", str(mine)),
        *((f"{check}[local-qnn-htp]", "quant", str(folder / "m.onnx")) for check in CHECKS),
    }
    properties = [p.get("value") or "" for p in ET.parse(pytester.path / "junit.xml").iter("property")]
    assert properties and not any(".edgeort-cache" in value for value in properties)
    summary = result.stdout.str().split("edgeort summary")[1].split("short test summary")[0]
    assert ".edgeort-cache" not in summary
    assert [line.split()[0] for line in summary.splitlines() if "local" in line and "qnn-htp" in line] == [
        "model_qdq.onnx",
        "quant",
    ]


def test_a_missing_model_says_which_file_was_meant_once(pytester, model_dir):
    """A marker test's missing model errors that test with a did-you-mean among the folder's ``.onnx`` files;
    a suite's is its one ``::suite`` item at collection, like every other suite key."""
    shutil.copyfile(model_dir / "conv_matmul_qdq.onnx", pytester.path / "digits_cnn_qdq.onnx")
    suite = pytester.path / "digits" / "edge_suite.toml"
    suite.parent.mkdir()
    shutil.copyfile(model_dir / "conv_matmul_qdq.onnx", suite.parent / "digits_cnn_qdq.onnx")
    suite.write_text('model = "digit_cnn_qdq.onnx"\nproviders = ["qnn-htp"]\n')
    pytester.makepyfile(MARKER_TEST.format(model="digit_cnn_qdq.onnx"))
    result = run(pytester, "--collect-only", "-q")
    assert "digits/edge_suite.toml::suite" in result.stdout.lines
    result = run(pytester)
    result.assert_outcomes(failed=1, errors=1)
    text = "\n".join(line for line in result.stdout.lines if not line.startswith(("FAILED ", "ERROR ")))
    suite_line = (
        f"{suite}: key 'model': model file not found: {suite.parent / 'digit_cnn_qdq.onnx'} "
        "(did you mean 'digits_cnn_qdq.onnx'?)"
    )
    marker_line = f"model file not found: {pytester.path / 'digit_cnn_qdq.onnx'} (did you mean 'digits_cnn_qdq.onnx'?)"
    assert text.count(suite_line) == 1 and text.count(marker_line) == 1
    assert "During handling" not in text and "Traceback" not in text


def test_a_float_graph_qnn_htp_cannot_finalize_says_what_is_likely(pytester):
    """QNN_COMMON_ERROR_MEM_ALLOC at finalize of a float graph on qnn-htp: the line names the user's model (a
    suite's too, whose session runs its prepared copy in the cache) and says to quantize it or use fp16."""
    models.float_atan(pytester.path / "atan.onnx")
    (pytester.path / "suite").mkdir()
    models.float_atan(pytester.path / "suite" / "atan.onnx")
    (pytester.path / "suite" / "edge_suite.toml").write_text(
        'model = "atan.onnx"\nproviders = ["qnn-htp"]\n[prepare]\nqnn_preprocess = true\n'
        "[checks]\nno_cpu_fallback = false\ngolden = false\n"
    )
    pytester.makepyfile(MARKER_TEST.format(model="atan.onnx"))
    result = run(pytester, "-k", "not latency")
    result.assert_outcomes(failed=1, errors=1)
    hint = (
        "QNN_COMMON_ERROR_MEM_ALLOC*; likely cause: atan.onnx is a float graph and HTP runs quantized ones: "
        'quantize it (u8/u16 QDQ; in a suite [[]prepare[]] quantize = {activations = "uint8", *}), or test it in fp16 '
        "with provider qnn-htp-fp16"
    )
    result.stdout.fnmatch_lines_random(
        [f"atan.onnx on local/qnn-htp: session creation failed: *{hint}", "*suite::conformance*", f"*{hint}*"]
    )
    assert "edgeort-cache" not in result.stdout.str()
