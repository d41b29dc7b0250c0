"""Regression suites (``edge_suite.toml``) as a user meets them: pytester runs against the QNN HTP simulator.

Every suite folder is built inside the pytester directory (models copied in, so paths stay inside the
suite folder). Runs are kept few: checks a test does not look at are switched off in its manifest.
"""

from __future__ import annotations

import json
import shlex
import shutil
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from tests.support.runs import require_qnn, run

require_qnn()

QDQ = "conv_matmul_qdq.onnx"
# [checks] that leave only conformance and latency (the two checks every suite has)
CORE_ONLY = "[checks]\nno_cpu_fallback = false\ngolden = false\n"
VALID_TOP_KEYS = (
    "model, float_model, providers, reference, inputs, golden_dir, prepare, tolerance, checks, provider_options, xfail"
)
VALID_CHECK_KEYS = (
    "no_cpu_fallback, golden, latency_p50_ms, latency_p90_ms, latency_runs, latency_max_s, latency_min_runs, "
    "fuzz_examples"
)


def make_suite(
    pytester: pytest.Pytester,
    folder: str,
    manifest: str,
    model_dir: Optional[Path] = None,
    model: Optional[str] = QDQ,
    name: str = "m.onnx",
) -> Path:
    """``<pytester>/<folder>/edge_suite.toml`` with ``model`` copied in as ``name``; returns the manifest path."""
    directory = pytester.path / folder
    directory.mkdir(parents=True, exist_ok=True)
    if model_dir is not None and model is not None:
        shutil.copyfile(model_dir / model, directory / name)
    path = directory / "edge_suite.toml"
    path.write_text(textwrap.dedent(manifest).lstrip())
    return path


def out(result: pytest.RunResult) -> str:
    """The run's output without the short test summary (which repeats messages, more or less
    truncated depending on the pytest version), so counts measure the reports themselves."""
    return "\n".join(line for line in result.stdout.lines if not line.startswith(("FAILED ", "ERROR ", "SKIPPED ")))


# ------------------------------------------------------------------------------------- collection


def test_collection_ids_per_check(pytester, model_dir):
    make_suite(pytester, "mysuite", 'model = "m.onnx"\nproviders = ["qnn-htp"]\n', model_dir)
    make_suite(
        pytester, "fuzzsuite", 'model = "m.onnx"\nproviders = ["qnn-htp"]\n[checks]\nfuzz_examples = 3\n', model_dir
    )
    result = run(pytester, "--collect-only", "-q")
    lines = [line for line in result.stdout.lines if "::" in line]
    assert lines == [
        "fuzzsuite/edge_suite.toml::conformance[local-qnn-htp]",
        "fuzzsuite/edge_suite.toml::no_cpu_fallback[local-qnn-htp]",
        "fuzzsuite/edge_suite.toml::golden[local-qnn-htp]",
        "fuzzsuite/edge_suite.toml::latency[local-qnn-htp]",
        "fuzzsuite/edge_suite.toml::fuzz[local-qnn-htp]",
        "mysuite/edge_suite.toml::conformance[local-qnn-htp]",
        "mysuite/edge_suite.toml::no_cpu_fallback[local-qnn-htp]",
        "mysuite/edge_suite.toml::golden[local-qnn-htp]",
        "mysuite/edge_suite.toml::latency[local-qnn-htp]",
    ]
    assert result.ret == pytest.ExitCode.OK


def test_provider_filter_keeps_cpu_items_and_no_fallback_check_for_cpu(pytester, model_dir):
    make_suite(pytester, "mysuite", 'model = "m.onnx"\nproviders = ["qnn-htp", "cpu"]\n', model_dir)
    result = run(pytester, "--collect-only", "-q", "--edge-provider=cpu")
    assert [line for line in result.stdout.lines if "::" in line] == [
        "mysuite/edge_suite.toml::conformance[local-cpu]",
        "mysuite/edge_suite.toml::golden[local-cpu]",
        "mysuite/edge_suite.toml::latency[local-cpu]",
    ]
    result.stdout.fnmatch_lines(["edgeort: devices local; seed *; providers cpu"])


# ------------------------------------------------------------------------------------- validation


