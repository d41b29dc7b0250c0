"""Measure this suite's model on QNN HTP (simulator on x86) vs the CPU EP, and both vs the float model.

    python -m tools.measure_suite example_suites/<suite> [--activations uint16] [--weights int8] [--per-channel]

Prepares the model with pytest_edgeort.model.prepare (recipe from edge_suite.toml, quantize options
overridable), then prints per output: max |d|, max LSB, % exact / within 1 LSB, SNR dB and cosine
(all examples, as the conformance item does, and the worst single example for information), top-1
agreement / worst rank, the smallest vs_float that passes, ms/inference. Standalone: needs numpy,
onnx, onnxruntime, onnxruntime-qnn.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import tomllib

from pytest_edgeort.model.prepare import PrepareRecipe, prepare_model

ROOT = Path(__file__).resolve().parents[1]


def resolve(model: str, here: Path) -> Path:
    if model.startswith("pkg:"):
        pkg, _, res = model[4:].partition("/")
        return Path(str(importlib.resources.files(pkg).joinpath(res)))
    return here / model


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


def _snr(a: np.ndarray, e: np.ndarray) -> float:
    noise = float(np.sum((a - e) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(e**2)) / noise)


def _cos(a: np.ndarray, e: np.ndarray) -> float:
    if np.array_equal(a, e):
        return 1.0
    return float(np.dot(a.ravel(), e.ravel()) / (np.linalg.norm(a) * np.linalg.norm(e) + 1e-300))


def compare(a: np.ndarray, b: np.ndarray, scale: float | None, f: np.ndarray | None = None) -> dict:
    """a vs reference b, both [N, ...]: over all N examples (as the suite items), and worst single example (for
    information). With the float output f: the smallest ``vs_float``
    (ORT rule, |a - f| <= |b - f| + vs_float * range(f)) that every example passes."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d = np.abs(a64 - b64)
    r = {"max_abs": round(float(d.max()), 6), "snr_db": round(_snr(a64, b64), 2), "cosine": round(_cos(a64, b64), 6)}
    r["worst_example_snr_db"] = round(min(_snr(x, y) for x, y in zip(a64, b64)), 2)
    r["worst_example_cosine"] = round(min(_cos(x, y) for x, y in zip(a64, b64)), 6)
    if scale:
        lsb = np.rint(d / scale)
        r.update(
            max_lsb=int(lsb.max()),
            exact_pct=round(100 * float(np.mean(lsb == 0)), 1),
            within1_pct=round(100 * float(np.mean(lsb <= 1)), 1),
            p99_lsb=float(np.quantile(lsb, 0.99)),
        )
    fa, fb = a64.reshape(len(a), -1, a.shape[-1]), b64.reshape(len(b), -1, b.shape[-1])
    if fa.shape[-1] > 1:  # rank in b of a's top-1 (1 = agree), per row, as the collector's topk
        top = fa.argmax(-1)
        ev = np.take_along_axis(fb, top[..., None], -1)
        ranks = (fb > ev).sum(-1) + 1
        r.update(top1_agree=f"{int((ranks == 1).sum())}/{ranks.size}", worst_rank=int(ranks.max()))
    if f is not None:
        need = 0.0
        for x, y, z in zip(a64, b64, f.astype(np.float64)):
            rng = max(max(z.max(), z.min() + 1e-4), 0.0) - min(z.min(), 0.0)
            need = max(need, float(((np.abs(x - z) - np.abs(y - z)) / rng).max()))
        r["vs_float_needed"] = round(need, 5)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("suite", type=Path, help="suite folder (with edge_suite.toml)")
    ap.add_argument("--activations")
    ap.add_argument("--weights")
    ap.add_argument("--per-channel", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N examples")
    args = ap.parse_args()
    here = args.suite.resolve()

    manifest = tomllib.loads((here / "edge_suite.toml").read_text())
    prep = dict(manifest.get("prepare", {}))
    q = dict(prep.get("quantize", {}))
    if args.activations:
        q["activations"] = args.activations
    if args.weights:
        q["weights"] = args.weights
    if args.per_channel:
        q["per_channel"] = True
    prep["quantize"] = q
    recipe = PrepareRecipe.from_mapping(prep, str(here / "edge_suite.toml"))
    src = resolve(manifest["model"], here)
    cache = ROOT / ".edgeort-cache" / "prepared"
    t = time.perf_counter()
    qdq = prepare_model(src, recipe, here, cache)
    flt = prepare_model(src, recipe.float_baseline(), here, cache)
    print(f"prepared {src.name} -> {qdq.name} ({time.perf_counter() - t:.1f}s) {json.dumps(recipe.quantize)}")

    with np.load(here / manifest["inputs"], allow_pickle=False) as z:
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
    print(
        f"{n} examples; ms/inference: HTP {htp_ms:.1f}  CPU-QDQ {cpu_ms:.2f}  CPU-float {fl_ms:.2f}; HTP "
        f"session {create_s:.1f}s"
    )
    for name in cpu:
        s = scales.get(name)
        print(f"output {name!r} shape {list(cpu[name].shape[1:])} scale {s}")
        print("  HTP vs CPU-QDQ  ", compare(htp[name], cpu[name], s, fl[name]))
        print("  CPU-QDQ vs float", compare(cpu[name], fl[name], s))
        print("  HTP vs float    ", compare(htp[name], fl[name], s))
    extra = here / "measure_extra.py"
    if extra.exists():  # model-specific metrics (e.g. accuracy against labels)
        ns: dict = {}
        exec(compile(extra.read_text(), str(extra), "exec"), ns)
        ns["report"](here, arrays, n, {"htp": htp, "cpu": cpu, "float": fl})


if __name__ == "__main__":
    main()
