"""Fault-injection matrix for the default tolerances: detection rate, false-alarm rate and margin, old vs new.

For each model, faults of known size are put in front of a final QuantizeLinear (``tests.models.
with_output_faults``: one extra output per fault, exact LSB offsets, so one QNN HTP session runs every
variant), the model runs on QNN HTP (CPU fallback disabled) and every output -- healthy and faulty -- is
compared per example with the base output on the CPU EP, with the old and with the new defaults.

- detected: share of the inputs where the fault is visible (the faulty HTP output differs from the
  healthy one) that fail. For "healthy" it is the false-alarm rate over all inputs.
- margin: min / median over detected inputs of how far the failing rule is past its threshold (ratio of
  measured to allowed: LSB, bias, gain; for SNR the error-amplitude ratio 10**((min - measured)/20));
  "top1" when only the top-1 rule failed.
- rule / pattern: the most frequent failing rule and error pattern named by the new defaults.
- "top-1 change": every variant x input of the shallow classifier where the fault changed the top-1
  against the CPU reference and the reference's top-2 margin is > 2 LSB (not a near tie).

    python -m benchmarks.sensitivity [--models digits,digits_a16w8,ppocr_det] [--inputs 40]
    python -m benchmarks.sensitivity --deep [--generated 8] [--ddddocr DIR/ddddocr/common_det.onnx]

``--deep``: the example suites' deep models (PP-OCR det, magika, silero-vad, rapidocr cls), every real input
and ``--generated`` noise inputs, faults injected into their saved HTP outputs (:mod:`benchmarks.deep_faults`).

Models: the digits CNN of example_suites/digits_cnn (u8, shallow, 10 logits) and its a16w8 variant
(offsets x 256 u16 LSB, the u8 step of the same range), and the PP-OCRv6 det of example_suites/ppocr_det
(u8, deep, 1x1x96x320 map; prepared by the suite's [prepare], cached in .edgeort-cache/prepared).
Inputs: the suite's real inputs, then generated ones (pytest_edgeort.model.inputs.generate_inputs).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Counter, Dict, List, Optional, Tuple

import numpy as np

from pytest_edgeort.compare.engine import OutputComparison, compare_output
from pytest_edgeort.compare.tolerance import Tolerance, default_tolerance, is_classifier_shape
from pytest_edgeort.config.suite import load_suite
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs, load_npz, split_examples
from pytest_edgeort.model.prepare import prepare_model
from tests.support.models import Fault, with_output_faults
from tools.measure_suite import session  # (HTP session with CPU fallback disabled, as the plugin)

ROOT = Path(__file__).resolve().parents[1]

SEED = 20240607
#: the defaults before issue 11 (plain SNR: compared without a scale, as min_snr_db then worked)
OLD_DEFAULTS = {"u8": Tolerance(min_snr_db=15.0), "u16": Tolerance(min_snr_db=20.0)}


@dataclass
class Case:
    """One model of the matrix: where it comes from and which faults it gets."""

    name: str
    model: Callable[[], Path]
    suite: str
    output: str
    faults: Callable[[Tuple[int, ...], int], Dict[str, Tuple[str, Fault]]]  # (shape, step) -> {id: (cell, fault)}


def _suite_model(folder: str) -> Path:
    suite = load_suite(ROOT / "example_suites" / folder / "edge_suite.toml")
    source = suite.resolve_model(suite.model, "model")
    if suite.prepare is None:
        return source
    return prepare_model(source, suite.prepare, suite.folder, ROOT / ".edgeort-cache" / "prepared")


def shallow_faults(shape: Tuple[int, ...], step: int) -> Dict[str, Tuple[str, Fault]]:
    """Classifier faults; ``step`` = output LSB per u8 step (1 for u8, 256 for u16)."""
    faults: Dict[str, Tuple[str, Fault]] = {}
    for k in (2, 3, 4, 6):
        faults[f"shift{k}"] = (f"shift +{k} LSB", ("add", k * step))
        faults[f"shiftm{k}"] = (f"shift -{k} LSB", ("add", -k * step))
    classes = shape[-1]
    for k in (3, 4, 6):
        for sign in (1, -1):
            for j in range(classes):
                one = np.zeros(shape, np.int64)
                one[..., j] = sign * k * step
                faults[f"one{k}_{sign}_{j}"] = (f"one element {'+' if sign > 0 else '-'}{k} LSB", ("add", one))
    for g in (1.03, 1.05, 1.10, 0.95):
        faults[f"gain{g}"] = (f"gain {g - 1:+.0%}", ("mul", g))
    return faults


def deep_faults(shape: Tuple[int, ...], step: int) -> Dict[str, Tuple[str, Fault]]:
    """Map faults: the whole (only) channel, rectangles and a row band of >= 5 % of the elements."""
    rows, cols = shape[-2:]
    faults: Dict[str, Tuple[str, Fault]] = {}
    for k in (13, 20, 30):
        faults[f"all{k}"] = (f"channel +{k} LSB", ("add", k * step))
        for label, (y, x) in (("centre", (rows // 2, cols // 2)), ("corner", (0, 0))):
            box = np.zeros(shape, np.int64)
            h, w = -(-rows * 23 // 100), -(-cols * 23 // 100)  # 23 % x 23 % = 5.3 % of the map
            y0, x0 = max(0, min(y - h // 2, rows - h)), max(0, min(x - w // 2, cols - w))
            box[..., y0 : y0 + h, x0 : x0 + w] = k * step
            faults[f"box{k}{label}"] = (f"region 5% {label} +{k} LSB", ("add", box))
        band = np.zeros(shape, np.int64)
        band[..., rows // 3 : rows // 3 + -(-rows // 20), :] = k * step
        faults[f"band{k}"] = (f"row band 5% +{k} LSB", ("add", band))
    return faults


CASES = {
    "digits": Case(
        "digits u8",
        lambda: ROOT / "example_suites/digits_cnn/digits_cnn_qdq.onnx",
        "digits_cnn",
        "logits",
        shallow_faults,
    ),
    "digits_a16w8": Case(
        "digits a16w8",
        lambda: ROOT / "example_suites/digits_cnn_a16w8/digits_cnn_a16w8.onnx",
        "digits_cnn_a16w8",
        "logits",
        shallow_faults,
    ),
    "ppocr_det": Case("PP-OCR det u8", lambda: _suite_model("ppocr_det"), "ppocr_det", "fetch_name_0", deep_faults),
}


def ratio(res: OutputComparison) -> Optional[float]:
    """How far the failing rule furthest past its threshold is (measured / allowed); None if only top-k failed."""
    tol, found = res.tolerance, []
    if tol.lsb is not None and res.max_lsb is not None:
        found.append(res.max_lsb / tol.lsb)
    if tol.bias_lsb is not None and res.bias:
        found.append(res.smallest_passing["bias_lsb"] / tol.bias_lsb)
    if tol.gain is not None and res.smallest_passing.get("gain"):
        found.append(res.smallest_passing["gain"] / tol.gain)
    if tol.min_snr_db is not None:
        snr = res.snr_q_db if res.snr_q_db is not None else res.snr_db
        found.append(10 ** ((tol.min_snr_db - snr) / 20) if np.isfinite(snr) else (0.0 if snr > 0 else np.inf))
    failing = [r for r in found if r > 1]
    return max(failing) if failing else None


def rule_of(failure: str) -> str:
    for prefix, rule in (
        ("systematic offset", "bias_lsb"),
        ("gain", "gain"),
        ("SNR", "min_snr_db"),
        ("top-1", "topk"),
        ("cosine", "min_cosine"),
    ):
        if failure.startswith(prefix):
            return rule
    return "lsb"


@dataclass
class Cell:
    """One row of the matrix: visible cases, and per side (old / new defaults) detections and margins."""

    visible: int = 0
    total: int = 0
    detected: Dict[str, int] = field(default_factory=lambda: {"old": 0, "new": 0})
    margins: Dict[str, List[float]] = field(default_factory=lambda: {"old": [], "new": []})
    rules: Counter[str] = field(default_factory=collections.Counter)
    patterns: Counter[str] = field(default_factory=collections.Counter)

    def add(self, which: str, res: OutputComparison) -> None:
        if res.passed:
            return
        self.detected[which] += 1
        r = ratio(res)
        self.margins[which].append(np.inf if r is None else r)
        if which == "new":
            self.rules.update({rule_of(f) for f in res.failures})
            self.patterns[res.pattern or "-"] += 1

    def tally(self, old: OutputComparison, new: OutputComparison) -> None:
        """Count one visible case of an aggregated cell."""
        self.total += 1
        self.visible += 1
        self.add("old", old)
        self.add("new", new)

    def row(self, model: str, cell: str) -> str:
        def side(which: str) -> str:
            n = self.visible
            rate = f"{self.detected[which]}/{n}" if n else "-"
            ms = [m for m in self.margins[which] if np.isfinite(m)]
            top1_only = len(self.margins[which]) - len(ms)
            margin = f"{min(ms):.2f}/{statistics.median(ms):.2f}x" if ms else ("top1" if top1_only else "-")
            return f"{rate:>9s} {margin:>12s}"

        rule = ",".join(k for k, _ in self.rules.most_common(2)) or "-"
        pattern = self.patterns.most_common(1)[0][0] if self.patterns else "-"
        counts = f"{self.visible:4d}/{self.total:<4d}"
        return f"{model:14s} {cell:28s} {counts} {side('old')}  {side('new')}  {rule:19s} {pattern}"


def run_case(case: Case, n_inputs: int, workdir: Path) -> List[str]:
    base = case.model()
    info = model_info(base)
    out = case.output
    precision = info.precision(out, False)
    width = "u16" if precision in ("u16", "i16") else "u8"
    step = 256 if width == "u16" else 1
    scale = info.scale(out)
    shape = tuple(int(d) for d in info.shape(out))
    faults = case.faults(shape, step)
    faulty = with_output_faults(
        base, workdir / f"{case.suite}_faults.onnx", out, {k: f for k, (_, f) in faults.items()}
    )
    suite = load_suite(ROOT / "example_suites" / case.suite / "edge_suite.toml")
    real = split_examples(info, load_npz(suite.local_file(suite.inputs, "inputs")), "inputs")[:n_inputs]
    feeds = real + [generate_inputs(info, SEED, i) for i in range(n_inputs - len(real))]

    t = time.perf_counter()
    cpu, htp = session(base, False), session(faulty, True)
    names = [o.name for o in htp.get_outputs()]
    new_tol = default_tolerance(precision, True, info.depth(out), shape)
    cells: Dict[str, Cell] = collections.OrderedDict(healthy=Cell())
    for _, (cell, _) in faults.items():
        cells.setdefault(cell, Cell())
    top1, one4, stacked = Cell(), Cell(), Cell()
    healthy_set: List[Tuple[np.ndarray, np.ndarray]] = []
    for feed in feeds:
        expected = cpu.run([out], feed)[0]
        got = dict(zip(names, htp.run(None, feed)))
        healthy = got[out]
        healthy_set.append((healthy, expected))
        variants = [("healthy", healthy, True)] + [
            (faults[k][0], got[f"{out}_{k}"], not np.array_equal(got[f"{out}_{k}"], healthy)) for k in faults
        ]
        for cell, actual, visible in variants:
            c = cells[cell]
            c.total += 1
            if not visible:
                continue
            c.visible += 1
            old = compare_output(out, actual, expected, OLD_DEFAULTS[width])  # no scale: the plain SNR of old
            new = compare_output(out, actual, expected, new_tol, scale)
            c.add("old", old)
            c.add("new", new)
            if cell != "healthy" and is_classifier_shape(shape) and _top1_changed(actual, expected, 2 * step * scale):
                top1.tally(old, new)
            if cell.startswith("one element") and _max_lsb(actual, expected, step * scale) >= 4:
                one4.tally(old, new)
    rows = [c.row(case.name, cell) for cell, c in cells.items()]
    actual_set, expected_set = (np.stack(x) for x in zip(*healthy_set))
    stacked.tally(
        compare_output(out, actual_set, expected_set, OLD_DEFAULTS[width]),
        compare_output(out, actual_set, expected_set, new_tol, scale),
    )
    for cell, c in (
        ("top-1 change (margin >2)", top1),
        ("one element, err >=4 vs CPU", one4),
        ("healthy, stacked (as a suite)", stacked),
    ):
        if c.total:
            rows.append(c.row(case.name, cell))
    rows.append(
        f"{'':14s} ({len(feeds)} inputs: {len(real)} real + {len(feeds) - len(real)} generated, "
        f"{len(faults)} fault outputs, {time.perf_counter() - t:.0f} s; new defaults: {new_tol.describe()})"
    )
    return rows


def _top1_changed(actual: np.ndarray, expected: np.ndarray, tie: float) -> bool:
    """True when actual's top-1 differs from expected's and expected's top-2 margin exceeds ``tie``."""
    a, e = actual.reshape(-1, actual.shape[-1]), expected.reshape(-1, expected.shape[-1])
    top = np.sort(e, axis=1)
    margin_ok = (top[:, -1] - top[:, -2]) > tie + 1e-6 * np.abs(top[:, -1])
    return bool(np.any((np.argmax(a, 1) != np.argmax(e, 1)) & margin_ok))


