"""Fault injection on the deep example suites' saved HTP outputs, pure numpy: old vs new defaults, one example
per comparison (``python -m benchmarks.sensitivity --deep``).

Healthy outputs (QNN HTP, CPU-QDQ, the QDQ model's float yardstick) come from :mod:`benchmarks.deep_outputs`.
A fault moves the saved HTP output in its own LSB (saturating at the quantized range), so it is exactly what
the same fault in front of the final QuantizeLinear would give. Counted on the inputs where the healthy
output passes and the fault is visible (changes the output). "old": the deep defaults before issue 19
(``bias_lsb=8 min_snr_db=10``, no heads, no deep top-1, no yardstick); "new": the defaults of this tree with
the model's layout and its yardstick.
"""

from __future__ import annotations

import collections
from typing import Callable, Dict, Iterator, List, Tuple

import numpy as np

from pytest_edgeort.compare.engine import OutputComparison, Yardstick, compare_output
from pytest_edgeort.compare.tolerance import SCORE_OPS, Tolerance, default_tolerance, is_classifier_shape
from pytest_edgeort.model.info import ModelInfo, model_info

from .deep_outputs import DEEP_SUITES, healthy_outputs, suite_model

OLD_DEEP = Tolerance(bias_lsb=8.0, min_snr_db=10.0)
SEED = 19
#: a fault: (label, f(lsb array of one example, example index) -> faulty lsb array)
Fault = Tuple[str, Callable[[np.ndarray, int], np.ndarray]]


