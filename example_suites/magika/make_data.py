"""Regenerate inputs.npz / calib.npz / files.json from real files featurized exactly like magika 1.0.3.

Files come from packages this suite needs anyway (python stdlib, numpy, onnx, onnxruntime-qnn,
scikit-image, rapidocr, magika): one file per type for inputs.npz, two other files per type for
calib.npz. Features: magika.Magika._extract_features_from_seekable (first 1024 bytes after lstrip,
last 1024 bytes after rstrip, padding token 256) -> beg + end as int32 [1, 2048].

    python example_suites/magika/make_data.py
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import magika
import numpy as np
import onnx
import onnxruntime_qnn
import rapidocr
import skimage
from magika import Magika
from magika.types.seekable import Seekable

HERE = Path(__file__).parent
STDLIB = Path(sysconfig.get_paths()["stdlib"])
ROOTS = {
    "stdlib": STDLIB,
    "numpy": Path(np.__file__).parent,
    "onnx": Path(onnx.__file__).parent,
    "onnxruntime_qnn": Path(onnxruntime_qnn.__file__).parent,
    "skimage": Path(skimage.__file__).parent,
    "rapidocr": Path(rapidocr.__file__).parent,
    "magika": Path(magika.__file__).parent,
}
# type -> (root, glob); sorted matches >= 1 KiB: first for inputs, next two (where present) for calibration
TYPES = {
    "python": ("stdlib", "*.py"),
    "pythonbytecode": ("stdlib", "__pycache__/*.cpython-311.pyc"),
    "elf": ("stdlib", "lib-dynload/*.so"),
    "html": ("stdlib", "idlelib/*.html"),
    "png": ("skimage", "data/*.png"),
    "jpeg": ("skimage", "data/*.jpg"),
    "gif": ("stdlib", "idlelib/Icons/*.gif"),
    "tiff": ("skimage", "data/*.tif"),
    "c": ("numpy", "_core/include/numpy/*.c"),
    "h": ("numpy", "_core/include/numpy/*.h"),
    "csv": ("numpy", "_core/tests/data/*.csv"),
    "npy/npz": ("skimage", "data/*.np[yz]"),
    "onnx": ("onnx", "backend/test/data/light/*.onnx"),
    "zip/whl": ("stdlib", "ensurepip/_bundled/*.whl"),
    "yaml": ("rapidocr", "*.yaml"),
    "json": ("magika", "**/*.json"),
    "rst": ("stdlib", "email/*.rst"),
    "text": ("stdlib", "idlelib/*.txt"),
    "pdf": ("onnxruntime_qnn", "*.pdf"),
}


def features(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        fs = Magika._extract_features_from_seekable(Seekable(f), 1024, 0, 1024, 256, 4096, False)
    return np.array(fs.beg + fs.end, np.int32)[None]


def main() -> None:
    picked: dict[str, list[str]] = {}
    for kind, (root, pattern) in TYPES.items():
        files = sorted(p for p in ROOTS[root].glob(pattern) if p.is_file() and p.stat().st_size >= 1024)
        picked[kind] = [f"{root}:{p.relative_to(ROOTS[root])}" for p in files[:3]]

    def load(entries):
        return np.stack([features(ROOTS[e.split(":")[0]] / e.split(":", 1)[1]) for e in entries])

    inputs = [v[0] for v in picked.values()]
    calib = [e for v in picked.values() for e in v[1:]]
    np.savez_compressed(HERE / "inputs.npz", bytes=load(inputs))
    np.savez_compressed(HERE / "calib.npz", bytes=load(calib))
    (HERE / "files.json").write_text(json.dumps({"inputs": inputs, "calibration": calib}, indent=1) + "\n")
    print(f"inputs {len(inputs)}, calibration {len(calib)}")


if __name__ == "__main__":
    main()
