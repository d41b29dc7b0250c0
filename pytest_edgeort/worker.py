"""Board-side worker: runs ONNX Runtime sessions for the host, one process per isolation group.

This file is self-contained on purpose: it is started as ``python3 worker.py`` both for the
``local`` device (a subprocess) and on SSH boards (uploaded into the board's workdir). It needs
only python3 (3.8+), numpy and onnxruntime (or onnxruntime-qnn) on the board.

Protocol (host -> worker on stdin, worker -> host on the ORIGINAL stdout file descriptor, which the
worker duplicates at start and then points fd 1 at stderr so that anything QNN libraries print can
never corrupt the channel). Every message is one frame::

    b"EORT" | u32 big-endian header length | UTF-8 JSON header | raw array bytes ...

The header's ``"arrays"`` lists ``{"name", "dtype", "shape", "nbytes"}`` for the raw payloads that
follow, in order. Arrays are C-contiguous little-endian bytes: never pickled. Requests carry
``"op"``; replies carry ``"ok"`` and, when not ok, ``"error"`` (one line) and ``"kind"``.
"""
import hashlib
import json
import os
import platform
import struct
import sys
import time
import traceback

PROTOCOL_VERSION = 1
MAGIC = b"EORT"
_HEADER = struct.Struct(">I")
MAX_HEADER_BYTES = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The byte stream does not hold a valid frame (peer died or spoke something else)."""


# ---------------------------------------------------------------- framing (shared with the host)


def encode_frame(header, arrays=()):
    """Return the bytes of one frame: ``header`` (a JSON-able dict) plus named numpy arrays."""
    import numpy as np

    meta = []
    payloads = []
    for name, array in arrays:
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError("array %r has dtype object; only numeric/bool tensors can be sent" % name)
        data = array if array.flags.c_contiguous else np.ascontiguousarray(array)  # (keeps 0-d arrays 0-d)
        if data.dtype.byteorder == ">":
            data = data.astype(data.dtype.newbyteorder("<"))
        raw = data.tobytes()
        meta.append({"name": name, "dtype": data.dtype.str, "shape": list(data.shape), "nbytes": len(raw)})
        payloads.append(raw)
    header = dict(header, arrays=meta)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return b"".join([MAGIC, _HEADER.pack(len(head)), head] + payloads)


def encode_header_only(header):
    """A frame without arrays, built without numpy (used to report a missing numpy)."""
    head = json.dumps(dict(header, arrays=[]), separators=(",", ":")).encode("utf-8")
    return MAGIC + _HEADER.pack(len(head)) + head


def read_frame(read_exact):
    """Read one frame with ``read_exact(n) -> bytes``; return ``(header, [(name, array), ...])``."""
    prefix = read_exact(8)
    if prefix[:4] != MAGIC:
        raise ProtocolError("bad frame magic %r (the peer is not an edgeort worker, or it crashed)" % prefix[:4])
    (length,) = _HEADER.unpack(prefix[4:])
    if length > MAX_HEADER_BYTES:
        raise ProtocolError("frame header of %d bytes is too large" % length)
    header = json.loads(read_exact(length).decode("utf-8"))
    arrays = []
    if header.get("arrays"):
        import numpy as np

        for meta in header["arrays"]:
            raw = read_exact(meta["nbytes"])
            array = np.frombuffer(raw, dtype=np.dtype(meta["dtype"])).reshape(tuple(meta["shape"]))
            arrays.append((meta["name"], array.copy()))
    return header, arrays


def stream_reader(stream):
    """Return a ``read_exact`` function over a binary file object; EOF raises EOFError."""

    def read_exact(n):
        chunks = []
        remaining = n
        while remaining:
            chunk = stream.read(remaining)
            if not chunk:
                raise EOFError("stream closed after %d of %d bytes" % (n - remaining, n))
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    return read_exact


# ---------------------------------------------------------------- ONNX Runtime side


class RequestError(Exception):
    """A request failed in a way the host should report (one line, with a kind)."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text[:2000] if text else type(exc).__name__


