"""``python -m pytest_edgeort diff`` on reports of real runs: the same suites before and after a model upgrade
(one model's weights changed, another with an op QNN cannot run), on two devices of different names."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.support import models
from tests.support.runs import require_qnn, run

require_qnn()

# a: the u8 QDQ model, checked against its golden; b: Mul -> ReduceSum -> Add, all on QNN, later Det in
# ReduceSum's place (QNN has no Det: that node moves to CPU)
SUITE_A = 'model = "m.onnx"\nproviders = ["qnn-htp"]\n[checks]\nno_cpu_fallback = false\nlatency_runs = 1\n'
SUITE_B = 'model = "m.onnx"\nproviders = ["qnn-htp"]\n[checks]\ngolden = false\nlatency_runs = 1\n'


def diff(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """``python -m pytest_edgeort diff ...`` as a user runs it, in pytester's folder."""
    return pytester.run(sys.executable, "-m", "pytest_edgeort", "diff", *args)


@pytest.fixture
def reports(pytester: pytest.Pytester, model_dir: Path) -> tuple:
    """(old.json, new.json): the suites on ``local``, then after the upgrade on the device ``board2``."""
    for folder, manifest in (("a", SUITE_A), ("b", SUITE_B)):
        (pytester.path / folder).mkdir()
        (pytester.path / folder / "edge_suite.toml").write_text(manifest)
    shutil.copyfile(model_dir / "conv_matmul_qdq.onnx", pytester.path / "a" / "m.onnx")
    models.det_model(pytester.path / "b" / "m.onnx", det=False)
    run(pytester, "-k", "golden", "--edge-update-golden", "a").assert_outcomes(passed=1)
    old = run(pytester, "--edge-report", "old.json")
    old.assert_outcomes(passed=6)

    shutil.copyfile(model_dir / "conv_matmul_qdq_wrong.onnx", pytester.path / "a" / "m.onnx")
    models.det_model(pytester.path / "b" / "m.onnx")
    pytester.makefile(".toml", **{"edge-devices": '[devices.board2]\nkind = "local"\n'})
    new = run(pytester, "--edge-device", "board2", "--edge-report", "new.json")
    new.assert_outcomes(passed=4, failed=2)
    return pytester.path / "old.json", pytester.path / "new.json"


def test_diff_of_an_upgrade_names_what_got_worse_and_exits_1(pytester, reports):
    result = diff(pytester, "old.json", "new.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "edgeort diff old.json -> new.json: WORSE: 4 worse, 0 better, * changed; 6 tests paired, 0 only in OLD, "
            "0 only in NEW; devices local -> board2",
            "",
            "run model * device * provider * verdict *",
            "OLD a * local * qnn-htp * PASS 3/3 *",
            "NEW a * board2 * qnn-htp * FAIL 2/3 *",
            "OLD b * local * qnn-htp * PASS 3/3 * 100 *",
            "NEW b * board2 * qnn-htp * FAIL 2/3 * 67[*] *",
        ]
    )
    lines = result.outlines
    assert "worse   verdict   a/edge_suite.toml::golden[board2-qnn-htp]: passed -> failed" in lines
    assert "worse   verdict   b/edge_suite.toml::no_cpu_fallback[board2-qnn-htp]: passed -> failed" in lines
    assert "worse   coverage  b on board2/qnn-htp: NPU coverage 100 -> 67 % (CPU fallback allowed)" in lines
    assert "worse   placement b on board2/qnn-htp: moved off the NPU: Det x1" in lines
    result.stdout.fnmatch_lines(
        [
            "changed metrics   a/edge_suite.toml::golden[[]board2-qnn-htp[]]: output y: max LSB 0 -> *",
            "changed facts     a on board2/qnn-htp: model sha256 * -> *",
        ],
        consecutive=False,
    )
    # the worse lines come first, right after the table
    first_change = next(i for i, line in enumerate(lines) if line.startswith(("worse", "changed", "better")))
    assert all(line.startswith("worse") for line in lines[first_change : first_change + 4])


def test_diff_json_and_an_unchanged_run(pytester, reports):
    old, new = reports
    result = diff(pytester, "--json", str(old), str(new))
    assert result.ret == 1
    document = json.loads(result.stdout.str())
    assert document["schema"] == "pytest-edgeort/diff" and document["worse"] is True
    assert document["devices"] == {"local": "board2"}
    worse = {(c["kind"], c["subject"]) for c in document["changes"] if c["severity"] == "worse"}
    assert worse == {
        ("verdict", "a/edge_suite.toml::golden[board2-qnn-htp]"),
        ("verdict", "b/edge_suite.toml::no_cpu_fallback[board2-qnn-htp]"),
        ("coverage", "b on board2/qnn-htp"),
        ("placement", "b on board2/qnn-htp"),
    }
    assert [(r["old"]["verdict"], r["new"]["verdict"]) for r in document["rows"]] == [("PASS", "FAIL")] * 2

    same = diff(pytester, str(old), str(old))
    assert same.ret == 0
    assert same.outlines[0].startswith(f"edgeort diff {old} -> {old}: nothing worse: 0 worse, 0 better, ")


def test_diff_refuses_unreadable_reports_and_unknown_devices_in_one_line(pytester, reports):
    old, new = reports
    newer = json.loads(old.read_text())
    newer["version"] = 99
    (pytester.path / "newer.json").write_text(json.dumps(newer))
    (pytester.path / "junit.json").write_text("[1, 2]")
    cases = {
        ("newer.json", "new.json"): (
            "edgeort diff: OLD newer.json: not a pytest-edgeort/report report of version <= 1: "
            "schema 'pytest-edgeort/report', version 99"
        ),
        ("old.json", "missing.json"): "edgeort diff: NEW missing.json: cannot read it: No such file or directory",
        ("old.json", "junit.json"): "edgeort diff: NEW junit.json: not a pytest-edgeort report (a JSON list)",
        ("--match-device", "loca=board2", "old.json", "new.json"): (
            "edgeort diff: --match-device: OLD has no device 'loca' (did you mean 'local'?); its devices: local"
        ),
    }
    for args, line in cases.items():
        result = diff(pytester, *args)
        assert (result.ret, result.errlines) == (2, [line]), args
        assert result.outlines == []
    paired = diff(pytester, "--match-device", "local=board2", "old.json", "new.json")
    assert paired.ret == 1 and "6 tests paired" in paired.outlines[0]