def _max_lsb(actual: np.ndarray, expected: np.ndarray, step: float) -> float:
    return float(np.rint(np.abs(actual.astype(np.float64) - expected) / step).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    ap.add_argument("--inputs", type=int, default=40, help="inputs per shallow model (deep: a fifth, at least 8)")
    ap.add_argument("--deep", action="store_true", help="the deep example suites, faults on saved HTP outputs")
    ap.add_argument("--generated", type=int, default=8, help="--deep: noise inputs after the real ones")
    ap.add_argument("--ddddocr", type=Path, help="--deep: ddddocr's common_det.onnx (from its wheel), a detector too")
    args = ap.parse_args()
    import onnxruntime
    import onnxruntime_qnn

    print(
        f"onnxruntime {onnxruntime.__version__}, onnxruntime-qnn {getattr(onnxruntime_qnn, '__version__', '?')}, "
        f"QNN HTP (x86 simulator) vs CPU EP, per-example comparisons"
    )
    if args.deep:
        from .deep_faults import main as deep_main

        deep_main(args.generated, args.ddddocr)
        return
    print(
        f"{'model':14s} {'fault':28s} {'visible':9s} {'old: det':>9s} {'min/med margin':>14s} {'new: det':>9s} "
        f"{'min/med margin':>14s}  {'new rule':19s} pattern"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models.split(","):
            case = CASES[key]
            n = args.inputs if case.faults is shallow_faults else max(8, args.inputs // 5)
            for row in run_case(case, n, Path(tmp)):
                print(row, flush=True)


if __name__ == "__main__":
    main()
