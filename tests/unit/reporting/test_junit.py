"""JUnit properties of a test that compares many times: one of each metric per output, the worst of them."""

from __future__ import annotations

from types import SimpleNamespace

from pytest_edgeort.junit import record_identity, record_metrics, record_provenance
from pytest_edgeort.reporting.schema import CheckRecord


def comparison(max_lsb, snr_db, topk=1.0):
    return CheckRecord(
        nodeid="t.py::test_dataset[local-qnn-htp]",
        check="conformance",
        device="local",
        provider="qnn-htp",
        model_sha256="ab" * 32,
        comparison={
            "passed": True,
            "outputs": [
                {"name": "y", "max_lsb": max_lsb, "max_abs": max_lsb * 0.01, "snr_db": snr_db, "topk_agreement": topk}
            ],
        },
    )


def test_a_test_comparing_a_whole_data_set_carries_each_metric_once_with_its_worst_value():
    """A test that loops ``edge_compare`` over 1,000 samples once got 4,000 metric properties, and every
    comparison rescanned them all (the 3,000th took 3.4 ms instead of 0.4)."""
    item = SimpleNamespace(user_properties=[])
    record_identity(item, ("local", "qnn-htp"))
    for i in range(1000):
        record = comparison(
            max_lsb=9 if i == 400 else i % 3,
            snr_db="inf" if i == 0 else 40.0 - (i == 700) * 25,
            topk=0.5 if i == 900 else 1.0,
        )
        record_provenance(item, record)
        record_metrics(item, record)
    props = dict(item.user_properties)
    assert len(item.user_properties) == len(props)  # every name once
    assert {k: props[k] for k in props if k.startswith("edge_y_")} == {
        "edge_y_max_lsb": "9",
        "edge_y_max_abs": "0.09",
        "edge_y_snr_db": "15",
        "edge_y_topk_agreement": "0.5",
    }
    assert props["edge_device"] == "local" and props["edge_model_sha256"] == "ab" * 32


def test_a_nan_metric_is_the_worst_and_stays():
    item = SimpleNamespace(user_properties=[])
    for snr in (30.0, "nan", 10.0):
        record_metrics(item, comparison(max_lsb=1, snr_db=snr))
    assert dict(item.user_properties)["edge_y_snr_db"] == "nan"
