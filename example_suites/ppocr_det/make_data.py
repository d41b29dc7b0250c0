"""Regenerate inputs.npz / calib.npz from real images bundled with scikit-image (no download).

Each example is a crop of aspect 320:96 from a real image, resized to the suite's fixed input
[1, 3, 96, 320] and preprocessed like rapidocr's DetPreProcess ((pixel / 255 - 0.5) / 0.5, HWC BGR ->
CHW). Inputs and calibration crops do not overlap:

* inputs.npz (4):  the scanned book page (skimage.data.page) top lines and a 2x zoom of its lower
  lines, photographed handwriting (skimage.data.text), and a photo without text (skimage.data.rocket)
* calib.npz (11):  other page / text regions plus 8 natural photos (astronaut, coffee, chelsea, camera,
  coins, immunohistochemistry, stereo_motorcycle, logo)

    python example_suites/ppocr_det/make_data.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

HERE = Path(__file__).parent
H, W = 96, 320


def bgr(name: str) -> np.ndarray:
    img = getattr(data, name)()
    if isinstance(img, tuple):  # stereo pairs
        img = img[0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.shape[-1] == 4:  # RGBA on white
        a = img[..., 3:4].astype(np.float32) / 255
        img = (img[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
    return np.ascontiguousarray(img[..., ::-1])  # RGB -> BGR, as cv2.imread gives rapidocr


def crop(name: str, y: int, x: int, h: int) -> np.ndarray:
    """Crop of height h and width h * 320/96 at (y, x), resized to 96 x 320, normalized, CHW."""
    img = bgr(name)
    w = round(h * W / H)
    assert y + h <= img.shape[0] and x + w <= img.shape[1], (name, img.shape, y, x, h, w)
    r = cv2.resize(img[y : y + h, x : x + w], (W, H), interpolation=cv2.INTER_LINEAR)
    return ((r.astype(np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None]


INPUTS = [
    ("page", 0, 0, 115),  # title and first four lines of the page, full width
    ("page", 120, 0, 58),  # lower lines, left half, ~2x zoom
    ("text", 0, 0, 86),  # photographed handwritten formulas, upper left
    ("rocket", 120, 0, 192),  # launch pad photo: no text
]
CALIB = [  # (image, y, x, height): none overlaps an input crop
    ("page", 125, 194, 57),
    ("text", 86, 128, 86),
    ("text", 0, 288, 48),
    ("astronaut", 0, 0, 150),
    ("coffee", 100, 0, 180),
    ("chelsea", 80, 0, 135),
    ("camera", 200, 0, 150),
    ("coins", 0, 0, 115),
    ("immunohistochemistry", 300, 0, 150),
    ("stereo_motorcycle", 150, 0, 220),
    ("logo", 150, 0, 150),
]


def main() -> None:
    x_in = np.stack([crop(*c) for c in INPUTS])
    x_cal = np.stack([crop(*c) for c in CALIB])
    np.savez_compressed(HERE / "inputs.npz", x=x_in)
    np.savez_compressed(HERE / "calib.npz", x=x_cal)
    print(f"inputs {x_in.shape}, calib {x_cal.shape}")


if __name__ == "__main__":
    main()
