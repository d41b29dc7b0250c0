"""A board that answers wrongly (crashes, hangs, garbage, malformed facts, huge replies): one line, the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.hostile_board import hostile_python
from tests.support.runs import MATCH_TEST, require_qnn

require_qnn()

TWO_DEVICE_TEST = """
import pytest

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("qnn-htp")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
"""


def run_sick_and_healthy(pytester, model_dir, tmp_path, python, *args):
    """Devices ``sick`` (its python is ``python``) and a healthy ``local``, one test on each."""
    pytester.makefile(
        ".toml",
        **{
            "edge-devices": f'[devices.sick]\nkind = "local"\npython = "{python}"\nworkdir = "{tmp_path / "sick"}"\n'
            "command_timeout = 20\n"
        },
    )
    pytester.makepyfile(TWO_DEVICE_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    return pytester.runpytest(
        "-p", "no:cacheprovider", "-rsf", "--edge-device=sick", "--edge-device=local", "--edge-report=r.json", *args
    )


FIRST_REQUEST = {
    "crash": "worker on device 'sick' died during capabilities: killed by SIGSEGV",
    "hang": "worker on device 'sick' did not answer capabilities within 20 s (*); the worker was stopped",
    "garbage": "worker on device 'sick' sent an invalid frame (frame header is list, not a JSON object) during "
    "capabilities; the worker was stopped",
    "error": "worker on device 'sick': capabilities failed: QNN backend probe failed",
}


@pytest.mark.parametrize("mode", FIRST_REQUEST)
def test_a_first_request_that_fails_skips_that_device_only(pytester, model_dir, tmp_path, mode):
    """The capabilities request runs the QNN backend probe: a crash there is that board's outage, not the run's."""
    python = hostile_python(tmp_path / "bin", mode, "capabilities")
    result = run_sick_and_healthy(pytester, model_dir, tmp_path, python)
    assert "INTERNALERROR" not in result.stdout.str()
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED * device 'sick': {FIRST_REQUEST[mode]}*"])
    report = json.loads((pytester.path / "r.json").read_text())
    assert [r["device"] for r in report["results"]] == ["local"]
    if mode == "error":  # under --edge-strict the sick board's test fails, the healthy one still passes
        strict = run_sick_and_healthy(pytester, model_dir, tmp_path, python, "--edge-strict")
        strict.assert_outcomes(passed=1, errors=1)


MALFORMED_FACTS = {
    "providers null": ({"providers": None}, "'providers' is None (expected a list of provider names)"),
    "providers missing": ({"providers": "__delete__"}, "has no 'providers' (expected a list of provider names)"),
    "providers a string": (
        {"providers": "QNNExecutionProvider"},
        "'providers' is 'QNNExecutionProvider' (expected a list of provider names)",
    ),
    "qnn.backends an int": ({"qnn.backends": 5}, "'qnn.backends' is 5 (expected a list of backend names)"),
}


@pytest.mark.parametrize("case", MALFORMED_FACTS)
def test_malformed_device_facts_are_one_line_naming_the_device(pytester, model_dir, tmp_path, case):
    patch, problem = MALFORMED_FACTS[case]
    python = hostile_python(tmp_path / "bin", "patch", "capabilities", patch)
    result = run_sick_and_healthy(pytester, model_dir, tmp_path, python)
    assert "INTERNALERROR" not in result.stdout.str()
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [f"SKIPPED * device 'sick': worker on device 'sick' sent capabilities that {problem}"], consecutive=False
    )


def peak_rss_reset() -> bool:
    """Reset this process's peak RSS (VmHWM); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_a_reply_declaring_huge_arrays_is_refused_before_the_host_allocates(pytester, model_dir, tmp_path):
    """4 arrays of 4 GiB declared, 1 GiB streamed: refused at the header, the host's memory stays flat."""
    python = hostile_python(tmp_path / "bin", "huge", "run", 4)
    pytester.makefile(".toml", **{"edge-devices": f'[devices.local]\npython = "{python}"\n'})
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx").replace("qnn-htp", "cpu"))
    measured = peak_rss_reset()
    before = peak_rss_bytes()
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    grown = peak_rss_bytes() - before
    if measured:
        assert grown < 256 * 1024**2, f"host peak RSS grew by {grown / 1024**2:.0f} MiB"
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*worker on device 'local' sent an invalid frame (the reply declares array 'y0' (|u1, 4294967296 bytes), "
            "but conv_matmul_qdq.onnx's outputs can only produce: 'y' (<f4, up to * bytes)) during run; "
            "the worker was stopped*"
        ]
    )