def test_malformed_manifests_are_failing_items_naming_file_key_and_expectation(pytester, model_dir):
    cases = {
        "bad_toml": ('model = "m.onnx\n', "invalid TOML: "),
        "unknown_top": (
            'model = "m.onnx"\nprovider = ["qnn-htp"]\n',
            f"unknown key 'provider' (did you mean 'providers'?); valid keys: {VALID_TOP_KEYS}",
        ),
        "wrong_type": (
            'model = "m.onnx"\nproviders = "qnn-htp"\n',
            "key 'providers': expected a list of provider names, got 'qnn-htp'",
        ),
        "unknown_check": (
            'model = "m.onnx"\n[checks]\nfuzz_example = 3\n',
            f"unknown key 'checks.fuzz_example' (did you mean 'fuzz_examples'?); valid keys: {VALID_CHECK_KEYS}",
        ),
        "unknown_tol": (
            'model = "m.onnx"\n[tolerance]\nlsbs = 3\n',
            "[tolerance]: unknown tolerance key 'lsbs' (did you mean 'lsb'? valid: atol, bias_lsb, gain, "
            "lsb, max_mismatch, min_cosine, min_snr_db, outputs, quantile, rtol, stat, tie_lsb, topk, "
            "vs_float)",
        ),
        "no_model": (
            'providers = ["qnn-htp"]\n',
            "missing key 'model' (a .onnx path in the suite folder or pkg:<package>/<path>)",
        ),
        "bad_provider": (
            'model = "m.onnx"\nproviders = ["qnn-htpp"]\n',
            "key 'providers': unknown provider 'qnn-htpp' (did you mean 'qnn-htp'?); use one of cpu, "
            "qnn-htp, qnn-htp-fp16, qnn-gpu,",
        ),
    }
    for folder, (manifest, _) in cases.items():
        make_suite(pytester, folder, manifest, model_dir)
    (pytester.path / "not_utf8").mkdir()
    (pytester.path / "not_utf8" / "edge_suite.toml").write_bytes(b'model = "m\xff.onnx"\n')
    # one bad suite blocks nothing: the good suite and a plain test still run
    make_suite(
        pytester, "good", 'model = "m.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY + "latency_runs = 1\n", model_dir
    )
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(failed=len(cases) + 1, passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = out(result)
    for folder, (_, message) in cases.items():
        path = pytester.path / folder / "edge_suite.toml"
        assert f"FAILED {folder}/edge_suite.toml::suite - " in result.stdout.str()
        assert f"{path}: {message}" in text, f"{folder}: {message!r} not in output"
    not_utf8 = pytester.path / "not_utf8" / "edge_suite.toml"
    assert f"{not_utf8}: not UTF-8 text (byte 10: b'\\xff'); expected a TOML file" in text
    assert "ERROR collecting" not in text and "Interrupted" not in text
    assert "Traceback" not in text
    # tomllib names the position of the problem
    result.stdout.fnmatch_lines([f"{pytester.path / 'bad_toml' / 'edge_suite.toml'}: invalid TOML: *(at line 1, *)"])


def test_bad_suite_is_still_selected_by_a_check_name(pytester, model_dir):
    bad = make_suite(pytester, "bad", 'model = "m.onnx"\nprovider = ["qnn-htp"]\n', model_dir)
    result = run(pytester, "-k", "conformance", "--collect-only", "-q")
    assert "bad/edge_suite.toml::suite" in result.stdout.lines
    result = run(pytester, "-k", "golden")
    result.assert_outcomes(failed=1)
    assert f"{bad}: unknown key 'provider' (did you mean 'providers'?)" in out(result)


def test_model_escaping_folder_or_missing_fails_the_suite_once(pytester, model_dir):
    escape = make_suite(pytester, "escape", 'model = "../x.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY)
    missing = make_suite(pytester, "missing", 'model = "nothere.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY)
    (pytester.path / "x.onnx").write_bytes((model_dir / QDQ).read_bytes())  # exists, but outside the folder
    result = run(pytester, "-v")
    result.assert_outcomes(failed=2)
    text = out(result)
    escape_msg = (
        f"{escape}: key 'model': path '../x.onnx' escapes the suite folder {escape.parent}; keep files "
        "inside it or use pkg:<package>/<resource> for a model shipped in a package"
    )
    missing_msg = f"{missing}: key 'model': model file not found: {missing.parent / 'nothere.onnx'}"
    assert text.count(escape_msg) == 1 and text.count(missing_msg) == 1
    result.stdout.fnmatch_lines_random(
        ["*escape/edge_suite.toml::suite FAILED*", "*missing/edge_suite.toml::suite FAILED*"]
    )
    assert "Traceback" not in text


def test_suite_items_failing_before_a_session_are_recorded_on_their_suites_row(pytester, model_dir):
    suite = make_suite(
        pytester,
        "missing",
        'model = "m.onnx"\ninputs = "nothere.npz"\nproviders = ["qnn-htp"]\n' + CORE_ONLY,
        model_dir,
    )
    result = run(pytester, "--edge-report", "r.json")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["missing * local * qnn-htp * FAIL 0/2 *"])
    records = json.loads((pytester.path / "r.json").read_text())["results"]
    assert [(r["check"], r["suite"], r["model"]) for r in records] == [
        ("conformance", str(suite), "missing"),
        ("latency", str(suite), "missing"),
    ]
    assert {r["model_path"] for r in records} == {str(suite.parent / "m.onnx")}


def test_prepare_script_and_calibration_linking_out_of_the_folder_are_refused(pytester, model_dir):
    outside = (pytester.path / "outside").resolve()
    outside.mkdir()
    ran = pytester.path / "script-ran"
    (outside / "prepare.py").write_text(
        f"import pathlib\npathlib.Path({str(ran)!r}).touch()\n\ndef prepare(model):\n    return model\n"
    )
    np.savez(outside / "calib.npz", x=np.zeros((2, 1, 3, 16, 16), np.float32))
    script = make_suite(
        pytester,
        "script",
        'model = "m.onnx"\nproviders = ["qnn-htp"]\n[prepare]\nscript = "prepare.py"\n' + CORE_ONLY,
        model_dir,
    )
    (script.parent / "prepare.py").symlink_to(outside / "prepare.py")
    calib = make_suite(
        pytester,
        "calib",
        'model = "m.onnx"\nproviders = ["qnn-htp"]\n[prepare]\n'
        'quantize = {activations = "uint8", weights = "uint8", calibration = "calib.npz"}\n' + CORE_ONLY,
        model_dir,
        "conv_matmul.onnx",
    )
    (calib.parent / "calib.npz").symlink_to(outside / "calib.npz")
    result = run(pytester)
    result.assert_outcomes(failed=2)
    assert not ran.exists(), "the script outside the suite folder was executed"
    text = out(result)
    assert (
        f"{script}: key 'prepare.script': path 'prepare.py' (a link to {outside / 'prepare.py'}) escapes the "
        f"suite folder {script.parent}; keep files inside it\n"
    ) in text + "\n"
    assert (
        f"{calib}: key 'prepare.quantize.calibration': path 'calib.npz' (a link to {outside / 'calib.npz'}) "
        f"escapes the suite folder {calib.parent}; keep files inside it\n"
    ) in text + "\n"


def test_provider_options_and_reference_are_checked_at_collection(pytester, model_dir):
    qnn = 'model = "m.onnx"\nproviders = ["qnn-htp"]\n'
    cases = {
        "typo_table": (
            qnn + CORE_ONLY + '[provider_options.qnn-htpp]\nhtp_performance_mode = "burst"\n',
            "unknown key 'provider_options.qnn-htpp' (did you mean 'qnn-htp'?); valid keys (the "
            "suite's providers and reference): qnn-htp, cpu",
        ),
        "unused_table": (
            qnn + CORE_ONLY + '[provider_options.qnn-gpu]\nhtp_performance_mode = "burst"\n',
            "unknown key 'provider_options.qnn-gpu' (did you mean 'qnn-htp'?); valid keys (the suite's providers and "
            "reference): qnn-htp, cpu",
        ),
        "typo_default": (
            'model = "m.onnx"\n' + CORE_ONLY + "[provider_options.qnn-htpp]\nvtcm_mb = 8\n",
            "key 'provider_options.qnn-htpp': unknown provider 'qnn-htpp' (did you mean 'qnn-htp'?); "
            "use one of cpu, qnn-htp, qnn-htp-fp16, qnn-gpu,",
        ),
        "typo_option": (
            qnn + CORE_ONLY + '[provider_options.qnn-htp]\nhtp_performance_mod = "burst"\n',
            "key 'provider_options.qnn-htp': unknown option 'htp_performance_mod' for provider qnn-htp "
            "(did you mean 'htp_performance_mode'?); valid keys: backend_path, backend_type,",
        ),
        "typo_reference": (
            qnn + 'reference = "cpuu"\n' + CORE_ONLY,
            "key 'reference': expected \"cpu\", \"host\" or a provider: unknown provider 'cpuu' "
            "(did you mean 'cpu'?); use one of cpu, qnn-htp,",
        ),
    }
    for folder, (manifest, _) in cases.items():
        make_suite(pytester, folder, manifest, model_dir)
    result = run(pytester)
    result.assert_outcomes(failed=len(cases))
    text = out(result)
    for folder, (_, message) in cases.items():
        assert f"{pytester.path / folder / 'edge_suite.toml'}: {message}" in text, (
            f"{folder}: {message!r} not in output"
        )
    assert "Traceback" not in text


# ------------------------------------------------------------------------------------- conformance


def test_conformance_passes_u8_default_and_fails_impossible_tolerance(pytester, model_dir):
    make_suite(pytester, "ok", 'model = "m.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY, model_dir)
    # HTP and CPU differ by ~1 LSB on this model: atol = 0 cannot pass
    make_suite(
        pytester, "tight", 'model = "m.onnx"\nproviders = ["qnn-htp"]\n[tolerance]\natol = 0\n' + CORE_ONLY, model_dir
    )
    result = run(pytester, "-v", "-k", "conformance")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ok/edge_suite.toml::conformance[[]local-qnn-htp[]] PASSED*",
            "*tight/edge_suite.toml::conformance[[]local-qnn-htp[]] FAILED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            # per-example ("N of 4 examples outside tolerance") or stacked ("4 examples stacked on axis 0") summary
            "m.onnx on local/qnn-htp vs cpu reference*4*examples*:",
            "m.onnx on local/qnn-htp vs cpu reference*: 1 of 1 outputs failed",
            "output*shape*verdict*max|err|*max LSB*SNR dB*",
            "y*1x10*FAIL*",
            "y: FAILED  (rules: atol=0 min_snr_db=10 topk=1 tie_lsb=2 bias_lsb=2 gain=0.03, LSB = *",
            "*outside |err| <= 0",
            "*worst elements:*",
            "*smallest tolerance that would pass: atol=*",
        ]
    )


# ------------------------------------------------------------------------------------- no_cpu_fallback


def test_no_cpu_fallback_names_det_xfail_and_strict_xpass(pytester, model_dir):
    no_golden = "[checks]\ngolden = false\n"
    make_suite(
        pytester, "det", 'model = "det.onnx"\nproviders = ["qnn-htp"]\n' + no_golden, model_dir, "det.onnx", "det.onnx"
    )
    make_suite(
        pytester,
        "det_xfail",
        'model = "det.onnx"\nproviders = ["qnn-htp"]\n[xfail]\nno_cpu_fallback = "QNN has no Det"\n' + no_golden,
        model_dir,
        "det.onnx",
        "det.onnx",
    )
    make_suite(
        pytester,
        "qdq_xfail",
        'model = "m.onnx"\nproviders = ["qnn-htp"]\n[xfail]\nno_cpu_fallback = "QNN has no Det"\n' + no_golden,
        model_dir,
    )
    result = run(pytester, "-k", "no_cpu_fallback")
    result.assert_outcomes(failed=2, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "det.onnx on local/qnn-htp does not run fully on QNNExecutionProvider: "
            "1 of 3 nodes would run on CPU: Det x1 (det_node)",
        ]
    )
    result.stdout.fnmatch_lines(["[[]XPASS(strict)[]] QNN has no Det"])
    result.stdout.fnmatch_lines(
        [
            "XFAIL det_xfail/edge_suite.toml::no_cpu_fallback[[]local-qnn-htp[]] - QNN has no Det",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED det/edge_suite.toml::no_cpu_fallback[[]local-qnn-htp[]]*",
            "FAILED qdq_xfail/edge_suite.toml::no_cpu_fallback[[]local-qnn-htp[]]*",
        ],
        consecutive=False,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# ------------------------------------------------------------------------------------- golden

GOLDEN_SUITE = 'model = "m.onnx"\nproviders = ["qnn-htp"]\n[checks]\nno_cpu_fallback = false\n'


def test_the_golden_update_hint_is_shell_quoted_and_runs_as_printed(pytester, model_dir):
    """A suite folder named ``suite;touch y``: the printed command writes the golden and runs nothing else."""
    import re
    import subprocess
    import sys

    make_suite(pytester, "suite;touch y", GOLDEN_SUITE, model_dir)
    skipped = run(pytester, "-k", "golden")
    skipped.assert_outcomes(skipped=1)
    hint = re.search(r"create it with: (pytest --edge-update-golden .*)$", out(skipped), re.M).group(1)
    assert hint == "pytest --edge-update-golden 'suite;touch y/edge_suite.toml'"
    command = hint.replace("pytest", f"{shlex.quote(sys.executable)} -m pytest -p no:cacheprovider", 1)
    subprocess.run(["sh", "-c", command], cwd=pytester.path, capture_output=True, check=True)
    assert not (pytester.path / "y").exists()
    assert (pytester.path / "suite;touch y" / "golden" / "qnn-htp.npz").is_file()


def test_golden_lifecycle_skip_strict_update_drift_pass_tamper(pytester, model_dir):
    make_suite(pytester, "mysuite", GOLDEN_SUITE, model_dir)
    golden = pytester.path / "mysuite" / "golden"
    missing = (
        f"golden {golden / 'qnn-htp.npz'} is missing; create it with: "
        "pytest --edge-update-golden mysuite/edge_suite.toml"
    )

    skipped = run(pytester, "-k", "golden")
    skipped.assert_outcomes(skipped=1)
    assert missing in out(skipped)
    assert skipped.ret == pytest.ExitCode.OK

    strict = run(pytester, "-k", "golden", "--edge-strict")
    strict.assert_outcomes(failed=1)
    assert f"{missing} [--edge-strict]" in out(strict)

    first = run(pytester, "-k", "golden", "--edge-update-golden")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*= edgeort golden updates =*", f"{golden / 'qnn-htp.npz'} (local): y: new golden"])
    assert sorted(p.name for p in golden.iterdir()) == ["qnn-htp.json", "qnn-htp.npz"]
    sidecar = json.loads((golden / "qnn-htp.json").read_text())
    assert {"onnxruntime", "qnn_sdk", "model_sha256", "platform", "written"} <= set(sidecar)
    assert sidecar["examples"] == 4 and sidecar["provider"] == "qnn-htp"
    with np.load(golden / "qnn-htp.npz", allow_pickle=False) as data:
        assert data.files == ["y"] and data["y"].shape == (4, 1, 10)

    second = run(pytester, "-k", "golden", "--edge-update-golden")
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(
        ["*= edgeort golden updates =*", f"{golden / 'qnn-htp.npz'} (local): y: max drift 0 LSB"]
    )

    normal = run(pytester, "-k", "golden")
    normal.assert_outcomes(passed=1)
    assert "edgeort golden updates" not in out(normal)

    with np.load(golden / "qnn-htp.npz", allow_pickle=False) as data:
        stored = {k: data[k] for k in data.files}
    np.savez(golden / "qnn-htp.npz", **{k: v + np.float32(10.0) for k, v in stored.items()})
    written = json.loads((golden / "qnn-htp.json").read_text())["written"]
    tampered = run(pytester, "-k", "golden")
    tampered.assert_outcomes(failed=1)
    tampered.stdout.fnmatch_lines(
        [
            f"m.onnx on local/qnn-htp vs golden qnn-htp.npz (written {written})*4*examples*:",
            "y*1x10*FAIL*",
        ]
    )


def test_corrupt_golden_sidecar_can_be_recreated(pytester, model_dir):
    make_suite(pytester, "mysuite", GOLDEN_SUITE, model_dir)
    golden = pytester.path / "mysuite" / "golden"
    golden.mkdir()
    np.savez(golden / "qnn-htp.npz", y=np.zeros((4, 1, 10), np.float32))
    (golden / "qnn-htp.json").write_text("{")
    result = run(pytester, "-k", "golden", "--edge-update-golden")
    result.assert_outcomes(passed=1)  # observed: failed, JSONDecodeError traceback
    assert json.loads((golden / "qnn-htp.json").read_text())["examples"] == 4


def test_truncated_golden_npz_is_reported_and_can_be_recreated(pytester, model_dir):
    make_suite(pytester, "mysuite", GOLDEN_SUITE, model_dir)
    golden = pytester.path / "mysuite" / "golden"
    golden.mkdir()
    np.savez(golden / "qnn-htp.npz", y=np.zeros((4, 1, 10), np.float32))
    (golden / "qnn-htp.npz").write_bytes((golden / "qnn-htp.npz").read_bytes()[:100])
    result = run(pytester, "-k", "golden", "--edge-update-golden")
    result.assert_outcomes(passed=1)  # observed: failed, zipfile.BadZipFile traceback
    normal = run(pytester, "-k", "golden")
    normal.assert_outcomes(passed=1)


def test_missing_golden_hint_is_a_command_that_runs_with_a_space_in_the_path(pytester, model_dir):
    make_suite(pytester, "my suite", GOLDEN_SUITE, model_dir)
    skipped = run(pytester, "-k", "golden")
    skipped.assert_outcomes(skipped=1)
    hint = "pytest --edge-update-golden 'my suite/edge_suite.toml'"
    assert f"create it with: {hint}" in out(skipped)
    written = run(pytester, *shlex.split(hint)[1:])  # the hint as a shell splits it
    written.assert_outcomes(passed=3)
    assert (pytester.path / "my suite" / "golden" / "qnn-htp.npz").exists()


def test_update_golden_new_writes_only_missing_goldens(pytester, model_dir):
    make_suite(pytester, "mysuite", GOLDEN_SUITE.replace('["qnn-htp"]', '["qnn-htp", "cpu"]'), model_dir)
    golden = pytester.path / "mysuite" / "golden"
    run(pytester, "-k", "golden", "--edge-update-golden", "--edge-provider", "qnn-htp").assert_outcomes(passed=1)
    with np.load(golden / "qnn-htp.npz", allow_pickle=False) as data:
        np.savez(golden / "qnn-htp.npz", **{k: data[k] + np.float32(10.0) for k in data.files})

    result = run(pytester, "-k", "golden", "--edge-update-golden=new", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*mysuite/edge_suite.toml::golden[[]local-qnn-htp[]] FAILED*",  # compared with the (tampered) golden
            "*mysuite/edge_suite.toml::golden[[]local-cpu[]] PASSED*",  # written
        ]
    )
    result.stdout.fnmatch_lines(["*= edgeort golden updates =*", f"{golden / 'cpu.npz'} (local): y: new golden"])
    assert "qnn-htp.npz (local)" not in out(result)


