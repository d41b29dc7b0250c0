"""Results on their way through xdist: payloads taken from a worker, merged in the controller, outcomes noted."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_edgeort.junit import record_error, record_identity
from pytest_edgeort.reporting.schema import CheckRecord
from pytest_edgeort.results import RunResults


def report(when: str, outcome: str, nodeid: str = "t.py::test[local-cpu]", **extra: Any) -> Any:
    return SimpleNamespace(
        nodeid=nodeid,
        when=when,
        outcome=outcome,
        passed=outcome == "passed",
        failed=outcome == "failed",
        skipped=outcome == "skipped",
        longrepr=None,
        **extra,
    )


def test_a_payload_carries_pending_records_and_changed_facts_once(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")  # (whether or not this test itself runs under xdist)
    worker = RunResults()
    worker.record(CheckRecord.from_dict({"nodeid": "a", "snr_db": float("inf")}))
    payload = worker.take_payload(1.0, 2.0, {"local": {"python": "3.11"}})
    json.dumps(payload)  # plain data: survives xdist's report transport
    assert payload["records"] == [
        {"started": 1.0, "finished": 2.0, "attempt": 1, "nodeid": "a", "snr_db": "inf", "xdist_worker": "gw3"}
    ]
    assert worker.pending == [] and payload["devices"] == {"local": {"python": "3.11"}}

    controller = RunResults()
    controller.merge_payload(payload)
    assert [r.to_dict() for r in controller.records] == payload["records"]
    assert controller.device_facts == payload["devices"]


def test_facts_already_known_are_not_sent_again():
    results = RunResults()
    results.merge_payload({"devices": {"local": {"python": "3.11"}}})
    assert results.take_payload(0, 0, {"local": {"python": "3.11"}})["devices"] == {}
    assert results.take_payload(0, 0, {"local": {"python": "3.12"}})["devices"] == {"local": {"python": "3.12"}}


@pytest.mark.parametrize(
    "reports, outcome",
    [
        ([report("setup", "passed"), report("call", "passed"), report("teardown", "passed")], "passed"),
        ([report("setup", "passed"), report("call", "failed"), report("teardown", "passed")], "failed"),
        ([report("setup", "failed")], "error"),
        ([report("setup", "passed"), report("call", "passed"), report("teardown", "failed")], "error"),
        ([report("setup", "passed"), report("call", "skipped", wasxfail="known")], "xfailed"),
    ],
)
def test_the_final_outcome_of_a_test(reports, outcome):
    results = RunResults()
    for each in reports:
        results.note_outcome(each)
    assert results.outcomes == {"t.py::test[local-cpu]": outcome}


def test_skip_reasons_are_kept_without_their_prefix():
    results = RunResults()
    skipped = report("setup", "skipped")
    skipped.longrepr = ("t.py", 3, "Skipped: device board1 is unreachable")
    results.note_outcome(skipped)
    assert results.skip_reasons == ["device board1 is unreachable"]
    assert results.outcomes == {"t.py::test[local-cpu]": "skipped"}


def test_junit_identity_is_recorded_once():
    item = SimpleNamespace(user_properties=[("edge_device", "board1")])
    record_identity(item, ("board1", "qnn-htp"))
    record_identity(item, ("board1", "qnn-htp"))
    record_error(item, "device board1: lost")
    assert item.user_properties == [
        ("edge_device", "board1"),
        ("edge_provider", "qnn-htp"),
        ("edge_error", "device board1: lost"),
    ]
