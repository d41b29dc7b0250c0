"""Make a model NPU-ready: fix shapes, suite rewrite script, QNN pre-processing, QDQ quantization.

A suite's ``[prepare]`` table becomes a :class:`PrepareRecipe`; :func:`prepare_model` applies it and
caches the result by content hash, so a rerun with the same model, recipe, script, calibration data
and onnxruntime version returns the cached file without redoing any work.

Steps, in order (each optional):

1. ``fix_shapes``   -- ``onnxruntime.tools.onnx_model_utils.make_input_shape_fixed`` per input (which
   propagates symbolic dims through the graph via ``make_dim_param_fixed``), then ``fix_output_shapes``.
2. ``script``       -- ``prepare(model: onnx.ModelProto) -> onnx.ModelProto`` from a python file in the
   suite folder (model-specific rewrites the HTP needs).
3. ``qnn_preprocess`` -- ``onnxruntime.quantization.execution_providers.qnn.qnn_preprocess_model``
   (ORT basic graph optimization: constant folding, Conv+BatchNormalization fusion; then Gelu /
   LpNormalization / SpaceToDepth fusions). The optimized model is kept even when nothing was fused.
4. ``quantize``     -- QDQ static quantization with ``get_qnn_qdq_config`` + ``quantize`` and the
   suite's calibration ``.npz`` (per input name an array ``[N, *input_shape]``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from .._text import atomic_write, one_line
from .dtypes import ONNX_TO_NUMPY

if TYPE_CHECKING:  # onnx loads only when a suite has a [prepare] table
    import onnx

__all__ = [
    "PrepareError",
    "PrepareRecipe",
    "cache_key",
    "prepare_model",
    "ACTIVATION_TYPES",
    "WEIGHT_TYPES",
]

#: Bumped when the preparation pipeline changes in a way that changes its output.
PIPELINE_VERSION = "2"

ACTIVATION_TYPES = ("uint8", "uint16")
WEIGHT_TYPES = ("uint8", "int8")

_RECIPE_KEYS = ("fix_shapes", "qnn_preprocess", "script", "quantize")
_QUANTIZE_KEYS = ("activations", "weights", "calibration", "per_channel")


class PrepareError(RuntimeError):
    """A preparation step failed; the message is one line naming suite folder, step and cause."""

    def __init__(self, suite_dir: Path | str, step: str, cause: str) -> None:
        self.suite_dir = str(suite_dir)
        self.step = step
        self.cause = one_line(cause, 600)
        super().__init__(f"{self.suite_dir}: prepare step '{step}' failed: {self.cause}")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, Mapping) else "a table"


def _relative_file(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: [prepare] {key}: expected a file name in the suite folder, got {_describe(value)}")
    p = PurePath(value)
    if p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{where}: [prepare] {key}: expected a file name inside the suite folder, got {value!r}")
    return value


@dataclass(frozen=True)
class PrepareRecipe:
    """What a suite's ``[prepare]`` table asks for (see module docstring for the step order)."""

    fix_shapes: dict[str, list[int]] | None = None
    qnn_preprocess: bool = False
    script: str | None = None
    quantize: dict | None = None

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], where: str) -> PrepareRecipe:
        """Validate a ``[prepare]`` table; raise ``ValueError`` (one line: where, key, expectation)."""
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{where}: [prepare]: expected a table, got {_describe(mapping)}")
        for key in mapping:
            if key not in _RECIPE_KEYS:
                raise ValueError(f"{where}: [prepare] unknown key {key!r}: expected one of {', '.join(_RECIPE_KEYS)}")

        fix_shapes = mapping.get("fix_shapes")
        if fix_shapes is not None:
            if not isinstance(fix_shapes, Mapping) or not fix_shapes:
                raise ValueError(
                    f"{where}: [prepare] fix_shapes: expected a table of input name -> list of non-negative "
                    f"integers, got {_describe(fix_shapes)}"
                )
            fixed: dict[str, list[int]] = {}
            for name, shape in fix_shapes.items():
                if not isinstance(shape, (list, tuple)) or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
                ):
                    raise ValueError(
                        f"{where}: [prepare] fix_shapes.{name}: expected a list of non-negative integers, "
                        f"got {_describe(shape)}"
                    )
                fixed[str(name)] = [int(d) for d in shape]
            fix_shapes = fixed

        qnn_preprocess = mapping.get("qnn_preprocess", False)
        if not isinstance(qnn_preprocess, bool):
            raise ValueError(
                f"{where}: [prepare] qnn_preprocess: expected true or false, got {_describe(qnn_preprocess)}"
            )

        script = mapping.get("script")
        if script is not None:
            script = _relative_file(script, where, "script")

        quantize = mapping.get("quantize")
        if quantize is not None:
            quantize = cls._validate_quantize(quantize, where)

        return cls(fix_shapes=fix_shapes, qnn_preprocess=qnn_preprocess, script=script, quantize=quantize)

    @staticmethod
    def _validate_quantize(q: Any, where: str) -> dict:
        if not isinstance(q, Mapping):
            raise ValueError(
                f"{where}: [prepare] quantize: expected a table with keys activations, weights, "
                f"calibration, per_channel, got {_describe(q)}"
            )
        for key in q:
            if key not in _QUANTIZE_KEYS:
                raise ValueError(
                    f"{where}: [prepare] unknown key 'quantize.{key}': expected one of {', '.join(_QUANTIZE_KEYS)}"
                )
        for key, allowed in (("activations", ACTIVATION_TYPES), ("weights", WEIGHT_TYPES)):
            if key not in q:
                raise ValueError(
                    f"{where}: [prepare] quantize.{key}: missing, expected one of {', '.join(map(repr, allowed))}"
                )
            if q[key] not in allowed:
                raise ValueError(
                    f"{where}: [prepare] quantize.{key}: expected one of {', '.join(map(repr, allowed))}, "
                    f"got {_describe(q[key])}"
                )
        if "calibration" not in q:
            raise ValueError(
                f"{where}: [prepare] quantize.calibration: missing, expected an .npz file name in the suite folder"
            )
        calibration = _relative_file(q["calibration"], where, "quantize.calibration")
        if not calibration.endswith(".npz"):
            raise ValueError(
                f"{where}: [prepare] quantize.calibration: expected an .npz file name in the suite folder, "
                f"got {calibration!r}"
            )
        per_channel = q.get("per_channel", False)
        if not isinstance(per_channel, bool):
            raise ValueError(
                f"{where}: [prepare] quantize.per_channel: expected true or false, got {_describe(per_channel)}"
            )
        return {
            "activations": q["activations"],
            "weights": q["weights"],
            "calibration": calibration,
            "per_channel": per_channel,
        }

    def to_mapping(self) -> dict[str, Any]:
        """Plain-data form (what canonical JSON and reports use)."""
        return dataclasses.asdict(self)

    def canonical_json(self) -> str:
        """Key-sorted, whitespace-free JSON of the recipe (part of the cache key)."""
        return json.dumps(self.to_mapping(), sort_keys=True, separators=(",", ":"))

    def float_baseline(self) -> PrepareRecipe:
        """The same recipe without quantization: the prepared float model, a baseline for ``vs_float``."""
        return dataclasses.replace(self, quantize=None)

    @property
    def is_empty(self) -> bool:
        """True when the recipe changes nothing."""
        return not (self.fix_shapes or self.qnn_preprocess or self.script or self.quantize)


