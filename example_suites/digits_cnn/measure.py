#!/usr/bin/env python3
"""Measure the digits_cnn QDQ variants on QNN HTP (x86 simulator on a PC, the NPU on a board) vs CPU.

This is the measurement behind the tolerances in ``edge_suite.toml`` of ``digits_cnn`` and
``digits_cnn_a16w8``; it is not part of the suite's test items. Run it after ``train.py``:

    python example_suites/digits_cnn/measure.py              # both variants, ~10 s on 2 cores
    python example_suites/digits_cnn/measure.py --variant u8 --repeats 30 --fuzz-n 5000 --fuzz-seed 7

For each variant (u8 = digits_cnn_qdq.onnx, a16w8 = digits_cnn_a16w8.onnx) it runs the float model on
CPU, the QDQ model on CPU and the QDQ model on QNN HTP, over the 16 suite inputs (inputs.npz), the
whole held-out split (359 images, rebuilt with train.load_split) and fuzz-like inputs (--fuzz-n
uniform [0,1) images from --fuzz-seed, plus all-0 and all-1), and prints:
  HTP vs CPU-QDQ:  max |d|, max |d| in output LSB (scale of the DequantizeLinear producing "logits"),
                   LSB histogram, SNR dB (all, and worst batch of 10), cosine (global and worst
                   example), top-1 agreement, CPU rank of HTP's top-1 (ties shared, as topk does)
  vs_float rule:   largest elementwise excess of the HTP error over the CPU-QDQ error (both vs
                   float) in LSB and in units of the float output's range (0 included)
  vs float:        max |d| and SNR of CPU-QDQ and of HTP against the float model (the vs_float rule)
  accuracy:        float / CPU-QDQ / HTP against the labels
  latency:         ms per inference, p50 / p90, HTP and CPU-QDQ; session creation time
  placement:       nodes per EP (must be all QNNExecutionProvider)

HTP sessions are created the way the plugin does it with onnxruntime-qnn 2.x (plugin EP API), CPU
fallback disabled both in the session config and in the Python InferenceSession (disable_fallback),
so nothing here can silently run on CPU. With CPU fallback disabled, QNN turns
offload_graph_io_quantization off by itself: the graph-input Q and graph-output DQ run on the HTP too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

HERE = Path(__file__).resolve().parent
FUZZ_N = 1000
FUZZ_SEED = 1234
VARIANTS = {"u8": "digits_cnn_qdq.onnx", "a16w8": "digits_cnn_a16w8.onnx"}


def output_scale(model_path, output="logits"):
    m = onnx.load(str(model_path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and output in n.output:
            return float(inits[n.input[1]]), str(inits[n.input[2]].dtype) if len(n.input) > 2 else "?"
    raise RuntimeError(f"no DequantizeLinear produces {output!r} in {model_path}")


_QNN_REGISTERED = False


def htp_session(model_path):
    global _QNN_REGISTERED
    import onnxruntime_qnn

    if not _QNN_REGISTERED:
        ort.register_execution_provider_library("QNNExecutionProvider", onnxruntime_qnn.get_library_path())
        _QNN_REGISTERED = True
    devs = [d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]
    if not devs:
        sys.exit("QNNExecutionProvider has no EP device")
    so = ort.SessionOptions()
    so.add_provider_for_devices(devs, {"backend_type": "htp"})
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(model_path), sess_options=so)
    sess.disable_fallback()
    return sess, time.perf_counter() - t0


def cpu_session(model_path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(model_path), sess_options=so, providers=["CPUExecutionProvider"])


def run_all(sess, xs):
    return np.concatenate([sess.run(["logits"], {"x": x})[0] for x in xs])


def timed(sess, xs, repeats):
    t = []
    for _ in range(repeats):
        for x in xs:
            t0 = time.perf_counter()
            sess.run(["logits"], {"x": x})
            t.append((time.perf_counter() - t0) * 1e3)
    return np.percentile(t, 50), np.percentile(t, 90)


def snr_db(actual, ref):
    noise = np.sum((actual.astype(np.float64) - ref) ** 2)
    return float("inf") if noise == 0 else 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / noise)


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def placement(sess):
    try:
        info = sess.get_provider_graph_assignment_info()
    except Exception as e:  # pragma: no cover - older ORT
        return f"n/a ({e})"
    parts = []
    for ep in info:
        ops = [n.op_type for n in ep.get_nodes()]
        counts = {op: ops.count(op) for op in sorted(set(ops))}
        parts.append(f"{ep.ep_name}: {len(ops)} nodes {counts}")
    return ", ".join(parts)


def measure(variant, repeats, fuzz_n=FUZZ_N, fuzz_seed=FUZZ_SEED):
    qpath, fpath = HERE / VARIANTS[variant], HERE / "digits_cnn.onnx"
    xs = np.load(HERE / "inputs.npz", allow_pickle=False)["x"]
    ys = np.load(HERE / "labels.npz", allow_pickle=False)["y"]
    sys.path.insert(0, str(HERE))
    from train import load_split  # noqa: E402

    _, (xte, yte) = load_split()
    xall = xte[:, None]  # [359,1,1,8,8]

    scale, zp_dtype = output_scale(qpath)
    fl, cq = cpu_session(fpath), cpu_session(qpath)
    htp, t_create = htp_session(qpath)

    print(f"\n=== {variant}: {qpath.name}  (output scale {scale:.6g}, {zp_dtype}) ===")
    print(f"HTP session creation {t_create * 1e3:.0f} ms; placement: {placement(htp)}")
    # Fuzz-like inputs, as the suite's fuzz item generates them: uniform over the input's
    # representable range [0, 1), plus the constant images 0 and 1. Labels are meaningless (-1).
    rng = np.random.default_rng(fuzz_seed)
    xfz = np.concatenate(
        [
            rng.uniform(0, 1, size=(fuzz_n, 1, 1, 8, 8)).astype(np.float32),
            np.zeros((1, 1, 1, 8, 8), np.float32),
            np.ones((1, 1, 1, 8, 8), np.float32),
        ]
    )
    yfz = np.full(len(xfz), -1)
    for label, x, y in (
        ("suite inputs.npz", xs, ys),
        ("full held-out split", xall, yte),
        ("fuzz: uniform [0,1) + all-0 + all-1", xfz, yfz),
    ):
        f, c, h = run_all(fl, x), run_all(cq, x), run_all(htp, x)
        h2 = run_all(htp, x)
        d = np.abs(h - c)
        lsb = d / scale
        lsb_i = np.rint(lsb).astype(int)
        hist = np.bincount(lsb_i.ravel())
        cos_ex = [cosine(h[i], c[i]) for i in range(len(h))]
        print(f"-- {label}: N={len(x)}  (HTP run-to-run identical: {np.array_equal(h, h2)})")
        print(
            f"  HTP vs CPU-QDQ : max|d| {d.max():.5f}  = {lsb.max():.2f} LSB  mean {d.mean():.5f}  "
            f"exact {np.mean(lsb_i == 0) * 100:.1f}%  <=1 LSB {np.mean(lsb_i <= 1) * 100:.1f}%  "
            f"LSB hist {hist.tolist() if len(hist) <= 12 else 'max ' + str(len(hist) - 1)}"
        )
        top2 = np.sort(c, axis=1)[:, -2:]
        margin = (top2[:, 1] - top2[:, 0]) / scale
        # rank in the CPU output of HTP's top-1 (ties share the better rank, as the plugin's topk)
        ranks = (c > c[np.arange(len(c)), h.argmax(1)][:, None]).sum(1) + 1
        snr10 = min(snr_db(h[k : k + 10], c[k : k + 10]) for k in range(0, len(h), 10))
        print(
            f"                   smallest CPU-QDQ top-1 margin {margin.min():.1f} LSB; CPU rank of HTP "
            f"top-1 (1,2,..): {np.bincount(ranks)[1:].tolist()}; worst SNR of a 10-example batch {snr10:.1f} dB"
        )
        print(
            f"                   SNR {snr_db(h, c):.1f} dB  cosine {cosine(h, c):.6f} (worst example "
            f"{min(cos_ex):.6f})  top-1 agreement {np.sum(h.argmax(1) == c.argmax(1))}/{len(x)}"
        )
        print(
            f"  vs float       : CPU-QDQ max|d| {np.abs(c - f).max():.4f} SNR {snr_db(c, f):.1f} dB | "
            f"HTP max|d| {np.abs(h - f).max():.4f} SNR {snr_db(h, f):.1f} dB | "
            f"excess max|d| {np.abs(h - f).max() - np.abs(c - f).max():+.4f}  "
            f"SNR drop {snr_db(c, f) - snr_db(h, f):.1f} dB"
        )
        # vs_float rule (ORT TestQDQModelAccuracy): elementwise excess of the HTP error over the
        # CPU-QDQ error, both against float, relative to the float output's range (max - min).
        excess = np.abs(h - f) - np.abs(c - f)
        # range as ORT / the plugin derive it: max(fmax, 0) - min(fmin, 0); per example is stricter
        rng_ex = (np.maximum(f.max(1), 0) - np.minimum(f.min(1), 0))[:, None]
        rng_all = max(f.max(), 0) - min(f.min(), 0)
        print(
            f"  vs_float rule  : max elementwise excess {excess.max():.4f} = {excess.max() / scale:.1f} LSB"
            f" = {np.max(excess / rng_ex):.5f} x per-example float range"
            f" ({excess.max() / rng_all:.5f} x range over all examples)"
        )
        print(
            f"  accuracy       : float {np.mean(f.argmax(1) == y) * 100:.1f}%  CPU-QDQ "
            f"{np.mean(c.argmax(1) == y) * 100:.1f}%  HTP {np.mean(h.argmax(1) == y) * 100:.1f}%  "
            f"(top-1 float vs CPU-QDQ {np.sum(f.argmax(1) == c.argmax(1))}/{len(x)})"
        )
    hp50, hp90 = timed(htp, xs, repeats)
    cp50, cp90 = timed(cq, xs, repeats)
    print(
        f"  latency ms/inf : HTP p50 {hp50:.2f} p90 {hp90:.2f} | CPU-QDQ p50 {cp50:.3f} p90 {cp90:.3f} "
        f"({repeats} x {len(xs)} runs)"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=[*VARIANTS, "all"], default="all")
    ap.add_argument("--repeats", type=int, default=10, help="latency: passes over the 16 inputs")
    ap.add_argument("--fuzz-n", type=int, default=FUZZ_N, help="uniform-noise inputs (plus all-0, all-1)")
    ap.add_argument("--fuzz-seed", type=int, default=FUZZ_SEED)
    a = ap.parse_args()
    print(f"onnxruntime {ort.__version__}", end="")
    try:
        from importlib.metadata import version

        print(f", onnxruntime-qnn {version('onnxruntime-qnn')}")
    except Exception:
        print()
    for v in VARIANTS if a.variant == "all" else [a.variant]:
        measure(v, a.repeats, a.fuzz_n, a.fuzz_seed)


if __name__ == "__main__":
    main()
