"""Frames leave in as few writes as the protocol allows: small parts joined, big tensors never copied."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from pytest_edgeort.board import wire


def _read_back(parts):
    return wire.read_frame(wire.stream_reader(io.BytesIO(b"".join(bytes(p) for p in parts))))


def test_a_small_request_is_one_buffer():
    """One write per frame: a frame written as header + array parts waited ~40 ms per request on
    an SSH board for a delayed ACK (Nagle), 44 ms per round trip instead of 0.3 ms."""
    feed = [("x", np.arange(3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32)), ("n", np.int64(7))]
    parts = wire.frame_parts({"op": wire.Op.RUN, "id": 3}, feed)
    assert len(parts) == 1
    header, arrays = _read_back(parts)
    assert header["op"] == "run" and [n for n, _ in arrays] == ["x", "n"]
    np.testing.assert_array_equal(arrays[0][1], feed[0][1])


def test_a_big_tensor_is_sent_from_its_own_memory():
    big = np.ones(wire.COALESCE_BYTES // 4 + 1, dtype=np.float32)
    small = np.zeros(4, dtype=np.uint8)
    parts = wire.frame_parts({"id": 1}, [("a", small), ("b", small), ("big", big), ("c", small)])
    assert len(parts) == 3  # header + a + b | big | c
    assert isinstance(parts[1], memoryview) and np.shares_memory(np.frombuffer(parts[1], np.uint8), big)
    _, arrays = _read_back(parts)
    assert [a.nbytes for _, a in arrays] == [4, 4, big.nbytes, 4]


def test_a_frame_that_arrives_in_pieces_is_read_whole_and_a_cut_one_says_where_it_ended():
    """The worker reads its stdin through a buffer (one read for a small request); a raw stream that hands
    over a few bytes at a time (a pipe filled slowly) gives the same frame, and EOF names the bytes it got."""
    data = b"".join(bytes(p) for p in wire.frame_parts({"op": "run", "id": 1}, [("x", np.arange(5.0))]))

    class Trickle(io.RawIOBase):
        def __init__(self, payload: bytes) -> None:
            self.payload, self.pos = payload, 0

        def readable(self) -> bool:
            return True

        def readinto(self, view) -> int:  # at most 3 bytes a call
            count = min(3, len(view), len(self.payload) - self.pos)
            view[:count] = self.payload[self.pos : self.pos + count]
            self.pos += count
            return count

    header, arrays = wire.read_frame(wire.stream_reader(Trickle(data)))
    assert header["id"] == 1 and arrays[0][0] == "x"
    np.testing.assert_array_equal(arrays[0][1], np.arange(5.0))
    length = int.from_bytes(data[4:8], "big")
    with pytest.raises(EOFError, match=f"^stream closed after 2 of {length} bytes$"):
        wire.read_frame(wire.stream_reader(Trickle(data[:10])))


HEADERS = [
    {"op": "run", "id": 7, "sid": "s-1", "memory_check": False, "core": None},
    {"error": 'QNN said "no" \u00e9\u4e2d\U0001f600\n\ttab', "kind": "run", "ok": False, "id": 2**40},
    {"times_ms": [0.1, 1e-300, 1.5e300, -0.0, float("nan"), float("inf")], "nested": {"a": [[], {}]}, "t": True},
]


@pytest.mark.parametrize("header", HEADERS)
def test_a_header_is_the_compact_json_of_json_dumps_with_either_encoder(header, monkeypatch):
    """Headers are encoded by CPython's C encoder built once (2.3 against 3.0 us a run reply), or by the
    JSONEncoder where there is none: both write exactly what ``json.dumps(separators=(",", ":"))`` writes."""
    expected = json.dumps(dict(header, arrays=[]), separators=(",", ":")).encode("utf-8")
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    encoders = {"C": wire._ENCODE, "fallback": wire._header_encoder()}
    assert getattr(encoders["C"], "__self__", None) is None, "CPython's C encoder is not in use"
    for name, encode in encoders.items():
        monkeypatch.setattr(wire, "_ENCODE", encode)
        frame = wire.encode_header_only(header)
        assert frame[8:] == expected, name
        back, _ = _read_back([frame])
        assert json.dumps(back) == json.dumps(dict(header, arrays=[])), name


def test_a_header_with_anything_after_its_json_is_not_a_frame():
    for text in (b'{"id":1,"arrays":[]}{"id":2}', b'{"id":1,"arrays":[]} ', b' {"id":1,"arrays":[]}'):
        frame = wire.MAGIC + len(text).to_bytes(4, "big") + text
        with pytest.raises(wire.ProtocolError, match="^frame header (has 1|has 8|is not JSON)"):
            _read_back([frame])