class Worker(object):
    """Holds the models and sessions of one worker process and answers requests."""

    def __init__(self, workdir):
        import numpy  # noqa: F401  (fail early and clearly when numpy is missing)
        import onnxruntime

        self.ort = onnxruntime
        self.workdir = workdir
        self.model_dir = os.path.join(workdir, "models")
        if not os.path.isdir(self.model_dir):
            os.makedirs(self.model_dir)
        self.sessions = {}
        self.plugin_eps = {}
        self.plugin_errors = {}
        self._register_plugin_eps()

    # -- capabilities

    def _register_plugin_eps(self):
        """Register onnxruntime-qnn 2.x as a plugin EP when this ORT supports plugin EPs."""
        ort = self.ort
        if not hasattr(ort, "register_execution_provider_library"):
            return
        try:
            import onnxruntime_qnn
        except ImportError:
            return
        try:
            ort.register_execution_provider_library("QNNExecutionProvider", onnxruntime_qnn.get_library_path())
            self.plugin_eps["QNNExecutionProvider"] = onnxruntime_qnn.get_library_path()
        except Exception as exc:  # a broken install must be reported, not crash the worker
            self.plugin_errors["QNNExecutionProvider"] = _one_line(exc)

    def _qnn_info(self):
        info = {}
        try:
            import onnxruntime_qnn
        except ImportError:
            libdir = os.path.join(os.path.dirname(self.ort.__file__), "capi")
        else:
            pkg = getattr(onnxruntime_qnn, "build_and_package_info", None)
            info["ep_package_version"] = getattr(pkg, "__version__", None)
            info["sdk_version"] = getattr(pkg, "qnn_version", None)
            libdir = os.path.dirname(onnxruntime_qnn.get_library_path())
        if os.path.isdir(libdir):
            names = os.listdir(libdir)
            info["backends"] = sorted(
                n[len("libQnn"):-len(".so")].lower()
                for n in names
                if n.startswith("libQnn") and n.endswith(".so") and n[6:-3] in ("Htp", "Gpu", "Cpu", "Saver")
            )
            info["libdir"] = libdir
        return info

    def capabilities(self):
        import numpy

        ort = self.ort
        available = list(ort.get_available_providers())
        for name in self.plugin_eps:
            if name not in available:
                available.append(name)
        info = {
            "protocol": PROTOCOL_VERSION,
            "python": sys.version.split()[0],
            "python_executable": sys.executable,
            "numpy": numpy.__version__,
            "onnxruntime": ort.__version__,
            "providers": available,
            "plugin_eps": sorted(self.plugin_eps),
            "plugin_errors": self.plugin_errors,
            "platform": platform.platform(),
            "machine": platform.machine(),
            "hostname": platform.node(),
            "soc": _read_soc(),
            "pid": os.getpid(),
        }
        if "QNNExecutionProvider" in available:
            info["qnn"] = self._qnn_info()
        return info

    # -- models

    def _model_path(self, sha256):
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise RequestError("bad-request", "model sha256 %r is not a lowercase hex digest" % sha256)
        return os.path.join(self.model_dir, sha256 + ".onnx")

    def has_model(self, sha256):
        return os.path.exists(self._model_path(sha256))

    def put_model(self, sha256, data):
        path = self._model_path(sha256)
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise RequestError("bad-request", "model bytes hash to %s, expected %s" % (digest, sha256))
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    # -- sessions

    def create_session(self, req):
        ort = self.ort
        path = self._model_path(req["sha256"])
        if not os.path.exists(path):
            raise RequestError("missing-model", "model %s is not in the worker cache" % req["sha256"][:12])
        ep = req["ep"]
        options = dict(req.get("options") or {})
        so = ort.SessionOptions()
        so.log_severity_level = int(req.get("log_severity", 3))
        if req.get("intra_op_threads"):
            so.intra_op_num_threads = int(req["intra_op_threads"])
        # No spinning thread pools: several sessions share this process and the board's cores, and a
        # spinning CPU-EP pool slows the QNN HTP simulator (or a board's CPU side) by up to 10x.
        config = {"session.record_ep_graph_assignment_info": "1", "session.intra_op.allow_spinning": "0"}
        if not req.get("cpu_fallback", True):
            config["session.disable_cpu_ep_fallback"] = "1"
        config.update(req.get("session_config") or {})
        for key, value in config.items():
            so.add_session_config_entry(key, str(value))
        api = "cpu"
        providers = None
        if ep == "CPUExecutionProvider":
            providers = ["CPUExecutionProvider"]
        elif ep in self.plugin_eps:
            devices = [d for d in ort.get_ep_devices() if d.ep_name == ep]
            if not devices:
                raise RequestError("missing-provider", "%s is registered but reports no device" % ep)
            so.add_provider_for_devices(devices, {k: str(v) for k, v in options.items()})
            api = "plugin"
        else:
            if ep not in ort.get_available_providers():
                raise RequestError("missing-provider", "provider %s is not available in onnxruntime %s" % (ep, ort.__version__))
            providers = [(ep, {k: str(v) for k, v in options.items()}), "CPUExecutionProvider"]
            api = "legacy"
        start = time.perf_counter()
        try:
            if providers is None:
                sess = ort.InferenceSession(path, sess_options=so)
            else:
                sess = ort.InferenceSession(path, sess_options=so, providers=providers)
        except Exception as exc:
            raise RequestError("create", _one_line(exc))
        create_ms = (time.perf_counter() - start) * 1000.0
        if hasattr(sess, "disable_fallback"):
            sess.disable_fallback()  # never let ORT silently retry on CPU
        active = sess.get_providers()
        if ep not in active:
            raise RequestError(
                "create", "%s was requested but the session runs on %s only" % (ep, ", ".join(active))
            )
        sid = req["sid"]
        self.sessions[sid] = sess
        return {
            "providers": active,
            "api": api,
            "placement": _placement(sess),
            "create_ms": create_ms,
            "inputs": [_io_meta(i) for i in sess.get_inputs()],
            "outputs": [_io_meta(o) for o in sess.get_outputs()],
        }

    def _session(self, sid):
        try:
            return self.sessions[sid]
        except KeyError:
            raise RequestError("bad-request", "no open session %r" % sid)

    def run(self, req, arrays):
        sess = self._session(req["sid"])
        feeds = dict(arrays)
        sentinels = req.get("sentinels")
        start = time.perf_counter()
        try:
            if sentinels:
                outputs, unwritten = _run_with_sentinels(sess, feeds, sentinels)
            else:
                names = [o.name for o in sess.get_outputs()]
                outputs, unwritten = list(zip(names, sess.run(None, feeds))), {}
        except RequestError:
            raise
        except Exception as exc:
            raise RequestError("run", _one_line(exc))
        return {"run_ms": (time.perf_counter() - start) * 1000.0, "unwritten": unwritten}, outputs

    def time_runs(self, req, arrays):
        sess = self._session(req["sid"])
        feeds = dict(arrays)
        try:
            for _ in range(int(req.get("warmup", 1))):
                sess.run(None, feeds)
            times = []
            for _ in range(int(req.get("runs", 10))):
                start = time.perf_counter()
                sess.run(None, feeds)
                times.append((time.perf_counter() - start) * 1000.0)
        except Exception as exc:
            raise RequestError("run", _one_line(exc))
        return {"times_ms": times}

    def close_session(self, sid):
        self.sessions.pop(sid, None)


