"""The edgeort summary: one row per model x device x provider, failures first."""

from __future__ import annotations

from pathlib import Path

from pytest_edgeort.reporting.schema import CheckRecord
from pytest_edgeort.reporting.summary import build_rows, format_rows, lock_lines, skip_counts, u8_kernel_notes


def test_rows_put_failures_first_and_keep_the_worst_metrics(tmp_path):
    records = [
        {
            "nodeid": "a",
            "model": "m.onnx",
            "model_path": str(tmp_path / "m.onnx"),
            "device": "local",
            "provider": "qnn-htp",
            "comparison": {"outputs": [{"max_lsb": 2, "snr_db": 40.0}]},
        },
        {
            "nodeid": "b",
            "model": "m.onnx",
            "model_path": str(tmp_path / "m.onnx"),
            "device": "local",
            "provider": "qnn-htp",
            "comparison": {"outputs": [{"max_lsb": 5, "snr_db": 30.0}]},
        },
        {"nodeid": "c", "model": "z.onnx", "device": "local", "provider": "cpu", "passed": False},
    ]
    rows = build_rows([CheckRecord.from_dict(r) for r in records], {"a": "passed", "b": "passed"}, Path(tmp_path))
    assert [(r.model, r.verdict, r.checks) for r in rows] == [("z.onnx", "FAIL", "0/1"), ("m.onnx", "PASS", "2/2")]
    assert (rows[1].max_lsb, rows[1].snr_db) == (5, 30.0)
    lines = format_rows(rows)
    assert lines[0].split()[:4] == ["model", "device", "provider", "verdict"] and len(lines) == 5
    assert lines[4].startswith("max LSB: largest error in steps of the output's quantization")


def test_a_row_names_the_output_and_unit_of_its_max_lsb_and_shows_the_judged_snr():
    outputs = [
        {"name": "scores", "precision": "u8", "max_lsb": 2, "snr_db": 20.5, "snr_q_db": 41.0, "topk_agreement": 1.0},
        {"name": "boxes", "precision": "u16", "max_lsb": 300, "snr_db": 18.0, "snr_q_db": 35.2},
    ]
    record = {
        "nodeid": "a",
        "model": "m.onnx",
        "device": "local",
        "provider": "qnn-htp",
        "comparison": {"outputs": outputs},
    }
    lines = format_rows(build_rows([CheckRecord.from_dict(record)], {"a": "passed"}))
    header, row = lines[0], lines[2]
    assert "max LSB, output" in header and "SNRq dB" in header and "top-k %" in header
    assert row[header.index("max LSB, output") :].split()[:5] == ["300", "u16", "boxes", "35.2", "100"]
    assert "min_snr_db judges (errors within 1 LSB not counted)" in lines[3]


def test_skip_counts_and_lock_waits():
    assert skip_counts(["x", "y", "x"]) == [("x", 2), ("y", 1)]
    facts = {"b1": {"board_lock": {"waited_for": "ci@h pid 1", "waited_s": 2.04, "path": "/l"}}, "b2": {}}
    assert lock_lines(facts) == ["edgeort device b1: waited 2.0 s for the board lock /l (held by ci@h pid 1)"]


def test_simulated_latency_is_marked_in_the_row_and_explained_once():
    record = {"nodeid": "a", "model": "m.onnx", "device": "local", "provider": "qnn-htp", "speedup_vs_cpu": 0.1}
    simulated = dict(record, latency={"p50_ms": 0.34, "p90_ms": 0.4}, latency_simulated=True)
    lines = format_rows(build_rows([CheckRecord.from_dict(simulated)], {"a": "passed"}))
    assert lines[2].split()[-3:] == ["0.340~", "0.400~", "0.1~"]
    assert lines[3].startswith("ms ~: simulated latency (QNN's HTP simulator on x86-64)")
    board = dict(record, latency={"p50_ms": 0.34, "p90_ms": 0.4}, latency_simulated=False)
    assert format_rows(build_rows([CheckRecord.from_dict(board)], {"a": "passed"}))[2].split()[-3:] == [
        "0.340",
        "0.400",
        "0.1",
    ]


def test_a_cpu_reference_on_a_host_with_other_u8_kernels_gets_a_note():
    facts = {
        "local": {"u8_isa": ["avx2", "avx512f", "avx512bw", "avx512_vnni"]},
        "ci": {"u8_isa": ["avx2"]},  # a runner without VNNI: ORT's u8 kernels saturate there
        "twin": {"u8_isa": ["avx512bw", "avx2", "avx512f", "avx512_vnni"]},
    }
    records = [
        {"device": "ci", "reference_device": "local"},
        {"device": "ci", "reference_device": "local"},
        {"device": "twin", "reference_device": "local"},  # the same kernels: no note
        {"device": "ci", "reference_device": "ci"},  # its own CPU: no note
        {"device": "local"},  # the test's own arrays: no reference device
    ]
    assert u8_kernel_notes([CheckRecord.from_dict(r) for r in records], facts) == [
        "note: ci is compared against a CPU reference on local, whose u8 kernels differ (avx2, avx512f, avx512bw, "
        "avx512_vnni vs avx2 on ci): u8 results differ between such kernels by rounding and saturation; "
        "reference='cpu' uses the device's own CPU"
    ]