def test_golden_is_never_written_from_a_failing_conformance(pytester, model_dir):
    make_suite(pytester, "mysuite", GOLDEN_SUITE + "[tolerance]\natol = 0\n", model_dir)
    golden = pytester.path / "mysuite" / "golden"
    result = run(pytester, "-k", "golden", "--edge-update-golden")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"golden {golden / 'qnn-htp.npz'} not written: m.onnx on local/qnn-htp fails its conformance check "
            "against the cpu reference (y: *)"
        ]
    )
    assert not (golden / "qnn-htp.npz").exists() and "edgeort golden updates" not in out(result)


def test_golden_update_names_what_changed_in_the_provenance_and_the_users_model(pytester, model_dir):
    # a prepared model runs from a cache file named by its hash: the golden names the suite's model
    suite = make_suite(
        pytester, "mysuite", GOLDEN_SUITE + '[prepare]\nscript = "prepare.py"\n', model_dir, "conv_matmul_qdq.onnx"
    )
    (suite.parent / "prepare.py").write_text("def prepare(model):\n    return model\n")
    golden = pytester.path / "mysuite" / "golden"
    run(pytester, "-k", "golden", "--edge-update-golden").assert_outcomes(passed=1)
    sidecar = json.loads((golden / "qnn-htp.json").read_text())
    assert (sidecar["model"], sidecar["model_path"]) == ("m.onnx", "mysuite/m.onnx")
    assert ".edgeort-cache" not in (golden / "qnn-htp.json").read_text()

    old_sha = sidecar["model_sha256"]
    (golden / "qnn-htp.json").write_text(json.dumps(dict(sidecar, qnn_sdk="2.47.0")))
    shutil.copyfile(model_dir / "conv_matmul_qdq_wrong.onnx", suite.parent / "m.onnx")
    result = run(pytester, "-k", "golden", "--edge-update-golden")
    result.assert_outcomes(passed=1)
    new_sha = json.loads((golden / "qnn-htp.json").read_text())["model_sha256"]
    assert new_sha != old_sha
    result.stdout.fnmatch_lines(
        [
            "*= edgeort golden updates =*",
            f"{golden / 'qnn-htp.npz'} (local): provenance changed: model_sha256 {old_sha} -> {new_sha}; "
            f"qnn_sdk 2.47.0 -> {sidecar['qnn_sdk']}; y: max drift * LSB",
        ]
    )