# --------------------------------------------------------------------------------------------- cache


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def cache_key(model_path: Path, recipe: PrepareRecipe, suite_dir: Path) -> str:
    """sha256 over model bytes, recipe JSON, script bytes, calibration bytes and onnxruntime version."""
    h = hashlib.sha256()

    def part(tag: str, data: bytes) -> None:
        h.update(tag.encode() + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)

    part("pipeline", PIPELINE_VERSION.encode())
    part("model", Path(model_path).read_bytes())
    part("recipe", recipe.canonical_json().encode())
    if recipe.script:
        part("script", _suite_file(suite_dir, recipe.script, "script").read_bytes())
    if recipe.quantize:
        part("calibration", _suite_file(suite_dir, recipe.quantize["calibration"], "quantize").read_bytes())
    part("onnxruntime", _ort_version().encode())
    return h.hexdigest()


def _suite_file(suite_dir: Path, name: str, step: str) -> Path:
    path = Path(suite_dir) / name
    if not path.is_file():
        raise PrepareError(suite_dir, step, f"file not found: {path}")
    return path


# --------------------------------------------------------------------------------------------- steps


def _step_fix_shapes(model: onnx.ModelProto, fix_shapes: dict[str, list[int]]) -> onnx.ModelProto:
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

    # A dim_param asked to take two different values (exporters write "?" for every unknown dim,
    # e.g. rapidocr's x[-1,3,"?","?"]) cannot be propagated graph-wide: set it on the input only.
    values: dict[str, set[int]] = {}
    inputs = {i.name: i for i in model.graph.input}
    for name, shape in fix_shapes.items():
        if name in inputs:
            for dim, value in zip(inputs[name].type.tensor_type.shape.dim, shape):
                if dim.HasField("dim_param"):
                    values.setdefault(dim.dim_param, set()).add(value)
    ambiguous = {p for p, v in values.items() if len(v) > 1}
    for name, shape in fix_shapes.items():
        if name in inputs and len(inputs[name].type.tensor_type.shape.dim) == len(shape):
            for dim, value in zip(inputs[name].type.tensor_type.shape.dim, shape):
                if dim.HasField("dim_param") and dim.dim_param in ambiguous:
                    dim.Clear()
                    dim.dim_value = value

    for name, shape in fix_shapes.items():
        make_input_shape_fixed(model.graph, name, list(shape))
    fix_output_shapes(model)
    return model


