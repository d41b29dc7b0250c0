"""xdist: the device of a node id (the controller sees node ids only), the roles, the per-device scheduler."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_edgeort.output import RunOutput
from pytest_edgeort.scheduling import ChosenOnCollection, device_of, device_scheduling
from pytest_edgeort.xdist import MainRole, WorkerRole, role_of

DEVICES = ("board1", "rb3", "rb3-01", "local")


@pytest.mark.parametrize(
    "nodeid, device",
    [
        ("tests/test_m.py::test_matches_cpu[board1-qnn-htp]", "board1"),
        ("example_suites/digits_cnn/edge_suite.toml::conformance[rb3-01-qnn-htp]", "rb3-01"),  # the longer name wins
        ("example_suites/digits_cnn/edge_suite.toml::latency[rb3-cpu]", "rb3"),
        ("tests/test_m.py::test_matches_cpu[board1-cpu-3]", "board1"),  # another parameter after the provider
        ("tests/test_m.py::test_matches_cpu[7-rb3-01-qnn-htp-fp16]", "rb3-01"),  # and before the device
        ("tests/test_m.py::TestX::test_y[local-QNNExecutionProvider]", "local"),
        ("tests/test_m.py::test_plain", None),
        ("tests/test_m.py::test_plain[board1]", None),  # a device name alone is no edge id (no provider after it)
        ("tests/test_m.py::test_plain[board10-cpu]", None),  # whole parts only
        ("tests/test_m.py::test_plain[xboard1-cpu]", None),
    ],
)
def test_device_of_nodeid(nodeid, device):
    assert device_of(nodeid, DEVICES) == device


class FakePluginManager:
    def __init__(self, **plugins):
        self.plugins, self.registered = plugins, {}

    def get_plugin(self, name):
        return self.plugins.get(name)

    def register(self, plugin, name):
        self.registered[name] = plugin


def fake_config(dist="no", workerinput=None, **plugins):
    config = SimpleNamespace(option=SimpleNamespace(dist=dist), pluginmanager=FakePluginManager(**plugins))
    if workerinput is not None:
        config.workerinput = workerinput
    return config


def test_a_worker_shares_the_run_id_and_notifies_on_stderr(capsys):
    config = fake_config("load", {"testrunuid": "abc", "edgeort_dist": "load", "workerid": "gw1"})
    role = role_of(config)
    assert isinstance(role, WorkerRole) and (role.run_id, role.dist) == ("abc", "load")
    role.notify("waiting for the board lock")
    assert capsys.readouterr().err == "[gw1] waiting for the board lock\n"
    role.register(config, None)
    assert config.pluginmanager.registered == {}  # the controller prints and writes everything


@pytest.mark.parametrize("dist, controller", [("no", False), ("load", True), ("loadgroup", True)])
def test_the_main_process_registers_the_output_and_on_the_controller_the_scheduling(dist, controller):
    config = fake_config(dist)
    role = role_of(config)
    assert isinstance(role, MainRole) and role.controller is controller and role.dist is None
    role.register(config, SimpleNamespace(results=None, options=None))
    assert sorted(config.pluginmanager.registered) == ["edgeort-output"] + (["edgeort-xdist"] if controller else [])
    assert isinstance(config.pluginmanager.registered["edgeort-output"], RunOutput)


def test_without_xdist_the_process_is_the_main_one():
    config = SimpleNamespace(option=SimpleNamespace(), pluginmanager=FakePluginManager())  # -p no:xdist: no --dist
    assert role_of(config).controller is False


def test_main_notices_go_to_the_terminal():
    lines = []
    reporter = SimpleNamespace(write_line=lambda line, **markup: lines.append((line, markup)))
    role_of(fake_config(terminalreporter=reporter)).notify("waiting")
    assert lines == [("waiting", {"yellow": True})]


def test_a_locked_device_is_one_work_unit_and_a_suite_on_one_device_and_provider_another():
    config = SimpleNamespace(getvalue=lambda name: {"tx": ["2*popen"]}[name])
    scheduling = device_scheduling(config, None, ("board1",), ("board1", "local"))
    assert scheduling._split_scope("t.py::test[board1-qnn-htp]") == "edgeort device board1"
    assert scheduling._split_scope("s/edge_suite.toml::golden[board1-qnn-htp]") == "edgeort device board1"
    assert scheduling._split_scope("t.py::test[local-qnn-htp]") == "t.py::test[local-qnn-htp]"
    for item in ("conformance", "golden", "latency"):  # one suite's items on one device and provider: one unit
        assert scheduling._split_scope(f"s/edge_suite.toml::{item}[local-qnn-htp]") == (
            "edgeort suite s/edge_suite.toml[local-qnn-htp]"
        )
    assert (
        scheduling._split_scope("s/edge_suite.toml::golden[local-cpu]") == "edgeort suite s/edge_suite.toml[local-cpu]"
    )
    assert scheduling._split_scope("other.toml::golden[local-cpu]") == "other.toml::golden[local-cpu]"


class Node:
    """What the scheduler sees of an xdist worker (a name is enough until work is sent)."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False


@pytest.mark.parametrize(
    "ids, chosen",
    [
        (["t.py::test_plain", "t.py::test_m[local-qnn-htp]"], "LoadScheduling"),  # nothing to keep together
        (["t.py::test_plain", "s/edge_suite.toml::golden[local-qnn-htp]"], "DeviceScheduling"),
        (["t.py::test_m[board1-qnn-htp]"], "DeviceScheduling"),
    ],
)
def test_the_scheduler_is_chosen_from_the_first_collection(pytester, ids, chosen):
    config = pytester.parseconfig("--dist", "load", "--tx", "2*popen")  # a real config: the schedulers read it
    scheduler = ChosenOnCollection(config, None, ("board1",), ("board1", "local"))
    first, second = Node("gw0"), Node("gw1")
    scheduler.add_node(first)
    scheduler.add_node(second)
    assert scheduler.nodes == [first, second] and not scheduler.collection_is_completed
    assert not scheduler.tests_finished and scheduler.has_pending
    scheduler.add_node_collection(first, ids)
    assert type(scheduler._chosen).__name__ == chosen and scheduler.nodes == [first, second]
    scheduler.add_node_collection(second, ids)
    assert scheduler.collection_is_completed  # the chosen scheduler's answer, through the wrapper
