"""A session's provenance (the facts every record of it carries) is worked out once and again whenever what it is
made from changes: the backend (a worker that died and was replaced), the name a view of it goes by."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest

from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.devices.session import EdgeSession
from pytest_edgeort.model.info import model_info
from tests.support.runs import require_qnn

require_qnn()


@pytest.fixture
def session(tmp_path, model_dir) -> Iterator[EdgeSession]:
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path / "work"), command_timeout=60.0))
    spec = resolve_provider("qnn-htp")
    model = model_info(model_dir / "conv_matmul_qdq.onnx")
    yield EdgeSession(device, model, spec, provider_options(spec), cpu_fallback=True, on_create=lambda s: None)
    device.close()


def test_a_session_on_a_new_worker_reports_the_new_sessions_facts(session):
    first = session.provenance()
    assert first["ep_context"]["state"] == "stored"  # compiled by this worker and put in the EP-context cache
    session._live_backend().client.kill()
    session.run({"x": np.zeros((1, 3, 16, 16), np.float32)})  # a new worker opens the session again
    assert session.provenance()["ep_context"]["state"] == "hit"


def test_a_view_under_another_name_reports_its_own_name_and_the_session_keeps_its_own(session):
    before = session.provenance()
    view = session.named("pkg:some-models/models/conv.onnx")
    assert view.provenance()["model_path"] == "pkg:some-models/models/conv.onnx"
    assert session.provenance() == before


def test_changing_the_facts_a_caller_got_changes_no_later_record(session):
    facts = session.provenance()
    facts["model"] = "changed"
    facts["provider_options"]["soc_model"] = "60"
    again = session.provenance()
    assert again["model"] == "conv_matmul_qdq.onnx"
    assert "soc_model" not in again["provider_options"]
