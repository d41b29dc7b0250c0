"""Board-side worker: runs ONNX Runtime sessions for the host, one process per isolation group.

This file is self-contained on purpose: it is started as ``python3 worker.py`` both for the
``local`` device (a subprocess) and on SSH boards (uploaded into the board's workdir). It needs
only python3 (3.8+), numpy and onnxruntime (or onnxruntime-qnn) on the board.

Protocol (host -> worker on stdin, worker -> host on the ORIGINAL stdout file descriptor, which the
worker duplicates at start and then points fd 1 at stderr so that anything QNN libraries print can
never corrupt the channel). Every message is one frame::

    b"EORT" | u32 big-endian header length | UTF-8 JSON header | raw array bytes ...

The header is a JSON object whose ``"arrays"`` lists ``{"name", "dtype", "shape", "nbytes"}`` for
the raw payloads that follow, in order; both sides validate it (dtype from an allow-list, ``nbytes``
equal to what dtype and shape imply, under a limit). Arrays are C-contiguous little-endian bytes:
never pickled. Requests carry ``"op"`` and an ``"id"``; every reply echoes the ``"id"`` and carries
``"ok"`` and, when not ok, ``"error"`` (one line) and ``"kind"``. A frame that does not decode ends
the conversation: the stream position is then unknown.
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
MAX_ARRAY_BYTES = 16 * 1024 ** 3
# numpy dtype strings a frame may carry: numbers and bool, little-endian (never objects or strings)
DTYPES = {"|b1": 1, "|u1": 1, "|i1": 1, "<u2": 2, "<i2": 2, "<f2": 2, "<u4": 4, "<i4": 4, "<f4": 4,
          "<u8": 8, "<i8": 8, "<f8": 8}
_ARRAY_KEYS = frozenset(["name", "dtype", "shape", "nbytes"])


class ProtocolError(Exception):
    """The byte stream does not hold a valid frame (peer died or spoke something else)."""


# ---------------------------------------------------------------- framing (shared with the host)


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
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError("array %r has dtype object; only numeric/bool tensors can be sent" % name)
        data = array if array.flags.c_contiguous else np.ascontiguousarray(array)  # (keeps 0-d arrays 0-d)
        if data.dtype.byteorder == ">":
            data = data.astype(data.dtype.newbyteorder("<"))
        meta.append({"name": name, "dtype": data.dtype.str, "shape": list(data.shape), "nbytes": data.nbytes})
        payloads.append(memoryview(data.reshape(-1).view(np.uint8)))
    return [encode_header_only(dict(header, arrays=meta))] + payloads


def encode_header_only(header):
    """The bytes of a frame's header (all of a frame without arrays), built without numpy."""
    head = json.dumps(dict({"arrays": []}, **header), separators=(",", ":")).encode("utf-8")
    return MAGIC + _HEADER.pack(len(head)) + head


def _check_array_meta(meta):
    """ProtocolError unless ``meta`` describes a sendable array exactly."""
    if not isinstance(meta, dict) or set(meta) != _ARRAY_KEYS:
        raise ProtocolError("frame array entry %.200r is not {name, dtype, shape, nbytes}" % (meta,))
    shape, nbytes = meta["shape"], meta["nbytes"]
    if not isinstance(meta["name"], str) or meta["dtype"] not in DTYPES:
        raise ProtocolError("frame array %.100r has dtype %.40r; allowed: %s"
                            % (meta["name"], meta["dtype"], ", ".join(sorted(DTYPES))))
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError("frame array %.100r has shape %.100r" % (meta["name"], shape))
    expected = DTYPES[meta["dtype"]]
    for dim in shape:
        expected *= dim
    if type(nbytes) is not int or nbytes != expected or nbytes > MAX_ARRAY_BYTES:
        raise ProtocolError("frame array %.100r says %.40r bytes; dtype %s and shape %s make %d (limit %d)"
                            % (meta["name"], nbytes, meta["dtype"], shape, expected, MAX_ARRAY_BYTES))


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
        header = json.loads(read_exact(length).decode("utf-8"))
    except ValueError as exc:  # invalid UTF-8 or JSON
        raise ProtocolError("frame header is not JSON: %s" % _one_line(exc))
    if not isinstance(header, dict):
        raise ProtocolError("frame header is %s, not a JSON object" % type(header).__name__)
    arrays = header.get("arrays", [])
    if not isinstance(arrays, list):
        raise ProtocolError("frame header's arrays is %s, not a list" % type(arrays).__name__)
    for meta in arrays:
        _check_array_meta(meta)
    return header


