"""What the worker reports about a session and its machine: the session config every session gets, the EP
facts and versions of a session, its inputs/outputs and placement, QNN's package, and the CPU features and
SoC of the machine."""

import os

QNN_EP = "QNNExecutionProvider"  # the name onnxruntime-qnn 2.x is registered under (always this one)

#: QNN options of a profiled session: per-node cycles and the map from QNN ops to ONNX nodes (the CSV's
#: "ONNX Source Ops" column, and qnn_op_trace.json)
PROFILE_OPTIONS = {"profiling_level": "detailed", "enable_framework_op_trace": "1"}


def session_config(cpu_fallback):
    """The session config entries of every session (part of the EP-context cache's key)."""
    # No spinning thread pools: several sessions share this process and the board's cores, and a
    # spinning CPU-EP pool slows the QNN HTP simulator (or a board's CPU side) by up to 10x.
    config = {"session.record_ep_graph_assignment_info": "1", "session.intra_op.allow_spinning": "0"}
    if not cpu_fallback:
        config["session.disable_cpu_ep_fallback"] = "1"
    return config


def runner(sess, names):
    """``run(feeds) -> [arrays]``: the outputs ``names`` of ``sess`` for one feed. onnxruntime's C++ session
    (``sess._sess``, where the Python session has it) is called directly: the Python ``InferenceSession.run``
    checks on every call that no input is missing (the host checked the feed before sending it), whether WebGPU
    graph capture is on, and retries on CPU after an EP failure (turned off in every session here): ~5 us of a
    ~16 us run of a small model, on every request. Without ``_sess``: ``sess.run``."""
    core = getattr(sess, "_sess", None)
    if core is None:
        return lambda feeds: sess.run(names, feeds)
    return lambda feeds: core.run(names, feeds, None)


def session_facts(ep, options, cpu_fallback):
    """What a session's options make of the EP, for the record: QNN's effective graph-I/O quantization
    offload (QNN turns it off by itself when CPU fallback is disabled)."""
    if ep != QNN_EP:
        return {"offload_graph_io_quantization": None}
    return {"offload_graph_io_quantization": options.get("offload_graph_io_quantization", "1") if cpu_fallback else "0"}


def io_meta(node):
    return {"name": node.name, "type": node.type, "shape": [d if isinstance(d, int) else str(d) for d in node.shape]}


def placement_of(sess):
    """Nodes per EP as ``[{"ep", "nodes": [[name, op_type, domain], ...]}]``, or None if unknown."""
    getter = getattr(sess, "get_provider_graph_assignment_info", None)
    if getter is None:
        return None
    try:
        infos = getter()
    except Exception:
        return None
    return [{"ep": info.ep_name, "nodes": [[n.name, n.op_type, n.domain] for n in info.get_nodes()]} for info in infos]


#: CPU features that change onnxruntime's u8 kernels (x86: VNNI computes u8 x s8 products exactly, AVX2 alone
#: saturates the pairwise sums; Arm: the dot-product and int8 matrix instructions)
U8_ISA = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm", "sve")


def u8_isa():
    """The u8-kernel features this machine's CPU reports in /proc/cpuinfo (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return [flag for flag in U8_ISA if flag in flags]


def config_entry(options, key):
    """A session config entry, "" when unset (onnxruntime raises for an unset key)."""
    try:
        return options.get_session_config_entry(key)
    except Exception:
        return ""


def read_soc():
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


def ep_versions(ep):
    """The versions that shape ``ep``'s compiled graphs beyond onnxruntime's: the QNN EP package and SDK."""
    if ep != QNN_EP:
        return {}
    try:
        import onnxruntime_qnn
    except ImportError:
        return {}
    pkg = getattr(onnxruntime_qnn, "build_and_package_info", None)
    return {"ep_package": getattr(pkg, "__version__", None), "qnn_sdk": getattr(pkg, "qnn_version", None)}


def qnn_package(ort):
    """QNN's EP package and SDK versions and the backends its library folder ships (``backends``, ``libdir``)."""
    info = {}
    try:
        import onnxruntime_qnn
    except ImportError:
        libdir = os.path.join(os.path.dirname(ort.__file__), "capi")
    else:
        pkg = getattr(onnxruntime_qnn, "build_and_package_info", None)
        info["ep_package_version"] = getattr(pkg, "__version__", None)
        info["sdk_version"] = getattr(pkg, "qnn_version", None)
        libdir = os.path.dirname(onnxruntime_qnn.get_library_path())
    if os.path.isdir(libdir):
        info["backends"] = sorted(
            n[len("libQnn") : -len(".so")].lower()
            for n in os.listdir(libdir)
            if n.startswith("libQnn") and n.endswith(".so") and n[6:-3] in ("Htp", "Gpu", "Cpu", "Saver")
        )
        info["libdir"] = libdir
    return info
