"""The EP-context cache on the device: a compiled graph is stored once, loaded without compiling, checked
by hash and key, rebuilt with one line when it cannot be used, and gives the same outputs bit for bit."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from pytest_edgeort.board.worker import OWN_GRAPH
from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.devices.session import EdgeSession
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs

HTP = resolve_provider("qnn-htp")


class Board:
    """Fresh ``local`` devices on one workdir, as consecutive runs see it (a worker process each: QNN
    registers once per process), and their notices."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.notices: List[str] = []
        self.devices: List[LocalDevice] = []

    def session(self, path: Path, options: Optional[Dict[str, str]] = None, ep_cache: bool = True) -> EdgeSession:
        device = LocalDevice(DeviceConfig("local", workdir=str(self.workdir), command_timeout=60.0))
        device.notify = self.notices.append
        device.ep_cache = ep_cache
        self.devices.append(device)
        merged = provider_options(HTP, None, options, where="test")
        return EdgeSession(device, model_info(path), HTP, merged, cpu_fallback=False, on_create=lambda s: None)

    def entries(self, own: bool = False) -> List[Path]:
        """The cache's entries of the models under test (``own``: of the worker's own graphs, the QNN backend
        probe's and the memory-state check's scrub)."""
        folder = self.workdir / "epcontext"
        found = sorted(folder.glob("*.json")) if folder.is_dir() else []
        return [e for e in found if json.loads(e.read_text())["key"]["model"].startswith(OWN_GRAPH) == own]

    def close(self) -> None:
        for device in self.devices:
            device.close()


@pytest.fixture
def board(tmp_path):
    board = Board(tmp_path / "work")
    yield board
    board.close()


def state(session: EdgeSession) -> Optional[str]:
    context = session.provenance()["ep_context"]
    return None if context is None else context["state"]


def outputs(session: EdgeSession, feed: Dict[str, Any]) -> List[bytes]:
    return [a.tobytes() for a in session.run(feed).values()]


def test_a_compiled_graph_is_stored_then_loaded_without_compiling_with_the_same_outputs(board, model_dir):
    path = model_dir / "conv_matmul_qdq.onnx"
    feed = generate_inputs(model_info(path), seed=5)
    cold = board.session(path, ep_cache=False)
    first, cached = board.session(path), board.session(path)
    assert (state(cold), state(first), state(cached)) == (None, "stored", "hit")
    assert outputs(cached, feed) == outputs(cold, feed) == outputs(first, feed)
    # a context model is one EPContext node: placement and offload come from the entry
    assert cached.placement.to_dict() == cold.placement.to_dict()
    assert cached.placement.count(HTP.ep_name) == cold.placement.total > 1
    facts = cached.provenance()
    assert facts["offload_graph_io_quantization"] == cold.provenance()["offload_graph_io_quantization"] == "0"
    assert len(board.entries()) == 1 and board.notices == []
    assert len(board.entries(own=True)) == 2  # the worker's own graphs (QNN HTP probe, memory scrub), compiled once too


def test_without_the_cache_nothing_is_stored(board, model_dir):
    session = board.session(model_dir / "conv_matmul_qdq.onnx", ep_cache=False)
    session.run(generate_inputs(session.model, seed=1))  # the memory-state check's scrub: not stored either
    assert state(session) is None and board.entries() == board.entries(own=True) == []


def test_the_key_covers_provider_options(board, model_dir):
    path = model_dir / "conv_matmul_qdq.onnx"
    plain, burst = board.session(path), board.session(path, {"htp_performance_mode": "burst"})
    assert (state(plain), state(burst)) == ("stored", "stored")
    assert plain.provenance()["ep_context"]["key"] != burst.provenance()["ep_context"]["key"]
    assert len(board.entries()) == 2


def rewrite_entry(entry: Path, **changes: Any) -> None:
    record = json.loads(entry.read_text())
    for name, value in changes.items():
        if name == "key":
            record["key"].update(value)
        else:
            record[name] = value
    entry.write_text(json.dumps(record))


def context_model(entry: Path) -> Path:
    """The context model an entry file names."""
    return entry.parent / json.loads(entry.read_text())["file"]


def tamper_bytes(entry: Path) -> str:
    model = context_model(entry)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    return "hashed to"


def tamper_key(entry: Path) -> str:
    rewrite_entry(entry, key={"onnxruntime": "0.0.1"})
    return "made for other onnxruntime"


def swap_for_a_plain_model(entry: Path, source: Path) -> str:
    """The entry's bytes and hash say "context model", but it is the model itself: only creating the
    session with compilation disabled tells."""
    shutil.copyfile(source, context_model(entry))
    rewrite_entry(entry, sha256=hashlib.sha256(source.read_bytes()).hexdigest())
    return "MODEL_REQUIRES_COMPILATION"


@pytest.mark.parametrize("tamper", [tamper_bytes, tamper_key, swap_for_a_plain_model])
def test_an_entry_that_cannot_be_used_is_rebuilt_with_one_line(board, model_dir, tamper):
    path = model_dir / "conv_matmul_qdq.onnx"
    feed = generate_inputs(model_info(path), seed=6)
    expected = outputs(board.session(path), feed)
    (entry,) = board.entries()
    why = tamper(entry) if tamper is not swap_for_a_plain_model else tamper(entry, path)
    rebuilt = board.session(path)
    assert state(rebuilt) == "rebuilt" and outputs(rebuilt, feed) == expected
    assert len(board.notices) == 1 and "\n" not in board.notices[0]
    assert "EP-context cache entry of conv_matmul_qdq.onnx (qnn-htp) rebuilt" in board.notices[0]
    assert why in board.notices[0]
    assert state(board.session(path)) == "hit"
