"""What one output's comparison costs, by output size: time and peak memory of ``compare_output`` on a healthy
deep u8 output (Laplace errors in LSB, median 0) with a band of rows offset, the region windows' statistics counted
per line (how the engine runs) and copied a few windows at a time (its fallback for float errors; before session 9
every window at once), side by side; 'same': both name the same worst region.

Then a failing float detector head (fp16 on the HTP: errors ~0.05 with a band of anchors 0.8 off): naming its
pattern within ``NAMING_COPY_VALUES`` copied window values (how the engine runs) and from every window (before
session 10; timed once: ~80 s for [1, 25200, 85]), side by side; 'same': both give the offset's real extent.

    python -m benchmarks.compare_cost [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from typing import Tuple
from unittest import mock

import numpy as np

from pytest_edgeort.compare import patterns
from pytest_edgeort.compare.engine import compare_output
from pytest_edgeort.compare.tolerance import default_tolerance

#: (output shape, Laplace scale of the errors in LSB): the last two a detector's [1, 8400, 85] output (YOLO at 640),
#: its errors spanning ~50 and ~1,100 LSB
SHAPES = [
    ((1, 10), 1.0),
    ((1, 1000), 1.0),
    ((4, 1, 96, 320), 1.0),
    ((1, 1, 160, 160), 1.0),
    ((1, 1, 640, 640), 1.0),
    ((4, 1, 640, 640), 1.0),
    ((1, 8400, 85), 2.0),
    ((1, 8400, 85), 40.0),
]


def measure(a: np.ndarray, e: np.ndarray, repeats: int) -> Tuple[float, float, str]:
    """Best time (ms) and peak traced memory (MB) of one comparison, and where its worst bias is."""
    tol = default_tolerance("u8", True, depth=40, shape=a.shape)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        res = compare_output("y", a, e, tol, 1.0)
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    compare_output("y", a, e, tol, 1.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return 1000 * best, peak / 1e6, (res.bias or {}).get("where", "-")


def float_failure(shape: Tuple[int, ...], repeats: int) -> Tuple[float, float, str]:
    """Best time (s) of comparing a float head whose band of anchors is off, once within the naming budget and
    once with every window; the extents each names."""
    rng = np.random.default_rng(0)
    e = rng.uniform(0, 200, shape).astype(np.float32)
    a = (e + rng.laplace(0, 0.05, shape)).astype(np.float32)
    a[:, 100:1500, :] += 0.8
    tol = default_tolerance("fp32", True, depth=40, shape=shape)

    def timed() -> Tuple[float, str]:
        start = time.perf_counter()
        res = compare_output("y", a, e, tol, None)
        return time.perf_counter() - start, res.pattern_text.partition("off around it: ")[2]

    budgeted = min(timed() for _ in range(repeats))
    with mock.patch.object(patterns, "NAMING_COPY_VALUES", None):
        every = timed()
    return budgeted[0], every[0], "same" if budgeted[1] == every[1] else f"{budgeted[1]} / {every[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'output, errors':>24} {'counted ms':>11} {'MB':>7} {'copied ms':>10} {'MB':>7} {'speed-up':>9}  same")
    for shape, scale in SHAPES:
        e = np.rint(rng.uniform(0, 200, shape))
        a = e + np.rint(rng.laplace(0, scale, shape))
        if len(shape) == 4:
            rows = shape[-2]
            a[..., rows // 3 : rows // 3 + rows // 16, :] += 6
        counted = measure(a, e, args.repeats)
        with mock.patch.object(patterns, "_counted_stats", lambda *args: None):  # the fallback for every window
            copied = measure(a, e, args.repeats)
        print(
            f"{str(shape) + f' +-{scale:g}':>24} {counted[0]:11.1f} {counted[1]:7.1f} "
            f"{copied[0]:10.1f} {copied[1]:7.1f} {copied[0] / counted[0]:8.1f}x  {counted[2] == copied[2]}"
        )
    print(
        f"\nnaming a failing float head's pattern: {'within budget s':>16} {'every window s':>15} "
        f"{'speed-up':>9}  extent"
    )
    for shape in ((1, 8400, 85), (1, 25200, 85)):
        budgeted, every, same = float_failure(shape, args.repeats)
        print(f"{str(shape):>38} {budgeted:16.2f} {every:15.2f} {every / budgeted:8.1f}x  {same}")


if __name__ == "__main__":
    main()
