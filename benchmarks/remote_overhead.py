"""SSH board overhead: the persistent worker vs what a naive remote runner does, on a loopback sshd.

Starts a throwaway ``/usr/sbin/sshd`` on 127.0.0.1 (tests/support/sshd.py; this Python is the board's python)
and prints, side by side in one run:

(a) per-inference overhead for a 1x3x32x32 float32 input (a one-node Relu model on the CPU EP, so
    the inference itself is microseconds): round-trip time minus the inference time the board
    measured, through the persistent worker (one request frame each way over an open exec channel)
    vs a naive sequence over the same fabric connection (mkdir, put an .npz, exec a runner script,
    get the output .npz). Target: the worker's overhead >= 100x lower. And the floor: the same
    request's bytes echoed by ``cat`` on an open channel, alternated with the worker in --rounds rounds
    (machine noise moves both) after one untimed round of each. Target: the worker's round trip <= 2x that, the
    median of the rounds' ratios (it was 44 ms, ~150x, while frames left in several writes: Nagle against delayed
    ACKs). On a VM whose idle vCPUs halt at once (the haltpoll cpuidle driver with ``guest_halt_poll_ns`` 0, or no
    cpuidle driver at all), every wake-up of a process on the other vCPU goes through the hypervisor; where the
    haltpoll driver is in use, ``--halt-poll-ns N`` (root) measures (a) a second time with the guest's idle vCPUs
    polling N ns before they halt (Linux's default is 200000), and puts the setting back.
(b) throughput moving a 64 MB tensor to the board and back through the worker (the ``echo`` request;
    2 x 64 MB moved) vs OpenSSH itself: ``ssh host 'cat > /dev/null'`` of the same bytes (64 MB moved,
    a fresh connection as a user would type it, and over an already open ControlMaster connection so
    the handshake is not counted), and ``ssh host cat`` (there and back). Targets: >= 50% of ``cat > /dev/null``,
    >= 90% of ``ssh host cat`` there and back (best of --repeats each). The worker's first tensor is printed apart:
    sshd's buffers grow on it.

(c) the board lock's cost: time from a fresh device object to a usable board (connect, worker
    start, capabilities) with ``lock = true`` vs ``lock = false`` (median of --lock-n, alternated).

    python -m benchmarks.remote_overhead [--n 300] [--rounds 5] [--naive-n 8] [--mb 64] [--repeats 3] [--lock-n 10]
                                         [--halt-poll-ns N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper

from pytest_edgeort.board import wire
from pytest_edgeort.board.wire import Op
from pytest_edgeort.config.providers import resolve_provider
from pytest_edgeort.devices.ssh import SSHDevice
from pytest_edgeort.model.info import model_info
from tests.support.sshd import SSHKit, SSHServer, sshd_missing

RUNNER = """
import sys, time
import numpy as np
import onnxruntime as ort

