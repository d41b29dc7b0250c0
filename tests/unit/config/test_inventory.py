"""edge-devices.toml: every key validated; each error names the file, the device, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgeort.config.inventory import DeviceConfig, load_inventory, unknown_device_message
from pytest_edgeort.errors import InventoryError

DESIGN_EXAMPLE = """
[devices.board1]
kind = "ssh"                     # "local" | "ssh"
host = "rb3-01.lab"              # ~/.ssh/config aliases honoured
user = "root"
port = 22
identity_file = "~/.ssh/id_ed25519"
known_hosts = "~/.ssh/known_hosts"   # host keys are verified against this file
python = "/opt/edge/venv/bin/python3"   # the board needs python3 + numpy + onnxruntime(-qnn) only
workdir = "/var/tmp/edgeort"     # model cache on the board
connect_timeout = 10
command_timeout = 120
env = { ADSP_LIBRARY_PATH = "/usr/lib/dsp/cdsp" }
[devices.board1.providers.qnn-htp]
htp_performance_mode = "burst"
"""


def load(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "edge-devices.toml"
    path.write_text(text)
    return load_inventory(path)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(InventoryError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_design_example_parses_into_device_config(tmp_path):
    devices = load(tmp_path, DESIGN_EXAMPLE)
    assert sorted(devices) == ["board1", "local"]
    assert devices["board1"] == DeviceConfig(
        name="board1",
        kind="ssh",
        host="rb3-01.lab",
        user="root",
        port=22,
        identity_file="~/.ssh/id_ed25519",
        known_hosts="~/.ssh/known_hosts",
        python="/opt/edge/venv/bin/python3",
        workdir="/var/tmp/edgeort",
        connect_timeout=10,
        command_timeout=120,
        env={"ADSP_LIBRARY_PATH": "/usr/lib/dsp/cdsp"},
        providers={"qnn-htp": {"htp_performance_mode": "burst"}},
        settings={"cache_max_mb": 4096, "output_max_mb": 1024},  # the default model cache and reply caps
    )


def test_the_model_cache_cap_is_an_inventory_key(tmp_path):
    devices = load(tmp_path, '[devices.b]\nkind = "ssh"\nhost = "h"\ncache_max_mb = 0.5\n')
    assert devices["b"].settings["cache_max_mb"] == 0.5
    assert "megabytes > 0" in error(tmp_path, '[devices.b]\nkind = "ssh"\nhost = "h"\ncache_max_mb = 0\n')


def test_local_exists_without_a_file_and_alongside_one(tmp_path):
    assert load_inventory(None) == {"local": DeviceConfig("local")}
    assert load_inventory(tmp_path / "missing.toml") == {"local": DeviceConfig("local")}
    assert load(tmp_path, '[devices.b]\nkind = "ssh"\nhost = "h"\n')["local"] == DeviceConfig("local")


def test_local_may_be_tuned_but_not_turned_into_a_board(tmp_path):
    local = load(tmp_path, '[devices.local]\nworkdir = "/tmp/x"\nenv = { A = "1" }\n')["local"]
    assert (local.kind, local.workdir, dict(local.env)) == ("local", "/tmp/x", {"A": "1"})
    path = tmp_path / "edge-devices.toml"
    assert error(tmp_path, '[devices.local]\nkind = "ssh"\nhost = "h"\n') == (
        f'{path}: [devices.local]: the name "local" is reserved for this machine (kind = "local"); '
        "give the board another name"
    )


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("kind", '"serial"', 'key "kind": expected one of "local", "ssh", "labgrid", "qai-hub", got \'serial\''),
        ("host", "3", "key 'host': expected a host name, address or ~/.ssh/config alias, got 3"),
        ("host", '""', "key 'host': expected a host name, address or ~/.ssh/config alias, got ''"),
        ("user", "true", "key 'user': expected a user name, got True"),
        ("port", "0", "key 'port': expected an integer port 1-65535, got 0"),
        ("port", "65536", "key 'port': expected an integer port 1-65535, got 65536"),
        ("port", '"22"', "key 'port': expected an integer port 1-65535, got '22'"),
        ("port", "true", "key 'port': expected an integer port 1-65535, got True"),
        ("port", "22.5", "key 'port': expected an integer port 1-65535, got 22.5"),
        ("identity_file", "[]", "key 'identity_file': expected a path to a private key, got []"),
        ("known_hosts", "1", "key 'known_hosts': expected a path to a known_hosts file, got 1"),
        (
            "insecure_skip_host_key_check",
            '"yes"',
            "key 'insecure_skip_host_key_check': expected true or false, got 'yes'",
        ),
        ("python", "3", "key 'python': expected the path of the board's python3, got 3"),
        ("workdir", '" "', "key 'workdir': expected a directory path, got ' '"),
        ("connect_timeout", "0", "key 'connect_timeout': expected a number of seconds > 0, got 0"),
        ("connect_timeout", "false", "key 'connect_timeout': expected a number of seconds > 0, got False"),
        ("command_timeout", "-1.5", "key 'command_timeout': expected a number of seconds > 0, got -1.5"),
        (
            "env",
            "{ A = 1 }",
            "key 'env': expected a table of NAME = \"string\" environment variables, got a table of A (int)",
        ),
        (
            "env",
            '{ "A B" = "1" }',
            "key 'env': expected a table of NAME = \"string\" environment variables, got a table of A B (str)",
        ),
        ("env", '"A=1"', "key 'env': expected a table of NAME = \"string\" environment variables, got 'A=1'"),
        (
            "providers",
            '{ qnn-htp = "burst" }',
            "key 'providers': expected a table of provider option tables, got {'qnn-htp': 'burst'}",
        ),
        (
            "simulator_workers",
            "0",
            "key 'simulator_workers': expected an integer >= 1 (worker processes one batch of a simulated session "
            "may use; 1: no simulator lanes), got 0",
        ),
    ],
)
def test_every_key_is_validated(tmp_path, key, value, expected):
    base = {"kind": '"ssh"', "host": '"h"'}
    base[key] = value
    text = "[devices.board1]\n" + "".join(f"{k} = {v}\n" for k, v in base.items())
    assert error(tmp_path, text) == f"{tmp_path / 'edge-devices.toml'}: [devices.board1] {expected}"


def test_unknown_key_suggests_and_lists_valid_keys(tmp_path):
    message = error(tmp_path, '[devices.b]\nkind = "ssh"\nhost = "h"\nidentityfile = "k"\n')
    assert message.startswith(
        f"{tmp_path / 'edge-devices.toml'}: [devices.b]: unknown key 'identityfile' "
        "(did you mean 'identity_file'?); valid keys: kind, host, user, port, identity_file,"
    )


def test_kind_is_required_and_ssh_needs_a_host(tmp_path):
    where = f"{tmp_path / 'edge-devices.toml'}: [devices.b]"
    assert error(tmp_path, '[devices.b]\nhost = "h"\n') == (
        f'{where}: missing key "kind" (expected "local", "ssh", "labgrid" or "qai-hub")'
    )
    assert error(tmp_path, '[devices.b]\nkind = "ssh"\n') == f'{where}: kind = "ssh" needs key "host"'


def test_ssh_only_keys_are_refused_on_local_devices(tmp_path):
    assert error(tmp_path, '[devices.b]\nkind = "local"\nhost = "h"\n') == (
        f"{tmp_path / 'edge-devices.toml'}: [devices.b] key 'host' only applies to kind = \"ssh\""
    )


def test_provider_names_and_option_keys_are_checked_at_load(tmp_path):
    where = f"{tmp_path / 'edge-devices.toml'}: [devices.b]"
    head = '[devices.b]\nkind = "ssh"\nhost = "h"\n'
    assert error(tmp_path, head + "[devices.b.providers.qnn-hpt]\n").startswith(
        f"{where} key 'providers.qnn-hpt': unknown provider 'qnn-hpt' (did you mean 'qnn-htp'?)"
    )
    assert error(tmp_path, head + '[devices.b.providers.qnn-htp]\nhtp_performence_mode = "burst"\n').startswith(
        f"{where} key 'providers.qnn-htp': unknown option 'htp_performence_mode' for provider qnn-htp "
        "(did you mean 'htp_performance_mode'?); valid keys: "
    )
    ok = load(tmp_path, head + '[devices.b.providers.MyExecutionProvider]\nanything = "1"\n')
    assert ok["b"].providers == {"MyExecutionProvider": {"anything": "1"}}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[devices.b\n", "invalid TOML: "),
        ('[boards.b]\nkind = "ssh"\n', "unknown top-level key 'boards'; expected only [devices.<name>] tables"),
        ("devices = 3\n", "key 'devices' must hold [devices.<name>] tables"),
        ("[devices]\nb = 3\n", "[devices.b] must be a table, got int"),
    ],
)
def test_file_level_errors_name_the_file(tmp_path, text, expected):
    assert error(tmp_path, text).startswith(f"{tmp_path / 'edge-devices.toml'}: {expected}")


def test_unknown_device_lists_known_ones_and_the_source(tmp_path):
    path = tmp_path / "edge-devices.toml"
    devices = load(tmp_path, '[devices.board1]\nkind = "ssh"\nhost = "h"\n[devices.board2]\nkind = "ssh"\nhost = "g"\n')
    assert unknown_device_message("bord1", devices, path) == (
        f"unknown edge device 'bord1' (did you mean 'board1'?); known devices: board1, board2, local (from {path})"
    )
    assert unknown_device_message("x", {"local": DeviceConfig("local")}, tmp_path / "none.toml") == (
        "unknown edge device 'x'; known devices: local (from no inventory file)"
    )


def test_an_inventory_under_a_near_name_is_named(tmp_path):
    """``edge_devices.toml`` where ``edge-devices.toml`` is looked for: the line says which file to rename or name."""
    (tmp_path / "pyproject.toml").write_text("")
    local = {"local": DeviceConfig("local")}
    assert unknown_device_message("board1", local, tmp_path / "edge-devices.toml").endswith("(from no inventory file)")
    (tmp_path / "edge_devices.toml").write_text('[devices.board1]\nkind = "ssh"\nhost = "h"\n')
    assert unknown_device_message("board1", local, tmp_path / "edge-devices.toml") == (
        f"unknown edge device 'board1'; known devices: local (from no inventory file: edge-devices.toml is not in "
        f"{tmp_path}, edge_devices.toml is: rename it or pass --edge-devices-file edge_devices.toml)"
    )


def test_env_errors_name_the_variables_never_their_values(tmp_path):
    message = error(tmp_path, '[devices.b]\nkind = "ssh"\nhost = "h"\nenv = { API_TOKEN = "s3cr3t-value", N = 3 }\n')
    assert "s3cr3t-value" not in message
    assert message.endswith(
        "key 'env': expected a table of NAME = \"string\" environment variables, got a table of "
        "API_TOKEN (str), N (int)"
    )


@pytest.mark.parametrize(
    "content, expected",
    [
        (b'[devices.b]\nkind = "ssh"\nhost = "\xff\xfe"\n', "not UTF-8 text (byte 33: b'\\xff'); expected a TOML file"),
        (None, "cannot be read (Is a directory); expected a TOML file"),
    ],
    ids=["not UTF-8", "a directory"],
)
def test_an_inventory_that_is_no_text_file_is_one_line(tmp_path, content, expected):
    path = tmp_path / "edge-devices.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(info.value) == f"{path}: {expected}"


def test_settings_say_where_a_value_comes_from(tmp_path):
    devices = load(tmp_path, '[devices.b]\nkind = "ssh"\nhost = "h"\ncommand_timeout = 2\n')
    path = tmp_path / "edge-devices.toml"
    assert devices["b"].setting("command_timeout") == f"command_timeout = 2 in {path}"
    assert devices["b"].setting("connect_timeout") == (
        f"connect_timeout = 10, the default (set it under [devices.b] in {path})"
    )


def test_an_invalid_enumerated_option_value_names_the_file_device_and_key(tmp_path):
    head = '[devices.b]\nkind = "ssh"\nhost = "h"\n'
    assert error(tmp_path, head + '[devices.b.providers.qnn-htp]\nhtp_performance_mode = "burts"\n').startswith(
        f"{tmp_path / 'edge-devices.toml'}: [devices.b] key 'providers.qnn-htp': invalid value 'burts' for option "
        "'htp_performance_mode' of provider qnn-htp (did you mean 'burst'?); valid values: burst, "
    )