def _io_meta(node):
    return {"name": node.name, "type": node.type, "shape": [d if isinstance(d, int) else str(d) for d in node.shape]}


def _placement(sess):
    """Nodes per EP as ``[{"ep", "nodes": [[name, op_type, domain], ...]}]``, or None if unknown."""
    getter = getattr(sess, "get_provider_graph_assignment_info", None)
    if getter is None:
        return None
    try:
        infos = getter()
    except Exception:
        return None
    return [
        {"ep": info.ep_name, "nodes": [[n.name, n.op_type, n.domain] for n in info.get_nodes()]} for info in infos
    ]


_ORT_TO_NUMPY = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32", "tensor(int64)": "int64",
    "tensor(uint8)": "uint8", "tensor(uint16)": "uint16", "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64", "tensor(bool)": "bool",
}


def _run_with_sentinels(sess, feeds, sentinels):
    """Run twice into output buffers pre-filled with two sentinels; report elements left unwritten.

    Some QNN kernels leave output elements untouched, so their value depends on what ran before in
    the process. An element that still equals its sentinel in both runs was never written.
    """
    import numpy as np

    results = []
    outs = sess.get_outputs()
    for sentinel in sentinels[:2]:
        binding = sess.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        buffers = []
        for out in outs:
            if out.type not in _ORT_TO_NUMPY or not all(isinstance(d, int) for d in out.shape):
                raise RequestError("bad-request", "output %r has no static shape; sentinel check needs one" % out.name)
            buf = np.full(out.shape, sentinel, dtype=_ORT_TO_NUMPY[out.type])
            value = _ortvalue(buf)
            binding.bind_ortvalue_output(out.name, value)
            buffers.append(value)
        sess.run_with_iobinding(binding)
        results.append([v.numpy() for v in buffers])
    unwritten = {}
    first, second = results
    for out, a, b in zip(outs, first, second):
        a_sent = a == np.asarray(sentinels[0], dtype=a.dtype)
        b_sent = b == np.asarray(sentinels[1], dtype=b.dtype)
        count = int(np.count_nonzero(a_sent & b_sent))
        if count:
            unwritten[out.name] = count
    return list(zip([o.name for o in outs], first)), unwritten


def _ortvalue(array):
    import onnxruntime

    return onnxruntime.OrtValue.ortvalue_from_numpy(array)


def _read_soc():
    """Best-effort board identity (device-tree model or SoC id); empty on a PC."""
    for path in ("/proc/device-tree/model", "/sys/devices/soc0/machine", "/sys/devices/soc0/soc_id"):
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace").strip("\x00\n ")
        except OSError:
            continue
        if text:
            return text
    return ""


