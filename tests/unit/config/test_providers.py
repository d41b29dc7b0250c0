"""Provider aliases and their options: keys and enumerated values are checked before any session."""

from __future__ import annotations

import pytest

from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.errors import ProviderError


def test_a_misspelt_enumerated_value_is_refused_with_the_valid_values():
    with pytest.raises(ProviderError) as info:
        provider_options(resolve_provider("qnn-htp"), {"htp_performance_mode": "burts"}, where="edge-devices.toml")
    assert str(info.value) == (
        "edge-devices.toml: invalid value 'burts' for option 'htp_performance_mode' of provider qnn-htp "
        "(did you mean 'burst'?); valid values: burst, balanced, default, high_performance, high_power_saver, "
        "low_balanced, extreme_power_saver, low_power_saver, power_saver, sustained_high_performance"
    )


@pytest.mark.parametrize(
    "key, value",
    [
        ("qnn_context_priority", "hgh"),
        ("htp_graph_finalization_optimization_mode", "7"),
        ("profiling_level", "verbose"),
        ("offload_graph_io_quantization", "2"),
        ("enable_htp_fp16_precision", "yes"),
    ],
)
def test_values_qnn_would_ignore_or_misreport_are_refused(key, value):
    with pytest.raises(ProviderError, match=f"invalid value '{value}' for option '{key}'"):
        provider_options(resolve_provider("qnn-htp"), {key: value})


def test_valid_values_booleans_and_free_form_options_pass_as_strings():
    options = provider_options(
        resolve_provider("qnn-htp"),
        {
            "htp_performance_mode": "burst",
            "offload_graph_io_quantization": False,
            "soc_model": 60,
            "htp_graph_finalization_optimization_mode": 3,
        },
    )
    assert options == {
        "backend_type": "htp",
        "htp_performance_mode": "burst",
        "offload_graph_io_quantization": "0",
        "soc_model": "60",
        "htp_graph_finalization_optimization_mode": "3",
    }


def test_a_qnn_backend_the_worker_could_not_run_is_not_available():
    from pytest_edgeort.config.providers import available_aliases, unusable_aliases

    eps = ("QNNExecutionProvider", "CPUExecutionProvider")
    qnn = {"backends": ["gpu", "htp"], "unusable": {"gpu": "no GPU"}}
    assert available_aliases(eps, qnn) == ["cpu", "qnn-htp", "qnn-htp-fp16"]
    assert unusable_aliases(qnn) == {"qnn-gpu": "no GPU"}
    everything_unusable = {"backends": ["htp"], "unusable": {"htp": "no DSP"}}
    assert available_aliases(eps, everything_unusable) == ["cpu"]
    assert available_aliases(eps, None) == ["cpu", "qnn-htp", "qnn-htp-fp16", "qnn-gpu"]  # legacy: unknown backends


def test_a_qnn_backend_not_probed_yet_is_neither_available_nor_unusable():
    from pytest_edgeort.config.providers import available_aliases, unprobed_aliases, unusable_aliases

    eps = ("QNNExecutionProvider", "CPUExecutionProvider")
    qnn = {"backends": ["gpu", "htp"], "probed": ["htp"]}
    assert available_aliases(eps, qnn) == ["cpu", "qnn-htp", "qnn-htp-fp16"]
    assert unprobed_aliases(eps, qnn) == ["qnn-gpu"] and unusable_aliases(qnn) == {}
    assert unprobed_aliases(eps, {"backends": ["gpu", "htp"]}) == []  # no "probed": every backend was probed
