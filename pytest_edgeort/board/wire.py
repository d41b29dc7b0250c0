"""The worker protocol on the wire: frames, request names, error kinds (shared by host and board).

Host -> worker on stdin, worker -> host on the ORIGINAL stdout file descriptor (the worker
duplicates it at start and then points fd 1 at stderr, so that anything QNN libraries print can
never corrupt the channel). Every message is one frame::

    b"EORT" | u32 big-endian header length | UTF-8 JSON header | raw array bytes ...

The header is one JSON object (compact, nothing before or after it) whose ``"arrays"`` lists ``{"name", "dtype",
"shape", "nbytes"}`` for the raw payloads that follow, in order; both sides validate it (dtype from an allow-list,
``nbytes`` equal to what dtype and shape imply, under a limit). Arrays are C-contiguous little-endian bytes: never
pickled. Requests carry ``"op"`` (one of :class:`Op`) and an ``"id"``; every reply echoes the ``"id"`` and carries
``"ok"`` and, when not ok, ``"error"`` (one line) and ``"kind"`` (one of :class:`Kind`). A frame that does not
decode ends the conversation: the stream position is then unknown. The worker's first frame is a hello: ``{"ok",
"protocol", "pid"}`` (or an error).

This module runs on the board too: python3 (3.8+) and the standard library, numpy when arrays move.
"""

import json
import json.encoder
import struct

PROTOCOL_VERSION = 1
MAGIC = b"EORT"
_HEADER = struct.Struct(">I")
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_ARRAY_BYTES = 16 * 1024**3
# Parts of a frame smaller than this go out joined into one buffer (one write, one SSH packet): a frame
# written as several small writes waits ~40 ms for a delayed ACK (Nagle) on a TCP hop such as sshd's.
COALESCE_BYTES = 256 * 1024
# numpy dtype strings a frame may carry: numbers and bool, little-endian (never objects or strings)
DTYPES = {
    "|b1": 1,
    "|u1": 1,
    "|i1": 1,
    "<u2": 2,
    "<i2": 2,
    "<f2": 2,
    "<u4": 4,
    "<i4": 4,
    "<f4": 4,
    "<u8": 8,
    "<i8": 8,
    "<f8": 8,
}
_ARRAY_KEYS = frozenset(["name", "dtype", "shape", "nbytes"])


def _header_encoder():
    """``encode(dict) -> str``, compact JSON as ``json.dumps(separators=(",", ":"))`` writes it. CPython's C encoder
    is built once here: ``JSONEncoder.encode`` builds one (and a closure) on every call, ~40 % of a run header's
    encoding time. Other Pythons use the JSONEncoder."""
    encoder = json.JSONEncoder(separators=(",", ":"))
    try:
        # markers None: no check for circular structures (a header is built here, never cyclic)
        chunks = json.encoder.c_make_encoder(
            None, encoder.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
        )
        probe = {"s": '\u00e9"', "f": [1.5, float("nan"), True, None], "n": {"k": -3}}
        if "".join(chunks(probe, 0)) == encoder.encode(probe):
            return lambda header: "".join(chunks(header, 0))
    except (AttributeError, TypeError):  # not CPython's json, or another signature
        pass
    return encoder.encode


_ENCODE = _header_encoder()
_DECODE = json.JSONDecoder().raw_decode


class Op:
    """Request names (the ``"op"`` of a request frame)."""

    CAPABILITIES = "capabilities"
    HAS_MODEL = "has_model"
    PUT_MODEL = "put_model"
    HAS_FILE = "has_file"
    PUT_FILE = "put_file"
    CREATE_SESSION = "create_session"
    RUN = "run"
    TIME = "time"
    CLOSE_SESSION = "close_session"
    PROFILE = "profile"
    ECHO = "echo"
    LOCK = "lock"
    SHUTDOWN = "shutdown"


class Kind:
    """Error kinds (the ``"kind"`` of a failed reply)."""

    ENVIRONMENT = "environment"  # the worker cannot run here (hello): missing module, unsafe workdir
    BAD_REQUEST = "bad-request"
    MISSING_MODEL = "missing-model"  # not in the cache, or it no longer hashed right (deleted): upload again
    PUT_MODEL = "put-model"
    MISSING_PROVIDER = "missing-provider"
    CREATE = "create"
    RUN = "run"
    MEMORY_CHECK = "memory-check"
    LOCK = "lock"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """The byte stream does not hold a valid frame (peer died or spoke something else)."""


