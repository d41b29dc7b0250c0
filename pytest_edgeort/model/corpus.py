"""The ONNX node-test corpus of the installed onnx wheel, written once per onnx version into a cache folder
(one folder per case: ``<case>.onnx``, ``inputs_<k>.npz``, ``outputs_<k>.npz``) with an index, so a run
lists the cases without generating them and a worker gets each case as a model file."""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import onnx.numpy_helper

from .._text import atomic_write
from ..errors import ModelError
from .dtypes import ONNX_TO_NUMPY

INDEX = "index.json"
FORMAT = 1  # of the cache folder; a new layout writes a new folder


@dataclass(frozen=True)
class Case:
    """One node test: its name (``test_atan``), the operator it tests, every op type in its graph, how many
    example sets it has, and why its inputs or outputs cannot cross to a worker (None: they can)."""

    name: str
    op_type: str
    ops: Tuple[str, ...]
    opset: int
    examples: int
    unrepresentable: Optional[str] = None

    def model(self, root: Path) -> Path:
        return root / self.name / f"{self.name}.onnx"  # named by the case: messages name the model file

    def example(self, root: Path, k: int) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
        """The ``k``-th example's inputs and the outputs the onnx wheel expects for them."""
        folder = root / self.name
        return _npz(folder / f"inputs_{k}.npz"), _npz(folder / f"outputs_{k}.npz")


def _npz(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def corpus_root(cache: Path) -> Path:
    """The cache folder of this onnx version's node tests under ``cache``."""
    return cache / "onnx-node-tests" / f"onnx-{onnx.__version__}-v{FORMAT}"


def load_corpus(cache: Path) -> Tuple[Path, List[Case]]:
    """``(folder, cases sorted by name)``, writing the folder first when this onnx version has none yet
    (about 7 s; concurrent writers each write their own and the first rename wins)."""
    root = corpus_root(cache)
    if not (root / INDEX).is_file():
        _write_corpus(root)
    try:
        entries = json.loads((root / INDEX).read_text(encoding="utf-8"))
        return root, [Case(**{**entry, "ops": tuple(entry["ops"])}) for entry in entries]
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{root / INDEX}: unreadable node-test index ({exc}); delete {root} to rebuild it") from None


def _write_corpus(root: Path) -> None:
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():  # building the node tests' data overflows on purpose here and there
        warnings.simplefilter("ignore")
        tests = load_model_tests(kind="node")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    names = _op_names()
    index = [asdict(_write_case(staging / test.name, test, names)) for test in sorted(tests, key=lambda t: t.name)]
    atomic_write(staging / INDEX, json.dumps(index, indent=0))
    try:
        os.rename(staging, root)
    except OSError:  # another process wrote it first: theirs is the same corpus
        shutil.rmtree(staging, ignore_errors=True)


def _write_case(folder: Path, test: Any, names: Dict[str, str]) -> Case:
    folder.mkdir(parents=True)
    model = test.model
    onnx.save(model, str(folder / f"{test.name}.onnx"))
    graph = model.graph
    problem = _unrepresentable(graph.input, "input") or _unrepresentable(graph.output, "output")
    examples = 0
    for given_inputs, given_outputs in test.data_sets or ():
        inputs, outputs = [_array(a) for a in given_inputs], [_array(a) for a in given_outputs]
        if problem is None and not all(a is not None and a.dtype.name in _WIRE for a in [*inputs, *outputs]):
            problem = "an example holds a value that is no plain numeric tensor"
        if problem is not None:
            break
        np.savez(folder / f"inputs_{examples}.npz", **{v.name: a for v, a in zip(graph.input, inputs)})
        np.savez(folder / f"outputs_{examples}.npz", **{v.name: a for v, a in zip(graph.output, outputs)})
        examples += 1
    ops = tuple(sorted({node.op_type for node in graph.node}))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return Case(test.name, _op_type(test.name, graph, names), ops, opset, examples, problem)


_WIRE = frozenset(ONNX_TO_NUMPY.values())


def _array(value: Any) -> Optional[np.ndarray]:
    """An example's value as an array (the corpus also holds numpy scalars and TensorProtos); None for a
    sequence, an optional or a map."""
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    return None


_KINDS = {"sequence_type": "a sequence", "optional_type": "an optional", "map_type": "a map"}


def _unrepresentable(values: Sequence[Any], role: str) -> Optional[str]:
    """Why a graph input/output cannot cross to a worker (a sequence, a map, an optional, strings,
    bfloat16/float8/int4...), or None."""
    for value in values:
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            return f"{role} {value.name!r} is {_KINDS.get(kind, kind)}, not a tensor"
        code = value.type.tensor_type.elem_type
        if code not in ONNX_TO_NUMPY:
            return f"{role} {value.name!r} has element type {onnx.TensorProto.DataType.Name(code).lower()}"
    return None


def _op_names() -> Dict[str, str]:
    """How case names spell each operator (``convtranspose``, ``conv_transpose``) -> its op type."""
    names: Dict[str, str] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        op = schema.name
        names.setdefault(op.lower(), op)
        names.setdefault(re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", op).lower(), op)
    return names


def _op_type(name: str, graph: Any, names: Dict[str, str]) -> str:
    """The operator a case tests: its only node's, else the longest operator name its name starts with
    (``test_layer_normalization_2d_axis0_expanded`` -> LayerNormalization), else its first node's."""
    if len(graph.node) == 1:
        return str(graph.node[0].op_type)
    stem = name[len("test_") :]
    matches = [key for key in names if stem == key or stem.startswith(key + "_")]
    if matches:
        return names[max(matches, key=len)]
    return str(graph.node[0].op_type) if graph.node else "-"
