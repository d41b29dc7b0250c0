"""Model inputs: generated from the model's metadata (seeded) or loaded from ``.npz`` files."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._text import did_you_mean
from ..errors import InputError
from .info import ModelInfo, TensorInfo

Feed = Dict[str, np.ndarray]
# Default generation ranges, [low, high): a QDQ input uses the range its QuantizeLinear can represent.
DEFAULT_FLOAT_RANGE = (0.0, 1.0)
DEFAULT_INT_RANGE = (0, 128)


def check_input_names(
    model: ModelInfo,
    ranges: Optional[Mapping[str, Sequence[float]]] = None,
    shapes: Optional[Mapping[str, Sequence[int]]] = None,
) -> None:
    """InputError (one line) when ``ranges`` or ``shapes`` name an input the model does not have: a typo there
    would otherwise be ignored, and the input generated with its default range or shape."""
    names = [t.name for t in model.inputs]
    for what, given in (("value ranges", ranges), ("shapes", shapes)):
        unknown = [name for name in given or () if name not in names]
        if unknown:
            raise InputError(
                f"{model.path.name}: the {what} given name input {unknown[0]!r}{did_you_mean(unknown[0], names)}, "
                f"which the model does not have; its inputs: {', '.join(names)}"
            )


def static_shape(
    model: ModelInfo, tensor: TensorInfo, shapes: Optional[Mapping[str, Sequence[int]]] = None
) -> Tuple[int, ...]:
    """The concrete shape of an input, or an InputError telling how to fix a dynamic one."""
    if shapes and tensor.name in shapes:
        return tuple(int(d) for d in shapes[tensor.name])
    if tensor.static_dims is not None:
        return tensor.static_dims
    dynamic = [d for d in tensor.shape if not isinstance(d, int)]
    name = next((d for d in dynamic if isinstance(d, str) and d != "?"), None)
    if name:
        fix = f"--dim_param {shlex.quote(name)} --dim_value 1"
    else:
        fix = f"--input_name {shlex.quote(tensor.name)} --input_shape " + ",".join(
            str(d) if isinstance(d, int) else "1" for d in tensor.shape
        )
    raise InputError(
        f"{model.path.name}: input {tensor.name!r} has dynamic shape {list(tensor.shape)}; give a fixed shape "
        f"(edge_model(..., shapes={{{tensor.name!r}: [...]}}) or [prepare] fix_shapes) or fix the model: "
        f"python -m onnxruntime.tools.make_dynamic_shape_fixed {fix} {shlex.quote(model.path.name)} fixed.onnx"
    )


def input_seed(seed: int, model_sha256: str, input_name: str, index: int = 0) -> int:
    """A stable seed per (run seed, model, input, example index): same data on every device."""
    text = f"{seed}:{model_sha256}:{input_name}:{index}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


def value_range(
    model: ModelInfo, tensor: TensorInfo, ranges: Optional[Mapping[str, Sequence[float]]] = None
) -> Tuple[float, float]:
    """[low, high) used to generate one input."""
    if ranges and tensor.name in ranges:
        low, high = ranges[tensor.name]
        if not low < high:
            raise InputError(
                f"{model.path.name}: range for input {tensor.name!r} must be [low, high) with low < high, "
                f"got {[low, high]}"
            )
        return float(low), float(high)
    if tensor.name in model.input_quant:
        return model.input_quant[tensor.name].value_range
    if np.issubdtype(np.dtype(tensor.dtype), np.integer):
        info = np.iinfo(tensor.dtype)
        return float(max(DEFAULT_INT_RANGE[0], info.min)), float(min(DEFAULT_INT_RANGE[1], info.max + 1))
    return DEFAULT_FLOAT_RANGE


def generate_inputs(
    model: ModelInfo,
    seed: int,
    index: int = 0,
    ranges: Optional[Mapping[str, Sequence[float]]] = None,
    shapes: Optional[Mapping[str, Sequence[int]]] = None,
) -> Feed:
    """One feed for every model input, reproducible from ``seed`` and ``index``."""
    check_input_names(model, ranges, shapes)
    feed: Feed = {}
    for tensor in model.inputs:
        shape = static_shape(model, tensor, shapes)
        rng = np.random.default_rng(input_seed(seed, model.sha256, tensor.name, index))
        dtype = np.dtype(tensor.dtype)
        if dtype == np.bool_:
            feed[tensor.name] = rng.random(shape) < 0.5
            continue
        low, high = value_range(model, tensor, ranges)
        if np.issubdtype(dtype, np.integer):
            feed[tensor.name] = rng.integers(int(np.ceil(low)), int(np.ceil(high)), size=shape).astype(dtype)
        elif np.issubdtype(dtype, np.floating):
            feed[tensor.name] = rng.uniform(low, high, size=shape).astype(dtype)
        else:
            raise InputError(f"{model.path.name}: cannot generate input {tensor.name!r} of type {tensor.dtype}")
    return feed


NPZ_MAX_BYTES = 2 * 1024**3  # the most the arrays of one .npz file may declare in all
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def check_npz(path: Path, max_bytes: int = NPZ_MAX_BYTES) -> None:
    """InputError (one line naming the file) unless every array of the .npz at ``path`` declares a size its
    stored bytes can hold and all of them together at most ``max_bytes``: read from the headers alone, before
    anything is allocated (a 300-byte file may claim a 286 GiB array; a deflate bomb inflates 1000-fold).
    A file that is no zip archive is left to ``np.load`` (a bare .npy is refused there)."""
    import zipfile

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return
    total = 0
    with archive:
        for entry in archive.infolist():
            try:
                with archive.open(entry) as member:
                    version = np.lib.format.read_magic(member)
                    shape, _, dtype = _NPY_HEADERS[version](member)
                    header = member.tell()
            except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise InputError(f"{path}: {entry.filename} is not a readable .npy array ({exc})") from None
            declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
            total += declared
            if declared > entry.file_size - header:
                raise InputError(
                    f"{path}: {entry.filename} declares a {dtype} array of shape {tuple(shape)} ({declared} bytes) "
                    f"but holds {entry.file_size - header} bytes; refusing to load it"
                )
            if total > max_bytes:
                raise InputError(
                    f"{path}: its arrays declare {total} bytes or more ({path.stat().st_size} bytes on disk), over "
                    f"the limit of {max_bytes} bytes for one .npz; refusing to load it"
                )


def load_npz(path: Path) -> Dict[str, np.ndarray]:
    """Arrays of an .npz file (never unpickled, sizes checked first: :func:`check_npz`); InputError names the
    file when unreadable."""
    if path.is_file():
        check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise InputError(f"inputs file not found: {path}") from None
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npz without pickled objects ({exc})") from None


def named_arrays(value: Any, where: str, what: str, names: Sequence[str]) -> Mapping[str, Any]:
    """``value`` when it maps tensor names to arrays (as ``edge_session.run`` takes and returns); else an
    InputError naming ``what`` it should have been, with ``names`` (the model's tensors) as the example."""
    if isinstance(value, Mapping):
        return value
    example = ", ".join(f"{name!r}: array" for name in names[:3]) + (", ..." if len(names) > 3 else "")
    raise InputError(
        f"{where}: {what} must be a mapping of tensor name -> array, got {type(value).__name__}; e.g. {{{example}}}"
    )


def check_feed(
    model: ModelInfo, feed: Mapping[str, np.ndarray], source: str, shapes: Optional[Mapping[str, Sequence[int]]] = None
) -> Feed:
    """Check names, dtypes and shapes of a feed against the model; return it as a plain dict."""
    expected = model.input_tensors
    feed = named_arrays(feed, source, "the feed", list(expected))
    if feed.keys() != expected.keys():
        missing = sorted(set(expected) - set(feed))
        extra = sorted(set(feed) - set(expected))
        raise InputError(
            f"{source}: inputs do not match {model.path.name}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
            + f" (model inputs: {sorted(expected)})"
        )
    out: Feed = {}
    for name, tensor in expected.items():
        array = np.asarray(feed[name])
        if array.dtype != np.dtype(tensor.dtype):
            raise InputError(f"{source}: input {name!r} has dtype {array.dtype}, the model wants {tensor.dtype}")
        want = static_shape(model, tensor, shapes) if shapes and name in shapes else tensor.static_dims
        if want is not None and array.shape != want:
            raise InputError(f"{source}: input {name!r} has shape {list(array.shape)}, the model wants {list(want)}")
        out[name] = array
    return out


def split_examples(model: ModelInfo, arrays: Mapping[str, np.ndarray], source: str) -> List[Feed]:
    """Suite inputs: every input stacked on a new leading axis (N examples) -> N feeds."""
    counts = {name: np.asarray(a).shape[0] if np.asarray(a).ndim else 0 for name, a in arrays.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise InputError(f"{source}: every input must hold the same number N>0 of examples on axis 0, got {counts}")
    n = next(iter(counts.values()))
    return [check_feed(model, {k: np.asarray(v)[i] for k, v in arrays.items()}, f"{source}[{i}]") for i in range(n)]