def _boxes(shape: Tuple[int, ...]) -> Iterator[Tuple[str, Tuple[slice, ...]]]:
    rows, cols = shape[-2:]
    h, w = -(-rows // 5), -(-cols // 5)
    for label, y, x in (
        ("centre", (rows - h) // 2, (cols - w) // 2),
        ("top-left", 0, 0),
        ("top-right", 0, cols - w),
        ("bottom-left", rows - h, 0),
        ("bottom-right", rows - h, cols - w),
    ):
        yield label, (..., slice(y, y + h), slice(x, x + w))


def faults_for(shape: Tuple[int, ...], scores: bool) -> List[Fault]:
    """The issue's fault list, where it applies to an output of one example's ``shape``."""
    size = int(np.prod(shape))
    found: List[Fault] = []
    if size >= 8:
        for k in (4, 8, 16):
            for sign in (1, -1):
                found.append((f"whole {sign * k:+d} LSB", lambda q, i, v=sign * k: q + v))
        for g in (1.05, 1.10, 0.95, 0.90):
            found.append((f"gain {g - 1:+.0%}", lambda q, i, g=g: np.rint(q * g)))
        for k in (8, 16):
            found.append((f"garbage +-{k} LSB", lambda q, i, k=k: q + k * _signs(q.shape, i)))
    if len(shape) >= 3 and shape[1] >= 2:
        for k in (4, 8, 16):
            found.append((f"channel 0 {k:+d} LSB", lambda q, i, k=k: _add(q, (slice(None), 0), k)))
    if len(shape) >= 2 and min(shape[-2:]) >= 5:
        for label, box in _boxes(shape):
            for k in (4, 8, 16):
                found.append((f"box {label} {k:+d} LSB", lambda q, i, b=box, k=k: _add(q, b, k)))
    if scores:
        found.append(("class change (top two swapped)", _class_change))
        for k in (16, 32):
            found.append((f"runner-up logit +{k} LSB", lambda q, i, k=k: _runner_up(q, k)))
    return found


def _signs(shape: Tuple[int, ...], i: int) -> np.ndarray:
    return np.random.default_rng(SEED + i).choice([-1, 1], shape)


def _add(q: np.ndarray, where: Tuple, k: int) -> np.ndarray:
    out = q.copy()
    out[where] += k
    return out


def _runner_up(q: np.ndarray, k: int) -> np.ndarray:
    out = q.copy().reshape(-1)
    out[np.argsort(out)[-2]] += k
    return out.reshape(q.shape)


def _class_change(q: np.ndarray, i: int) -> np.ndarray:
    """The runner-up and the top class swap places (in range, whatever saturates)."""
    out = q.copy().reshape(-1)
    top, second = np.argsort(out, kind="stable")[[-1, -2]]
    out[top], out[second] = out[second], out[top]
    return out.reshape(q.shape)


class Row:
    """Detections of one fault over the inputs (visible ones where the healthy output passes)."""

    def __init__(self) -> None:
        self.visible = 0
        self.counted = {"old": 0, "new": 0}  # visible, on inputs where that side's healthy output passes
        self.caught = {"old": 0, "new": 0}
        self.patterns: collections.Counter = collections.Counter()

    def text(self) -> str:
        rates = "  ".join(f"{self.caught[k]:3d}/{self.counted[k]:<3d}" for k in ("old", "new"))
        pattern = ",".join(f"{p} {n}" for p, n in self.patterns.most_common(2))
        return f"{rates}  {pattern}"


def _tolerances(info: ModelInfo, name: str) -> Tuple[Tolerance, Tolerance]:
    precision = info.precision(name, False)
    new = default_tolerance(precision, True, info.depth(name), info.shape(name), True, info.computed_by(name))
    return OLD_DEEP, new


def run_suite(folder: str, generated: int) -> List[str]:
    """Rows of the matrix for every quantized output of the suite's model."""
    saved = healthy_outputs(folder, generated)
    info = model_info(suite_model(folder))
    rows: List[str] = []
    for out in info.outputs:
        if out.name in info.output_quant:
            rows += _output_rows(folder, info, out.name, saved)
    return rows


def _output_rows(folder: str, info: ModelInfo, name: str, saved: Dict[str, np.ndarray]) -> List[str]:
    quant = info.output_quant[name]
    old_tol, new_tol = _tolerances(info, name)
    scale, layout = quant.scale, info.layout(name)
    limits = np.iinfo(quant.qtype)
    lo, hi = limits.min - quant.zero_point, limits.max - quant.zero_point
    shape = tuple(int(d) for d in info.shape(name))
    scores = is_classifier_shape(shape) and info.computed_by(name) in SCORE_OPS
    htp, cpu, yard = (saved[f"{side}/{name}"] for side in ("htp", "cpu", "yard"))
    real = saved["real"]

    def judge(actual: np.ndarray, i: int) -> Dict[str, OutputComparison]:
        stick = Yardstick(yard[i], "the QDQ model without activation rounding")
        return {
            "old": compare_output(name, actual, cpu[i], old_tol, scale),
            "new": compare_output(name, actual, cpu[i], new_tol, scale, layout=layout, yardstick=stick),
        }

    healthy = Row()
    worst_lsb, worst_snr = 0.0, np.inf
    passing: Dict[str, List[bool]] = {"old": [], "new": []}
    for i in range(len(htp)):
        res = judge(htp[i], i)
        healthy.visible += 1
        for side, r in res.items():
            healthy.counted[side] += 1
            healthy.caught[side] += not r.passed
            passing[side].append(r.passed)
        worst_lsb = max(worst_lsb, res["new"].max_lsb or 0.0)
        worst_snr = min(worst_snr, res["new"].snr_q_db)
    q_all = np.rint(htp.astype(np.float64) / scale)
    e_all = np.rint(cpu.astype(np.float64) / scale)
    matrix: Dict[str, Row] = collections.OrderedDict()
    for label, fault in faults_for(shape, scores):
        row = matrix.setdefault(label, Row())
        for i in range(len(htp)):
            if label.startswith("class change") and not _clear_margin(e_all[i], new_tol.tie_lsb or 0.0):
                continue
            faulty = np.clip(fault(q_all[i], i), lo, hi)
            if np.array_equal(faulty, q_all[i]):
                continue
            res = judge((faulty * scale).astype(htp.dtype), i)
            row.visible += 1
            for side, r in res.items():
                row.counted[side] += passing[side][i]
                row.caught[side] += passing[side][i] and not r.passed
            row.patterns[res["new"].pattern or "-"] += not res["new"].passed
    title = f"{folder}/{name}"[:34]
    rows = [
        f"{title:34s} {'healthy (false alarms)':36s} {healthy.text()}   [{int(real.sum())} real + "
        f"{len(real) - int(real.sum())} generated; healthy max {worst_lsb:.0f} LSB, min SNR {worst_snr:.1f} dB; "
        f"new: {new_tol.describe()}]"
    ]
    return rows + [f"{title:34s} {label:36s} {row.text()}" for label, row in matrix.items()]


def _clear_margin(e: np.ndarray, tie: float) -> bool:
    top = np.sort(e.reshape(-1))
    return top.size >= 2 and top[-1] - top[-2] > tie


def main(generated: int) -> None:
    print(f"{'suite/output':34s} {'fault':36s}  old det  new det  new pattern")
    for folder in DEEP_SUITES:
        for row in run_suite(folder, generated):
            print(row, flush=True)