model, src, dst = sys.argv[1:4]
feeds = dict(np.load(src, allow_pickle=False))
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
start = time.perf_counter()
outs = sess.run(None, feeds)
ms = (time.perf_counter() - start) * 1000.0
np.savez(dst, **{o.name: v for o, v in zip(sess.get_outputs(), outs)})
print(ms)
"""


def relu_model(path: Path) -> Path:
    """x[1,3,32,32] float32 -> Relu -> y."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def persistent_and_echo(device: SSHDevice, model: Path, x: np.ndarray, n: int, rounds: int) -> Dict[str, Any]:
    """Median round trip (ms) of ``run`` requests to one session through the persistent worker, and of the
    same request's bytes echoed by ``cat`` on an open exec channel of the same connection (the floor: what
    the SSH link itself costs), in ``rounds`` alternated rounds of ``n`` each so that machine noise hits both
    alike; ``link`` is the median of the rounds' ratios. Board-side inference time is measured inside the
    worker by a ``time`` request of ``n`` runs."""
    handle = device.open_session(model_info(model), resolve_provider("cpu"), {}, True)
    client, feed = handle.client, {"x": x}
    payload = b"".join(bytes(p) for p in wire.frame_parts({"op": Op.RUN, "id": 1, "sid": 1}, [("x", x)]))
    channel = device.connection().transport.open_session()
    channel.exec_command("echo $$; exec cat")  # the board is this machine: its processes' CPU time is readable
    cat_pid = int(channel.makefile("rb").readline())

    def worker_run() -> None:
        _, outputs = client.run(handle.sid, feed, memory_check=False, timeout=60, outputs=handle.outputs)
        assert outputs[0][1].shape == x.shape

    def cat_echo() -> None:
        channel.sendall(payload)
        got = 0
        while got < len(payload):
            got += len(channel.recv(len(payload) - got))

    def median_ms(fn: Callable[[], None], board_pid: int, cpu: Dict[str, List[float]]) -> float:
        for _ in range(20):  # warm-up
            fn()
        times = []
        board, host = board_cpu_ns(board_pid), time.process_time()
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000.0)
        cpu["board"].append((board_cpu_ns(board_pid) - board) / n / 1000.0)
        cpu["host"].append((time.process_time() - host) / n * 1e6)
        return statistics.median(times)

    for fn in (worker_run, cat_echo):  # one untimed round each: a fresh worker's first hundreds of requests are slower
        for _ in range(n):
            fn()
    worker, echo = [], []
    worker_cpu: Dict[str, List[float]] = {"board": [], "host": []}
    echo_cpu: Dict[str, List[float]] = {"board": [], "host": []}
    try:
        for _ in range(rounds):
            worker.append(median_ms(worker_run, client.pid, worker_cpu))
            echo.append(median_ms(cat_echo, cat_pid, echo_cpu))
    finally:
        channel.close()
    infer = statistics.median(client.time_runs(handle.sid, feed, runs=n, warmup=0, timeout=600))
    trip = statistics.median(worker)
    return {
        "round trip": trip,
        "inference": infer,
        "overhead": trip - infer,
        "echo": statistics.median(echo),
        "link": statistics.median(w / e for w, e in zip(worker, echo)),
        "rounds": ", ".join(f"{w:.3f}/{e:.3f}" for w, e in zip(worker, echo)),
        "cpu": "; ".join(
            f"{side} {statistics.median(worker_cpu[side]):.0f} vs {statistics.median(echo_cpu[side]):.0f}"
            for side in ("board", "host")
        ),
    }


HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
IDLE_DRIVER = Path("/sys/devices/system/cpu/cpuidle/current_driver")


