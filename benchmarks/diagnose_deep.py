"""Layer-wise diagnosis on a deep real model: sessions and seconds to name a fault injected at a known node.

The suite's prepared QDQ model gets an exact offset of ``--lsb`` LSB on the quantized tensor in the middle of
its candidates (``tests.support.models.with_inner_fault``: an Add node and its own Q/DQ pair); the faulty model
runs on QNN HTP (the ``local`` device's simulator), the healthy one on CPU, and ``edge_session.diagnose`` must
name the injected node. Prints the message, whether the node was named, sessions, seconds, and the sessions
bisection needs without refusals (2 per probe: the outputs, ceil(log2 N) halvings, the node's inputs).

    python -m benchmarks.diagnose_deep [--suite ppocr_det] [--lsb 40] [--at 0.5]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import onnx

from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.config.suite import load_suite
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.devices.session import EdgeSession
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import load_npz, split_examples
from pytest_edgeort.model.prefix import candidates
from pytest_edgeort.model.prepare import prepare_model
from tests.support.models import with_inner_fault

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="ppocr_det")
    parser.add_argument("--lsb", type=int, default=40)
    parser.add_argument("--at", type=float, default=0.5, help="where among the candidates (0..1)")
    parser.add_argument("--budget", type=float, default=None, help="seconds (default: the plugin's default)")
    args = parser.parse_args()
    suite = load_suite(ROOT / "example_suites" / args.suite / "edge_suite.toml")
    source = suite.resolve_model(suite.model, "model")
    model = prepare_model(source, suite.prepare, suite.folder, ROOT / ".edgeort-cache" / "prepared")
    cuts = [c for c in candidates(onnx.load(str(model))) if c.quant is not None]
    target = cuts[int(args.at * (len(cuts) - 1))]
    info = model_info(model)
    feeds = split_examples(info, load_npz(suite.local_file(suite.inputs, "inputs")), "inputs")
    with tempfile.TemporaryDirectory() as tmp:
        faulty = with_inner_fault(model, Path(tmp) / "faulty.onnx", target.tensor, ("add", args.lsb))
        device = LocalDevice(DeviceConfig("local", workdir=str(Path(tmp) / "work")))
        qnn, cpu = resolve_provider("qnn-htp"), resolve_provider("cpu")
        try:
            session = EdgeSession(device, model_info(faulty), qnn, provider_options(qnn), True, lambda _: None)
            reference = EdgeSession(device, info, cpu, provider_options(cpu), True, lambda _: None)
            began = time.monotonic()
            found = session.diagnose(feeds, reference, suite.tolerance, args.budget, cache=Path(tmp) / "prefixes")
            seconds = time.monotonic() - began
        finally:
            device.close()
    named = found.found is not None and found.found.node == f"{target.tensor}_fault_op"
    expected = 2 * (2 + math.ceil(math.log2(found.candidates)))
    print(f"{args.suite}: +{args.lsb} LSB after node {target.node!r} ({target.op_type}), candidate {target.index}")
    print(found.message)
    for step in found.steps:
        error = f"max {step.error} {step.unit}" if step.error is not None else step.detail
        print(f"  probe at {step.index:4d} {step.tensor!r}: {step.outcome}, {error}, {step.seconds:.1f} s")
    print(
        f"named the injected node: {named}; {found.sessions} sessions (bisection without refusals: {expected}), "
        f"{seconds:.1f} s, {len(feeds)} examples"
    )


if __name__ == "__main__":
    main()
