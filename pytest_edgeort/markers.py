"""The edge markers: their help text and how their arguments are read and validated (what validates them is
imported when a marker is read: every pytest run registers the markers)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import pytest

from ._text import did_you_mean
from .config import MANIFEST

if TYPE_CHECKING:
    from .compare.tolerance import ToleranceSpec

MARKERS = {
    "edge_model": (
        "edge_model(path, *, suite=None, reference='cpu', reference_model=None, float_model=None, inputs=None, "
        "input_ranges=None, shapes=None, options=None): the ONNX model the edge fixtures open (paths relative "
        "to the test file, or pkg:<package>/<path> in an installed package); suite='folder': instead of a path, "
        "that edge_suite.toml's model as the suite runs it ([prepare] applied), its float model and inputs. "
        "reference: provider of edge_reference ('cpu' of the same device, 'host' = this "
        "machine's CPU, or any provider); reference_model: compute the reference with another model; "
        "float_model: float baseline for the vs_float rule; inputs: .npz feed; input_ranges: "
        "{input: (low, high)}; shapes: {input: [dims]} for dynamic inputs; options: provider options."
    ),
    "edge_providers": (
        "edge_providers(*providers, options=None): parametrize the test over these providers "
        "(qnn-htp, qnn-htp-fp16, qnn-gpu, cpu, cuda, tensorrt, openvino, coreml, dml or an EP name); "
        "ids are [<device>-<provider>]. options: provider options for all of them."
    ),
    "edge_tolerance": (
        "edge_tolerance(atol=, rtol=, lsb=, stat=, quantile=, max_mismatch=, min_snr_db=, min_cosine=, topk=, "
        "vs_float=, outputs={name: {...}}): tolerance for edge_compare, over the per-precision defaults."
    ),
}

_MODEL_KWARGS = (
    "suite",
    "reference",
    "reference_model",
    "float_model",
    "inputs",
    "input_ranges",
    "shapes",
    "options",
)


class MarkerError(ValueError):
    """A marker was used with wrong arguments (one line naming the test and the argument)."""


@dataclass(frozen=True)
class ModelMarker:
    """``edge_model`` resolved to absolute paths. ``name`` is how messages and records name the model where
    ``model`` is not the user's own path (a ``pkg:`` source, a suite's model); ``suite``: the manifest of
    ``edge_model(suite=...)``, whose ``[prepare]`` the fixtures apply to ``model``."""

    model: Path
    name: Union[Path, str, None] = None
    suite: Optional[Path] = None
    reference: str = "cpu"
    reference_model: Optional[Path] = None
    float_model: Optional[Path] = None
    inputs: Optional[Path] = None
    input_ranges: Optional[Mapping[str, Sequence[float]]] = None
    shapes: Optional[Mapping[str, Sequence[int]]] = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> Union[Path, str]:
        """The user's name for the model: ``name``, else the path."""
        return self.model if self.name is None else self.name


@dataclass(frozen=True)
class ProvidersMarker:
    """``edge_providers`` arguments."""

    providers: Tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


def _resolve(node: pytest.Item, value: Any) -> Path:
    if str(value).startswith("pkg:"):
        from .config.suite import package_resource

        return package_resource(str(value), f"{node.nodeid}: edge_model")
    path = Path(str(value)).expanduser()
    if path.is_absolute():
        return path
    here = Path(str(node.fspath)).parent / path
    if here.exists():
        return here
    rooted = Path(str(node.config.rootpath)) / path
    return rooted if rooted.exists() else here


