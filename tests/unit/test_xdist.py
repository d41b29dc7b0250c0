"""Reading the device from an xdist node id (the controller sees node ids only)."""
from __future__ import annotations

import pytest

from pytest_edgeort.xdist import device_of

DEVICES = ("board1", "rb3", "rb3-01", "local")


@pytest.mark.parametrize("nodeid, device", [
    ("tests/test_m.py::test_matches_cpu[board1-qnn-htp]", "board1"),
    ("example_suites/digits_cnn/edge_suite.toml::conformance[rb3-01-qnn-htp]", "rb3-01"),  # the longer name wins
    ("example_suites/digits_cnn/edge_suite.toml::latency[rb3-cpu]", "rb3"),
    ("tests/test_m.py::test_matches_cpu[board1-cpu-3]", "board1"),  # another parameter after the provider
    ("tests/test_m.py::test_matches_cpu[7-rb3-01-qnn-htp-fp16]", "rb3-01"),  # and before the device
    ("tests/test_m.py::TestX::test_y[local-QNNExecutionProvider]", "local"),
    ("tests/test_m.py::test_plain", None),
    ("tests/test_m.py::test_plain[board1]", None),  # a device name alone is no edge id (no provider after it)
    ("tests/test_m.py::test_plain[board10-cpu]", None),  # whole parts only
    ("tests/test_m.py::test_plain[xboard1-cpu]", None),
])
def test_device_of_nodeid(nodeid, device):
    assert device_of(nodeid, DEVICES) == device
