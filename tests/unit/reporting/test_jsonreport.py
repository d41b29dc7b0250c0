"""The JSON report document and its atomic write."""

from __future__ import annotations

import json
import os

import pytest

from pytest_edgeort.errors import ReportError
from pytest_edgeort.reporting.jsonreport import SCHEMA, build_report, write_report
from pytest_edgeort.reporting.schema import CheckRecord


def test_the_document_joins_records_with_their_outcome():
    document = build_report(
        [CheckRecord.from_dict({"nodeid": "a", "snr_db": float("-inf")}), CheckRecord.from_dict({"check": "x"})],
        {"local": {}},
        7,
        {"a": "failed"},
        [("no board", 2)],
        2,
    ).to_dict()
    assert document["schema"] == SCHEMA and document["interrupted"] is True and document["seed"] == 7
    assert document["results"] == [
        {"nodeid": "a", "snr_db": "-inf", "outcome": "failed"},
        {"check": "x", "outcome": "unknown"},
    ]
    assert document["skipped"] == [{"reason": "no board", "count": 2}]


def test_write_report_creates_the_folder(tmp_path):
    target = tmp_path / "out" / "report.json"
    write_report(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(target.parent) == ["report.json"]


def test_an_unwritable_report_is_one_line_naming_the_path(tmp_path):
    target = tmp_path / "report.json"
    target.mkdir()
    with pytest.raises(ReportError, match=rf"^edgeort: cannot write the --edge-report {target}: ") as excinfo:
        write_report(target, {"a": 1})
    assert "\n" not in str(excinfo.value)
    assert os.listdir(tmp_path) == ["report.json"]  # no temp file left behind
