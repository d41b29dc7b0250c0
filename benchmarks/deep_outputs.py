"""Healthy outputs of deep models, cached: QNN HTP, CPU-QDQ and the QDQ model's own float yardstick (activation
Q/DQ pairs replaced by their range, :mod:`pytest_edgeort.model.yardstick`), per input.

Fault injection on deep models is then pure numpy on the saved HTP outputs (``benchmarks.sensitivity
--deep``): the simulator takes 0.5-6 s per inference there. Models: the example suites' deep models (every
real input of the suite, then ``generated`` seeded noise inputs) and ddddocr's ``common_det`` detector
(:mod:`benchmarks.ddddocr_det`, when its wheel has been downloaded). Cached in
``.edgeort-cache/sensitivity/<name>-<model sha>-<n>.npz``.

    python -m benchmarks.deep_outputs [--suites ppocr_det,magika,silero_vad,rapidocr_cls] [--generated 8]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from pytest_edgeort.config.suite import load_suite
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs, load_npz, split_examples
from pytest_edgeort.model.prepare import prepare_model
from pytest_edgeort.model.yardstick import yardstick_model

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".edgeort-cache"
SEED = 20240607
DEEP_SUITES = ("ppocr_det", "magika", "silero_vad", "rapidocr_cls")
Feeds = List[Dict[str, np.ndarray]]


@dataclass
class Source:
    """A deep model to measure: its (prepared) file, its inputs and how many of them are real."""

    name: str
    model: Callable[[], Path]
    feeds: Callable[[], Feeds]
    real: int


def suite_model(folder: str) -> Path:
    """The suite's model as its ``[prepare]`` makes it (cached as the plugin caches it)."""
    suite = load_suite(ROOT / "example_suites" / folder / "edge_suite.toml")
    source = suite.resolve_model(suite.model, "model")
    if suite.prepare is None:
        return source
    return prepare_model(source, suite.prepare, suite.folder, CACHE / "prepared")


def suite_source(folder: str, generated: int) -> Source:
    """An example suite's model with its real inputs, then ``generated`` noise inputs."""
    suite = load_suite(ROOT / "example_suites" / folder / "edge_suite.toml")
    info = model_info(suite_model(folder))
    real = split_examples(info, load_npz(suite.local_file(suite.inputs, "inputs")), "inputs")
    return Source(
        folder,
        lambda: suite_model(folder),
        lambda: real + [generate_inputs(info, SEED, i) for i in range(generated)],
        len(real),
    )


def healthy_outputs(source: Source) -> Dict[str, np.ndarray]:
    """``{"<side>/<output>": [N, ...]}`` for the sides htp, cpu, yard, and ``"real"``: [N] bool."""
    from tools.measure_suite import session

    path = source.model()
    info = model_info(path)
    feeds = source.feeds()
    target = CACHE / "sensitivity" / f"{source.name}-{info.sha256[:16]}-{len(feeds)}.npz"
    if target.is_file():
        with np.load(target) as data:
            return {k: data[k] for k in data.files}
    yard = yardstick_model(path, info.sha256, CACHE / "yardstick")
    names = [o.name for o in info.outputs]
    found: Dict[str, np.ndarray] = {}
    for side, sess in (("cpu", session(path, False)), ("yard", session(yard, False)), ("htp", session(path, True))):
        t = time.perf_counter()
        runs = [sess.run(names, feed) for feed in feeds]
        for i, name in enumerate(names):
            found[f"{side}/{name}"] = np.stack([r[i] for r in runs])
        print(f"{source.name}: {side} {len(feeds)} inputs in {time.perf_counter() - t:.0f} s", flush=True)
    found["real"] = np.arange(len(feeds)) < source.real
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, **found)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default=",".join(DEEP_SUITES))
    ap.add_argument("--generated", type=int, default=8)
    args = ap.parse_args()
    for folder in args.suites.split(","):
        healthy_outputs(suite_source(folder, args.generated))


if __name__ == "__main__":
    main()
