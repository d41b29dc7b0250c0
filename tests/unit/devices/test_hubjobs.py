"""The AI Hub adapter's pure parts: the job ledger, the client's errors as one line, a profile as a placement."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgeort.devices.aihub import job_results, layer_placement
from pytest_edgeort.devices.hubjobs import Ledger, hub_error
from pytest_edgeort.errors import WorkerError
from pytest_edgeort.model.info import TensorInfo

client = pytest.importorskip("qai_hub.client", reason="the qai-hub client (pip install 'pytest-edgeort[aihub]')")


def test_the_ledger_keeps_jobs_for_reattaching_until_another_run_collected_them(tmp_path):
    ledger = Ledger(tmp_path / "s24.json")
    ledger.put("a", {"job": "j1"}, run="run1")
    ledger.collected("a", "run1")
    ledger.put("b", {"job": "j2"}, run="run1")
    assert ledger.entries == {"a": {"job": "j1", "collected_by": "run1"}, "b": {"job": "j2"}}
    ledger.put("c", {"job": "j3"}, run="run2")  # a later run: what run1 collected goes, what it left stays
    assert sorted(ledger.entries) == ["b", "c"]
    ledger.drop("b")
    assert Ledger(tmp_path / "s24.json").entries == {"c": {"job": "j3"}}


def test_a_broken_ledger_file_is_an_empty_ledger(tmp_path):
    (tmp_path / "s24.json").write_text("{not json")
    assert Ledger(tmp_path / "s24.json").entries == {}


def test_the_clients_boxed_errors_become_one_line_with_the_status_they_stand_for():
    boxed = client.UserError(f"Failed to authenticate.\n{client._visible_textbox('bad or expired API token')}")
    assert hub_error(boxed) == "AI Hub refused the token (HTTP 401): check the api_token of the qai-hub client.ini"
    limited = hub_error(client.RateLimitedError("Too Many Requests"))
    assert limited == "rate-limited by AI Hub (HTTP 429): Too Many Requests"
    upgrade = client.UserError(client._visible_textbox("This version of the Hub client is no longer supported."))
    assert "(HTTP 426): pip install --upgrade qai-hub" in hub_error(upgrade)
    other = hub_error(client.UserError(client._visible_textbox("Model is too large\nfor this device")))
    assert other == "Model is too large for this device" and "\n" not in other


def test_a_profile_becomes_a_placement_by_compute_unit():
    placement = layer_placement(
        [
            {"name": "conv", "type": "Conv", "compute_unit": "NPU"},
            {"name": "q", "type": "QuantizeLinear", "compute_unit": "CPU"},
            {"name": "odd", "type": "Foo", "compute_unit": "DSP"},
        ]
    )
    assert placement.count("QNNExecutionProvider") == 1 and placement.total == 3
    assert placement.nodes_not_on("QNNExecutionProvider") == {"Foo": ["odd"], "QuantizeLinear": ["q"]}


def test_a_jobs_results_must_be_what_the_model_declares_never_cast():
    declared = [TensorInfo("y", "uint8", (1, 4))]
    good = [{"y": np.zeros((1, 4), np.uint8)}] * 2
    assert len(job_results(good, declared, 2, "AI Hub job J")) == 2
    with pytest.raises(WorkerError, match=r"^AI Hub job J returned output 'y' as float32; the model declares uint8$"):
        job_results([{"y": np.zeros((1, 4), np.float32)}], declared, 1, "AI Hub job J")
    with pytest.raises(WorkerError, match=r"returned 1 result\(s\) with outputs \['z'\]; expected 2 with \['y'\]"):
        job_results([{"z": np.zeros(1)}], declared, 2, "AI Hub job J")