# ---------------------------------------------------------------- board lock

_HELD_LOCKS = {}  # path -> open fd; flock() lives as long as this process


def take_lock(path, holder):
    """Try to flock() the board lock at ``path`` without waiting.

    The lock belongs to this process: the kernel drops it when the process exits or is killed, so
    a crashed or cancelled run never leaves the board locked. The holder's description is written
    into the file so that a waiting run can say who has the board.
    """
    import errno
    import fcntl

    path = os.path.expanduser(path)
    if path in _HELD_LOCKS:
        return {"acquired": True, "path": path}
    folder = os.path.dirname(path)
    try:
        if folder and not os.path.isdir(folder):
            os.makedirs(folder)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            if exc.errno != errno.EACCES:
                raise
            fd = os.open(path, os.O_RDONLY)  # another user's lock file: flock works read-only too
    except OSError as exc:
        raise RequestError("lock", "cannot open the board lock %s: %s" % (path, _one_line(exc)))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError) as exc:
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise RequestError("lock", "cannot lock %s: %s" % (path, _one_line(exc)))
        try:
            with open(path, "rb") as f:
                current = f.read(4096).decode("utf-8", "replace")
        except (IOError, OSError):
            current = ""
        return {"acquired": False, "path": path, "holder": current}
    _HELD_LOCKS[path] = fd
    record = dict(holder, pid=os.getpid(), since=time.time())  # holder: {"who", "run"} from the host
    record = json.dumps(record).encode("utf-8")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, record)
    except OSError:
        pass  # read-only lock file: the lock holds, only the holder's name is not recorded
    return {"acquired": True, "path": path}


# ---------------------------------------------------------------- request loop


def serve(read_exact, write, worker):
    """Answer requests until ``shutdown`` or EOF (``worker`` is None in a lock-only process)."""
    while True:
        try:
            req, arrays = read_frame(read_exact)
        except EOFError:
            return
        op = req.get("op")
        out_arrays = ()
        try:
            if op == "lock":
                reply = take_lock(req["path"], req["holder"])
            elif op == "shutdown":
                write(encode_header_only({"ok": True}))
                return
            elif worker is None:
                raise RequestError("bad-request", "op %r sent to a lock-only worker" % op)
            elif op == "capabilities":
                reply = worker.capabilities()
            elif op == "has_model":
                reply = {"present": worker.has_model(req["sha256"])}
            elif op == "put_model":
                worker.put_model(req["sha256"], arrays[0][1].tobytes())
                reply = {}
            elif op == "create_session":
                reply = worker.create_session(req)
            elif op == "run":
                reply, out_arrays = worker.run(req, arrays)
            elif op == "time":
                reply = worker.time_runs(req, arrays)
            elif op == "close_session":
                worker.close_session(req["sid"])
                reply = {}
            elif op == "echo":
                reply, out_arrays = {}, arrays
            else:
                raise RequestError("bad-request", "unknown op %r" % op)
            reply["ok"] = True
        except RequestError as exc:
            reply, out_arrays = {"ok": False, "kind": exc.kind, "error": _one_line(exc)}, ()
        except Exception as exc:
            trace = traceback.format_exc()
            sys.stderr.write(trace)
            reply, out_arrays = {"ok": False, "kind": "internal", "error": _one_line(exc)}, ()
        write(encode_frame(reply, out_arrays))


def main(argv=None):
    """Entry point: ``python3 worker.py --workdir DIR [--lock-only]``; protocol on stdin / original stdout.

    ``--lock-only`` starts a process that only holds the board lock (no onnxruntime import, so no
    model or EP crash can ever release the lock early)."""
    argv = sys.argv[1:] if argv is None else argv
    workdir = argv[argv.index("--workdir") + 1] if "--workdir" in argv else os.path.join(os.getcwd(), ".edgeort")
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # from now on, whatever anything prints to stdout lands on stderr
    sys.stdout = sys.stderr
    proto_in = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin

    def write(data):
        proto_out.write(data)

    try:
        worker = None if "--lock-only" in argv else Worker(workdir)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or _one_line(exc)
        write(encode_header_only({
            "ok": False, "kind": "environment", "python_executable": sys.executable,
            "error": "%s cannot import %s (%s); the board needs python3 + numpy + onnxruntime"
            % (sys.executable, missing, _one_line(exc)),
        }))
        return 3
    write(encode_header_only({"ok": True, "hello": True, "protocol": PROTOCOL_VERSION, "pid": os.getpid()}))
    serve(stream_reader(proto_in), write, worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
