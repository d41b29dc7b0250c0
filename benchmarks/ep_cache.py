"""EP-context cache: QNN HTP session creation compiling the graph (cold) vs loading it from the cache (cached).

The example suites' prepared deep models (rapidocr_cls, ppocr_det; prepared by their suite's [prepare] and
cached in .edgeort-cache/prepared) on the ``local`` device's worker, CPU fallback disabled as the checks
create them. One worker process, a fresh workdir: one creation stores the entry, then cold creations
(``--edge-no-ep-cache``) and cached ones alternate. Every cached creation must report a proven hit (created
with ``session.disable_model_compile=1``), and cold and cached outputs of one feed must agree bit for bit.
Times are the host's ``open_session`` call (request, session creation in the worker, reply). Goal: >= 5x.

    python -m benchmarks.ep_cache [--repeats 5] [--models rapidocr_cls ppocr_det]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import List

import numpy as np

from benchmarks.sensitivity import _suite_model
from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs

HTP = resolve_provider("qnn-htp")


def creation_s(device: LocalDevice, model, cache: bool, want: str) -> float:
    """Seconds to open (and then close) one session; its EP-context state must be ``want``."""
    device.ep_cache = cache
    start = time.perf_counter()
    session = device.open_session(model, HTP, provider_options(HTP, None, None, where="benchmark"), False)
    elapsed = time.perf_counter() - start
    state = (session.facts["ep_context"] or {}).get("state")
    session.close()
    if state != want:
        raise SystemExit(f"{model.path.name}: EP-context state {state!r}, expected {want!r}")
    return elapsed


def same_outputs(device: LocalDevice, model) -> bool:
    """Whether a cold and a cached session give bit-identical outputs for one generated feed."""
    feed = generate_inputs(model, seed=1)
    results = []
    for cache in (False, True):
        device.ep_cache = cache
        session = device.open_session(model, HTP, provider_options(HTP, None, None, where="benchmark"), False)
        results.append([np.ascontiguousarray(a).tobytes() for a in session.run(feed, False)[1].values()])
        session.close()
    return results[0] == results[1]


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["rapidocr_cls", "ppocr_det"])
    args = parser.parse_args(argv)
    print(f"{'model':14} {'MB':>5} {'store s':>8} {'cold s':>8} {'cached s':>9} {'ratio':>7}  bit-identical")
    with tempfile.TemporaryDirectory() as workdir:
        device = LocalDevice(DeviceConfig("local", workdir=str(Path(workdir) / "work"), command_timeout=600.0))
        try:
            for name in args.models:
                model = model_info(_suite_model(name))
                creation_s(device, model, False, None)  # upload the model and warm the worker first
                store = creation_s(device, model, True, "stored")
                cold, cached = [], []
                for _ in range(args.repeats):
                    cold.append(creation_s(device, model, False, None))
                    cached.append(creation_s(device, model, True, "hit"))
                c, h = statistics.median(cold), statistics.median(cached)
                size = model.path.stat().st_size / 1e6
                print(
                    f"{name:14} {size:5.1f} {store:8.3f} {c:8.3f} {h:9.4f} {c / h:6.1f}x  {same_outputs(device, model)}"
                )
        finally:
            device.close()
    print(f"(medians of {args.repeats}, cold and cached alternated; goal: cold / cached >= 5x)")


if __name__ == "__main__":
    main()