def _load_script(path: Path) -> Callable[[Any], Any]:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(f"_edgeort_prepare_script_{digest}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {path} as a python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, "prepare", None)
    if not callable(fn):
        raise ValueError(f"{path.name} does not define prepare(model: onnx.ModelProto) -> onnx.ModelProto")
    return fn


def _step_script(model: onnx.ModelProto, script_path: Path) -> onnx.ModelProto:
    import onnx

    result = _load_script(script_path)(model)
    if not isinstance(result, onnx.ModelProto):
        raise TypeError(f"{script_path.name}: prepare() returned {type(result).__name__}, expected onnx.ModelProto")
    return result


def _step_qnn_preprocess(model: onnx.ModelProto, workdir: Path) -> onnx.ModelProto:
    import onnx
    from onnxruntime.quantization.execution_providers.qnn import qnn_preprocess_model

    del model.metadata_props[:]  # qnn_preprocess_model crashes on models with metadata
    src, out = workdir / "qnn_preprocess_in.onnx", workdir / "qnn_preprocessed.onnx"
    onnx.save(model, str(src))  # by path: given a ModelProto it moves its tensors to external data
    if not qnn_preprocess_model(src, out):
        # Nothing fused: ORT then discards its own basic-level optimization pass (constant folding,
        # Conv+BatchNormalization fusion, ...), which quantization for the HTP needs. Keep it.
        from onnxruntime.tools.onnx_model_utils import optimize_model

        optimize_model(src, out)
    return onnx.load(str(out))


class _NpzReader:
    """CalibrationDataReader over ``{input: [N, *shape]}`` arrays, one sample per ``get_next``."""

    def __init__(self, arrays: dict[str, Any]) -> None:
        self._arrays = arrays
        self._n = len(next(iter(arrays.values())))
        self._it: Iterator[dict[str, Any]] = self._samples()

    def _samples(self) -> Iterator[dict[str, Any]]:
        import numpy as np

        for i in range(self._n):
            yield {k: np.asarray(v[i]) for k, v in self._arrays.items()}  # rank-0 inputs stay arrays

    def get_next(self) -> dict[str, Any] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._samples()


def _load_calibration(model: onnx.ModelProto, npz_path: Path) -> dict[str, Any]:
    import numpy as np

    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    out: dict[str, Any] = {}
    n = None
    for inp in inputs:
        if inp.name not in arrays:
            raise ValueError(
                f"{npz_path.name} has no array for model input {inp.name!r} (has: {', '.join(arrays) or 'none'})"
            )
        arr = arrays[inp.name]
        tt = inp.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if arr.ndim != len(dims) + 1:
            raise ValueError(
                f"{npz_path.name}[{inp.name!r}] has shape {list(arr.shape)}, expected [N, *{dims}] "
                f"(N samples stacked on a new axis 0)"
            )
        if any(d is not None and d != s for d, s in zip(dims, arr.shape[1:])):
            raise ValueError(f"{npz_path.name}[{inp.name!r}] has shape {list(arr.shape)}, expected [N, *{dims}]")
        if n is not None and len(arr) != n:
            raise ValueError(f"{npz_path.name}: inputs have different sample counts ({n} vs {len(arr)})")
        n = len(arr)
        dtype = ONNX_TO_NUMPY.get(tt.elem_type)
        out[inp.name] = np.ascontiguousarray(arr.astype(dtype) if dtype else arr)
    if not out or not n:
        raise ValueError(f"{npz_path.name} holds no samples")
    return out


def _step_quantize(model: onnx.ModelProto, q: dict, calibration_path: Path, out_path: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    qtypes = {"uint8": QuantType.QUInt8, "uint16": QuantType.QUInt16, "int8": QuantType.QInt8}
    if q.get("per_channel"):
        model = _ensure_opset(model, 13)  # per-channel DequantizeLinear needs `axis` (opset >= 13)
    reader = _NpzReader(_load_calibration(model, calibration_path))
    src = out_path.with_name("quantize_in.onnx")
    onnx.save(model, str(src))  # quantize by path: ORT's tools may mutate a ModelProto they are given
    config = get_qnn_qdq_config(
        str(src),
        reader,
        activation_type=qtypes[q["activations"]],
        weight_type=qtypes[q["weights"]],
        per_channel=bool(q.get("per_channel", False)),
    )
    quantize(str(src), str(out_path), config)


def _ensure_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    import onnx

    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), version)
    return onnx.version_converter.convert_version(model, version) if current < version else model