def read_frame(reader):
    """Read one frame; return ``(header, [(name, array), ...])``. ``reader`` has ``read_exact(n) ->
    bytes`` and ``read_into(view)``: arrays are read straight into their own memory."""
    header = read_header(reader.read_exact)
    arrays = []
    if header.get("arrays"):
        import numpy as np

        for meta in header["arrays"]:
            array = np.empty(tuple(meta["shape"]), dtype=np.dtype(meta["dtype"]))
            if meta["nbytes"]:
                reader.read_into(memoryview(array.reshape(-1).view(np.uint8)))
            arrays.append((meta["name"], array))
    return header, arrays


class stream_reader(object):
    """A frame reader over a binary file object; EOF raises EOFError."""

    def __init__(self, stream):
        self.stream = stream

    def read_exact(self, n):
        data = bytearray(n)
        self.read_into(memoryview(data))
        return bytes(data)

    def read_into(self, view):
        done = 0
        while done < len(view):
            count = self.stream.readinto(view[done:])
            if not count:
                raise EOFError("stream closed after %d of %d bytes" % (done, len(view)))
            done += count


# ---------------------------------------------------------------- ONNX Runtime side


class RequestError(Exception):
    """A request failed in a way the host should report (one line, with a kind)."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text[:2000] if text else type(exc).__name__


class EnvironmentProblem(Exception):
    """The worker cannot run here (missing module, unsafe workdir): one line for the host."""


def private_dir(path):
    """Create ``path`` (mode 0700) if needed; EnvironmentProblem unless it is a directory of this user
    that neither group nor others can write (files in it are trusted only by hash, but a directory
    others can write lets them swap a file between the check and its use)."""
    try:
        if not os.path.isdir(path):
            os.makedirs(path, 0o700)
        info = os.stat(path)
    except OSError as exc:
        raise EnvironmentProblem("cannot create the workdir %s: %s" % (path, _one_line(exc)))
    if info.st_uid != os.getuid():
        raise EnvironmentProblem("workdir %s belongs to uid %d, not to this user (uid %d); refusing to use it: "
                                 "choose another workdir" % (path, info.st_uid, os.getuid()))
    if info.st_mode & 0o022:
        raise EnvironmentProblem("workdir %s is writable by group or others (mode %o); refusing to use it: "
                                 "chmod 700 %s" % (path, info.st_mode & 0o777, path))


def _check_digest(value, what):
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise RequestError("bad-request", "%s %r is not a lowercase hex sha256" % (what, value))


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def remove_stale_temp_files(folder):
    """Delete ``*.<pid>.tmp`` uploads whose writer process is gone (it died mid-upload)."""
    for name in os.listdir(folder):
        parts = name.rsplit(".", 2)
        if len(parts) == 3 and parts[2] == "tmp" and parts[1].isdigit():
            try:
                os.kill(int(parts[1]), 0)
            except ProcessLookupError:
                _remove(os.path.join(folder, name))
            except OSError:
                pass  # alive (another user's process, EPERM): not ours to judge


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Worker(object):
    """Holds the models and sessions of one worker process and answers requests."""

    def __init__(self, workdir):
        import numpy  # noqa: F401  (fail early and clearly when numpy is missing)
        import onnxruntime

        self.ort = onnxruntime
        self.workdir = workdir
        self.model_dir = os.path.join(workdir, "models")
        private_dir(self.model_dir)
        remove_stale_temp_files(self.model_dir)
        self.verified = {}  # model path -> (inode, size, mtime) of the file whose hash was checked
        self.sessions = {}
        self.session_eps = {}  # sid -> (ep, options)
        self.memory_checks = {}  # (ep, options) -> MemoryStateCheck
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
        _check_digest(sha256, "model sha256")
        return os.path.join(self.model_dir, sha256 + ".onnx")

    def _bundle_path(self, bundle, location):
        """Where file ``location`` of the model bundle ``bundle`` (a model with external data, whose
        files keep their relative paths next to each other) lives in the cache."""
        _check_digest(bundle, "bundle id")
        parts = location.replace("\\", "/").split("/")
        if not location or location.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in location:
            raise RequestError("bad-request", "bundle file location %r is not a plain relative path" % location)
        return os.path.join(self.model_dir, bundle, *parts)

    def has_model(self, sha256):
        return os.path.exists(self._model_path(sha256))

    def has_file(self, bundle, location):
        return os.path.exists(self._bundle_path(bundle, location))

    def put_model(self, sha256, data):
        self._store(self._model_path(sha256), sha256, data, "model %s" % sha256[:12])

    def put_file(self, bundle, location, sha256, data):
        path = self._bundle_path(bundle, location)
        try:
            private_dir(os.path.dirname(path))
        except EnvironmentProblem as exc:
            raise RequestError("put-model", str(exc))
        self._store(path, sha256, data, "file %r of bundle %s" % (location, bundle[:12]))

    def _store(self, path, sha256, data, what):
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise RequestError("bad-request", "%s: bytes hash to %s, expected %s" % (what, digest, sha256))
        tmp = "%s.%d.tmp" % (path, os.getpid())
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:  # disk full, quota: leave nothing behind
            _remove(tmp)
            raise RequestError("put-model", "cannot store %s in %s: %s"
                               % (what, os.path.dirname(path), exc.strerror or _one_line(exc)))

    def _verified(self, path, sha256, what):
        """``path`` once its bytes hash to ``sha256`` (a file that does not is deleted: the host
        uploads it again). Checked once per file version and worker process."""
        try:
            info = os.stat(path)
        except OSError:
            raise RequestError("missing-model", "%s is not in the worker cache" % what)
        version = (info.st_ino, info.st_size, info.st_mtime_ns)
        if self.verified.get(path) != version:
            digest = file_sha256(path)
            if digest != sha256:
                os.remove(path)
                raise RequestError("missing-model", "cached %s hashed to %s; it was deleted" % (path, digest))
            self.verified[path] = version
        return path

    def verified_model(self, sha256, bundle=None, files=()):
        """The path of a cached model whose every file is verified: ``sha256``.onnx, or the first of
        ``files`` ([location, sha256] ...) of a bundle (the model and its external data)."""
        if not bundle:
            return self._verified(self._model_path(sha256), sha256, "model %s" % sha256[:12])
        paths = [self._verified(self._bundle_path(bundle, location), sha, "file %r of model %s" % (location, sha256[:12]))
                 for location, sha in files]
        return paths[0]

    # -- sessions

    def open_session(self, model, ep, options, cpu_fallback):
        """An InferenceSession of ``model`` (path or bytes) on ``ep`` and nothing else; returns
        ``(session, api)`` where api is "cpu", "plugin" (onnxruntime-qnn 2.x) or "legacy"."""
        ort = self.ort
        so = ort.SessionOptions()
        so.log_severity_level = 3
        # No spinning thread pools: several sessions share this process and the board's cores, and a
        # spinning CPU-EP pool slows the QNN HTP simulator (or a board's CPU side) by up to 10x.
        config = {"session.record_ep_graph_assignment_info": "1", "session.intra_op.allow_spinning": "0"}
        if not cpu_fallback:
            config["session.disable_cpu_ep_fallback"] = "1"
        for key, value in config.items():
            so.add_session_config_entry(key, value)
        options = dict((k, str(v)) for k, v in options.items())
        api = "cpu"
        providers = None
        if ep == "CPUExecutionProvider":
            providers = ["CPUExecutionProvider"]
        elif ep in self.plugin_eps:
            devices = [d for d in ort.get_ep_devices() if d.ep_name == ep]
            if not devices:
                raise RequestError("missing-provider", "%s is registered but reports no device" % ep)
            so.add_provider_for_devices(devices, options)
            api = "plugin"
        else:
            if ep not in ort.get_available_providers():
                raise RequestError("missing-provider", "provider %s is not available in onnxruntime %s" % (ep, ort.__version__))
            providers = [(ep, options), "CPUExecutionProvider"]
            api = "legacy"
        try:  # enable_fallback=0: no silent CPU retry, so the EP's own error is what the host sees
            if providers is None:
                sess = ort.InferenceSession(model, sess_options=so, enable_fallback=0)
            else:
                sess = ort.InferenceSession(model, sess_options=so, providers=providers, enable_fallback=0)
        except Exception as exc:
            raise RequestError("create", _one_line(exc))
        if hasattr(sess, "disable_fallback"):
            sess.disable_fallback()  # onnxruntime versions without the enable_fallback argument: run-time retries
        active = sess.get_providers()
        if ep not in active:
            raise RequestError(
                "create", "%s was requested but the session runs on %s only" % (ep, ", ".join(active))
            )
        return sess, api

    def create_session(self, req):
        ep, options = req["ep"], dict(req.get("options") or {})
        path = self.verified_model(req["sha256"], req.get("bundle"), req.get("files") or ())
        sess, api = self.open_session(path, ep, options, req.get("cpu_fallback", True))
        self.sessions[req["sid"]] = sess
        self.session_eps[req["sid"]] = (ep, options)
        return {
            "providers": sess.get_providers(),
            "api": api,
            "placement": _placement(sess),
            "inputs": [_io_meta(i) for i in sess.get_inputs()],
            "outputs": [_io_meta(o) for o in sess.get_outputs()],
        }

    def memory_check(self, sid):
        """The :class:`MemoryStateCheck` for a session's EP and options (one per worker and both)."""
        ep, options = self.session_eps[sid]
        key = (ep, tuple(sorted(options.items())))
        if key not in self.memory_checks:
            self.memory_checks[key] = MemoryStateCheck(
                lambda model: self.open_session(model, ep, options, cpu_fallback=False)[0], ep)
        return self.memory_checks[key]

    def _session(self, sid):
        try:
            return self.sessions[sid]
        except KeyError:
            raise RequestError("bad-request", "no open session %r" % sid)

    def run(self, req, arrays):
        """One inference; with ``memory_check`` the same feed twice around two memory fills, and
        ``memory_differs`` says which outputs changed (see :class:`MemoryStateCheck`)."""
        sess = self._session(req["sid"])
        feeds = dict(arrays)
        try:
            if req.get("memory_check"):
                outputs, differs = self.memory_check(req["sid"]).run(sess, feeds)
            else:
                outputs, differs = list(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds))), {}
        except RequestError:
            raise
        except Exception as exc:
            raise RequestError("run", _one_line(exc))
        return {"memory_differs": differs}, outputs

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
        self.session_eps.pop(sid, None)


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


