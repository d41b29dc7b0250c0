"""The CPU one ``run`` request costs each side, hot, without any transport: what the wire and the client add.

On a board, every request wakes the host's client and the worker from sleep, and their work then costs ~3x what it
costs in a hot loop (see remote_overhead.py: that multiple of the work below is what a worker round trip adds to a
raw ``cat`` echo of the same bytes). This measures the work itself, for the Relu request of remote_overhead.py
(1x3x32x32 float32 in and out, CPU EP):

- host: ``WorkerClient.run`` against a transport that answers at once from prepared replies (the request's frame,
  the send, reading and checking the reply frame);
- worker: its serve loop answering such requests read from memory (reading and checking the frame, the inference,
  the reply frame), the inference alone printed apart.

Each figure is the median of ``--rounds`` rounds of ``--n`` requests (microseconds a request). ``--baseline DIR``
(another checkout, e.g. a ``git worktree`` of an earlier commit) measures that checkout's code the same way, its
rounds alternated with this one's, and prints this one against it.

    python -m benchmarks.request_cost [--n 10000] [--rounds 5] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

SIDES = ("host", "worker", "inference")


def measure(n: int) -> Dict[str, float]:
    """One round of each side in this process, with the package this process imports (us a request)."""
    import onnxruntime as ort

    from benchmarks.remote_overhead import relu_model
    from pytest_edgeort.board import wire
    from pytest_edgeort.board.serveloop import serve
    from pytest_edgeort.board.worker import Worker
    from pytest_edgeort.devices.client import WorkerClient
    from pytest_edgeort.devices.replies import within
    from pytest_edgeort.devices.transport import StderrTail, Transport

    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    hello = {"ok": True, "hello": True, "protocol": wire.PROTOCOL_VERSION, "pid": 1}
    replies = [b"".join(wire.frame_parts(hello))]
    replies += [
        b"".join(wire.frame_parts({"memory_differs": {}, "ok": True, "id": i}, [("y", x)])) for i in range(1, n + 1)
    ]

    class Prepared(Transport):
        def __init__(self) -> None:
            self.stderr = StderrTail()
            self.next = iter(replies)
            self.out = next(self.next)

        def send(self, parts: object) -> None:
            self.out = next(self.next)

        def recv(self, max_bytes: int, timeout: Optional[float]) -> bytes:
            out, self.out = self.out, b""
            return out

        def exit_status(self) -> Optional[int]:
            return None

        def terminate(self) -> None:
            pass

    client = WorkerClient(Prepared(), "prepared replies")
    check, feed = within({"y": ("<f4", 1 << 20)}, "the model"), {"x": x}
    start = time.perf_counter()
    for _ in range(n):
        client.run("s", feed, False, None, outputs=check)
    host = (time.perf_counter() - start) / n * 1e6

    with tempfile.TemporaryDirectory(prefix="edgeort-request-cost-") as tmp:
        data = relu_model(Path(tmp) / "relu.onnx").read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        worker = Worker(os.path.join(tmp, "workdir"))
        worker.store.put_model(sha, data)
        worker.create_session("s", sha, "CPUExecutionProvider", {}, True, None, (), False, False)
        requests = b"".join(
            b"".join(wire.frame_parts({"sid": "s", "memory_check": False, "op": "run", "id": i}, [("x", x)]))
            for i in range(n)
        )
        reader = wire.stream_reader(io.BufferedReader(io.BytesIO(requests), 64 * 1024))
        start = time.perf_counter()
        serve(reader, lambda parts: None, worker)
        board = (time.perf_counter() - start) / n * 1e6
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        start = time.perf_counter()
        for _ in range(n):
            sess.run(None, feed)
        inference = (time.perf_counter() - start) / n * 1e6
    return {"host": host, "worker": board, "inference": inference}


def measure_in(checkout: Path, n: int) -> Dict[str, float]:
    """This file's :func:`measure` in a fresh Python that imports ``checkout``'s package (an older checkout may
    not have this file)."""
    code = (
        "import importlib.util, json, sys; spec = importlib.util.spec_from_file_location('cost', sys.argv[2]); "
        "cost = importlib.util.module_from_spec(spec); spec.loader.exec_module(cost); "
        "print(json.dumps(cost.measure(int(sys.argv[1]))))"
    )
    env = dict(os.environ, PYTHONPATH=str(checkout))
    command = [sys.executable, "-c", code, str(n), __file__]
    out = subprocess.run(command, cwd=checkout, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="requests a round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (alternated with --baseline's)")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to measure alongside")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    checkouts = {"this checkout": here}
    if args.baseline is not None:
        checkouts["--baseline"] = args.baseline.resolve()
    rounds: Dict[str, List[Dict[str, float]]] = {label: [] for label in checkouts}
    for _ in range(args.rounds):
        for label, checkout in checkouts.items():
            rounds[label].append(measure_in(checkout, args.n))
    print(f"CPU a Relu run request, hot (us; median of {args.rounds} rounds of {args.n}, numpy {np.__version__})")
    print(f"  {'':16}" + "".join(f"{side:>12}" for side in SIDES))
    medians = {
        label: {side: statistics.median(r[side] for r in runs) for side in SIDES} for label, runs in rounds.items()
    }
    for label, med in medians.items():
        print(f"  {label:16}" + "".join(f"{med[side]:>12.2f}" for side in SIDES))
        print(
            f"  {'':16}rounds, host/worker: " + ", ".join(f"{r['host']:.1f}/{r['worker']:.1f}" for r in rounds[label])
        )
    if args.baseline is not None:
        mine, base = medians["this checkout"], medians["--baseline"]
        print(
            "  this checkout / --baseline: "
            + ", ".join(f"{side} {mine[side] / base[side]:.2f}x" for side in SIDES)
            + f"; host + worker beyond the inference {mine['host'] + mine['worker'] - mine['inference']:.1f} us "
            f"against {base['host'] + base['worker'] - base['inference']:.1f} us"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
