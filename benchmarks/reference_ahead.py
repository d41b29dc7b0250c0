"""A marker test's two runs: ``edge_session.run(x)`` then ``edge_reference.run(x)``, each its own request to the
worker vs the reference's run taken along with the first (one write, one round trip: ``EdgeSession.follow``).

The benchmark's u8 QDQ conv/matmul model (QNN HTP simulator vs CPU), on the ``local`` device and on an SSH board
(a throwaway loopback ``/usr/sbin/sshd``, this Python as the board's), N pairs of runs on fresh inputs per round,
alternated rounds of each way; prints the median ms per pair, the ratio, and whether every output was the same bit
for bit both ways.

    python -m benchmarks.reference_ahead [--n 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.devices.session import EdgeSession
from pytest_edgeort.devices.ssh import SSHDevice
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs
from tests.support.models import conv_matmul_qdq
from tests.support.sshd import SSHKit, sshd_missing


def _open(device, model, provider: str) -> EdgeSession:
    spec = resolve_provider(provider)
    return EdgeSession(device, model, spec, provider_options(spec), cpu_fallback=True, on_create=lambda s: None)


def pairs(npu: EdgeSession, cpu: EdgeSession, feeds: List[Dict[str, np.ndarray]], ahead: bool) -> Tuple[float, list]:
    """Median ms of ``npu.run(x); cpu.run(x)`` over ``feeds``, and every output's bytes."""
    npu.follow(cpu if ahead else None)
    times, outputs = [], []
    for feed in feeds:
        start = time.perf_counter()
        actual, expected = npu.run(feed), cpu.run(feed)
        times.append(time.perf_counter() - start)
        outputs.append([a.tobytes() for a in (*actual.values(), *expected.values())])
    npu.follow(None)
    return 1000 * statistics.median(times), outputs


def measure(device, model, n: int, rounds: int) -> Tuple[float, float, bool]:
    """``(ms per pair one by one, ms per pair taken along, outputs identical)`` on ``device``."""
    npu, cpu = _open(device, model, "qnn-htp"), _open(device, model, "cpu")
    feeds = [generate_inputs(model, seed=i) for i in range(n)]
    pairs(npu, cpu, feeds[:20], False)  # warm: the memory-state check, the first runs
    times: Dict[bool, List[float]] = {False: [], True: []}
    seen: Dict[bool, list] = {}
    for _ in range(rounds):
        for ahead in (False, True):
            ms, outputs = pairs(npu, cpu, feeds, ahead)
            times[ahead].append(ms)
            seen.setdefault(ahead, outputs)
            seen[ahead] = seen[ahead] if seen[ahead] == outputs else []
    identical = bool(seen[False]) and seen[False] == seen[True]
    return statistics.median(times[False]), statistics.median(times[True]), identical


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="pairs of runs per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds of each way")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeort-bench-") as tmpdir:
        tmp = Path(tmpdir)
        model = model_info(conv_matmul_qdq(tmp))
        devices = {"local": lambda: LocalDevice(DeviceConfig("local", workdir=str(tmp / "local")))}
        kit = None
        if sshd_missing():
            print(f"no SSH board: {sshd_missing()}")
        else:
            kit = SSHKit(tmp / "sshd")
            server = kit.start("bench")
            devices["ssh (loopback)"] = lambda: SSHDevice(server.device_config("bench", str(tmp / "board")))
        print(f"{args.n} pairs of runs (QNN HTP simulator, then CPU), median ms per pair, median of {args.rounds}")
        print(f"{'device':16} {'one by one':>11} {'taken along':>12} {'ratio':>6}  bit-identical")
        try:
            for name, make in devices.items():
                device = make()
                try:
                    apart, along, identical = measure(device, model, args.n, args.rounds)
                finally:
                    device.close()
                print(f"{name:16} {apart:11.3f} {along:12.3f} {along / apart:5.2f}x  {identical}")
        finally:
            if kit is not None:
                kit.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