def test_golden_of_a_pkg_model_names_its_pkg_source(pytester, model_dir):
    package = pytester.path / "fakemodels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copyfile(model_dir / QDQ, package / "m.onnx")
    pytester.syspathinsert()
    make_suite(pytester, "pkgsuite", GOLDEN_SUITE.replace('"m.onnx"', '"pkg:fakemodels/m.onnx"'))
    run(pytester, "-k", "golden", "--edge-update-golden").assert_outcomes(passed=1)
    sidecar = json.loads((pytester.path / "pkgsuite" / "golden" / "qnn-htp.json").read_text())
    assert (sidecar["model"], sidecar["model_path"]) == ("pkg:fakemodels/m.onnx", "fakemodels/m.onnx")


def test_goldens_no_item_reads_are_listed_and_fail_under_strict(pytester, model_dir):
    make_suite(pytester, "mysuite", GOLDEN_SUITE, model_dir)
    golden = pytester.path / "mysuite" / "golden"
    run(pytester, "-k", "golden", "--edge-update-golden").assert_outcomes(passed=1)
    shutil.copyfile(golden / "qnn-htp.npz", golden / "qnn-gpu.npz")  # a provider the suite no longer runs
    unused = f"{golden / 'qnn-gpu.npz'}: no golden item reads it (the suite runs qnn-htp)"

    result = run(pytester, "-k", "golden")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= edgeort unused goldens =*", unused])
    assert result.ret == pytest.ExitCode.OK

    strict = run(pytester, "-k", "golden", "--edge-strict")
    strict.assert_outcomes(passed=1)
    strict.stdout.fnmatch_lines(["*= edgeort unused goldens =*", f"{unused} [[]--edge-strict[]]"])
    assert strict.ret == pytest.ExitCode.TESTS_FAILED


