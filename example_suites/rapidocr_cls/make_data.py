"""Regenerate inputs.npz / calib.npz from real text: scikit-image's scanned book page (skimage.data.page).

Text-line quads are what RapidOCR's own detector (PP-OCRv6_det_small, CPU) found on that page; each line
is cut into pieces of the classifier's aspect ratio (4:1), preprocessed exactly like rapidocr's
TextClassifier.resize_norm_img (resize to height 48, pad width to 192, (x/255 - 0.5) / 0.5), and used
upright (label 0) and rotated by 180 degrees (label 1). Even pieces -> inputs.npz, odd -> calib.npz.

    python example_suites/rapidocr_cls/make_data.py
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from skimage import data

HERE = Path(__file__).parent
# RapidOCR()(page) boxes (rapidocr 3.10.0, PP-OCRv6_det_small), top-left clockwise
LINES = [
    [[3, 9], [296, 10], [295, 36], [3, 35]],
    [[2, 45], [379, 47], [379, 68], [2, 66]],
    [[1, 62], [380, 63], [380, 87], [1, 86]],
    [[1, 79], [380, 81], [380, 105], [1, 104]],
    [[1, 95], [381, 97], [381, 124], [1, 122]],
    [[4, 114], [173, 120], [173, 140], [3, 133]],
    [[38, 167], [243, 175], [242, 190], [37, 186]],
]


def crop(img: np.ndarray, quad) -> np.ndarray:
    """rapidocr.utils.process_img.get_rotate_crop_image (perspective crop of a text quad)."""
    pts = np.asarray(quad, np.float32)
    w = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
    h = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(pts, dst)
    return cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)


def resize_norm(img: np.ndarray, shape=(3, 48, 192)) -> np.ndarray:
    """rapidocr.ch_ppocr_cls.main.TextClassifier.resize_norm_img."""
    c, h, w = shape
    ratio = img.shape[1] / float(img.shape[0])
    rw = w if math.ceil(h * ratio) > w else int(math.ceil(h * ratio))
    r = cv2.resize(img, (rw, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    r = (r.transpose(2, 0, 1) / 255 - 0.5) / 0.5
    out = np.zeros(shape, np.float32)
    out[:, :, :rw] = r
    return out


def pieces() -> list[np.ndarray]:
    page = np.stack([data.page()] * 3, axis=-1)
    out = []
    for quad in LINES:
        line = crop(page, quad)
        h, w = line.shape[:2]
        n = max(1, round(w / (4 * h)))
        step = w // n
        out += [line[:, i * step : (i + 1) * step] for i in range(n)]
    return out


def main() -> None:
    ps = pieces()

    def stack(sel):
        xs = [resize_norm(p) for p in sel] + [resize_norm(np.ascontiguousarray(p[::-1, ::-1])) for p in sel]
        labels = [0] * len(sel) + [1] * len(sel)
        return np.stack(xs)[:, None], np.array(labels, np.int64)

    x_in, y_in = stack(ps[0::2])
    x_cal, _ = stack(ps[1::2])
    np.savez_compressed(HERE / "inputs.npz", x=x_in)
    np.savez_compressed(HERE / "labels.npz", label=y_in)
    np.savez_compressed(HERE / "calib.npz", x=x_cal)
    print(f"{len(ps)} pieces: inputs {x_in.shape}, calib {x_cal.shape}")


if __name__ == "__main__":
    main()
