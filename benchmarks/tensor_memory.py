"""Peak memory for one big tensor to an SSH board and back (the ``echo`` request), host and board.

Starts a throwaway ``/usr/sbin/sshd`` on 127.0.0.1 (tests/sshd.py; this Python is the board's python),
sends one float32 tensor of --mb MiB to the board worker and back, and prints the peak resident memory
above the process's baseline in units of the tensor's size: on the host (this process, which also holds
the tensor and the copy that comes back: 2.0 is the floor) and on the board (the worker process, which
must hold the tensor once: 1.0 is the floor).

    python -m benchmarks.tensor_memory [--mb 512]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

from pytest_edgeort.devices.ssh import SSHDevice
from tests.support.sshd import SSHKit, sshd_missing


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def vm_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=512, help="tensor size in MiB")
    args = parser.parse_args()
    if sshd_missing():
        print(f"skipped: {sshd_missing()}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        kit = SSHKit(Path(tmp))
        try:
            server = kit.start("memory_board")
            device = SSHDevice(server.device_config("board", str(Path(tmp) / "board"), command_timeout=600, lock=False))
            client = device.client()
            client.echo([("warm", np.zeros(1024, np.float32))], timeout=60)
            board_base = vm_kib(client.pid, "VmRSS")
            host_base = peak_kib()
            tensor = np.random.default_rng(0).random(args.mb * 1024 * 1024 // 4, dtype=np.float32)
            back = client.echo([("x", tensor)], timeout=600)
            size_kib = tensor.nbytes / 1024
            host = (peak_kib() - host_base) / size_kib
            board = (vm_kib(client.pid, "VmHWM") - board_base) / size_kib
            assert np.array_equal(back[0][1], tensor)
            device.close()
        finally:
            kit.close()
    print(f"{args.mb} MiB float32 tensor to the board and back through the worker (loopback sshd):")
    print(f"  host peak  {host:.2f}x the tensor above baseline (floor 2.0: the tensor and its echo)")
    print(f"  board peak {board:.2f}x the tensor above baseline (floor 1.0: the tensor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
