"""The AI Hub test double's job runner: one inference job in its own process, as a hosted device would run it.

``python -m tests.support.aihub_runner JOB_DIR`` reads ``model.onnx``, ``inputs.h5`` (the qai-hub client's
dataset format) and ``options.txt`` (the job's options string) from JOB_DIR, runs every batch entry on
onnxruntime (``--compute_unit cpu``: the CPU EP; ``npu``, the default: the QNN HTP simulator with CPU
fallback, as AI Hub's ONNX jobs always have it) and writes ``outputs.h5`` and ``profile.json`` (a
ProfileDetail in protobuf JSON: one layer per node onnxruntime runs, with the compute unit it assigned the
node to).
A job that cannot run writes its one-line reason to ``failure.txt`` instead.
"""

from __future__ import annotations

import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import h5py
import numpy as np
import onnxruntime as ort
from qai_hub.util.dataset_entries_converters import dataset_entries_to_h5, h5_to_dataset_entries

from pytest_edgeort._text import one_line
from pytest_edgeort.board.sessioninfo import QNN_EP, ep_versions, placement_of

TIMED_RUNS = 5  # timed inferences after one warm-up: execution_time is their median
NO_GPU = "the AI Hub test double has no GPU"


class JobFailure(Exception):
    """A job that ends FAILED; its message is the job's failure_reason."""


def _compute_unit(value: str, settings: Dict[str, object]) -> None:
    units = set(value.lower().split(","))
    unknown = sorted(units - {"all", "npu", "gpu", "cpu"})
    if unknown:
        raise JobFailure(f"--compute_unit: unknown compute unit {unknown[0]!r} (expected npu, gpu, cpu or all)")
    if units == {"cpu"}:
        settings["compute_unit"] = "cpu"
    elif units & {"npu", "all"}:
        settings["compute_unit"] = "npu"
    else:
        raise JobFailure(NO_GPU)


def _execution_providers(value: str, settings: Dict[str, object]) -> None:
    if value.lower() != "qnn":
        raise JobFailure(f"--onnx_execution_providers {value}: the AI Hub test double runs only qnn")


def _qnn_options(value: str, settings: Dict[str, object]) -> None:
    pairs = [item.partition("=") for item in value.split(";") if item.strip()]
    bad = [key for key, sep, _ in pairs if not sep]
    if bad:
        raise JobFailure(f"--qnn_options: {bad[0]!r} is not key=value")
    settings["qnn_options"] = {key.strip(): val.strip() for key, _, val in pairs}


#: the options a job accepts: flag -> what its value does to the job's settings
OPTIONS: Dict[str, Callable[[str, Dict[str, object]], None]] = {
    "--compute_unit": _compute_unit,
    "--onnx_execution_providers": _execution_providers,
    "--qnn_options": _qnn_options,
}


def parse_options(text: str) -> Dict[str, object]:
    """The job's settings from its options string; JobFailure naming the flag the server would refuse."""
    settings: Dict[str, object] = {"compute_unit": "npu", "qnn_options": {}}
    words = shlex.split(text)
    while words:
        flag = words.pop(0)
        if flag not in OPTIONS:
            raise JobFailure(f"unknown option {flag} (the AI Hub test double accepts {', '.join(OPTIONS)})")
        if not words or words[0].startswith("--"):
            raise JobFailure(f"option {flag} needs a value")
        OPTIONS[flag](words.pop(0), settings)
    return settings


