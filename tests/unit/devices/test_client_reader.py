"""The client reads replies however the transport cuts them: a byte at a time, several replies in one piece."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_edgeort.board import wire
from pytest_edgeort.devices.client import Request, WorkerClient
from pytest_edgeort.devices.replies import within
from pytest_edgeort.devices.transport import StderrTail, Transport


class Pieces(Transport):
    """Answers each send with the next prepared replies, handed over in pieces of the given sizes."""

    def __init__(self, replies: Sequence[bytes], cuts: Sequence[int]) -> None:
        self.stderr = StderrTail()
        self.pending = b"".join(replies)
        self.cuts = list(cuts)

    def send(self, parts: Sequence[object]) -> None:
        pass

    def recv(self, max_bytes: int, timeout: Optional[float]) -> bytes:
        size = min(max_bytes, self.cuts.pop(0) if self.cuts else max_bytes)
        piece, self.pending = self.pending[:size], self.pending[size:]
        return piece

    def exit_status(self) -> Optional[int]:
        return None

    def terminate(self) -> None:
        pass


def frame(header: dict, arrays: list) -> bytes:
    return b"".join(bytes(part) for part in wire.frame_parts(header, arrays))


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(1, 9000), max_size=40), rows=st.lists(st.integers(0, 700), min_size=1, max_size=4))
def test_replies_cut_anywhere_come_back_whole_and_in_order(cuts: List[int], rows: List[int]) -> None:
    hello = frame({"ok": True, "hello": True, "protocol": wire.PROTOCOL_VERSION, "pid": 1}, [])
    outputs = [np.arange(n * 3, dtype=np.float32).reshape(n, 3) + i for i, n in enumerate(rows)]
    replies = [frame({"ok": True, "id": i + 1}, [("y", y)]) for i, y in enumerate(outputs)]
    client = WorkerClient(Pieces([hello] + replies, cuts), "pieces")
    check = within({"y": ("<f4", 1 << 20)}, "the model")
    got = client.exchange([Request(wire.Op.RUN, (), check, {}) for _ in outputs], timeout=5)
    assert [reply["id"] for reply, _ in got] == list(range(1, len(outputs) + 1))
    for (_, arrays), expected in zip(got, outputs):
        assert arrays[0][0] == "y" and arrays[0][1].tobytes() == expected.tobytes()