# --------------------------------------------------------------------------------------------- main


def prepare_model(model_path: Path, recipe: PrepareRecipe, suite_dir: Path, cache_dir: Path) -> Path:
    """Apply ``recipe`` to ``model_path``; return ``cache_dir/<sha256>.onnx`` (reused when present).

    Relative ``script`` / ``quantize.calibration`` names resolve against ``suite_dir``. Any failing
    step raises :class:`PrepareError` naming the suite folder, the step and the cause.
    """
    import onnx

    model_path, suite_dir, cache_dir = Path(model_path), Path(suite_dir), Path(cache_dir)
    if not model_path.is_file():
        raise PrepareError(suite_dir, "load", f"model not found: {model_path}")
    key = cache_key(model_path, recipe, suite_dir)
    target = cache_dir / f"{key}.onnx"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".prepare-", dir=cache_dir) as tmp:
        workdir = Path(tmp)
        step = "load"
        try:
            model = onnx.load(str(model_path))
            if recipe.fix_shapes:
                step = "fix_shapes"
                model = _step_fix_shapes(model, recipe.fix_shapes)
            if recipe.script:
                step = "script"
                model = _step_script(model, _suite_file(suite_dir, recipe.script, step))
            if recipe.qnn_preprocess:
                step = "qnn_preprocess"
                model = _step_qnn_preprocess(model, workdir)
            staged = workdir / "model.onnx"
            if recipe.quantize:
                step = "quantize"
                calibration = _suite_file(suite_dir, recipe.quantize["calibration"], step)
                _step_quantize(model, recipe.quantize, calibration, staged)
            else:
                step = "save"
                onnx.save(model, str(staged))
            step = "check"
            onnx.checker.check_model(str(staged))
        except PrepareError:
            raise
        except Exception as exc:  # noqa: BLE001 - every step failure becomes one readable line
            raise PrepareError(suite_dir, step, f"{type(exc).__name__}: {exc}") from exc
        os.replace(staged, target)  # same filesystem (tmp dir lives in cache_dir): atomic
        _write_sidecar(target, model_path, recipe)
    return target


def _write_sidecar(target: Path, model_path: Path, recipe: PrepareRecipe) -> None:
    """Record how a cached model was made next to it (``<hash>.json``), for reports and humans."""
    info = {
        "source": str(model_path),
        "recipe": recipe.to_mapping(),
        "onnxruntime": _ort_version(),
        "pipeline": PIPELINE_VERSION,
    }
    atomic_write(target.with_suffix(".json"), json.dumps(info, indent=1, sort_keys=True))