# ------------------------------------------------------------------------------------- pkg: models


def test_pkg_model_resolves_from_installed_package_and_missing_package_skips(pytester, model_dir):
    package = pytester.path / "fakemodels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copyfile(model_dir / QDQ, package / "m.onnx")
    pytester.syspathinsert()
    make_suite(pytester, "pkgsuite", 'model = "pkg:fakemodels/m.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY)
    make_suite(pytester, "nopkg", 'model = "pkg:not_installed_pkg/m.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY)
    message = (
        "package 'not_installed_pkg' for model 'pkg:not_installed_pkg/m.onnx' is not installed "
        "(pip install --no-deps not-installed-pkg)"
    )

    result = run(pytester, "-v")
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*pkgsuite/edge_suite.toml::conformance[[]local-qnn-htp[]] PASSED*",
            "*pkgsuite/edge_suite.toml::latency[[]local-qnn-htp[]] PASSED*",
        ]
    )
    assert "SKIPPED [2] " in result.stdout.str() and message in result.stdout.str()

    strict = run(pytester, "nopkg", "--edge-strict")
    strict.assert_outcomes(failed=2)
    assert f"{message} [--edge-strict]" in out(strict)


def test_pkg_resource_escaping_the_package_is_refused(pytester, model_dir):
    package = pytester.path / "fakemodels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    pytester.syspathinsert()
    suite = make_suite(
        pytester, "pkgsuite", 'model = "pkg:fakemodels/../secret.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY
    )
    shutil.copyfile(model_dir / QDQ, pytester.path / "secret.onnx")
    result = run(pytester, "-k", "conformance")
    result.assert_outcomes(failed=1)
    assert f"{suite}: key 'model': path '../secret.onnx' escapes package 'fakemodels' {package}" in out(result)


