"""Shared fixtures for the plugin's own tests: real models built once per run."""
from __future__ import annotations

from pathlib import Path

import pytest

from . import models


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the test models: float + u8 QDQ conv/matmul, a wrong-channel variant, Det models."""
    directory = tmp_path_factory.mktemp("models")
    qdq = models.conv_matmul_qdq(directory)
    models.with_changed_channel(qdq, directory / "conv_matmul_qdq_wrong.onnx")
    models.det_model(directory / "det.onnx")
    models.det_model(directory / "det_only.onnx", neighbours=False)
    models.conv_matmul_float(directory / "dynamic.onnx", batch="batch")
    models.all_dtypes_identity(directory / "identities.onnx")
    return directory
