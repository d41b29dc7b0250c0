"""Fault injection on deep models' saved HTP outputs, pure numpy: old vs new defaults, one example per
comparison (``python -m benchmarks.sensitivity --deep``).

Healthy outputs (QNN HTP, CPU-QDQ, the QDQ model's float yardstick) come from :mod:`benchmarks.deep_outputs`.
A fault moves the saved HTP output in its own LSB (saturating at the quantized range), so it is exactly what
the same fault in front of the final QuantizeLinear would give. Counted on the inputs where the healthy
output passes and the fault is visible (changes the output). "old": the deep defaults before issue 19
(``bias_lsb=8 min_snr_db=10``, u16 ``bias_lsb=2048 min_snr_db=20``; no heads, no deep top-1, no
yardstick); "new": the defaults of this tree with the model's layout and its yardstick.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from pytest_edgeort.compare.engine import OutputComparison, Yardstick, compare_output
from pytest_edgeort.compare.layout import Head, Layout
from pytest_edgeort.compare.tolerance import SCORE_OPS, Tolerance, default_tolerance, is_classifier_shape
from pytest_edgeort.model.info import ModelInfo, model_info

from .deep_outputs import DEEP_SUITES, Source, healthy_outputs, suite_source

OLD_DEEP = Tolerance(bias_lsb=8.0, min_snr_db=10.0)
OLD_DEEP_U16 = Tolerance(bias_lsb=8.0 * 256, min_snr_db=20.0)
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


def faults_for(shape: Tuple[int, ...], scores: bool, layout: Optional[Layout], step: int) -> List[Fault]:
    """The issue's fault list, where it applies to an output of one example's ``shape``; offsets in u8 steps
    (``step`` output LSB each: 256 for u16)."""
    size = int(np.prod(shape))
    found: List[Fault] = []
    if size >= 8:
        for k in (4, 8, 16):
            for sign in (1, -1):
                found.append((f"whole {sign * k:+d} LSB", lambda q, i, v=sign * k * step: q + v))
        for g in (1.05, 1.10, 0.95, 0.90):
            found.append((f"gain {g - 1:+.0%}", lambda q, i, g=g: np.rint(q * g)))
        for k in (8, 16):
            found.append((f"garbage +-{k} LSB", lambda q, i, k=k * step: q + k * _signs(q.shape, i)))
    channel = _channel(shape, layout)
    if channel is not None:
        where, label = channel
        for k in (4, 8, 16):
            found.append((f"{label} {k:+d} LSB", lambda q, i, w=where, k=k * step: _add(q, w, k)))
        found.append((f"{label} garbage +-8 LSB", lambda q, i, w=where: _add(q, w, 8 * step * _signs(q[w].shape, i))))
    if layout is not None and len(layout.heads) > 1 and channel is not None:
        found += _head_faults(layout, channel[0], step)
    elif len(shape) >= 2 and min(shape[-2:]) >= 5:
        for label, box in _boxes(shape):
            for k in (4, 8, 16):
                found.append((f"box {label} {k:+d} LSB", lambda q, i, b=box, k=k * step: _add(q, b, k)))
    if scores:
        found.append(("class change (top two swapped)", _class_change))
        for k in (16, 32):
            found.append((f"runner-up logit +{k} LSB", lambda q, i, k=k * step: _runner_up(q, k)))
    return found


def _channel(shape: Tuple[int, ...], layout: Optional[Layout]) -> Optional[Tuple[Tuple, str]]:
    """One channel (index 4 where there is one: a YOLO objectness) on the channel axis: the one next to the
    concat axis of a layout, else axis 1 of a map."""
    if layout is not None:
        axis = len(shape) - 1 if layout.axis != len(shape) - 1 else len(shape) - 2
    elif len(shape) >= 3 and shape[1] >= 2:
        axis = 1
    else:
        return None
    index = 4 if shape[axis] > 4 else 0
    return (slice(None),) * axis + (index,), f"channel {index} (axis {axis})"


def _head_faults(layout: Layout, channel: Tuple, step: int) -> List[Fault]:
    """The last head's part of the channel offset (the ddddocr u8 defect); 1/5 x 1/5 boxes of the first
    head's grid on the channel (centre and far corner: 8 scattered runs of the flat anchor axis)."""
    found: List[Fault] = []
    axis, last, first = layout.axis, layout.heads[-1], layout.heads[0]
    channel_axis = len(channel) - 1
    for k in (4, 8, 16):
        for sign in (1, -1):
            found.append(
                (
                    f"last head, channel {sign * k:+d} LSB",
                    lambda q, i, v=sign * k * step: _on_head(q, axis, last, channel_axis, channel[-1], v, None),
                )
            )
    if first.grid is not None:
        h, w = first.grid
        bh, bw = -(-h // 5), -(-w // 5)
        for label, y, x in (("centre", (h - bh) // 2, (w - bw) // 2), ("bottom-right", h - bh, w - bw)):
            cells = np.zeros(first.grid, bool)
            cells[y : y + bh, x : x + bw] = True
            flat = cells.reshape(-1)
            for k in (4, 8, 16):
                found.append(
                    (
                        f"head 0 grid box {label} {k:+d} LSB",
                        lambda q, i, c=flat, v=k * step: _on_head(q, axis, first, channel_axis, channel[-1], v, c),
                    )
                )
    return found


def _on_head(
    q: np.ndarray, axis: int, head: Head, channel_axis: int, index: int, value: int, cells: Optional[np.ndarray]
) -> np.ndarray:
    """``q`` with ``value`` added on one channel of one head (only its ``cells`` of the head's span when given)."""
    out = np.moveaxis(q.copy(), (axis, channel_axis), (0, 1))
    span = np.arange(head.start, head.stop)
    rows = span if cells is None else span[cells]
    out[rows, index] += value
    return np.moveaxis(out, (0, 1), (axis, channel_axis))


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
    wide = precision in ("u16", "i16")
    return (OLD_DEEP_U16 if wide else OLD_DEEP), new


def run_source(source: Source) -> List[str]:
    """Rows of the matrix for every quantized output of the source's model."""
    saved = healthy_outputs(source)
    info = model_info(source.model())
    rows: List[str] = []
    for out in info.outputs:
        if out.name in info.output_quant:
            rows += _output_rows(source.name, info, out.name, saved)
    return rows


def _output_rows(folder: str, info: ModelInfo, name: str, saved: Dict[str, np.ndarray]) -> List[str]:
    quant = info.output_quant[name]
    old_tol, new_tol = _tolerances(info, name)
    scale, layout = quant.scale, info.layout(name)
    limits = np.iinfo(quant.qtype)
    lo, hi = limits.min - quant.zero_point, limits.max - quant.zero_point
    shape = tuple(int(d) for d in info.shape(name))
    scores = is_classifier_shape(shape) and info.computed_by(name) in SCORE_OPS
    step = 256 if quant.qtype in ("uint16", "int16") else 1
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
    for label, fault in faults_for(shape, scores, layout, step):
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


def main(generated: int, ddddocr: Optional[Path] = None) -> None:
    """Print the matrix of the deep example suites (and ddddocr's detector, given its ``common_det.onnx``)."""
    sources = [suite_source(folder, generated) for folder in DEEP_SUITES]
    if ddddocr is not None:
        from .ddddocr_det import source

        sources += [source(ddddocr, "uint16", 6), source(ddddocr, "uint8", 4)]
    print(f"{'model/output':34s} {'fault':36s}  old det  new det  new pattern")
    for src in sources:
        for row in run_source(src):
            print(row, flush=True)
