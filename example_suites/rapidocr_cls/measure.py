"""Measure this suite's model on QNN HTP (simulator on x86) vs the CPU EP, and both vs the float model.

    python example_suites/rapidocr_cls/measure.py [--activations uint16] [--weights int8] [--per-channel]

Prepares the model with pytest_edgeort.prepare (recipe from edge_suite.toml, quantize options
overridable), then prints per output: max |d|, max LSB, % exact / within 1 LSB, SNR dB, cosine,
top-k agreement, ms/inference. Standalone: needs numpy, onnx, onnxruntime, onnxruntime-qnn.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from pytest_edgeort.prepare import PrepareRecipe, prepare_model  # noqa: E402


def resolve(model: str) -> Path:
    if model.startswith("pkg:"):
        pkg, _, res = model[4:].partition("/")
        return Path(str(importlib.resources.files(pkg).joinpath(res)))
    return HERE / model


def output_scales(path: Path) -> dict[str, float]:
    """Output name -> quantization scale of the DequantizeLinear producing it (if any)."""
    m = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    prod = {o: n for n in m.graph.node for o in n.output}
    out = {}
    for o in m.graph.output:
        n = prod.get(o.name)
        if n is not None and n.op_type == "DequantizeLinear" and n.input[1] in inits:
            out[o.name] = float(np.asarray(inits[n.input[1]]).reshape(-1)[0])
    return out


def session(path: Path, htp: bool) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not htp:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    import onnxruntime_qnn

    if not any(d.ep_name == "QNNExecutionProvider" for d in ort.get_ep_devices()):
        ort.register_execution_provider_library("QNNExecutionProvider", onnxruntime_qnn.get_library_path())
    devices = [d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]
    so.add_provider_for_devices(devices, {"backend_type": "htp"})
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    s = ort.InferenceSession(str(path), so)
    s.disable_fallback()
    return s


def run_all(s: ort.InferenceSession, feeds: list[dict]) -> tuple[list[np.ndarray], float]:
    outs, times = [], []
    for f in feeds:
        t = time.perf_counter()
        outs.append(s.run(None, f))
        times.append(time.perf_counter() - t)
    names = [o.name for o in s.get_outputs()]
    stacked = {n: np.stack([o[i] for o in outs]) for i, n in enumerate(names)}
    return stacked, 1000 * float(np.median(times))


def compare(a: np.ndarray, b: np.ndarray, scale: float | None, k: int) -> dict:
    """a vs reference b, both [N, ...]."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d = np.abs(a64 - b64)
    noise = float(np.sum((a64 - b64) ** 2))
    snr = float("inf") if noise == 0 else 10 * np.log10(float(np.sum(b64**2)) / noise)
    cos = float(np.dot(a64.ravel(), b64.ravel()) / (np.linalg.norm(a64) * np.linalg.norm(b64) + 1e-30))
    r = {"max_abs": float(d.max()), "snr_db": round(snr, 2), "cosine": round(cos, 6)}
    if scale:
        lsb = np.rint(d / scale)
        r.update(max_lsb=int(lsb.max()), exact_pct=round(100 * float(np.mean(lsb == 0)), 1),
                 within1_pct=round(100 * float(np.mean(lsb <= 1)), 1))
    fa, fb = a64.reshape(len(a), -1), b64.reshape(len(b), -1)
    if fa.shape[1] > 1:
        top1 = fa.argmax(1) == fb.argmax(1)
        kk = min(k, fa.shape[1])
        topk = [set(np.argsort(-x)[:kk]) == set(np.argsort(-y)[:kk]) for x, y in zip(fa, fb)]
        r.update(top1=f"{int(top1.sum())}/{len(top1)}", **{f"top{kk}_set": f"{sum(topk)}/{len(topk)}"})
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--activations")
    ap.add_argument("--weights")
    ap.add_argument("--per-channel", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N examples")
    ap.add_argument("--topk", type=int, default=1)
    args = ap.parse_args()

    manifest = tomllib.loads((HERE / "edge_suite.toml").read_text())
    prep = dict(manifest.get("prepare", {}))
    q = dict(prep.get("quantize", {}))
    if args.activations:
        q["activations"] = args.activations
    if args.weights:
        q["weights"] = args.weights
    if args.per_channel:
        q["per_channel"] = True
    prep["quantize"] = q
    recipe = PrepareRecipe.from_mapping(prep, str(HERE / "edge_suite.toml"))
    src = resolve(manifest["model"])
    cache = HERE.parents[1] / ".edgeort-cache" / "prepared"
    t = time.perf_counter()
    qdq = prepare_model(src, recipe, HERE, cache)
    flt = prepare_model(src, recipe.float_baseline(), HERE, cache)
    print(f"prepared {src.name} -> {qdq.name} ({time.perf_counter() - t:.1f}s) {json.dumps(recipe.quantize)}")

    with np.load(HERE / manifest["inputs"], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    n = len(next(iter(arrays.values())))
    n = min(n, args.limit) if args.limit else n
    feeds = [{k: v[i] for k, v in arrays.items()} for i in range(n)]

    scales = output_scales(qdq)
    cpu, cpu_ms = run_all(session(qdq, False), feeds)
    fl, fl_ms = run_all(session(flt, False), feeds)
    t = time.perf_counter()
    htp_s = session(qdq, True)
    create_s = time.perf_counter() - t
    htp, htp_ms = run_all(htp_s, feeds)
    print(f"{n} examples; ms/inference: HTP {htp_ms:.1f}  CPU-QDQ {cpu_ms:.2f}  CPU-float {fl_ms:.2f}; HTP session {create_s:.1f}s")
    for name in cpu:
        s = scales.get(name)
        print(f"output {name!r} shape {list(cpu[name].shape[1:])} scale {s}")
        print("  HTP vs CPU-QDQ  ", compare(htp[name], cpu[name], s, args.topk))
        print("  CPU-QDQ vs float", compare(cpu[name], fl[name], s, args.topk))
        print("  HTP vs float    ", compare(htp[name], fl[name], s, args.topk))
    extra = HERE / "measure_extra.py"
    if extra.exists():  # model-specific metrics (e.g. accuracy against labels)
        ns: dict = {}
        exec(compile(extra.read_text(), str(extra), "exec"), ns)
        ns["report"](HERE, arrays, n, {"htp": htp, "cpu": cpu, "float": fl})


if __name__ == "__main__":
    main()
