#!/usr/bin/env python3
"""Train the digits_cnn example model with plain numpy and write every artefact of the suite.

Model: scikit-learn's 8x8 handwritten digits (``sklearn.datasets.load_digits``, pixel values 0..16,
scaled to [0, 1]), a tiny CNN

    x [1,1,8,8] -> Conv3x3(1->8, pad 1) -> Relu -> Conv3x3(8->16, stride 2, pad 1) -> Relu
                -> Flatten [1,256] -> Gemm(256->10) -> logits [1,10]

trained with hand-written forward/backward passes and Adam (no torch, no autograd), so anyone can
rerun it with the plugin's own dependencies plus scikit-learn:

    python example_suites/digits_cnn/train.py          # ~4 s on 2 cores

Split: load_digits() (1797 images) is shuffled with a fixed seed (SPLIT_SEED) and the last 20 % of
that order (359 images) is held out, never used for training or calibration; the other 1438 train.

Writes (into this folder, ``example_suites/digits_cnn/``):
  digits_cnn.onnx        float32 model (opset 17, ir_version 9), input "x" [1,1,8,8], output "logits" [1,10]
  digits_cnn_qdq.onnx    QDQ model, uint8 activations / uint8 weights (get_qnn_qdq_config)
  digits_cnn_a16w8.onnx  QDQ model, uint16 activations / uint8 weights (get_qnn_qdq_config)
  calib.npz              "x": [64,1,1,8,8] float32 calibration inputs from the TRAIN split
  inputs.npz             "x": [16,1,1,8,8] float32 held-out test inputs (suite convention: N examples
                         stacked on a new leading axis, one key per model input name)
  labels.npz             "y": [16] int64 labels of inputs.npz
and into the sibling suite ``example_suites/digits_cnn_a16w8/``: the a16w8 model, the float model
(vs-float baseline) and the same inputs.npz / labels.npz, because suite paths may not leave their folder.

Everything is deterministic: fixed seeds, fixed split, single-threaded BLAS (set below before numpy is
imported). Re-running on the same machine reproduces the files bit for bit; on another CPU the float
weights may differ in the last bits (BLAS kernels differ per CPU), so the committed files are the
reference and golden outputs must be regenerated if you retrain.
"""

from __future__ import annotations

import os

# Same thread count => same floating-point summation order => bit-identical training runs.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
A16W8_DIR = HERE.parent / "digits_cnn_a16w8"

SEED = 0
SPLIT_SEED = 0
HOLDOUT_FRACTION = 0.2
N_CALIB = 64
N_TEST = 16
EPOCHS = 30
BATCH = 32
LR = 3e-3
WEIGHT_DECAY = 1e-4

C1, C2, NCLS = 8, 16, 10


# ----------------------------------------------------------------------------------------- data
def load_split():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]  # [N,1,8,8] in [0,1]
    y = d.target.astype(np.int64)
    # Fixed, seeded shuffle, then the last 20 % of the shuffled order is held out. (Holding out the
    # last 20 % in dataset order instead tests on mostly different writers and tops out around 92 %
    # for a net this small; a shuffled split is the usual protocol for this data set.)
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    n_test = int(round(len(x) * HOLDOUT_FRACTION))
    tr, te = np.sort(perm[:-n_test]), np.sort(perm[-n_test:])
    return (x[tr], y[tr]), (x[te], y[te])