def open_session(model: Path, settings: Dict[str, object]) -> ort.InferenceSession:
    """A session of ``model`` on the job's compute unit; QNN sessions keep onnxruntime's CPU fallback."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if settings["compute_unit"] == "cpu":
        return ort.InferenceSession(str(model), sess_options=so, providers=["CPUExecutionProvider"])
    if QNN_EP not in {device.ep_name for device in ort.get_ep_devices()}:
        import onnxruntime_qnn

        ort.register_execution_provider_library(QNN_EP, onnxruntime_qnn.get_library_path())
    devices = [device for device in ort.get_ep_devices() if device.ep_name == QNN_EP]
    so.add_provider_for_devices(devices, {"backend_type": "htp", **settings["qnn_options"]})
    return ort.InferenceSession(str(model), sess_options=so)


def _microseconds(start: float) -> int:
    return int((time.perf_counter() - start) * 1e6)


def layer_details(sess: ort.InferenceSession) -> List[Dict[str, str]]:
    """One profile layer per node of the graph onnxruntime runs (after its optimizations: fused or
    layout-changed nodes carry onnxruntime's names, e.g. ``conv1_token_1``), in its EP's order: NPU for the
    nodes assigned to QNN, CPU for the rest."""
    return [
        {
            "name": name,
            "layerTypeName": op_type,
            "computeUnit": "COMPUTE_UNIT_NPU" if assignment["ep"] == QNN_EP else "COMPUTE_UNIT_CPU",
            "delegateName": assignment["ep"],
        }
        for assignment in placement_of(sess) or []
        for name, op_type, _ in assignment["nodes"]
    ]


def tool_versions() -> List[Dict[str, str]]:
    """What ran the job, as AI Hub names it in a profile: QAIRT (the QNN SDK onnxruntime-qnn ships) and onnxruntime."""
    qnn = ep_versions(QNN_EP).get("qnn_sdk")
    tools = {"QAIRT": qnn, "onnxruntime": ort.__version__}
    return [{"name": name, "version": str(version)} for name, version in tools.items() if version]


def run_job(job_dir: Path) -> Tuple[Dict[str, List[np.ndarray]], Dict[str, object]]:
    """The job's outputs (one entry per input batch entry) and its profile (ProfileDetail as JSON)."""
    settings = parse_options((job_dir / "options.txt").read_text())
    model = job_dir / "model.onnx"
    with h5py.File(job_dir / "inputs.h5", "r") as h5f:
        inputs = h5_to_dataset_entries(h5f)
    start = time.perf_counter()
    sess = open_session(model, settings)
    cold = _microseconds(start)
    start = time.perf_counter()
    open_session(model, settings)
    warm = _microseconds(start)
    names = [i.name for i in sess.get_inputs()]
    missing = [name for name in names if name not in inputs]
    if missing:
        raise JobFailure(f"the dataset has no entry for model input {missing[0]!r} (it has {', '.join(inputs)})")
    count = len(inputs[names[0]]) if names else 1
    entries = [{name: inputs[name][i] for name in names} for i in range(count)]
    outputs: Dict[str, List[np.ndarray]] = {o.name: [] for o in sess.get_outputs()}
    for feeds in entries:
        for name, value in zip(outputs, sess.run(None, feeds)):
            outputs[name].append(value)
    sess.run(None, entries[0])  # warm-up
    times = []
    for _ in range(TIMED_RUNS):
        start = time.perf_counter()
        sess.run(None, entries[0])
        times.append(_microseconds(start))
    profile = {
        "majorVersion": 1,
        "minorVersion": 2,
        "executionTime": int(statistics.median(times)),
        "allExecutionTimes": times,
        "coldLoadTime": cold,
        "allColdLoadTimes": [cold],
        "warmLoadTime": warm,
        "allWarmLoadTimes": [warm],
        "layerDetails": layer_details(sess),
        "toolVersions": tool_versions(),
    }
    return outputs, profile


def main(argv: List[str]) -> int:
    job_dir = Path(argv[1])
    try:
        outputs, profile = run_job(job_dir)
    except Exception as exc:  # every failure is the job's failure_reason, as the service reports it
        reason = str(exc) if isinstance(exc, JobFailure) else f"the model failed on the device: {one_line(exc)}"
        (job_dir / "failure.txt").write_text(reason)
        return 1
    with h5py.File(job_dir / "outputs.h5", "w") as h5f:
        dataset_entries_to_h5(outputs, h5f)
    (job_dir / "profile.json").write_text(json.dumps(profile))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
