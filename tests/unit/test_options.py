"""Command line + ini -> EdgeOptions: the command line wins, paths resolve against the rootdir."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Optional

import pytest

from pytest_edgeort.errors import ProviderError
from pytest_edgeort.options import DEFAULT_PROVIDERS, DEFAULT_SEED, EdgeOptions

INI_DEFAULTS: Dict[str, Any] = {
    "edge_device": [],
    "edge_devices_file": "",
    "edge_provider": [],
    "edge_default_providers": list(DEFAULT_PROVIDERS),
    "edge_strict": False,
    "edge_update_golden": False,
    "edge_report": "",
    "edge_seed": str(DEFAULT_SEED),
    "edge_html": "",  # edge-html
    "edge_diagnose": "on",
    "edge_diagnose_budget_s": "60",
    "edge_op_matrix": False,
    "edge_op_filter": "",
    "edge_op_matrix_csv": "",
    "edge_no_ep_cache": False,
}


def config(root: Path, options: Optional[Dict[str, Any]] = None, ini: Optional[Dict[str, Any]] = None) -> Any:
    """What EdgeOptions.from_config reads of a pytest.Config."""
    given, inis = options or {}, {**INI_DEFAULTS, **(ini or {})}
    return SimpleNamespace(rootpath=root, getoption=lambda name: given.get(name), getini=lambda name: inis[name])


def test_defaults(tmp_path):
    options = EdgeOptions.from_config(config(tmp_path))
    assert options == EdgeOptions(devices_file=tmp_path / "edge-devices.toml")
    assert (options.devices, options.seed, options.report) == (("local",), DEFAULT_SEED, None)


def test_command_line_wins_over_ini(tmp_path):
    (tmp_path / "cli.toml").write_text("")
    options = EdgeOptions.from_config(
        config(
            tmp_path,
            {"edge_device": ["board1"], "edge_seed": 7, "edge_devices_file": "cli.toml", "edge_strict": True},
            {
                "edge_device": ["rb3"],
                "edge_seed": "9",
                "edge_report": "out/r.json",
                "edge_provider": ["cpu"],
                "edge_html": "out/r.html",
            },  # edge-html
        )
    )
    assert options.html == Path("out/r.html")  # edge-html
    assert options.devices == ("board1",) and options.seed == 7 and options.strict
    assert options.devices_file == tmp_path / "cli.toml"
    assert options.report == Path("out/r.json") and options.providers == ("cpu",)


def test_no_ep_cache_from_the_command_line_or_ini(tmp_path):
    assert EdgeOptions.from_config(config(tmp_path)).ep_cache
    assert not EdgeOptions.from_config(config(tmp_path, {"edge_no_ep_cache": True})).ep_cache
    assert not EdgeOptions.from_config(config(tmp_path, ini={"edge_no_ep_cache": True})).ep_cache


def test_a_named_inventory_file_must_exist(tmp_path):
    with pytest.raises(pytest.UsageError, match=r"^--edge-devices-file .*missing.toml: no such file$"):
        EdgeOptions.from_config(config(tmp_path, ini={"edge_devices_file": "missing.toml"}))


def test_seed_must_be_an_integer(tmp_path):
    with pytest.raises(pytest.UsageError, match=r"^edge_seed must be an integer, got 'abc'$"):
        EdgeOptions.from_config(config(tmp_path, ini={"edge_seed": "abc"}))


def test_providers_for_filters_by_alias_or_ep_name():
    assert EdgeOptions().providers_for(None) == list(DEFAULT_PROVIDERS)
    assert EdgeOptions(providers=("cpu",)).providers_for(("cpu", "qnn-htp")) == ["cpu"]
    assert EdgeOptions(providers=("QNNExecutionProvider",)).providers_for(("cpu", "qnn-htp")) == ["qnn-htp"]
    with pytest.raises(ProviderError, match="did you mean 'qnn-htp'"):
        EdgeOptions().providers_for(("qnn-hpt",))


def test_a_provider_filter_that_does_not_resolve_is_a_usage_error(tmp_path):
    """``--edge-provider qnn-htpp`` kept no provider of any test: every test skipped as "got empty parameter set"
    and the run passed, on CI too."""
    with pytest.raises(pytest.UsageError, match=r"^--edge-provider: unknown provider 'qnn-htpp' \(did you mean"):
        EdgeOptions.from_config(config(tmp_path, {"edge_provider": ["cpu", "qnn-htpp"]}))
    with pytest.raises(pytest.UsageError, match=r"^edge_default_providers: unknown provider 'cpux'"):
        EdgeOptions.from_config(config(tmp_path, ini={"edge_default_providers": ["cpux"]}))
    options = EdgeOptions.from_config(config(tmp_path, {"edge_provider": ["QNNExecutionProvider"]}))
    assert options.providers == ("QNNExecutionProvider",)


def test_a_device_or_provider_named_twice_runs_once(tmp_path):
    """``--edge-device local --edge-device local`` (a CI template adding its own) made every test twice, with
    pytest's ids ``[local-qnn-htp0]`` / ``[local-qnn-htp1]`` that no longer end in ``[<device>-<provider>]``."""
    options = EdgeOptions.from_config(config(tmp_path, {"edge_device": ["local", "b1", "local"]}))
    assert options.devices == ("local", "b1")
    assert options.providers_for(("cpu", "qnn-htp", "cpu")) == ["cpu", "qnn-htp"]


