"""Device kinds from plugins: a test-only kind (one module, one table entry) runs a user's tests end to end."""

from __future__ import annotations

import pytest

from tests.support.runs import run

# The whole plugin of the test-only kind: its module (tests/support/inprocess.py) and its table entry.
KIND_PLUGIN = """
from tests.support.inprocess import INPROCESS_KIND

def pytest_edgeort_device_kinds():
    return [INPROCESS_KIND]
"""

# A plugin that builds a built-in kind its own way: local devices with workers on threads.
MAKE_PLUGIN = """
from tests.support.inprocess import InProcessDevice

def pytest_edgeort_make_device(device_config, kind):
    return InProcessDevice(device_config, kind) if kind.name == "local" else None
"""

SESSION_TEST = """
import pytest

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("cpu")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    assert edge_session.device.kind.name == "{kind}"
    assert edge_session.device.clients["default"].transport.description == "in-process worker"
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
    again = edge_session.run_all([edge_inputs, edge_inputs])
    assert [sorted(o) for o in again] == [sorted(edge_session.run(edge_inputs))] * 2
"""


def test_a_kind_added_by_a_plugin_runs_a_marker_test(pytester, model_dir):
    pytester.makeconftest(KIND_PLUGIN)
    pytester.makefile(
        ".toml", **{"edge-devices": f'[devices.bench]\nkind = "inprocess"\nworkdir = "{pytester.path}/w"\n'}
    )
    pytester.makepyfile(SESSION_TEST.format(model=model_dir / "conv_matmul_qdq.onnx", kind="inprocess"))
    result = run(pytester, "-v", "--edge-device=bench")
    result.stdout.fnmatch_lines(["*test_matches_cpu[[]bench-cpu[]] PASSED*"])
    result.assert_outcomes(passed=1)


def test_a_make_device_hook_builds_a_built_in_kind_its_own_way(pytester, model_dir):
    pytester.makeconftest(MAKE_PLUGIN)
    pytester.makefile(".toml", **{"edge-devices": f'[devices.local]\nworkdir = "{pytester.path}/w"\n'})
    pytester.makepyfile(SESSION_TEST.format(model=model_dir / "conv_matmul_qdq.onnx", kind="local"))
    for _ in range(2):  # the second run with the command's start hint: the run starts no worker of its own either
        result = run(pytester, "-v")
        result.stdout.fnmatch_lines(["*test_matches_cpu[[]local-cpu[]] PASSED*"])
        result.assert_outcomes(passed=1)


@pytest.mark.parametrize("with_plugin", [False, True], ids=["without the plugin", "with it"])
def test_an_unknown_kind_is_one_line_naming_the_valid_kinds(pytester, model_dir, with_plugin):
    if with_plugin:
        pytester.makeconftest(KIND_PLUGIN)
    pytester.makefile(".toml", **{"edge-devices": '[devices.bench]\nkind = "inprocss"\n'})
    pytester.makepyfile(SESSION_TEST.format(model=model_dir / "conv_matmul_qdq.onnx", kind="inprocess"))
    result = run(pytester, "--edge-device=bench")
    kinds = '"local", "ssh", "labgrid", "qai-hub"' + (', "inprocess"' if with_plugin else "")
    hint = " (did you mean 'inprocess'?)" if with_plugin else ""
    result.stderr.fnmatch_lines(
        [
            f'ERROR: {pytester.path / "edge-devices.toml"}: [[]devices.bench[]] key "kind": expected one of {kinds}, '
            f"got 'inprocss'{hint}"
        ]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
