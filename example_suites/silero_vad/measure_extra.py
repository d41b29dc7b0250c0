"""Speech decisions (p > 0.5) for tools/measure_suite.py."""

import numpy as np


def report(here, arrays, n, outs):
    p = {k: v["output"].reshape(n) for k, v in outs.items()}
    for k in ("htp", "cpu"):
        agree = int(((p[k] > 0.5) == (p["float"] > 0.5)).sum())
        print(f"  decisions {k} vs float: {agree}/{n}; max |p - p_float| {np.abs(p[k] - p['float']).max():.3f}")
    print(
        f"  decisions htp vs cpu: {int(((p['htp'] > 0.5) == (p['cpu'] > 0.5)).sum())}/{n}; "
        f"max |p_htp - p_cpu| {np.abs(p['htp'] - p['cpu']).max():.3f}; speech steps (float) "
        f"{int((p['float'] > 0.5).sum())}"
    )
