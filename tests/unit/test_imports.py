"""Importing the plugin stays light: runs without edge tests never load numpy, onnx, onnxruntime or SSH."""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "onnx", "onnxruntime", "fabric", "paramiko")


def test_importing_the_plugin_loads_no_heavy_module():
    code = ("import json, sys, pytest_edgeort.plugin; "
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