# ---------------------------------------------------------------- memory-state check
# Some QNN HTP kernels leave output elements unwritten; they then hold whatever an earlier graph left
# in QNN's memory, which QNN takes at each run and shares between all sessions of the process (and
# copies over any output buffer bound by the caller, so sentinel-filled buffers cannot see it). A
# scrub graph on the same EP fills that memory with pattern A, the model runs, the scrub fills it
# with pattern B, the model runs again: outputs that differ bit for bit depend on memory state.
# Measured on the HTP simulator (onnxruntime-qnn 2.7.0): the ConvTranspose node tests that leave 16
# elements unwritten are flagged 10/10, in fresh processes and after 65 other models; 65 healthy
# models, 0 flagged; about 6-12 ms per check with the 4 MiB scrub.
_FILL_A = 0xFFFFFFFF  # NaN as fp32/fp16, -1 as int32, 0xff bytes
_FILL_B = 0x4F4F4F4F  # finite, large and positive as fp32 and fp16; every byte differs from A
# int32 elements of the scrub, largest first (a smaller one where QNN cannot allocate the largest);
# an int32 Max keeps the bits exactly, where a float scrub is converted under soc_model (fp16)
_SCRUB_SIZES = (1 << 20, 1 << 18, 1 << 16)


def _pb_varint(n):
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _pb_int(field, value):
    return _pb_varint(field << 3) + _pb_varint(value)