def halt_poll_ns() -> Optional[int]:
    """How long this VM's idle vCPUs poll before they halt, where the haltpoll cpuidle driver is the one in use (its
    parameter can be there while another driver, or none, idles the vCPUs); None otherwise."""
    try:
        if IDLE_DRIVER.read_text().strip() != "haltpoll":
            return None
        return int(HALT_POLL.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def guest_halt_poll(ns: int) -> Iterator[None]:
    """The guest's idle vCPUs poll ``ns`` before they halt, for the block; the setting is put back after."""
    before = HALT_POLL.read_text().strip()
    HALT_POLL.write_text(str(ns))
    try:
        yield
    finally:
        HALT_POLL.write_text(before)


def print_link(fast: Dict[str, Any], label: str) -> None:
    """The worker's round trip against the ``cat`` echo, the rounds and the CPU per round trip."""
    link = fast["link"]
    print(
        f"    {label}: raw ssh channel echo (cat) of the request's bytes: {fast['echo']:.3f} ms; worker round trip "
        f"{fast['round trip']:.3f} ms, {link:.2f}x that, median of the rounds' ratios "
        f"(target <= 2x: {'met' if link <= 2 else 'NOT met'})"
    )
    print(f"      rounds, worker/cat ms, alternated: {fast['rounds']}")
    print(f"      CPU per round trip (us, worker vs cat, median of the rounds): {fast['cpu']}")


def board_cpu_ns(pid: int) -> int:
    """CPU time (ns) a process on the loopback board has run (/proc/<pid>/schedstat)."""
    with open(f"/proc/{pid}/schedstat") as stats:
        return int(stats.read().split()[0])


def naive(device: SSHDevice, remote_model: str, runner: str, x: np.ndarray, n: int) -> Dict[str, float]:
    """Median times (ms) of mkdir / put .npz / exec runner / get .npz per inference, same connection."""
    conn = device.connection()
    python = shlex.quote(device.config.python or "python3")
    base = f"{device.workdir()}/naive"
    steps: Dict[str, List[float]] = {
        k: [] for k in ("mkdir", "put", "exec", "get", "round trip", "inference", "overhead")
    }
    payload = io.BytesIO()
    np.savez(payload, x=x)
    for i in range(n):
        d = f"{base}/{i}"
        t0 = time.perf_counter()
        conn.run(f"mkdir -p {shlex.quote(d)}", hide=True)
        t1 = time.perf_counter()
        payload.seek(0)
        conn.put(payload, f"{d}/in.npz")
        t2 = time.perf_counter()
        ran = conn.run(
            f"{python} {shlex.quote(runner)} {shlex.quote(remote_model)} {shlex.quote(d + '/in.npz')} "
            f"{shlex.quote(d + '/out.npz')}",
            hide=True,
        )
        t3 = time.perf_counter()
        out = io.BytesIO()
        conn.get(f"{d}/out.npz", out)
        t4 = time.perf_counter()
        out.seek(0)
        assert np.load(out, allow_pickle=False)["y"].shape == x.shape
        infer = float(ran.stdout.split()[-1])
        for key, value in (
            ("mkdir", t1 - t0),
            ("put", t2 - t1),
            ("exec", t3 - t2),
            ("get", t4 - t3),
            ("round trip", t4 - t0),
        ):
            steps[key].append(value * 1000.0)
        steps["inference"].append(infer)
        steps["overhead"].append((t4 - t0) * 1000.0 - infer)
    conn.run(f"rm -rf {shlex.quote(base)}", hide=True)
    return {k: statistics.median(v) for k, v in steps.items()}


def best_of(repeats: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def throughput(device: SSHDevice, server: SSHServer, mb: int, repeats: int, tmp: Path) -> Dict[str, float]:
    """MB/s of tensor bytes moved: worker echo (there and back) vs OpenSSH cat."""
    tensor = np.random.default_rng(0).random(mb * 1024 * 1024 // 4, dtype=np.float32)
    raw = tensor.tobytes()
    client = device.client()

    def echo() -> None:
        out = client.echo([("t", tensor)])
        assert out[0][1].nbytes == tensor.nbytes

    start = time.perf_counter()
    echo()  # the worker's first big tensor: sshd's buffers grow on it
    first = 2 * mb / (time.perf_counter() - start)

    def ssh(command: str, *options: str) -> Callable[[], None]:
        args = server.ssh_args(command)
        args[1:1] = list(options)
        return lambda: subprocess.run(args, input=raw, stdout=subprocess.DEVNULL, check=True)

    control = ["-o", f"ControlPath={tmp / 'cm.sock'}"]
    master = subprocess.Popen(server.ssh_args()[:1] + ["-M", "-N", *control] + server.ssh_args()[1:])
    try:
        deadline = time.monotonic() + 10
        while not (tmp / "cm.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        results = {
            "worker echo, its first tensor (there and back)": first,
            "worker echo (there and back)": 2 * mb / best_of(repeats, echo),
            "ssh 'cat > /dev/null' (fresh connection)": mb / best_of(repeats, ssh("cat > /dev/null")),
            "ssh 'cat > /dev/null' (open connection)": mb / best_of(repeats, ssh("cat > /dev/null", *control)),
            "ssh cat (there and back, open connection)": 2 * mb / best_of(repeats, ssh("cat", *control)),
        }
    finally:
        master.terminate()
        master.wait()
    return results


def ready_times(server: SSHServer, workdir: Path, n: int) -> Dict[str, float]:
    """Median seconds to a usable board (connect + worker + capabilities), with and without the lock."""
    times: Dict[str, List[float]] = {"lock = true": [], "lock = false": []}
    for _ in range(n):
        for key in times:
            device = SSHDevice(server.device_config("bench", str(workdir), lock=key == "lock = true"))
            start = time.perf_counter()
            device.describe()
            times[key].append(time.perf_counter() - start)
            device.close()
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="persistent-worker inferences")
    parser.add_argument("--rounds", type=int, default=5, help="alternated worker / cat echo rounds of --n each")
    parser.add_argument("--naive-n", type=int, default=8, help="naive per-inference sequences")
    parser.add_argument("--mb", type=int, default=64, help="tensor size for the throughput test")
    parser.add_argument("--repeats", type=int, default=3, help="throughput repeats (best taken)")
    parser.add_argument("--lock-n", type=int, default=10, help="fresh devices per lock setting")
    parser.add_argument(
        "--halt-poll-ns",
        type=int,
        default=None,
        help="also measure (a) with the guest's idle vCPUs polling this long before they halt (haltpoll; root)",
    )
    args = parser.parse_args()
    if sshd_missing():
        print(f"cannot run: {sshd_missing()}")
        return 2
    with tempfile.TemporaryDirectory(prefix="edgeort-bench-") as tmpdir:
        tmp = Path(tmpdir)
        kit = SSHKit(tmp / "sshd")
        try:
            server = kit.start("bench")
            device = SSHDevice(server.device_config("bench", str(tmp / "board")))
            model = relu_model(tmp / "relu.onnx")
            x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
            caps = device.describe()
            print(
                f"board: {server.user}@{server.host}:{server.port} (loopback sshd), python {caps['python']}, "
                f"onnxruntime {caps['onnxruntime']}; cipher {device.connection().transport.remote_cipher}"
            )
            conn = device.connection()
            remote_model = f"{device.workdir()}/relu.onnx"
            runner = f"{device.workdir()}/naive_runner.py"
            conn.put(str(model), remote_model)
            conn.put(io.BytesIO(RUNNER.encode()), runner)

            fast = persistent_and_echo(device, model, x, args.n, args.rounds)
            slow = naive(device, remote_model, runner, x, args.naive_n)
            print(
                f"\n(a) per-inference overhead, 1x3x32x32 float32 (median ms; persistent {args.rounds} rounds of "
                f"n={args.n}, naive n={args.naive_n})"
            )
            print(f"    {'':28}{'persistent worker':>20}{'naive mkdir/put/exec/get':>28}")
            for key in ("round trip", "inference", "overhead"):
                print(f"    {key:28}{fast[key]:>20.3f}{slow[key]:>28.1f}")
            print("    naive steps: " + ", ".join(f"{k} {slow[k]:.1f}" for k in ("mkdir", "put", "exec", "get")))
            poll = halt_poll_ns()
            idle = "" if poll is None else f", idle vCPUs poll {poll} ns before they halt (haltpoll)"
            print_link(fast, f"this machine{idle}")
            if args.halt_poll_ns is not None and poll is None:
                print(f"    --halt-poll-ns: this machine's vCPUs do not idle with the haltpoll driver ({IDLE_DRIVER})")
            elif args.halt_poll_ns is not None:
                try:
                    with guest_halt_poll(args.halt_poll_ns):
                        polled = persistent_and_echo(device, model, x, args.n, args.rounds)
                except PermissionError as exc:
                    print(f"    --halt-poll-ns: cannot set {HALT_POLL} ({exc.strerror}; root only)")
                else:
                    print_link(polled, f"idle vCPUs polling {args.halt_poll_ns} ns before they halt, put back after")
            ratio = slow["overhead"] / fast["overhead"]
            print(
                f"    overhead ratio: {ratio:,.0f}x lower with the persistent worker "
                f"(target >= 100x: {'met' if ratio >= 100 else 'NOT met'})"
            )

            rates = throughput(device, server, args.mb, args.repeats, tmp)
            print(f"\n(b) throughput, {args.mb} MB float32 tensor (MB/s of tensor bytes moved, best of {args.repeats})")
            for key, value in rates.items():
                print(f"    {key:44}{value:>10.1f}")
            worker = rates["worker echo (there and back)"]
            for key, target in (
                ("ssh 'cat > /dev/null' (fresh connection)", 0.5),
                ("ssh 'cat > /dev/null' (open connection)", 0.5),
                ("ssh cat (there and back, open connection)", 0.9),
            ):
                share = worker / rates[key]
                verdict = "met" if share >= target else "NOT met"
                print(f"    worker vs {key}: {share:.0%} (target >= {target:.0%}: {verdict})")
            device.close()

            ready = ready_times(server, tmp / "board", args.lock_n)
            print(
                f"\n(c) fresh device to usable board (median s of {args.lock_n}): "
                + ", ".join(f"{key} {value:.3f}" for key, value in ready.items())
                + f"; the board lock adds {1000 * (ready['lock = true'] - ready['lock = false']):.0f} ms per run"
            )
        finally:
            kit.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
