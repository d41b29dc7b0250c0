"""QNN's per-op profile on the real HTP simulator: fetched from the worker, summed per ONNX node and op type."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from pytest_edgeort.checks.profile import OTHER, PROFILE_CSV, profile, summarise
from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.devices.session import EdgeSession
from pytest_edgeort.errors import EdgeSessionError
from pytest_edgeort.model.info import model_info
from tests.support import models

pytest.importorskip("onnxruntime_qnn")


def open_session(device, path, provider):
    spec = resolve_provider(provider)
    return EdgeSession(device, model_info(path), spec, provider_options(spec, where="test"), True, lambda _: None)


@pytest.fixture
def device(tmp_path):
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path / "work")))
    yield device
    device.close()


def test_the_profile_of_a_deep_model_names_its_conv_nodes_and_keeps_the_raw_files(device, tmp_path):
    deep = models.deep_qdq_chain(tmp_path)
    session = open_session(device, deep, "qnn-htp")
    feed = {"x": np.random.default_rng(0).random((1, 4, 8, 8), dtype=np.float32)}
    summary = profile(session, feed, tmp_path / "kept", runs=2)
    assert summary.runs == 2 and summary.simulated
    assert (summary.covered, summary.compute_nodes) == (12, 12)  # every Conv of the model has cycles
    # simulated cycles vary a lot between runs: which nodes lead is not fixed, what they are is
    assert "Conv" in dict(summary.op_types) and set(dict(summary.op_types)) <= {"Conv", OTHER}
    assert {n for n, _, _ in summary.nodes} <= {f"conv{i}" for i in range(1, 13)} | {OTHER}
    assert (tmp_path / "kept" / PROFILE_CSV).is_file() and str(tmp_path / "kept" / PROFILE_CSV) in summary.files
    assert not any((tmp_path / "work" / "profiles").iterdir())  # the device keeps nothing
    assert "simulated cycles" in summary.to_dict()["note"]


def test_a_cpu_session_has_no_profile(device, tmp_path):
    session = open_session(device, models.deep_qdq_chain(tmp_path), "cpu")
    with pytest.raises(EdgeSessionError, match="no per-op profile: only QNN"):
        session.profile({"x": np.zeros((1, 4, 8, 8), np.float32)})


def test_cycles_go_to_the_compute_node_of_each_qnn_op_by_its_name_before_the_layout_suffix(tmp_path):
    deep = onnx.load(str(models.deep_qdq_chain(tmp_path)))
    header = "Msg Timestamp,Message,Time,Unit of Measurement,Timing Source,Event Level,Event Identifier,ONNX Source Ops"
    rows = [
        "0,BACKEND,400,CYCLES,BACKEND,ROOT,Accelerator (execute) time (cycles),",
        "0,NODE,100,CYCLES,BACKEND,SUB-EVENT,Input OpId_2 (cycles),",
        "0,NODE,300,CYCLES,BACKEND,SUB-EVENT,conv3_token_13:OpId_39 (cycles),b3_DequantizeLinear;conv3_token_13",
        "0,NODE,100,CYCLES,BACKEND,SUB-EVENT,Transpose_token_7:OpId_9 (cycles),b3_DequantizeLinear;Transpose_token_7",
    ]
    summary = summarise("\n".join([header, *rows]), deep)
    assert summary.nodes == (("conv3", "Conv", 0.6), (OTHER, "", 0.4))
    assert summary.op_types == (("Conv", 0.6), (OTHER, 0.4))
    assert (summary.runs, summary.covered) == (1, 1)