class RequestError(Exception):
    """A request failed in a way the host should report (one line, with a :class:`Kind`)."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind


def one_line(exc):
    """An exception as one line of at most 2000 characters (its type when it has no text)."""
    text = " ".join(str(exc).split())
    return text[:2000] if text else type(exc).__name__


def frame_parts(header, arrays=()):
    """One frame as a list of buffers: ``header`` (a JSON-able dict) as bytes, then the memory of
    each named numpy array (not copied when it is C-contiguous little-endian: big tensors cost no
    second copy on the way out)."""
    if not arrays:
        return [encode_header_only(header)]
    import numpy as np

    meta = []
    payloads = []
    for name, array in arrays:
        data = np.asarray(array)
        dtype = data.dtype
        if dtype.hasobject:
            raise TypeError("array %r has dtype object; only numeric/bool tensors can be sent" % name)
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)  # (keeps 0-d arrays 0-d)
        if dtype.byteorder == ">":
            data = data.astype(dtype.newbyteorder("<"))
        meta.append({"name": name, "dtype": data.dtype.str, "shape": list(data.shape), "nbytes": data.nbytes})
        payloads.append(memoryview(data).cast("B") if data.size else b"")
    return coalesce([encode_header_only(dict(header, arrays=meta))] + payloads)


def coalesce(parts):
    """Runs of parts under ``COALESCE_BYTES`` joined into one buffer each; bigger parts stay as they
    are (a big tensor is never copied). The host joins two frames sent in one write the same way."""
    if sum(map(len, parts)) < COALESCE_BYTES:  # (the usual frame: one buffer)
        return [b"".join(parts)]
    out, run = [], []
    for part in parts:
        if len(part) < COALESCE_BYTES:
            run.append(part)
            continue
        if run:
            out.append(b"".join(run))
            run = []
        out.append(part)
    if run:
        out.append(b"".join(run))
    return out


def encode_header_only(header):
    """The bytes of a frame's header (all of a frame without arrays), built without numpy."""
    head = _ENCODE(header if "arrays" in header else dict(header, arrays=[])).encode("utf-8")
    return MAGIC + _HEADER.pack(len(head)) + head


def _check_array_meta(meta):
    """ProtocolError unless ``meta`` describes a sendable array exactly."""
    if type(meta) is not dict or meta.keys() != _ARRAY_KEYS:
        raise ProtocolError("frame array entry %.200r is not {name, dtype, shape, nbytes}" % (meta,))
    shape, nbytes = meta["shape"], meta["nbytes"]
    expected = DTYPES.get(meta["dtype"]) if type(meta["dtype"]) is str else None
    if type(meta["name"]) is not str or expected is None:
        raise ProtocolError(
            "frame array %.100r has dtype %.40r; allowed: %s" % (meta["name"], meta["dtype"], ", ".join(sorted(DTYPES)))
        )
    if type(shape) is not list:
        raise ProtocolError("frame array %.100r has shape %.100r" % (meta["name"], shape))
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise ProtocolError("frame array %.100r has shape %.100r" % (meta["name"], shape))
        expected *= dim
    if type(nbytes) is not int or nbytes != expected or nbytes > MAX_ARRAY_BYTES:
        raise ProtocolError(
            "frame array %.100r says %.40r bytes; dtype %s and shape %s make %d (limit %d)"
            % (meta["name"], nbytes, meta["dtype"], shape, expected, MAX_ARRAY_BYTES)
        )


def read_header(read_exact):
    """Read and validate one frame's header (a JSON object with a valid ``arrays`` list) with
    ``read_exact(n) -> bytes``."""
    prefix = read_exact(8)
    if prefix[:4] != MAGIC:
        raise ProtocolError("bad frame magic %r (the peer is not an edgeort worker, or it crashed)" % prefix[:4])
    (length,) = _HEADER.unpack(prefix[4:])
    if length > MAX_HEADER_BYTES:
        raise ProtocolError("frame header of %d bytes is too large" % length)
    try:
        text = read_exact(length).decode("utf-8")
        header, end = _DECODE(text)  # (json.loads also strips white space around the value: a frame has none)
    except ValueError as exc:  # invalid UTF-8 or JSON
        raise ProtocolError("frame header is not JSON: %s" % one_line(exc)) from None
    if end != len(text):
        raise ProtocolError("frame header has %d bytes after its JSON value" % (len(text) - end))
    if not isinstance(header, dict):
        raise ProtocolError("frame header is %s, not a JSON object" % type(header).__name__)
    arrays = header.get("arrays", [])
    if not isinstance(arrays, list):
        raise ProtocolError("frame header's arrays is %s, not a list" % type(arrays).__name__)
    for meta in arrays:
        _check_array_meta(meta)
    return header


def read_frame(reader, check=None):
    """Read one frame; return ``(header, [(name, array), ...])``. ``reader`` has ``read_exact(n) ->
    bytes`` and ``read_into(view)``: arrays are read straight into their own memory. ``check(arrays)``
    (the header's array entries) returns what is wrong with them, if anything, before any is allocated:
    ProtocolError then."""
    header = read_header(reader.read_exact)
    problem = check(header["arrays"]) if check is not None and "arrays" in header else None
    if problem:
        raise ProtocolError(problem)
    arrays = []
    if header.get("arrays"):
        import numpy as np

        for meta in header["arrays"]:
            array = np.empty(meta["shape"], meta["dtype"])
            if meta["nbytes"]:
                reader.read_into(memoryview(array).cast("B"))
            arrays.append((meta["name"], array))
    return header, arrays


class stream_reader:
    """A frame reader over a binary file object; EOF raises EOFError."""

    def __init__(self, stream):
        self.stream = stream

    def read_exact(self, n):
        data = self.stream.read(n)  # all n at once from a buffered stream; a raw one may return fewer
        if len(data) == n:
            return data
        rest = bytearray(n - len(data))
        self.read_into(memoryview(rest), len(data))
        return bytes(data) + bytes(rest)

    def read_into(self, view, already=0):
        """Fill ``view``; ``already``: bytes of the same read taken before (for the EOF message)."""
        done = 0
        while done < len(view):
            count = self.stream.readinto(view[done:])
            if not count:
                raise EOFError("stream closed after %d of %d bytes" % (already + done, already + len(view)))
            done += count
