"""Predicted content types per file for tools/measure_suite.py (labels from magika's own config)."""

import importlib.resources
import json


def report(here, arrays, n, outs):
    cfg = json.loads(importlib.resources.files("magika").joinpath("models/standard_v3_3/config.min.json").read_text())
    labels = cfg["target_labels_space"]
    files = json.loads((here / "files.json").read_text())["inputs"][:n]
    preds = {k: next(iter(v.values())).reshape(n, -1) for k, v in outs.items()}
    agree = {k: int((p.argmax(1) == preds["float"].argmax(1)).sum()) for k, p in preds.items()}
    print(f"  top-1 agreement with float: {agree}")
    for i, f in enumerate(files):
        row = "  ".join(f"{k}={labels[p[i].argmax()]}({p[i].max():.2f})" for k, p in preds.items())
        print(f"  {f:60s} {row}")
