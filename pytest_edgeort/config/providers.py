"""Provider aliases (``qnn-htp``, ``cpu``, ...) and validation of their option keys and values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Tuple

from .._text import did_you_mean
from ..errors import ProviderError

# Keys onnxruntime-qnn accepts (QNN EP docs + the 2.x library's own option table). QNN silently
# ignores unknown keys, so a typo would otherwise just change nothing: we refuse them instead.
QNN_OPTION_KEYS = frozenset(
    {
        "backend_type",
        "backend_path",
        "profiling_level",
        "profiling_file_path",
        "rpc_control_latency",
        "vtcm_mb",
        "htp_performance_mode",
        "qnn_saver_path",
        "qnn_context_priority",
        "htp_graph_finalization_optimization_mode",
        "soc_model",
        "htp_arch",
        "device_id",
        "enable_htp_fp16_precision",
        "offload_graph_io_quantization",
        "enable_htp_spill_fill_buffer",
        "enable_htp_shared_memory_allocator",
        "dump_json_qnn_graph",
        "json_qnn_graph_dir",
        "op_packages",
        "skip_qnn_version_check",
        "extended_udma",
        "enable_htp_weight_sharing",
        "htp_share_resource_optimization",
        "enable_htp_graph_splitting",
        "enable_htp_fp16_clamp_overflow",
        "htp_bf16_enable",
        "enable_htp_monolithic_lstm",
        "skip_backend_op_validation",
    }
)
_FLAG = ("0", "1")
# Values of QNN's enumerated options. onnxruntime-qnn 2.7 accepts any value for most of them and
# runs with its default (measured: htp_performance_mode="burts", profiling_level="verbose",
# offload_graph_io_quantization="2" all create a session), so a typo would silently change nothing.
QNN_OPTION_VALUES: Dict[str, Tuple[str, ...]] = {
    "htp_performance_mode": (
        "burst",
        "balanced",
        "default",
        "high_performance",
        "high_power_saver",
        "low_balanced",
        "extreme_power_saver",
        "low_power_saver",
        "power_saver",
        "sustained_high_performance",
    ),
    "qnn_context_priority": ("low", "normal", "normal_high", "high"),
    "htp_graph_finalization_optimization_mode": ("0", "1", "2", "3"),
    "profiling_level": ("off", "basic", "detailed", "optrace"),
    "backend_type": ("cpu", "gpu", "htp", "saver", "ir"),
    **{
        key: _FLAG
        for key in (
            "enable_htp_fp16_precision",
            "offload_graph_io_quantization",
            "enable_htp_spill_fill_buffer",
            "enable_htp_shared_memory_allocator",
            "enable_htp_weight_sharing",
            "enable_htp_graph_splitting",
            "enable_htp_fp16_clamp_overflow",
            "htp_bf16_enable",
            "enable_htp_monolithic_lstm",
            "skip_qnn_version_check",
            "skip_backend_op_validation",
            "extended_udma",
            "htp_share_resource_optimization",
            "dump_json_qnn_graph",
        )
    },
}
# Options that change state for the whole worker process (fp16 compute once soc_model is set).
QNN_PROCESS_GLOBAL_KEYS = frozenset({"soc_model", "enable_htp_fp16_precision", "htp_arch"})

CUDA_OPTION_KEYS = frozenset(
    {
        "device_id",
        "gpu_mem_limit",
        "arena_extend_strategy",
        "cudnn_conv_algo_search",
        "do_copy_in_default_stream",
        "cudnn_conv_use_max_workspace",
        "cudnn_conv1d_pad_to_nc1d",
        "enable_cuda_graph",
        "enable_skip_layer_norm_strict_mode",
        "use_tf32",
        "prefer_nhwc",
        "use_ep_level_unified_stream",
        "tunable_op_enable",
        "tunable_op_tuning_enable",
    }
)


@dataclass(frozen=True)
class ProviderSpec:
    """What an alias means: the ORT EP name, fixed options, and how results must be judged."""

    alias: str
    ep_name: str
    fixed_options: Mapping[str, str] = field(default_factory=dict)
    accelerator: bool = True
    option_keys: Optional[FrozenSet[str]] = None  # None: not validated here (EP validates itself)
    option_values: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)  # enumerated values
    process_global_keys: FrozenSet[str] = frozenset()
    float_as_fp16: bool = False  # judge float outputs as fp16 (real NPUs compute float in fp16)
    qnn_backend: Optional[str] = None
    simulated_on: FrozenSet[str] = frozenset()  # machines (``platform.machine()``) where the EP is a simulator

    def simulated(self, caps: Mapping[str, Any]) -> bool:
        """Whether this provider is a simulator on the device whose capabilities are ``caps`` (its
        numerics are real, its timing is not a board's)."""
        return caps.get("machine") in self.simulated_on


# onnxruntime-qnn's Linux x86-64 wheel runs its QNN backends in simulation
QNN_SIMULATOR_MACHINES = frozenset({"x86_64", "AMD64"})


def _qnn(alias: str, backend: str, **fixed: str) -> ProviderSpec:
    """A QNN alias: its backend, fixed options, QNN's option table; float judged as fp16."""
    return ProviderSpec(
        alias,
        "QNNExecutionProvider",
        {"backend_type": backend, **fixed},
        True,
        QNN_OPTION_KEYS,
        QNN_OPTION_VALUES,
        QNN_PROCESS_GLOBAL_KEYS,
        float_as_fp16=True,
        qnn_backend=backend,
        simulated_on=QNN_SIMULATOR_MACHINES,
    )


ALIASES: Dict[str, ProviderSpec] = {
    spec.alias: spec
    for spec in (
        ProviderSpec("cpu", "CPUExecutionProvider", accelerator=False, option_keys=frozenset()),
        _qnn("qnn-htp", "htp"),
        _qnn("qnn-htp-fp16", "htp", enable_htp_fp16_precision="1"),
        _qnn("qnn-gpu", "gpu"),
        ProviderSpec("cuda", "CUDAExecutionProvider", option_keys=CUDA_OPTION_KEYS),
        ProviderSpec("tensorrt", "TensorrtExecutionProvider"),
        ProviderSpec("openvino", "OpenVINOExecutionProvider"),
        ProviderSpec("coreml", "CoreMLExecutionProvider", float_as_fp16=True),
        ProviderSpec("dml", "DmlExecutionProvider"),
    )
}
# Listed by onnxruntime as available but not a device to run models on.
NOT_INFERENCE_EPS = frozenset({"AzureExecutionProvider"})


def resolve_provider(name: str) -> ProviderSpec:
    """Return the spec of an alias, or of any EP name given verbatim (``FooExecutionProvider``)."""
    if name in ALIASES:
        return ALIASES[name]
    if name.endswith("ExecutionProvider"):
        return ProviderSpec(name, name, accelerator=name != "CPUExecutionProvider")
    raise ProviderError(
        f"unknown provider {name!r}{did_you_mean(name, ALIASES)}; use one of {', '.join(ALIASES)} "
        "or an ONNX Runtime EP name such as 'CUDAExecutionProvider'"
    )


def provider_options(spec: ProviderSpec, *layers: Optional[Mapping[str, object]], where: str = "") -> Dict[str, str]:
    """Merge option layers over the alias' fixed options; validate keys; values become strings."""
    merged: Dict[str, str] = dict(spec.fixed_options)
    for layer in layers:
        for key, value in (layer or {}).items():
            if spec.option_keys is not None and key not in spec.option_keys:
                hint = did_you_mean(key, sorted(spec.option_keys))
                valid = ", ".join(sorted(spec.option_keys)) or "none"
                raise ProviderError(
                    f"{where + ': ' if where else ''}unknown option {key!r} for provider {spec.alias}{hint}; "
                    f"valid keys: {valid}"
                )
            merged[key] = _option_string(value)
            valid_values = spec.option_values.get(key)
            if valid_values is not None and merged[key] not in valid_values:
                raise ProviderError(
                    f"{where + ': ' if where else ''}invalid value {merged[key]!r} for option {key!r} of provider "
                    f"{spec.alias}{did_you_mean(merged[key], valid_values)}; valid values: {', '.join(valid_values)}"
                )
    return merged


def _option_string(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def isolation_group(spec: ProviderSpec, options: Mapping[str, str]) -> str:
    """Worker process group: sessions with process-global options get a process of their own."""
    globals_ = sorted((k, v) for k, v in options.items() if k in spec.process_global_keys)
    if not globals_:
        return "default"
    return spec.alias + ":" + ",".join(f"{k}={v}" for k, v in globals_)


def unusable_aliases(qnn: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """``{alias: why}`` for the QNN aliases whose backend ships but cannot run a graph on the device."""
    unusable = (qnn or {}).get("unusable") or {}
    return {alias: unusable[spec.qnn_backend] for alias, spec in ALIASES.items() if spec.qnn_backend in unusable}


def unprobed_aliases(ep_names: Tuple[str, ...], qnn: Optional[Mapping[str, Any]]) -> List[str]:
    """The QNN aliases whose backend ships but has not been tried yet (no test of the run asked for it)."""
    backends, probed = (qnn or {}).get("backends") or (), (qnn or {}).get("probed")
    if probed is None:
        return []
    return [
        alias
        for alias, spec in ALIASES.items()
        if spec.ep_name in ep_names and spec.qnn_backend in backends and spec.qnn_backend not in probed
    ]


def available_aliases(ep_names: Tuple[str, ...], qnn: Optional[Mapping[str, Any]] = None) -> list:
    """Aliases a device is known to run, given its EP names and its QNN facts (the backend libraries it
    ships, those its worker tried a trivial graph on and those it could not run that graph on)."""
    qnn_backends, unusable = tuple((qnn or {}).get("backends", ())), (qnn or {}).get("unusable") or {}
    unprobed = unprobed_aliases(ep_names, qnn)
    out = []
    for alias, spec in ALIASES.items():
        if spec.ep_name not in ep_names or alias in unprobed:
            continue
        if spec.qnn_backend and (
            (qnn_backends and spec.qnn_backend not in qnn_backends) or spec.qnn_backend in unusable
        ):
            continue
        out.append(alias)
    known = {s.ep_name for s in ALIASES.values()} | NOT_INFERENCE_EPS
    out.extend(ep for ep in ep_names if ep not in known)
    return out