def _pb_bytes(field, data):
    data = data if isinstance(data, bytes) else data.encode("utf-8")
    return _pb_varint((field << 3) | 2) + _pb_varint(len(data)) + data


def scrub_model_bytes(n):
    """ModelProto bytes of ``y = Max(x, x)``, x and y int32[n], opset 13 (written by hand: the board
    has no onnx package)."""
    def value_info(name):
        tensor = _pb_int(1, 6) + _pb_bytes(2, _pb_bytes(1, _pb_int(1, n)))  # elem_type INT32, shape [n]
        return _pb_bytes(1, name) + _pb_bytes(2, _pb_bytes(1, tensor))
    node = _pb_bytes(1, "x") + _pb_bytes(1, "x") + _pb_bytes(2, "y") + _pb_bytes(3, "scrub") + _pb_bytes(4, "Max")
    graph = (_pb_bytes(1, node) + _pb_bytes(2, "edgeort_scrub") + _pb_bytes(11, value_info("x"))
             + _pb_bytes(12, value_info("y")))
    return _pb_int(1, 8) + _pb_bytes(7, graph) + _pb_bytes(8, _pb_bytes(1, "") + _pb_int(2, 13))


class MemoryStateCheck(object):
    """Runs a model twice around two fills of the EP's memory and reports outputs that differ."""

    def __init__(self, open_session, ep):
        """``open_session(model_bytes)``: a session on the EP under test, CPU fallback disabled."""
        import numpy as np

        errors = []
        for n in _SCRUB_SIZES:
            try:
                self.session = open_session(scrub_model_bytes(n))
            except RequestError as exc:  # QNN_COMMON_ERROR_MEM_ALLOC: too big for this vtcm_mb / SoC
                errors.append("%d elements: %s" % (n, exc))
                continue
            self.fills = [{"x": np.full(n, fill, dtype=np.uint32).view(np.int32)} for fill in (_FILL_A, _FILL_B)]
            return
        raise RequestError("memory-check", "cannot run the memory scrub graph on %s, so outputs that depend on "
                                           "memory left by earlier graphs cannot be ruled out (%s)"
                           % (ep, "; ".join(errors)))

    def run(self, sess, feeds):
        """``([(name, array of the first run)], {output name: elements that differ bit for bit})``."""
        import numpy as np

        names = [o.name for o in sess.get_outputs()]
        runs = []
        for fill in self.fills:
            self.session.run(None, fill)
            runs.append(sess.run(None, feeds))
        differs = {}
        for name, a, b in zip(names, *runs):
            a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
            if a.shape != b.shape or a.dtype != b.dtype:
                differs[name] = int(max(a.size, b.size))
            elif a.size and a.dtype.itemsize:
                rows = (a.size, a.dtype.itemsize)
                count = int(np.count_nonzero((a.reshape(-1).view(np.uint8).reshape(rows)
                                              != b.reshape(-1).view(np.uint8).reshape(rows)).any(axis=1)))
                if count:
                    differs[name] = count
        return list(zip(names, runs[0])), differs


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


