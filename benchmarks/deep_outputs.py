"""Healthy outputs of the example suites' deep models, cached: QNN HTP, CPU-QDQ and the QDQ model's own float
yardstick (activation Q/DQ pairs removed, :mod:`pytest_edgeort.model.yardstick`), per input.

Fault injection on deep models is then pure numpy on the saved HTP outputs (``benchmarks.sensitivity
--deep``): the simulator takes 0.5-2 s per inference there. Inputs: every real input of the suite, then
``generated`` seeded noise inputs. Cached in ``.edgeort-cache/sensitivity/<suite>-<model sha>-<n>.npz``.

    python -m benchmarks.deep_outputs [--suites ppocr_det,magika,silero_vad,rapidocr_cls] [--generated 8]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from pytest_edgeort.config.suite import load_suite
from pytest_edgeort.model.info import ModelInfo, model_info
from pytest_edgeort.model.inputs import generate_inputs, load_npz, split_examples
from pytest_edgeort.model.prepare import prepare_model
from pytest_edgeort.model.yardstick import yardstick_model

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".edgeort-cache"
SEED = 20240607
DEEP_SUITES = ("ppocr_det", "magika", "silero_vad", "rapidocr_cls")
SIDES = ("htp", "cpu", "yard")


def suite_model(folder: str) -> Path:
    """The suite's model as its ``[prepare]`` makes it (cached as the plugin caches it)."""
    suite = load_suite(ROOT / "example_suites" / folder / "edge_suite.toml")
    source = suite.resolve_model(suite.model, "model")
    if suite.prepare is None:
        return source
    return prepare_model(source, suite.prepare, suite.folder, CACHE / "prepared")


def feeds_of(folder: str, info: ModelInfo, generated: int) -> List[Dict[str, np.ndarray]]:
    suite = load_suite(ROOT / "example_suites" / folder / "edge_suite.toml")
    real = split_examples(info, load_npz(suite.local_file(suite.inputs, "inputs")), "inputs")
    return real + [generate_inputs(info, SEED, i) for i in range(generated)]


def healthy_outputs(folder: str, generated: int) -> Dict[str, np.ndarray]:
    """``{"<side>/<output>": [N, ...]}`` for the sides htp, cpu, yard, and ``"real"``: [N] bool."""
    from tools.measure_suite import session

    path = suite_model(folder)
    info = model_info(path)
    target = CACHE / "sensitivity" / f"{folder}-{info.sha256[:16]}-{generated}.npz"
    if target.is_file():
        with np.load(target) as data:
            return {k: data[k] for k in data.files}
    feeds = feeds_of(folder, info, generated)
    yard = yardstick_model(path, info.sha256, CACHE / "yardstick")
    names = [o.name for o in info.outputs]
    found: Dict[str, np.ndarray] = {}
    for side, sess in (("cpu", session(path, False)), ("yard", session(yard, False)), ("htp", session(path, True))):
        t = time.perf_counter()
        runs = [sess.run(names, feed) for feed in feeds]
        for i, name in enumerate(names):
            found[f"{side}/{name}"] = np.stack([r[i] for r in runs])
        print(f"{folder}: {side} {len(feeds)} inputs in {time.perf_counter() - t:.0f} s", flush=True)
    found["real"] = np.arange(len(feeds)) < len(feeds) - generated
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, **found)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default=",".join(DEEP_SUITES))
    ap.add_argument("--generated", type=int, default=8)
    args = ap.parse_args()
    for folder in args.suites.split(","):
        healthy_outputs(folder, args.generated)


if __name__ == "__main__":
    main()
