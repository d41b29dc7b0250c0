"""The comparison engine's results on seeded random cases, one JSON line each, floats by their exact ``repr``: run it
on two checkouts and ``cmp`` the files to show that a change to the engine (a speed-up) leaves every verdict,
statistic, pattern and message as it was, bit for bit.

Cases: quantized float outputs of 14 shapes (scalars, empty, classifier rows, maps, detector heads) with each error
kind (noise, constant / channel / region offset, gain, outliers, garbage, sub-LSB noise, NaN, infinities, identical,
all zeros) under 13 tolerances (the u8 defaults by depth, and ones with atol, rtol, lsb, every ``stat``,
``max_mismatch``, SNR, cosine, top-k, ``vs_float``), some without a scale, some with a float baseline, a yardstick or
a two-head layout; integer, bool and fp16 outputs; and the error patterns and gain fit on their own.

    python -m benchmarks.compare_cases [--n 900] > new.jsonl
    PYTHONPATH=/tmp/old python -m benchmarks.compare_cases [--n 900] > old.jsonl   # a git worktree of the old commit
    cmp old.jsonl new.jsonl
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from pytest_edgeort.compare import patterns
from pytest_edgeort.compare.engine import Yardstick, compare_output
from pytest_edgeort.compare.layout import Head, Layout
from pytest_edgeort.compare.tolerance import Tolerance, default_tolerance

SHAPES = [
    (1, 10),
    (1, 1000),
    (1, 3, 16, 16),
    (2, 8, 32, 32),
    (1, 25, 85),
    (7,),
    (),
    (0,),
    (1, 64, 64),
    (1, 4, 80, 80),
    (3, 129),
    (1, 2, 7, 9),
    (1, 1001),
    (1, 100, 6),
]
KINDS = ["noise", "offset", "gain", "channel", "region", "outlier", "garbage", "tiny", "nan", "inf", "same", "zeros"]
INTEGER_DTYPES = [np.uint8, np.int8, np.int32, np.bool_, np.float16, np.int64]
TOLERANCES = [default_tolerance("u8", True, depth, (), True, None) for depth in (1, 3, 8, None)] + [
    default_tolerance("u8", True, 8, (), True, "Softmax"),
    Tolerance(atol=0.01, rtol=0.001),
    Tolerance(lsb=2.0, stat="quantile", quantile=0.9, bias_lsb=1.0, gain=0.02),
    Tolerance(lsb=1.0, max_mismatch=0.01, min_snr_db=25.0, min_cosine=0.999, topk=3, tie_lsb=1.0),
    Tolerance(atol=0.05, stat="median", min_snr_db=40.0, gain=0.01),
    Tolerance(lsb=3.0, stat="mean", bias_lsb=0.5),
    Tolerance(rtol=0.01, stat="max", vs_float=0.004),
    Tolerance(atol=0.01, lsb=2.0, max_mismatch=0.02),
    Tolerance(rtol=0.05, lsb=1.0, stat="quantile", quantile=0.95),
]


def exact(value: Any) -> Any:
    """``value`` with every float as its ``repr`` (so a last-bit change, or a float's type, shows)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {key: exact(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [exact(v) for v in value]
    return value


def quantized_case(rng: np.random.Generator, shape: Tuple[int, ...], kind: str) -> Tuple[np.ndarray, np.ndarray, float]:
    """(actual, expected, scale): a u8-like dequantized output and the provider's with errors of ``kind``."""
    n = int(np.prod(shape)) if shape else 1
    scale = float(rng.choice([0.0039, 0.0056632766500115395, 0.1, 1.7e-5]))
    q = rng.integers(0, 256, size=shape).astype(np.float64)
    zero_point = float(rng.integers(0, 256))
    e = np.asarray(((q - zero_point) * scale).astype(np.float32))
    noise = np.round(rng.normal(0, rng.choice([0.3, 0.7, 2.0]), size=shape))
    if kind == "offset":
        noise = noise + rng.choice([-5, 3, 8])
    if kind == "gain":
        noise = noise + 0.08 * (q - zero_point)
    if kind == "channel" and len(shape) >= 2:
        noise[(slice(None), 0)] += 6
    if kind == "region" and len(shape) >= 2:
        noise[tuple(slice(0, max(1, s // 4)) for s in shape)] += 9
    if kind == "outlier" and n:
        noise.reshape(-1)[rng.integers(0, n)] += 40
    if kind == "garbage" and len(shape) >= 2:
        noise[(slice(None), 0)] = rng.normal(0, 20, size=noise[(slice(None), 0)].shape).round()
    a = np.asarray((e + noise * scale).astype(np.float32))
    if kind == "tiny":
        a = np.asarray((e + rng.normal(0, scale / 200, size=shape)).astype(np.float32))
    if kind == "nan" and n:
        a.reshape(-1)[rng.integers(0, n)] = np.nan
        if rng.random() < 0.5:
            e.reshape(-1)[rng.integers(0, n)] = np.nan
    if kind == "inf" and n:
        a.reshape(-1)[rng.integers(0, n)] = np.inf
        e.reshape(-1)[rng.integers(0, n)] = -np.inf if rng.random() < 0.5 else np.inf
    if kind == "same":
        a = e.copy()
    if kind == "zeros":
        a, e = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    return a, e, scale


def run(call: Any, *args: Any) -> Any:
    """``call(*args)``, or the exception it raised as a string (a case that raises is a result too)."""
    try:
        return call(*args)
    except Exception as exc:  # noqa: BLE001 - recorded, compared across checkouts
        return {"error": f"{type(exc).__name__}: {exc}"}


def _compared(*args: Any) -> Dict[str, Any]:
    return compare_output(*args).to_dict()


def cases(n: int) -> Iterator[Dict[str, Any]]:
    """``n`` quantized float cases, ``n // 4`` integer/bool/fp16 ones and ``n // 4`` pattern cases."""
    rng = np.random.default_rng(1234)
    for i in range(n):
        shape, kind = SHAPES[i % len(SHAPES)], KINDS[(i // len(SHAPES)) % len(KINDS)]
        a, e, scale = quantized_case(rng, shape, kind)
        tol = TOLERANCES[int(rng.integers(0, len(TOLERANCES)))]
        use_scale = scale if rng.random() < 0.8 else None
        baseline = (
            np.asarray((e + rng.normal(0, scale, size=e.shape)).astype(np.float32)) if rng.random() < 0.4 else None
        )
        layout: Optional[Layout] = None
        if len(shape) >= 2 and shape[-1] >= 4 and rng.random() < 0.3:
            cut = shape[-1] // 2
            layout = Layout(axis=len(shape) - 1, heads=(Head(0, cut), Head(cut, shape[-1])), ndim=len(shape))
        yardstick = Yardstick(baseline, "a yardstick") if baseline is not None and rng.random() < 0.5 else None
        result = run(_compared, "y", a, e, tol, use_scale, baseline, layout, yardstick)
        yield {"case": i, "shape": list(shape), "kind": kind, "result": result}
    for i in range(n // 4):
        shape, dtype = SHAPES[i % len(SHAPES)], INTEGER_DTYPES[i % len(INTEGER_DTYPES)]
        a, e = (rng.integers(0, 3, size=shape).astype(dtype) for _ in range(2))
        if dtype is np.float16:
            a, e = (a * 0.37).astype(dtype), (e * 0.37).astype(dtype)
        tol = TOLERANCES[i % 5]
        yield {"integer": i, "dtype": str(dtype), "result": run(_compared, "z", a, e, tol, None)}
    for i in range(n // 4):
        shape = SHAPES[(i * 3) % len(SHAPES)]
        d, e = np.round(rng.normal(0, 1.5, size=shape)), rng.normal(0, 30, size=shape)
        if d.size:
            d.reshape(-1)[: max(1, d.size // 5)] += 7
        yield {"pattern": i, "result": run(_patterns, d, e)}


def _patterns(d: np.ndarray, e: np.ndarray) -> List[Any]:
    found, gain, worst = (
        patterns.describe(d, e, "LSB", 2.0, None, None),
        patterns.fit_gain(d, e),
        patterns.worst_bias(d),
    )
    bias = None if worst is None else [worst.where, worst.size, worst.median, worst.allowance, worst.kind, worst.extent]
    fit = [gain.gain, gain.peak_error, gain.residual, gain.offset_residual]
    return [found.kind, found.text, found.where, fit, bias]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=900, help="quantized float cases (and a quarter as many of the rest)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # numpy's overflow and empty-slice warnings: the same on both checkouts
    for case in cases(args.n):
        print(json.dumps(exact(case), sort_keys=True))


if __name__ == "__main__":
    main()
