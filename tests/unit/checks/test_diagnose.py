"""Layer-wise diagnosis on the real QNN HTP simulator: faults injected at a known node of a deep model (the
provider runs the faulty model, the reference the healthy one) are named by that node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_edgeort.compare.tolerance import ToleranceSpec
from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.devices.session import EdgeSession
from pytest_edgeort.model.info import model_info
from tests.support import models

pytest.importorskip("onnxruntime_qnn")

LAYER6 = "r6_DequantizeLinear_Output"  # the dequantized output of layer 6 of 12


@pytest.fixture(scope="module")
def deep(tmp_path_factory) -> Path:
    return models.deep_qdq_chain(tmp_path_factory.mktemp("deep"))


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path_factory.mktemp("work"))))
    yield device
    device.close()


def open_session(device, path: Path, provider: str) -> EdgeSession:
    spec = resolve_provider(provider)
    return EdgeSession(device, model_info(path), spec, provider_options(spec, where="test"), True, lambda _: None)


def diagnose(device, provider_model: Path, reference_model: Path, tmp_path: Path, **kwargs):
    session = open_session(device, provider_model, "qnn-htp")
    reference = open_session(device, reference_model, "cpu")
    feed = {"x": np.random.default_rng(0).random(session.model.inputs[0].shape, dtype=np.float32)}
    try:
        return session.diagnose(feed, reference=reference, cache=tmp_path / "prefixes", **kwargs)
    finally:
        session.close()
        reference.close()


def garbage_channel() -> np.ndarray:
    offsets = np.zeros((1, 4, 8, 8), np.int64)
    offsets[0, 2] = np.random.default_rng(1).integers(0, 250, (8, 8))
    return offsets


@pytest.mark.parametrize(
    ("fault", "tolerance", "pattern"),
    [
        (("add", 40), {}, "constant offset: median error +40 LSB"),
        (("mul", 1.5), {"lsb": 8}, "gain"),
        (("add", garbage_channel()), {}, "channel offset"),
    ],
    ids=["offset", "gain", "garbage-channel"],
)
def test_a_fault_after_layer_6_of_12_is_named_by_its_node(device, deep, tmp_path, fault, tolerance, pattern):
    faulty = models.with_inner_fault(deep, tmp_path / "faulty.onnx", LAYER6, fault)
    found = diagnose(device, faulty, deep, tmp_path, tolerance=ToleranceSpec(tolerance))
    assert found.found is not None, found.message
    assert (found.found.node, found.found.op_type) == (f"{LAYER6}_fault_op", "Add" if fault[0] == "add" else "Mul")
    assert pattern in found.found.pattern
    assert found.message.startswith(f"first divergence: node '{LAYER6}_fault_op' ")
    assert found.found.inputs_error is not None and found.found.inputs_error <= 3
    assert found.strategy == "bisect" and found.sessions <= 2 * (2 + 4)
    assert [s.index for s in found.steps][0] == 11  # the last tensor first, then halvings


def test_a_healthy_deep_model_reports_no_divergence(device, deep, tmp_path):
    found = diagnose(device, deep, deep, tmp_path)
    assert found.found is None and found.unresolved is None
    assert found.message.startswith("no divergence: the outputs agree with the reference under the check's rules")


def test_marking_every_tensor_as_an_output_names_the_same_node(device, deep, tmp_path):
    faulty = models.with_inner_fault(deep, tmp_path / "faulty.onnx", LAYER6, ("add", 40))
    found = diagnose(device, faulty, deep, tmp_path, strategy="mark")
    assert found.found is not None and found.found.node == f"{LAYER6}_fault_op"
    assert (found.strategy, found.sessions) == ("mark", 2)
    assert "marked outputs over 12 tensors: 2 sessions" in found.message


def test_a_float_model_steps_past_a_prefix_qnn_refuses(device, tmp_path):
    healthy = models.det_chain(tmp_path / "det_chain.onnx")
    faulty = models.with_float_fault(healthy, tmp_path / "faulty.onnx", "t2", 1.0)
    found = diagnose(device, faulty, healthy, tmp_path)
    assert found.found is not None and (found.found.node, found.found.op_type) == ("t2_fault", "Add")
    assert "the prefix ending at 'd' was refused by qnn-htp" in found.message
    assert "stepped to 't1'" in found.message
    assert [s.outcome for s in found.steps if s.tensor == "d"] == ["rejected"]


def test_a_fault_next_to_a_refused_prefix_says_what_it_could_not_narrow(device, tmp_path):
    healthy = models.det_chain(tmp_path / "det_chain.onnx")
    faulty = models.with_float_fault(healthy, tmp_path / "faulty.onnx", "t1", 1.0)
    found = diagnose(device, faulty, healthy, tmp_path)
    assert found.found is None
    assert found.message.startswith(
        "could not narrow below 2 tensors, from 'd' to 't1': the provider refused every prefix in between"
    )