def model_marker(node: pytest.Item, mark: Optional[pytest.Mark] = None) -> Optional[ModelMarker]:
    """The closest ``edge_model`` marker of ``node`` (or ``mark``, that marker found already), validated; None when
    absent."""
    mark = node.get_closest_marker("edge_model") if mark is None else mark
    if mark is None:
        return None
    if len(mark.args) != (0 if "suite" in mark.kwargs else 1):
        raise MarkerError(
            f"{node.nodeid}: edge_model takes exactly one model path or suite='folder', got {len(mark.args)} "
            f"arguments{' and suite=' if 'suite' in mark.kwargs else ''}"
        )
    unknown = sorted(set(mark.kwargs) - set(_MODEL_KWARGS))
    if unknown:
        raise MarkerError(
            f"{node.nodeid}: edge_model got unknown argument {unknown[0]!r}{did_you_mean(unknown[0], _MODEL_KWARGS)}; "
            f"valid: {', '.join(_MODEL_KWARGS)}"
        )
    kw = dict(mark.kwargs)
    for key in ("reference_model", "float_model", "inputs"):
        if kw.get(key) is not None:
            kw[key] = _resolve(node, kw[key])
    if "suite" in kw:
        kw.update(_suite_marker(node, kw.pop("suite"), kw))
    else:
        spec = str(mark.args[0])
        kw.update(model=_resolve(node, spec), name=spec if spec.startswith("pkg:") else None)
    return ModelMarker(**{k: v for k, v in kw.items() if v is not None})


def _suite_marker(node: pytest.Item, folder: Any, given: Mapping[str, Any]) -> Dict[str, Any]:
    """``edge_model(suite=folder)``: the suite's model (its user's name) and, unless given, its float model and
    inputs; the fixtures prepare the model as the suite does."""
    from .config.suite import load_suite

    path = _resolve(node, folder)
    manifest = path if path.name == MANIFEST else path / MANIFEST
    if not manifest.is_file():
        raise MarkerError(f"{node.nodeid}: edge_model(suite={str(folder)!r}): no {MANIFEST} in {path}")
    suite = load_suite(manifest)
    model = suite.resolve_model(suite.model, "model")
    found: Dict[str, Any] = {"model": model, "name": suite.model if suite.model.startswith("pkg:") else model}
    found["suite"] = manifest
    if given.get("inputs") is None and suite.inputs:
        found["inputs"] = suite.local_file(suite.inputs, "inputs")
    return found


def providers_marker(node: pytest.Item) -> ProvidersMarker:
    """The closest ``edge_providers`` marker (empty when absent)."""
    mark = node.get_closest_marker("edge_providers")
    if mark is None:
        return ProvidersMarker()
    unknown = sorted(set(mark.kwargs) - {"options"})
    if unknown:
        raise MarkerError(f"{node.nodeid}: edge_providers got unknown argument {unknown[0]!r}; valid: options")
    names = []
    for arg in mark.args:
        names.extend([arg] if isinstance(arg, str) else list(arg))
    return ProvidersMarker(tuple(names), dict(mark.kwargs.get("options") or {}))


_TOLERANCE_KEY = pytest.StashKey["Union[ToleranceSpec, ValueError]"]()


def tolerance_marker(node: pytest.Item) -> ToleranceSpec:
    """The closest ``edge_tolerance`` marker, parsed and validated once per item (at collection,
    see :func:`parse_tolerance_markers`); empty when absent. A bad marker raises its ValueError
    each time it is asked for, so it fails that test only."""
    if _TOLERANCE_KEY not in node.stash:
        from .compare.tolerance import ToleranceSpec, parse_tolerance

        mark = node.get_closest_marker("edge_tolerance")
        try:
            spec = (
                ToleranceSpec()
                if mark is None
                else parse_tolerance(dict(mark.kwargs), f"edge_tolerance in {node.nodeid}")
            )
        except ValueError as exc:
            spec = exc
        node.stash[_TOLERANCE_KEY] = spec
    spec = node.stash[_TOLERANCE_KEY]
    if isinstance(spec, ValueError):
        raise spec
    return spec


def parse_tolerance_markers(items: Iterable[pytest.Item]) -> None:
    """Parse every item's ``edge_tolerance`` once, at collection (errors wait for the test's run)."""
    for item in items:
        with contextlib.suppress(ValueError):
            tolerance_marker(item)