def _lock(worker, req, arrays):
    return take_lock(req["path"], req["holder"]), ()


def _capabilities(worker, req, arrays):
    return worker.capabilities(), ()


def _has_model(worker, req, arrays):
    return {"present": worker.has_model(req["sha256"])}, ()


def _put_model(worker, req, arrays):
    worker.put_model(req["sha256"], arrays[0][1].tobytes())
    return {}, ()


def _has_file(worker, req, arrays):
    return {"present": worker.has_file(req["bundle"], req["location"])}, ()


def _put_file(worker, req, arrays):
    worker.put_file(req["bundle"], req["location"], req["sha256"], arrays[0][1].tobytes())
    return {}, ()


def _create_session(worker, req, arrays):
    return worker.create_session(req), ()


def _run(worker, req, arrays):
    return worker.run(req, arrays)


def _time(worker, req, arrays):
    return worker.time_runs(req, arrays), ()


def _close_session(worker, req, arrays):
    worker.close_session(req["sid"])
    return {}, ()


def _echo(worker, req, arrays):
    return {}, arrays


# op -> handler(worker, request header, request arrays) -> (reply header, reply arrays)
HANDLERS = {
    "capabilities": _capabilities, "has_model": _has_model, "put_model": _put_model, "has_file": _has_file,
    "put_file": _put_file,
    "create_session": _create_session, "run": _run,
    "time": _time, "close_session": _close_session, "echo": _echo,
}
LOCK_ONLY_HANDLERS = {"lock": _lock}  # all a lock-only worker answers (it never imports numpy/onnxruntime)


