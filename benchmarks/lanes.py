"""Simulator lanes: one batch of a suite's examples on the QNN HTP simulator, in one worker vs spread over lanes.

The example suites' prepared deep models (magika, rapidocr_cls by default) and their ``inputs.npz`` examples, on
the ``local`` device: the same session's ``run_all`` of every example (the conformance item's batch) with
``simulator_workers = 1`` (one worker, as before lanes) and with the default (the device's cores), alternated.
Each batch is a fresh session (its first run times the batch, as in a run); the outputs of every batch must equal
the one-worker batch's bit for bit. Goal: wall time divided by about the number of cores, identical outputs.

    python -m benchmarks.lanes [--repeats 3] [--models magika rapidocr_cls]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from benchmarks.sensitivity import ROOT, _suite_model
from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import load_npz, split_examples

HTP = resolve_provider("qnn-htp")


def batch(device: LocalDevice, model, feeds: List[Dict[str, np.ndarray]]) -> tuple:
    """``(seconds, output bytes, lanes used)`` of one ``run_all`` of ``feeds`` on a fresh session."""
    session = device.open_session(model, HTP, provider_options(HTP, None, None, where="benchmark"), False)
    try:
        start = time.perf_counter()
        outputs = session.run_all(feeds)
        elapsed = time.perf_counter() - start
        return elapsed, [[a.tobytes() for a in o.values()] for o in outputs], len(session.lanes or [])
    finally:
        session.close()


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["magika", "rapidocr_cls"])
    args = parser.parse_args(argv)
    print(f"cores: {len(os.sched_getaffinity(0))}")
    print(f"{'model':14} {'examples':>8} {'one worker s':>13} {'lanes s':>8} {'lanes':>5} {'ratio':>6}  bit-identical")
    with tempfile.TemporaryDirectory() as workdir:
        work = str(Path(workdir) / "work")
        one = LocalDevice(DeviceConfig("local", workdir=work, command_timeout=600.0, settings={"simulator_workers": 1}))
        spread = LocalDevice(DeviceConfig("local", workdir=work, command_timeout=600.0))
        try:
            for name in args.models:
                model = model_info(_suite_model(name))
                path = ROOT / "example_suites" / name / "inputs.npz"
                feeds = split_examples(model, load_npz(path), str(path))
                batch(one, model, feeds[:2])  # store the EP-context entry and warm both workers first
                batch(spread, model, feeds[:2])
                times: Dict[str, List[float]] = {"one": [], "spread": []}
                reference, identical, used = None, True, 0
                for _ in range(args.repeats):
                    for label, device in (("one", one), ("spread", spread)):
                        elapsed, outputs, lanes = batch(device, model, feeds)
                        times[label].append(elapsed)
                        reference = outputs if reference is None else reference
                        identical = identical and outputs == reference
                        used = max(used, lanes)
                a, b = statistics.median(times["one"]), statistics.median(times["spread"])
                print(f"{name:14} {len(feeds):8d} {a:13.2f} {b:8.2f} {used + 1:5d} {a / b:5.2f}x  {identical}")
        finally:
            one.close()
            spread.close()
    print(
        f"(medians of {args.repeats}, alternated; lanes: worker processes the batch used, the session's own included)"
    )


if __name__ == "__main__":
    main()
