"""The device-kind table: an entry is checked against its row, which also sets the lock policy and the factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgeort.config.inventory import DeviceConfig, load_inventory
from pytest_edgeort.config.kinds import BUILTIN_KINDS, DeviceKind, Key, kind_table, pick
from pytest_edgeort.devices import make_device
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.devices.protocol import Device
from pytest_edgeort.errors import InventoryError
from pytest_edgeort.options import EdgeOptions
from pytest_edgeort.run import DeviceRegistry

BENCH = DeviceKind(
    "bench",
    lambda config, kind: ("bench device", config.name, kind.name),
    pick("python", "command_timeout", bench_id=Key((str,), "a bench id"), slots=Key((int,), "a count > 0", default=1)),
    required=("bench_id",),
    lock=True,
)
KINDS = kind_table([[BENCH]])


def load(tmp_path: Path, text: str, kinds=BUILTIN_KINDS) -> dict:
    path = tmp_path / "edge-devices.toml"
    path.write_text(text)
    return load_inventory(path, kinds)


def error(tmp_path: Path, text: str, kinds=BUILTIN_KINDS) -> str:
    with pytest.raises(InventoryError) as info:
        load(tmp_path, text, kinds)
    return str(info.value)


def test_an_unknown_kind_is_one_line_naming_file_device_valid_kinds_and_the_closest(tmp_path):
    where = f"{tmp_path / 'edge-devices.toml'}: [devices.b]"
    assert error(tmp_path, '[devices.b]\nkind = "shh"\nhost = "h"\n') == (
        f'{where} key "kind": expected one of "local", "ssh", "labgrid", "qai-hub", got \'shh\' (did you mean \'ssh\'?)'
    )
    assert error(tmp_path, '[devices.b]\nkind = "bnech"\n', KINDS) == (
        f'{where} key "kind": expected one of "local", "ssh", "labgrid", "qai-hub", "bench", got \'bnech\' '
        "(did you mean 'bench'?)"
    )
    assert error(tmp_path, "[devices.b]\nkind = 3\n") == (
        f'{where} key "kind": expected one of "local", "ssh", "labgrid", "qai-hub", got 3'
    )
    assert error(tmp_path, '[devices.b]\npython = "p"\n', KINDS) == (
        f'{where}: missing key "kind" (expected "local", "ssh", "labgrid", "qai-hub" or "bench")'
    )


def test_a_plugin_kind_is_validated_from_its_row(tmp_path):
    where = f"{tmp_path / 'edge-devices.toml'}: [devices.b]"
    head = '[devices.b]\nkind = "bench"\nbench_id = "x7"\n'
    config = load(tmp_path, head + "command_timeout = 5\n", KINDS)["b"]
    assert (config.kind, config.command_timeout, dict(config.settings)) == ("bench", 5, {"bench_id": "x7", "slots": 1})
    assert config.setting("bench_id") == f"bench_id = 'x7' in {tmp_path / 'edge-devices.toml'}"
    assert error(tmp_path, head + "slots = 1.5\n", KINDS) == f"{where} key 'slots': expected a count > 0, got 1.5"
    assert error(tmp_path, head + 'benchid = "y"\n', KINDS) == (
        f"{where}: unknown key 'benchid' (did you mean 'bench_id'?); valid keys: kind, python, command_timeout, "
        "bench_id, slots"
    )
    assert error(tmp_path, head + 'host = "h"\n', KINDS) == f"{where} key 'host' only applies to kind = \"ssh\""
    assert error(tmp_path, '[devices.b]\nkind = "bench"\n', KINDS) == f'{where}: kind = "bench" needs key "bench_id"'


def test_keys_of_another_kind_name_every_kind_they_apply_to(tmp_path):
    where = f"{tmp_path / 'edge-devices.toml'}: [devices.b]"
    assert error(tmp_path, '[devices.b]\nkind = "bench"\nbench_id = "x"\nworkdir = "/w"\n', KINDS) == (
        f'{where} key \'workdir\' only applies to kind = "local", "ssh" or "labgrid"'
    )


def test_the_lock_policy_comes_from_the_kind_unless_the_entry_sets_lock(tmp_path):
    path = tmp_path / "edge-devices.toml"
    path.write_text(
        '[devices.board]\nkind = "ssh"\nhost = "h"\n'
        '[devices.shared]\nkind = "ssh"\nhost = "h"\nlock = false\n'
        '[devices.bench]\nkind = "bench"\nbench_id = "x"\n'
        '[devices.mine]\nkind = "local"\nlock = true\n'
    )
    selected = ("local", "board", "shared", "bench", "mine")
    registry = DeviceRegistry(EdgeOptions(devices=selected, devices_file=path), print, "run", kinds=KINDS)
    assert registry.locked() == ("board", "bench", "mine")


def test_two_rows_with_one_name_are_refused():
    with pytest.raises(ValueError, match=r"^device kind 'ssh' is defined twice"):
        kind_table([[DeviceKind("ssh", "x:y", {})]])


def test_a_row_whose_starts_ahead_is_no_function_is_refused():
    """(It was a flag before session 20: a plugin's row saying ``starts_ahead=True`` gets one line, not a TypeError
    at the first collected item.)"""
    with pytest.raises(ValueError, match=r"^device kind 'bench': starts_ahead must be a function .* got True$"):
        kind_table([[DeviceKind("bench", "x:y", {}, starts_ahead=True)]])
    assert kind_table([[DeviceKind("bench", "x:y", {}, starts_ahead="m:start")]])["bench"].starts_ahead == "m:start"


def test_the_factory_of_the_row_builds_the_device(tmp_path):
    config = DeviceConfig("local", workdir=str(tmp_path))
    device = make_device(config)
    assert isinstance(device, LocalDevice) and isinstance(device, Device) and device.kind is BUILTIN_KINDS["local"]
    assert device.capabilities.disable_cpu_fallback and device.capabilities.placement == "node"
    assert make_device(DeviceConfig("b", kind="bench"), BENCH) == ("bench device", "b", "bench")


def test_a_labgrid_entry_names_a_place_or_tags_and_takes_no_board_lock(tmp_path):
    where = f"{tmp_path / 'edge-devices.toml'}: [devices.b]"
    head = '[devices.b]\nkind = "labgrid"\ncoordinator = "lab:20408"\n'
    assert error(tmp_path, head) == f'{where}: kind = "labgrid" needs key "place" or "tags"'
    assert error(tmp_path, head + 'tags = { SoC = "x" }\n').startswith(
        f"{where} key 'tags': expected a table of labgrid place tags"
    )
    assert error(tmp_path, head + 'place = "rb3-*"\nhost = "h"\n') == (
        f"{where} key 'host' only applies to kind = \"ssh\""
    )
    assert error(tmp_path, head + 'place = "rb3-*"\nlock = true\n') == (
        f'{where} key \'lock\' only applies to kind = "local" or "ssh"'
    )
    entry = load(tmp_path, head + 'tags = { soc = "qcs6490" }\nlock_timeout = 5\n')["b"]
    assert entry.settings["tags"] == {"soc": "qcs6490"} and entry.lock_timeout == 5
    assert not BUILTIN_KINDS["labgrid"].uses_lock(entry.lock)
