"""ddddocr's ``common_det`` (a YOLOX-style detector from the ``ddddocr`` wheel on PyPI): ``[1, 3549, 6]``, the
52x52, 26x26 and 13x13 grids of a 416 x 416 input, each Reshape'd and Concat'ed, then Transpose'd.

Its u8 QDQ model on the HTP simulator carries a real NPU defect (objectness / class channels of the last
head ~-90 LSB off the CPU); its a16w8 model is healthy there. Inputs are drawn captcha-like images
(light noisy background, dark glyph rings), also used to calibrate. Get the model with
``pip download ddddocr==1.6.1 --no-deps -d DIR`` and unzip ``ddddocr/common_det.onnx`` from the wheel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pytest_edgeort.model.prepare import PrepareRecipe, prepare_model

from .deep_outputs import CACHE, Feeds, Source

SIZE = 416


def image(seed: int) -> np.ndarray:
    """A ``[1, 3, 416, 416]`` captcha-like image in 0..255 (what the detector takes, unnormalized)."""
    rng = np.random.default_rng(seed)
    img = rng.uniform(120, 250) + rng.normal(0, 12, (3, SIZE, SIZE))
    yy, xx = np.ogrid[:SIZE, :SIZE]
    for _ in range(int(rng.integers(4, 9))):
        y, x = rng.integers(20, 360, 2)
        h, w = rng.integers(20, 60, 2)
        ring = ((yy - y - h / 2) / (h / 2)) ** 2 + ((xx - x - w / 2) / (w / 2)) ** 2
        img[:, (ring < 1) & (ring > 0.4)] = rng.uniform(0, 80)
    return np.clip(img, 0, 255).astype(np.float32)[None]


def _prepared(onnx_file: Path, activations: str) -> Path:
    folder = CACHE / "ddddocr"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "calib.npz", images=np.stack([image(seed) for seed in range(8)]))
    (folder / onnx_file.name).write_bytes(onnx_file.read_bytes())
    quantize = {"activations": activations, "weights": "uint8", "calibration": "calib.npz"}
    recipe = PrepareRecipe.from_mapping({"qnn_preprocess": True, "quantize": quantize}, "ddddocr common_det")
    return prepare_model(folder / onnx_file.name, recipe, folder, CACHE / "prepared")


def source(onnx_file: Path, activations: str, inputs: int) -> Source:
    """``common_det`` quantized with ``activations`` (uint8 / uint16), on ``inputs`` drawn images."""

    def feeds() -> Feeds:
        return [{"images": image(100 + i)} for i in range(inputs)]

    return Source(f"ddddocr_det_{activations}", lambda: _prepared(onnx_file, activations), feeds, 0)