def serve(read_exact, write, worker):
    """Answer requests until ``shutdown`` or EOF (``worker`` is None in a lock-only process).

    A request that does not decode ends the process (exit status 2): after a broken frame the
    stream position is unknown, so no later reply could be trusted."""
    handlers = LOCK_ONLY_HANDLERS if worker is None else dict(HANDLERS, **LOCK_ONLY_HANDLERS)
    while True:
        try:
            req, arrays = read_frame(read_exact)
        except EOFError:
            return 0
        except ProtocolError as exc:
            sys.stderr.write("edgeort worker: invalid request frame (%s); exiting\n" % _one_line(exc))
            return 2
        op = req.get("op")
        if op == "shutdown":
            write([encode_header_only({"ok": True, "id": req.get("id")})])
            return 0
        try:
            if op not in handlers:
                lock_only = worker is None and op in HANDLERS
                raise RequestError("bad-request", ("op %r sent to a lock-only worker" if lock_only
                                                   else "unknown op %r") % op)
            reply, out_arrays = handlers[op](worker, req, arrays)
            reply["ok"] = True
        except RequestError as exc:
            reply, out_arrays = {"ok": False, "kind": exc.kind, "error": _one_line(exc)}, ()
        except Exception as exc:
            sys.stderr.write(traceback.format_exc())
            reply, out_arrays = {"ok": False, "kind": "internal", "error": _one_line(exc)}, ()
        reply["id"] = req.get("id")
        write(frame_parts(reply, out_arrays))


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

    def write(parts):
        for part in parts:
            view = memoryview(part)
            while view:  # a raw write may take less than it is given
                view = view[proto_out.write(view):]

    try:
        private_dir(workdir)
        worker = None if "--lock-only" in argv else Worker(workdir)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or _one_line(exc)
        problem = ("%s cannot import %s (%s); the board needs python3 + numpy + onnxruntime"
                   % (sys.executable, missing, _one_line(exc)))
    except EnvironmentProblem as exc:
        problem = str(exc)
    else:
        problem = None
    if problem is not None:
        write([encode_header_only({"ok": False, "kind": "environment", "python_executable": sys.executable,
                                   "error": problem})])
        return 3
    write([encode_header_only({"ok": True, "hello": True, "protocol": PROTOCOL_VERSION, "pid": os.getpid()})])
    return serve(stream_reader(proto_in), write, worker)


if __name__ == "__main__":
    sys.exit(main())