def test_diagnose_mode_comes_from_the_command_line_or_the_ini(tmp_path):
    assert EdgeOptions.from_config(config(tmp_path)).diagnose == "on"
    assert EdgeOptions.from_config(config(tmp_path, ini={"edge_diagnose": "off"})).diagnose == "off"
    options = EdgeOptions.from_config(config(tmp_path, {"edge_diagnose": "always"}, {"edge_diagnose": "off"}))
    assert options.diagnose == "always"
    with pytest.raises(pytest.UsageError, match="edge_diagnose must be one of off, on, always, got 'of'"):
        EdgeOptions.from_config(config(tmp_path, ini={"edge_diagnose": "of"}))


def test_the_diagnosis_budget_is_a_positive_number_of_seconds(tmp_path):
    assert EdgeOptions.from_config(config(tmp_path)).diagnose_budget_s == 60.0
    assert EdgeOptions.from_config(config(tmp_path, ini={"edge_diagnose_budget_s": "120"})).diagnose_budget_s == 120
    for bad in ("0", "soon"):
        with pytest.raises(
            pytest.UsageError, match=f"edge_diagnose_budget_s must be a number of seconds > 0, got '{bad}'"
        ):
            EdgeOptions.from_config(config(tmp_path, ini={"edge_diagnose_budget_s": bad}))


def test_op_matrix_options_from_the_command_line_or_ini(tmp_path):
    options = EdgeOptions.from_config(
        config(
            tmp_path, {"edge_op_matrix": True, "edge_op_filter": "^test_(relu|add)$"}, {"edge_op_matrix_csv": "m.csv"}
        )
    )
    assert (options.op_matrix, options.op_filter, options.op_matrix_csv) == (True, "^test_(relu|add)$", Path("m.csv"))
    assert not EdgeOptions.from_config(config(tmp_path)).op_matrix


def test_an_op_filter_that_is_no_regular_expression_is_a_usage_error(tmp_path):
    with pytest.raises(pytest.UsageError, match=r"--edge-op-filter 'test_\(relu': not a regular expression"):
        EdgeOptions.from_config(config(tmp_path, {"edge_op_filter": "test_(relu"}))


def test_update_golden_mode_from_the_command_line_or_the_ini_file(tmp_path):
    def mode(options=None, ini=None):
        return EdgeOptions.from_config(config(tmp_path, options, ini)).update_golden

    assert (mode(), mode({"edge_update_golden": "all"}), mode({"edge_update_golden": "new"})) == ("", "all", "new")
    assert (mode(ini={"edge_update_golden": "true"}), mode(ini={"edge_update_golden": "New"})) == ("all", "new")
    assert mode({"edge_update_golden": "new"}, {"edge_update_golden": "true"}) == "new"
    with pytest.raises(pytest.UsageError, match="edge_update_golden must be true, false or new, got 'old'"):
        mode(ini={"edge_update_golden": "old"})
