"""Per-op profile: QNN's per-node cycles (``profiling_level=detailed`` with ``enable_framework_op_trace=1``)
summed per ONNX node and op type of the user's model, as shares of all cycles, and the model's op coverage.

QNN writes one CSV row per QNN op and run (``NODE``, ``CYCLES``), whose "ONNX Source Ops" column names the
onnxruntime nodes it came from; onnxruntime's layout pass renames a node ``conv1`` to ``conv1_token_1``, so a
source is matched to the model's node by its name with that suffix removed. A QNN op's cycles go to its first
source that is no Q/DQ node (else its first source); QNN ops whose compute source is not in the model (graph
I/O, layout transposes onnxruntime added) are counted as such. On the simulator the cycles are simulated: shares and
coverage mean something, times do not (one node's cycles varied 18x between runs there).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Sequence, Tuple

import onnx

from .._text import atomic_write

if TYPE_CHECKING:
    from ..devices.session import EdgeSession

PROFILE_DIR = "profiles"  # under the run's cache folder: <device>/<model sha256>/<files>
PROFILE_CSV = "profile.csv"
TOP = 5
PROFILE_RUNS = 3
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_TOKEN = re.compile(r"_token_\d+$")
OTHER = "(not in the model: graph I/O, layout transposes onnxruntime added)"


@dataclass(frozen=True)
class ProfileSummary:
    """Cycle shares per ONNX node and op type (largest first), coverage, and where the raw files are."""

    runs: int
    cycles: int
    nodes: Tuple[Tuple[str, str, float], ...]  # (node, op type, share of cycles)
    op_types: Tuple[Tuple[str, float], ...]
    covered: int  # the model's compute nodes (no Q/DQ) that appear in the profile
    compute_nodes: int
    files: Tuple[str, ...]
    simulated: bool

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["nodes"] = [{"node": n, "op_type": t, "share": s} for n, t, s in self.nodes]
        data["op_types"] = [{"op_type": t, "share": s} for t, s in self.op_types]
        data["files"] = list(self.files)
        if self.simulated:
            data["note"] = "simulated cycles (QNN HTP simulator): shares and coverage only, not a board's latency"
        return data

    @property
    def line(self) -> str:
        """One line: top nodes and op types by share of cycles, coverage."""
        nodes = ", ".join(f"{n} ({t}) {s:.0%}" for n, t, s in self.nodes[:3])
        types = ", ".join(f"{t} {s:.0%}" for t, s in self.op_types[:3])
        return (
            f"cycles by ONNX node: {nodes}; by op type: {types}; {self.covered} of {self.compute_nodes} compute "
            f"nodes profiled ({self.runs} runs)"
        )


def summarise(text: str, model: onnx.ModelProto, files: Sequence[str] = (), simulated: bool = False) -> ProfileSummary:
    """The summary of a QNN profile CSV ``text`` of ``model`` (see the module docstring)."""
    op_type = {n.name: n.op_type for n in model.graph.node if n.name}
    per_node: Counter = Counter()
    runs = 0
    for row in csv.DictReader(io.StringIO(text)):
        if "Accelerator (execute) time (cycles)" in (row.get("Event Identifier") or ""):
            runs += 1
        if row.get("Message") != "NODE" or row.get("Unit of Measurement") != "CYCLES":
            continue
        per_node[_owner(row.get("ONNX Source Ops") or "", op_type)] += int(row.get("Time") or 0)
    total = sum(per_node.values()) or 1
    ranked = per_node.most_common()
    by_type: Counter = Counter()
    for node, cycles in ranked:
        by_type[op_type.get(node, OTHER)] += cycles
    compute = [n for n, t in op_type.items() if t not in _QDQ]
    return ProfileSummary(
        runs,
        sum(per_node.values()),
        tuple((n, op_type.get(n, ""), c / total) for n, c in ranked[:TOP]),
        tuple((t, c / total) for t, c in by_type.most_common(TOP)),
        sum(1 for n in compute if n in per_node),
        len(compute),
        tuple(files),
        simulated,
    )


def _owner(sources: str, op_type: Mapping[str, str]) -> str:
    """The model's node a QNN op's cycles go to: its first source in the model that is no Q/DQ node; none when
    a source is not in the model (a layout transpose onnxruntime added); else its first Q/DQ source."""
    names = [_TOKEN.sub("", s) for s in sources.split(";") if s]
    compute = [n for n in names if n in op_type and op_type[n] not in _QDQ]
    if compute:
        return compute[0]
    return names[0] if names and all(n in op_type for n in names) else OTHER


def profile(session: EdgeSession, feed: Mapping[str, Any], folder: Path, runs: int = PROFILE_RUNS) -> ProfileSummary:
    """Run ``feed`` ``runs`` times on a profiled copy of ``session``, keep the files QNN wrote in ``folder``
    and summarise them; EdgeSessionError (one line) when the device cannot."""
    files = session.profile(feed, runs)
    folder.mkdir(parents=True, exist_ok=True)
    paths: List[str] = []
    for name, data in sorted(files.items()):
        target = folder / Path(name).name
        atomic_write(target, data)
        paths.append(str(target))
    text = files.get(PROFILE_CSV, b"").decode("utf-8", "replace")
    return summarise(text, onnx.load(str(session.model.path), load_external_data=False), paths, session.simulated)