def test_strict_and_fuzz_failures_are_one_readable_message(pytester, model_dir):
    make_suite(pytester, "nopkg", 'model = "pkg:not_installed_pkg/m.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY)
    make_suite(pytester, "nogolden", GOLDEN_SUITE, model_dir)
    make_suite(
        pytester,
        "fuzzfail",
        'model = "m.onnx"\nproviders = ["qnn-htp"]\n[tolerance]\natol = 0\n'
        "[checks]\nno_cpu_fallback = false\ngolden = false\nfuzz_examples = 3\n",
        model_dir,
    )
    result = run(
        pytester,
        "--edge-strict",
        "nopkg/edge_suite.toml::conformance[local-qnn-htp]",
        "nogolden/edge_suite.toml::golden[local-qnn-htp]",
        "fuzzfail/edge_suite.toml::fuzz[local-qnn-htp]",
    )
    result.assert_outcomes(failed=3)
    text = out(result)
    assert "During handling of the above exception" not in text
    assert text.count("package 'not_installed_pkg' for model") == 1  # once: no exception chain


# ------------------------------------------------------------------------------------- prepare cache


def test_prepared_model_is_cached_by_content_hash(pytester, model_dir):
    import onnx

    suite = make_suite(
        pytester,
        "prep",
        'model = "m.onnx"\nproviders = ["qnn-htp"]\n'
        '[prepare]\nquantize = {activations = "uint8", weights = "uint8", calibration = "calib.npz"}\n' + CORE_ONLY,
        model_dir,
        "conv_matmul.onnx",
    )
    rng = np.random.default_rng(7)
    np.savez(suite.parent / "calib.npz", x=rng.random((8, 1, 3, 16, 16), dtype=np.float32))
    cache = pytester.path / ".edgeort-cache" / "prepared"

    first = run(pytester, "-k", "conformance")
    first.assert_outcomes(passed=1)
    models = sorted(cache.glob("*.onnx"))
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    quantized = [
        p for p in models if {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(str(p)).graph.node}
    ]
    assert len(quantized) == 1, [p.name for p in models]
    # the other cached model, if any, is the float baseline (no Q/DQ)
    assert all(
        not any(n.op_type == "QuantizeLinear" for n in onnx.load(str(p)).graph.node)
        for p in models
        if p not in quantized
    )
    assert {n.op_type for n in onnx.load(str(quantized[0])).graph.node} >= {"Conv", "MatMul"}

    second = run(pytester, "-k", "conformance")
    second.assert_outcomes(passed=1)
    assert sorted(cache.glob("*.onnx")) == models
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps


# ------------------------------------------------------------------------------------- latency


def test_latency_gate_fails_after_a_re_measurement_and_junit_has_latency_properties(pytester, model_dir):
    make_suite(pytester, "fast", 'model = "m.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY, model_dir)
    make_suite(
        pytester,
        "gated",
        'model = "m.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY + "latency_p90_ms = 0.000001\nlatency_runs = 5\n",
        model_dir,
    )
    result = run(pytester, "-k", "latency", "--junitxml=junit.xml", "--edge-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "m.onnx on local/qnn-htp: simulated latency p90 * ms > latency_p90_ms 1e-06 (confirmed by a "
            "re-measurement) (first: p50 * ms, p90 * ms, min * ms over 5 runs; re-measured: p50 * ms, p90 * ms, "
            "min * ms over 15 runs)",
            "*ms ~: simulated latency (QNN's HTP simulator on x86-64)*",
        ]
    )
    records = {r["suite"].split("/")[-2]: r for r in json.loads((pytester.path / "r.json").read_text())["results"]}
    gated, fast = records["gated"], records["fast"]
    assert gated["latency_simulated"] is True and gated["latency_decided_by"] == "re-measurement"
    assert [a["runs"] for a in gated["latency_attempts"]] == [5, 15]
    assert [a["passed"] for a in gated["latency_attempts"]] == [False, False]
    assert gated["latency"]["runs"] == 15 and gated["latency_gates"] == {"latency_p90_ms": 1e-06}
    assert fast["latency_decided_by"] == "first measurement" and len(fast["latency_attempts"]) == 1
    tree = ET.parse(pytester.path / "junit.xml")
    cases = {(c.get("classname"), c.get("name")): c for c in tree.iter("testcase")}
    passing = cases[("fast.edge_suite.toml", "latency[local-qnn-htp]")]
    assert passing.find("failure") is None
    props = {p.get("name"): p.get("value") for p in passing.iter("property")}
    assert float(props["edge_latency_p50_ms"]) > 0
    assert float(props["edge_latency_p90_ms"]) >= float(props["edge_latency_p50_ms"])
    assert props["edge_latency_simulated"] == "true"


@pytest.mark.parametrize(
    "line, message",
    [
        ("latency_p50_ms = -1", "key 'checks.latency_p50_ms': expected milliseconds > 0, got -1"),
        ("latency_max_s = 0", "key 'checks.latency_max_s': expected seconds > 0, got 0"),
        ("latency_min_runs = 0", "key 'checks.latency_min_runs': expected an integer >= 1, got 0"),
    ],
)
def test_latency_keys_are_validated(pytester, model_dir, line, message):
    make_suite(pytester, "bad", 'model = "m.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY + line + "\n", model_dir)
    result = run(pytester, "-k", "latency")
    result.stdout.fnmatch_lines([f"*bad/edge_suite.toml: {message}*"])


def test_junit_of_suite_conformance_carries_provenance(pytester, model_dir):
    make_suite(pytester, "mysuite", 'model = "m.onnx"\nproviders = ["qnn-htp"]\n' + CORE_ONLY, model_dir)
    run(pytester, "-k", "conformance", "--junitxml=junit.xml").assert_outcomes(passed=1)
    props = {p.get("name") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    assert {"edge_device", "edge_model_sha256", "edge_onnxruntime", "edge_qnn_sdk"} <= props


# ------------------------------------------------------------------------------------- fuzz


def test_fuzz_passes_on_u8_and_failure_saves_reproducer(pytester, model_dir):
    fuzz_checks = "[checks]\nno_cpu_fallback = false\ngolden = false\nfuzz_examples = 3\n"
    make_suite(pytester, "fuzzok", 'model = "m.onnx"\nproviders = ["qnn-htp"]\n' + fuzz_checks, model_dir)
    make_suite(
        pytester,
        "fuzzbad",
        'model = "m.onnx"\nproviders = ["qnn-htp"]\n[tolerance]\natol = 0\n' + fuzz_checks,
        model_dir,
    )
    result = run(pytester, "-v", "-k", "fuzz[")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*fuzzok/edge_suite.toml::fuzz[[]local-qnn-htp[]] PASSED*"])
    saved = pytester.path / ".edgeort-cache" / "fuzz" / "fuzzbad-local-qnn-htp.npz"
    assert (
        f"m.onnx on local/qnn-htp: a generated input is outside tolerance (shrunk); reproduce with "
        f"numpy.load({str(saved)!r}):"
    ) in out(result)
    result.stdout.fnmatch_lines(["fuzz: 1 of 1 outputs failed", "y*1x10*FAIL*"])
    with np.load(saved, allow_pickle=False) as data:
        assert data.files == ["x"] and data["x"].shape == (1, 3, 16, 16) and data["x"].dtype == np.float32


def test_a_failing_fuzz_item_writes_its_record(pytester, model_dir):
    """Like every other failing check, a failing fuzz item records its comparison and provenance."""
    make_suite(
        pytester,
        "fuzzrec",
        'model = "m.onnx"\nproviders = ["qnn-htp"]\n[tolerance]\natol = 0\n'
        "[checks]\nno_cpu_fallback = false\ngolden = false\nfuzz_examples = 3\n",
        model_dir,
    )
    run(pytester, "fuzzrec/edge_suite.toml::fuzz[local-qnn-htp]", "--edge-report=report.json").assert_outcomes(failed=1)
    [record] = json.loads((pytester.path / "report.json").read_text())["results"]
    saved = pytester.path / ".edgeort-cache" / "fuzz" / "fuzzrec-local-qnn-htp.npz"
    assert (record["check"], record["passed"], record["model"], record["fuzz_examples"]) == (
        "fuzz",
        False,
        "fuzzrec",
        3,
    )
    assert record["comparison"]["passed"] is False and record["comparison"]["outputs"][0]["name"] == "y"
    assert record["fuzz_input"] == str(saved) and record["model_sha256"] and record["ep"] == "QNNExecutionProvider"
    assert record["phase"] == "call" and record["error"].startswith("m.onnx on local/qnn-htp: a generated input")


# ------------------------------------------------------------------------------------- inputs


def test_generated_inputs_and_missing_inputs_file(pytester, model_dir):
    gen = make_suite(
        pytester,
        "gen",
        'model = "m.onnx"\nproviders = ["qnn-htp"]\n'
        "[inputs.generate]\ncount = 2\nseed = 3\nrange = [0, 1]\n" + CORE_ONLY,
        model_dir,
    )
    missing = make_suite(
        pytester,
        "noinputs",
        'model = "m.onnx"\nproviders = ["qnn-htp"]\ninputs = "missing.npz"\n' + CORE_ONLY,
        model_dir,
    )
    # dump the feeds the suite used, through SuiteFile.models (its public accessor)
    pytester.makeconftest("""
import numpy as np
from pytest_edgeort.items.target import item_target
from pytest_edgeort.run import edge_run

def pytest_runtest_teardown(item):
    target = item_target(item)
    if target is not None and target.check == "conformance" and item.path.parent.name == "gen":
        feeds = item.parent.models(edge_run(item.config)).feeds
        np.savez("gen-feeds.npz", **{f"x{i}": feed["x"] for i, feed in enumerate(feeds)})
""")
    result = run(pytester, "-v")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*gen/edge_suite.toml::conformance[[]local-qnn-htp[]] PASSED*"])
    assert out(result).count(f"inputs file not found: {missing.parent / 'missing.npz'}") == 2

    from pytest_edgeort.model.info import model_info
    from pytest_edgeort.model.inputs import generate_inputs

    info = model_info(gen.parent / "m.onnx")
    with np.load(pytester.path / "gen-feeds.npz", allow_pickle=False) as data:
        feeds = [data[f"x{i}"] for i in range(len(data.files))]
    assert len(feeds) == 2
    for i, feed in enumerate(feeds):
        assert feed.shape == (1, 3, 16, 16) and 0 <= feed.min() and feed.max() < 1
        np.testing.assert_array_equal(feed, generate_inputs(info, 3, i, {"x": (0.0, 1.0)})["x"])
    assert not np.array_equal(feeds[0], feeds[1])


def test_a_suite_file_that_does_not_validate_has_a_record_and_a_junit_error(pytester, model_dir):
    make_suite(pytester, "broken", 'model = "m.onnx"\nprovider = ["qnn-htp"]\n', model_dir)
    run(pytester, "--edge-report=report.json", "--junitxml=junit.xml").assert_outcomes(failed=1)
    report = json.loads((pytester.path / "report.json").read_text())
    (record,) = report["results"]
    assert (record["nodeid"], record["check"], record["outcome"], record["phase"]) == (
        "broken/edge_suite.toml::suite",
        "suite",
        "failed",
        "call",
    )
    assert record["suite"] == str(pytester.path / "broken" / "edge_suite.toml")
    assert "unknown key 'provider' (did you mean 'providers'?)" in record["error"]
    assert report["outcomes"] == {"broken/edge_suite.toml::suite": "failed"}
    (case,) = ET.parse(pytester.path / "junit.xml").iter("testcase")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert "unknown key 'provider'" in props["edge_error"]


# -------------------------------------------------------------------------------- the check table

ONE_OUTPUT_CHECK = """
from pytest_edgeort.items.context import SuiteCheck
from pytest_edgeort.items.table import SUITE_CHECKS
from pytest_edgeort.outcomes import fail


def run_one_output(item):
    '''A test-only check: the suite's model has exactly one output.'''
    models = item.models()
    session = item.device_session(models)
    names = [o.name for o in session.model.outputs]
    item.check_node.record(session, passed=len(names) == 1)
    if len(names) != 1:
        fail(f"{session.label}: {len(names)} outputs")


def pytest_configure(config):
    SUITE_CHECKS["one_output"] = SuiteCheck("one_output", run_one_output)


def pytest_unconfigure(config):
    del SUITE_CHECKS["one_output"]
"""


def test_a_check_is_one_module_and_one_table_entry(pytester, model_dir):
    """A check registered in the table is collected for every suite, can be marked xfail, and its record
    reaches the JSON report and its provenance the JUnit XML like any built-in check's."""
    pytester.makeconftest(ONE_OUTPUT_CHECK)
    make_suite(pytester, "single", 'model = "m.onnx"\nproviders = ["cpu"]\n', model_dir)
    make_suite(
        pytester,
        "many",
        'model = "m.onnx"\nproviders = ["cpu"]\n[xfail]\none_output = "an identity per dtype"\n',
        model_dir,
        model="identities.onnx",
    )
    result = run(pytester, "-v", "-k", "one_output", "--edge-report=report.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines_random(
        ["*single/edge_suite.toml::one_output[[]local-cpu[]] PASSED*", "*many/edge_suite.toml::one_output*XFAIL*"]
    )
    records = json.loads((pytester.path / "report.json").read_text())["results"]
    assert sorted((r["model"], r["check"], r["passed"], r["outcome"]) for r in records) == [
        ("many", "one_output", False, "xfailed"),
        ("single", "one_output", True, "passed"),
    ]
    cases = {case.get("name"): case for case in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["one_output[local-cpu]"].iter("property")}
    assert props["edge_device"] == "local" and len(props["edge_model_sha256"]) == 64


def test_under_xdist_a_suites_items_run_in_one_worker_so_golden_reuses_conformance(pytester, model_dir):
    manifest = 'model = "m.onnx"\nproviders = ["qnn-htp"]\ngolden_dir = "golden"\n[checks]\nlatency_runs = 3\n'
    for n in range(3):
        make_suite(pytester, f"s{n}", manifest, model_dir)
    pytester.makepyfile(test_plain="".join(f"def test_p{i}():\n    pass\n\n" for i in range(8)))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--edge-update-golden", "--edge-report=report.json", timeout=300
    )
    assert result.ret == 0, result.stdout.str()
    records = json.loads((pytester.path / "report.json").read_text())["results"]
    workers: dict = {}
    for record in records:
        workers.setdefault(record["nodeid"].split("::")[0], set()).add(record["xdist_worker"])
    assert sorted(workers) == [f"s{n}/edge_suite.toml" for n in range(3)]
    assert all(len(w) == 1 for w in workers.values()), workers  # each suite's items in one worker's session
    assert len(set().union(*workers.values())) == 2, workers  # and the suites spread over both workers
    assert {r["nodeid"].split("::")[1].split("[")[0] for r in records} >= {"conformance", "golden", "latency"}
