"""A hostile board for fault tests: relays a real worker's frames and spoils its reply to one request.

Used as a device's ``python`` through :func:`hostile_python`: the wrapper runs this script with the worker's
own command line, the script starts the real worker with it and sits between host and worker, frame by
frame. The reply to the first request named ``op`` is spoiled as ``mode`` says (a file ``spoiled-<op>``
in the working directory tells a test that it happened):

- ``crash``: the board process dies by SIGSEGV (as QNN can); ``hang``: it never answers;
- ``garbage``: a frame whose header is not an object; ``error``: a failed reply of kind ``internal``;
- ``patch``: the reply's header with ``arg`` (a JSON object of dotted keys; value ``"__delete__"`` removes);
- ``slow``: the reply goes out ``arg`` seconds late (a long inference);
- ``huge``: the reply declares ``arg`` arrays of 4 GiB each, then streams 1 GiB of zeros (as long as the
  host reads) and ends.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pytest_edgeort.board import wire  # noqa: E402

HUGE_ARRAY_BYTES = 4 * 1024**3
HUGE_STREAM_BYTES = 1024**3


def hostile_python(folder: Path, mode: str, op: str, arg: Any = None) -> Path:
    """An executable that a device's ``python`` can name: the real python behind this proxy."""
    script = folder / f"python-{mode}-{op}"
    folder.mkdir(parents=True, exist_ok=True)
    script.write_text(
        f"#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} {mode} {op} '{json.dumps(arg)}' \"$@\"\n"
    )
    script.chmod(0o755)
    return script


def _patched(header: Dict[str, Any], changes: Dict[str, Any]) -> Dict[str, Any]:
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        target = header
        for name in parents:
            target = target.setdefault(name, {})
        if value == "__delete__":
            target.pop(key, None)
        else:
            target[key] = value
    return header


def _write(out: Any, parts: List[Any]) -> None:
    for part in parts:
        out.write(part)
    out.flush()


def _spoil(mode: str, arg: Any, header: Dict[str, Any], arrays: List[Tuple[str, Any]], out: Any) -> None:
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "hang":
        time.sleep(3600)
    if mode == "garbage":
        _write(out, [wire.MAGIC + b"\0\0\0\x06[1, 2]"])
        return
    if mode == "error":
        reply = {"ok": False, "id": header["id"], "kind": "internal", "error": "QNN backend probe failed"}
        _write(out, [wire.encode_header_only(reply)])
        return
    if mode == "patch":
        _write(out, wire.frame_parts(_patched(dict(header), arg), arrays))
        return
    if mode == "slow":
        time.sleep(arg)
        _write(out, wire.frame_parts(header, arrays))
        return
    if mode == "huge":
        meta = {"dtype": "|u1", "shape": [HUGE_ARRAY_BYTES], "nbytes": HUGE_ARRAY_BYTES}
        reply = dict(header, arrays=[dict(meta, name=f"y{i}") for i in range(arg)])
        _write(out, [wire.encode_header_only(reply)])
        zeros = bytes(1 << 20)
        for _ in range(HUGE_STREAM_BYTES // len(zeros)):  # a host that stops reading ends this (BrokenPipeError)
            _write(out, [zeros])
        os._exit(0)
    raise ValueError(f"unknown mode {mode!r}")


def main() -> None:
    mode, op, arg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    worker = subprocess.Popen([sys.executable, *sys.argv[4:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    ops: queue.Queue = queue.Queue()

    def requests() -> None:
        reader = wire.stream_reader(sys.stdin.buffer)
        while True:
            try:
                header, arrays = wire.read_frame(reader)
            except EOFError:
                worker.stdin.close()
                return
            ops.put(header.get("op"))
            _write(worker.stdin, wire.frame_parts(header, arrays))

    threading.Thread(target=requests, daemon=True).start()
    out = sys.stdout.buffer
    replies = wire.stream_reader(worker.stdout)
    header, arrays = wire.read_frame(replies)  # the hello
    _write(out, wire.frame_parts(header, arrays))
    spoiled = False
    while True:
        try:
            header, arrays = wire.read_frame(replies)
        except EOFError:
            return
        if ops.get() == op and not spoiled:
            spoiled = True
            Path(f"spoiled-{op}").touch()
            _spoil(mode, arg, header, arrays, out)
            continue
        _write(out, wire.frame_parts(header, arrays))


if __name__ == "__main__":
    main()
