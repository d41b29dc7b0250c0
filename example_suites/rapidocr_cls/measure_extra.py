"""Accuracy against labels.npz (0 = upright, 1 = rotated 180) for tools/measure_suite.py."""

import numpy as np


def report(here, arrays, n, outs):
    labels = np.load(here / "labels.npz")["label"][:n]
    for name, o in outs.items():
        y = next(iter(o.values())).reshape(n, -1)
        print(f"  accuracy {name:5s}: {int((y.argmax(1) == labels).sum())}/{n}   min top-1 prob {y.max(1).min():.3f}")