# ------------------------------------------------------------------------------ conv via im2col
def im2col(x, stride):
    """x [B,C,H,W] -> cols [B, C*9, Ho*Wo] for a 3x3 kernel with pad 1."""
    b, c, h, w = x.shape
    ho, wo = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.empty((b, c, 3, 3, ho, wo), dtype=x.dtype)
    for i in range(3):
        for j in range(3):
            cols[:, :, i, j] = xp[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
    return cols.reshape(b, c * 9, ho * wo), (ho, wo)


def col2im(dcols, x_shape, stride, ho, wo):
    b, c, h, w = x_shape
    dcols = dcols.reshape(b, c, 3, 3, ho, wo)
    dxp = np.zeros((b, c, h + 2, w + 2), dtype=dcols.dtype)
    for i in range(3):
        for j in range(3):
            dxp[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += dcols[:, :, i, j]
    return dxp[:, :, 1:-1, 1:-1]


def conv_fwd(x, w, bias, stride):
    cols, (ho, wo) = im2col(x, stride)
    wm = w.reshape(w.shape[0], -1)
    out = np.matmul(wm, cols) + bias[None, :, None]  # [B,Cout,L]
    return out.reshape(x.shape[0], w.shape[0], ho, wo), (cols, x.shape, ho, wo)


def conv_bwd(dout, w, cache, stride, need_dx=True):
    cols, x_shape, ho, wo = cache
    b = dout.shape[0]
    d = dout.reshape(b, w.shape[0], ho * wo)
    dw = np.einsum("bol,bkl->ok", d, cols).reshape(w.shape)
    db = d.sum(axis=(0, 2))
    dx = None
    if need_dx:
        dcols = np.matmul(w.reshape(w.shape[0], -1).T, d)  # [B,C*9,L]
        dx = col2im(dcols, x_shape, stride, ho, wo)
    return dx, dw, db


# ---------------------------------------------------------------------------------------- model
def init_params(rng):
    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return {
        "W1": he((C1, 1, 3, 3), 9),
        "b1": np.zeros(C1, np.float32),
        "W2": he((C2, C1, 3, 3), C1 * 9),
        "b2": np.zeros(C2, np.float32),
        "W3": he((NCLS, C2 * 16), C2 * 16),  # Gemm B with transB=1
        "b3": np.zeros(NCLS, np.float32),
    }


def forward(p, x, train=False):
    z1, c1 = conv_fwd(x, p["W1"], p["b1"], 1)
    a1 = np.maximum(z1, 0)
    z2, c2 = conv_fwd(a1, p["W2"], p["b2"], 2)
    a2 = np.maximum(z2, 0)
    f = a2.reshape(x.shape[0], -1)  # same (C,H,W) order as ONNX Flatten(axis=1) on NCHW
    logits = f @ p["W3"].T + p["b3"]
    if not train:
        return logits
    return logits, (c1, z1, a1, c2, z2, f)


def loss_and_grads(p, x, y):
    logits, (c1, z1, a1, c2, z2, f) = forward(p, x, train=True)
    b = x.shape[0]
    m = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(m)
    prob = e / e.sum(axis=1, keepdims=True)
    loss = -np.log(prob[np.arange(b), y] + 1e-12).mean()
    dlog = prob
    dlog[np.arange(b), y] -= 1.0
    dlog /= b
    g = {"W3": dlog.T @ f, "b3": dlog.sum(axis=0)}
    df = dlog @ p["W3"]
    dz2 = df.reshape(z2.shape) * (z2 > 0)
    da1, g["W2"], g["b2"] = conv_bwd(dz2, p["W2"], c2, 2)
    dz1 = da1 * (z1 > 0)
    _, g["W1"], g["b1"] = conv_bwd(dz1, p["W1"], c1, 1, need_dx=False)
    return loss, g


def train(xtr, ytr, rng):
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    t = 0
    n = len(xtr)
    steps_per_epoch = (n + BATCH - 1) // BATCH
    total = EPOCHS * steps_per_epoch
    for epoch in range(EPOCHS):
        order = rng.permutation(n)
        ep_loss = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * BATCH : (s + 1) * BATCH]
            loss, g = loss_and_grads(p, xtr[idx], ytr[idx])
            ep_loss += loss * len(idx)
            t += 1
            lr = LR * 0.5 * (1 + np.cos(np.pi * (t - 1) / total))  # cosine decay
            for k in p:
                gk = g[k].astype(np.float32)
                if k.startswith("W"):
                    gk = gk + WEIGHT_DECAY * p[k]
                m[k] = b1 * m[k] + (1 - b1) * gk
                v[k] = b2 * v[k] + (1 - b2) * gk * gk
                mh = m[k] / (1 - b1**t)
                vh = v[k] / (1 - b2**t)
                p[k] = (p[k] - lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        if epoch % 5 == 4 or epoch == EPOCHS - 1:
            acc = (forward(p, xtr).argmax(1) == ytr).mean()
            print(f"epoch {epoch + 1:3d}  loss {ep_loss / n:.4f}  train acc {acc:.4f}")
    return p


# --------------------------------------------------------------------------------------- export
def export_onnx(p, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(p[k].astype(np.float32), k) for k in ("W1", "b1", "W2", "b2", "W3", "b3")]
    nodes = [
        helper.make_node(
            "Conv", ["x", "W1", "b1"], ["conv1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]
        ),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node(
            "Conv",
            ["relu1", "W2", "b2"],
            ["conv2"],
            name="conv2",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[2, 2],
        ),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("Flatten", ["relu2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "W3", "b3"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="pytest-edgeort example_suites/digits_cnn/train.py",
    )
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


class NpzReader:
    """CalibrationDataReader over calib.npz (key "x", shape [N,1,1,8,8])."""

    def __init__(self, calib):
        self._it = iter([{"x": calib[i]} for i in range(len(calib))])

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - not needed by MinMax
        pass


def quantize_variant(float_path, out_path, calib, activation_type):
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    cfg = get_qnn_qdq_config(
        str(float_path),
        NpzReader(calib),
        activation_type=getattr(QuantType, activation_type),
        weight_type=QuantType.QUInt8,
    )
    quantize(str(float_path), str(out_path), cfg)


def main():
    t0 = time.perf_counter()
    (xtr, ytr), (xte, yte) = load_split()
    print(f"train {len(xtr)}  held-out {len(xte)}")
    rng = np.random.default_rng(SEED)
    p = train(xtr, ytr, rng)
    acc = (forward(p, xte).argmax(1) == yte).mean()
    print(
        f"held-out accuracy (numpy, float): {acc:.4f} ({int(acc * len(yte))}/{len(yte)})"
        f"  training took {time.perf_counter() - t0:.1f} s"
    )

    sel = np.random.default_rng(SEED + 1)
    calib_idx = np.sort(sel.choice(len(xtr), N_CALIB, replace=False))
    test_idx = np.sort(sel.choice(len(xte), N_TEST, replace=False))
    calib = np.ascontiguousarray(xtr[calib_idx][:, None])  # [64,1,1,8,8]
    x_test = np.ascontiguousarray(xte[test_idx][:, None])  # [16,1,1,8,8]
    y_test = yte[test_idx]

    export_onnx(p, HERE / "digits_cnn.onnx")
    np.savez(HERE / "calib.npz", x=calib)
    np.savez(HERE / "inputs.npz", x=x_test)
    np.savez(HERE / "labels.npz", y=y_test)
    quantize_variant(HERE / "digits_cnn.onnx", HERE / "digits_cnn_qdq.onnx", calib, "QUInt8")
    quantize_variant(HERE / "digits_cnn.onnx", HERE / "digits_cnn_a16w8.onnx", calib, "QUInt16")

    # Sibling suite for the 16-bit-activation variant: suite paths must stay inside their folder.
    A16W8_DIR.mkdir(exist_ok=True)
    for name in ("digits_cnn_a16w8.onnx", "digits_cnn.onnx", "inputs.npz", "labels.npz"):
        shutil.copyfile(HERE / name, A16W8_DIR / name)

    # Sanity check of the exported float model against the numpy forward pass.
    import onnxruntime as ort

    sess = ort.InferenceSession(str(HERE / "digits_cnn.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = np.concatenate([sess.run(None, {"x": x_test[i]})[0] for i in range(N_TEST)])
    err = np.abs(onnx_out - forward(p, x_test[:, 0])).max()
    print(f"ONNX (CPU EP) vs numpy forward: max |d| = {err:.2e}")
    if err > 1e-4:
        sys.exit("exported ONNX model does not match the numpy model")
    print(f"test labels: {y_test.tolist()}")
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
