"""Golden files: what an update says changed in the provenance, and which goldens no item reads."""

from __future__ import annotations

from pytest_edgeort.checks.golden import provenance_changes, unused_goldens


def test_provenance_changes_name_model_sdk_and_options_in_one_line():
    old = {"model": "m.onnx", "model_sha256": "a", "qnn_sdk": "2.47.0", "provider_options": {"x": "1"}, "written": "t"}
    new = {**old, "model_sha256": "b", "qnn_sdk": "2.51.0", "provider_options": {"x": "2"}, "written": "u"}
    assert provenance_changes(old, new) == [
        "provenance changed: model_sha256 a -> b; qnn_sdk 2.47.0 -> 2.51.0; provider_options {'x': '1'} -> {'x': '2'}"
    ]
    assert provenance_changes(old, dict(old, written="later")) == []
    assert provenance_changes(None, new) == [] and provenance_changes({}, new) == []


def test_unused_goldens_are_those_of_providers_the_suite_does_not_run(tmp_path):
    for name in ("qnn-htp.npz", "qnn-htp.json", "cpu.npz", "qnn-gpu.npz", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert unused_goldens(tmp_path, ["qnn-htp"]) == [tmp_path / "cpu.npz", tmp_path / "qnn-gpu.npz"]
    assert unused_goldens(tmp_path, ()) == [tmp_path / "cpu.npz", tmp_path / "qnn-gpu.npz", tmp_path / "qnn-htp.npz"]
    assert unused_goldens(tmp_path / "missing", ["cpu"]) == []
