"""Golden outputs: ``golden/<provider>.npz`` plus a ``.json`` sidecar with their provenance."""

from __future__ import annotations

import datetime
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np

from .._text import atomic_write
from ..errors import EdgeError


class GoldenError(EdgeError):
    """A golden file is missing or unreadable (message says how to (re)create it)."""


@dataclass(frozen=True)
class Golden:
    """Recorded outputs, one array per output name with the examples stacked on axis 0."""

    outputs: Dict[str, np.ndarray]
    provenance: Dict[str, Any]

    @property
    def count(self) -> int:
        return len(next(iter(self.outputs.values()))) if self.outputs else 0


def golden_paths(folder: Path, provider: str) -> tuple:
    return folder / f"{provider}.npz", folder / f"{provider}.json"


def load_golden(folder: Path, provider: str, create_hint: str) -> Golden:
    """Read a golden; GoldenError with ``create_hint`` (the command that writes it) when missing."""
    npz, sidecar = golden_paths(folder, provider)
    if not npz.exists():
        raise GoldenError(f"golden {npz} is missing; create it with: {create_hint}")
    try:
        with np.load(npz, allow_pickle=False) as data:
            outputs = {k: data[k] for k in data.files}
        provenance = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    except Exception as exc:  # truncated zip, bad JSON, pickled content...: all mean "recreate it"
        raise GoldenError(
            f"golden {npz} is unreadable ({type(exc).__name__}: {exc}); recreate it with: {create_hint}"
        ) from None
    return Golden(outputs, provenance)


def stack_examples(examples: List[Mapping[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """[{output: array}] per example -> {output: stacked array}."""
    return {name: np.stack([ex[name] for ex in examples]) for name in examples[0]}


def write_golden(folder: Path, provider: str, outputs: Mapping[str, np.ndarray], provenance: Mapping[str, Any]) -> None:
    """Write the .npz and its sidecar atomically (temp file + rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    npz, sidecar = golden_paths(folder, provider)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **outputs)
    atomic_write(npz, buffer.getvalue())
    record = dict(provenance, written=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    atomic_write(sidecar, json.dumps(record, indent=1, sort_keys=True) + "\n")


def drift(old: Optional[Golden], new: Mapping[str, np.ndarray], scales: Mapping[str, Optional[float]]) -> List[str]:
    """Per output, how far the new outputs moved from the old golden (in LSB where a scale is known)."""
    if old is None:
        return [f"{name}: new golden" for name in new]
    lines = []
    for name, array in new.items():
        before = old.outputs.get(name)
        if before is None or before.shape != array.shape:
            lines.append(f"{name}: shape {None if before is None else list(before.shape)} -> {list(array.shape)}")
            continue
        diff = float(np.max(np.abs(array.astype(np.float64) - before.astype(np.float64)))) if array.size else 0.0
        scale = scales.get(name)
        unit = f"{diff / scale:.3g} LSB" if scale else f"{diff:.3g}"
        lines.append(f"{name}: max drift {unit}")
    return lines


#: Provenance facts an update names when they changed since the golden it overwrites was written.
PROVENANCE_FACTS = (
    "model",
    "model_sha256",
    "onnxruntime",
    "qnn_sdk",
    "qnn_ep",
    "provider_options",
    "offload_graph_io_quantization",
    "device",
    "platform",
    "soc",
    "examples",
)


def provenance_changes(old: Optional[Mapping[str, Any]], new: Mapping[str, Any]) -> List[str]:
    """One line naming the :data:`PROVENANCE_FACTS` that differ between an old golden's provenance and the new
    one's (none for a new golden, or when nothing changed)."""
    if not old:
        return []
    changed = [f"{key} {old.get(key)} -> {new.get(key)}" for key in PROVENANCE_FACTS if old.get(key) != new.get(key)]
    return ["provenance changed: " + "; ".join(changed)] if changed else []


def unused_goldens(folder: Path, providers: Iterable[str]) -> List[Path]:
    """The golden files in ``folder`` that no item of the suite reads: those of providers it does not run."""
    if not folder.is_dir():
        return []
    used = set(providers)
    return sorted(path for path in folder.glob("*.npz") if path.stem not in used)
