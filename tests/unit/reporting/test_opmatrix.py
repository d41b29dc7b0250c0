"""The op matrix's outputs from records: the op type x class table, the CSV rows, and records apart from the
model summary."""

from __future__ import annotations

from pytest_edgeort.reporting.opmatrix import CSV_COLUMNS, csv_rows, format_matrix, matrix_records
from pytest_edgeort.reporting.schema import CheckRecord
from pytest_edgeort.reporting.summary import build_rows


def case(name: str, op: str, klass: str, provider: str = "qnn-htp", **matrix) -> CheckRecord:
    fields = {"case": name, "op_type": op, "class": klass, "detail": f"{klass} detail", "seconds": 0.5, **matrix}
    return CheckRecord(
        nodeid=f"onnx-node-tests::{name}",
        check="op_matrix",
        device="local",
        provider=provider,
        model=name,
        op_matrix=fields,
    )


RECORDS = [
    case("test_relu", "Relu", "ok"),
    case("test_atan", "Atan", "rejected", error_class="QNN_COMMON_ERROR_MEM_ALLOC"),
    case("test_acos", "Acos", "cpu_fallback", cpu_ops={"Acos": 1}),
    case("test_relu_expanded", "Relu", "cpu_fallback", cpu_ops={"Max": 1, "Constant": 2}),
    case("test_relu", "Relu", "ok", provider="cpu"),
]


def test_the_table_counts_cases_per_op_type_and_class_per_device_and_provider_in_class_order():
    lines = format_matrix(matrix_records(RECORDS))
    assert lines[0] == "op matrix on local/cpu:"
    htp = lines[lines.index("op matrix on local/qnn-htp:") :]
    assert htp[1].split() == ["op", "type", "ok", "cpu_fallback", "rejected", "cases"]
    assert htp[3].split() == ["Acos", ".", "1", ".", "1"]
    assert htp[5].split() == ["Relu", "1", "1", ".", "2"]
    assert htp[6].split() == ["total", "1", "2", "1", "4"]
    assert lines[-1] == "op matrix: 5 cases classified in 2.5 s of case time (sum over workers)"


def test_one_csv_row_per_case_with_every_column():
    rows = csv_rows(matrix_records(RECORDS))
    assert [(r["case"], r["provider"], r["class"]) for r in rows] == [
        ("test_acos", "qnn-htp", "cpu_fallback"),
        ("test_atan", "qnn-htp", "rejected"),
        ("test_relu", "cpu", "ok"),
        ("test_relu", "qnn-htp", "ok"),
        ("test_relu_expanded", "qnn-htp", "cpu_fallback"),
    ]
    assert all(tuple(r) == CSV_COLUMNS for r in rows)
    assert rows[1]["error_class"] == "QNN_COMMON_ERROR_MEM_ALLOC" and rows[1]["signal"] == ""
    assert rows[4]["cpu_ops"] == "Constantx2 Maxx1"


def test_matrix_cases_have_no_row_in_the_model_summary_and_survive_the_json_round_trip():
    model_record = CheckRecord(
        nodeid="t.py::test[local-qnn-htp]",
        check="conformance",
        model="m.onnx",
        device="local",
        provider="qnn-htp",
        passed=True,
    )
    assert [r.model for r in build_rows([*RECORDS, model_record], {})] == ["m.onnx"]
    assert CheckRecord.from_dict(RECORDS[1].to_dict()) == RECORDS[1]
