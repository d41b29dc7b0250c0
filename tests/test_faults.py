"""The fault table: each expected problem is one line naming the file/key/device, and the run goes on."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime_qnn", reason="the QNN HTP simulator (onnxruntime-qnn) is the NPU under test")

QUICK_TEST = '''
import pytest

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("cpu")
def test_quick(edge_session, edge_inputs):
    assert edge_session.run(edge_inputs)

def test_plain():
    pass
'''


@pytest.mark.parametrize("key, value, expected", [
    ("python", "/opt/no such/python3", "device 'local': cannot start the worker with /opt/no such/python3: "
                                       "No such file or directory"),
    ("workdir", "/proc/edgeort", "device 'local': worker on device 'local': cannot create the workdir "
                                 "/proc/edgeort: *"),
], ids=["missing python", "unwritable workdir"])
def test_a_local_device_that_cannot_start_is_one_line_and_unavailable(pytester, model_dir, key, value, expected):
    pytester.makefile(".toml", **{"edge-devices": f'[devices.local]\n{key} = "{value}"\n'})
    pytester.makepyfile(QUICK_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "--edge-report=report.json")
    assert result.ret == 0 and "INTERNALERROR" not in result.stdout.str()
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED * {expected}"])
    assert json.loads((pytester.path / "report.json").read_text())["outcomes"]
    strict = pytester.runpytest("-p", "no:cacheprovider", "--edge-strict")
    strict.assert_outcomes(passed=1, errors=1)


def test_a_worker_that_dies_inside_a_test_body_is_one_line(pytester, model_dir):
    """edge_session.run on a dead worker: no traceback through plugin internals, no feed arrays dumped."""
    pytester.makepyfile(f'''
import os
import signal
import pytest

@pytest.mark.edge_model(r"{model_dir / 'conv_matmul_qdq.onnx'}")
@pytest.mark.edge_providers("cpu")
def test_dies(edge_session, edge_inputs):
    os.kill(edge_session.device.clients["default"].pid, signal.SIGKILL)
    edge_session.run(edge_inputs)
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "Traceback" not in text and "pytest_edgeort" not in text and "array(" not in text
    assert "During handling" not in text
    result.stdout.fnmatch_lines(["*_ test_dies[[]local-cpu[]] _*",
                                 "conv_matmul_qdq.onnx on local/cpu: worker on device 'local' died during run: "
                                 "killed by SIGKILL", "*short test summary*"])
