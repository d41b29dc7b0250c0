"""Opt-in: the digits_cnn example suite on a REAL Qualcomm AI Hub device. It runs only when
``EDGEORT_AIHUB_DEVICE`` names an AI Hub device (e.g. "Samsung Galaxy S24 (Family)") and the qai-hub client
has a token (``qai-hub configure``); otherwise it skips with one line. It costs AI Hub minutes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_digits_suite_on_a_real_ai_hub_device(tmp_path):
    device = os.environ.get("EDGEORT_AIHUB_DEVICE")
    if not device:
        pytest.skip("live AI Hub test: set EDGEORT_AIHUB_DEVICE to an AI Hub device name (and run qai-hub configure)")
    api_utils = pytest.importorskip("qai_hub.api_utils", reason="the qai-hub client is not installed")
    if not Path(api_utils.get_config_path()).is_file():
        pytest.skip(f"live AI Hub test: no token ({api_utils.get_config_path()} is missing): run qai-hub configure")
    inventory = tmp_path / "edge-devices.toml"
    inventory.write_text(f'[devices.hub]\nkind = "qai-hub"\ndevice = "{device}"\n')
    report = tmp_path / "report.json"
    args = ["--edge-device=hub", f"--edge-devices-file={inventory}", f"--edge-report={report}", "-rs"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, "example_suites/digits_cnn"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "TEST DOUBLE" not in done.stdout  # a real device: nothing labels it a stand-in
    assert '"test_double": false' in report.read_text()
