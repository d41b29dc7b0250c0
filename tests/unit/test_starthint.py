"""The start hint: which devices a pytest command starts before collecting (``.edgeort-cache/ahead.json``)."""

from __future__ import annotations

import json
import os

import pytest

from pytest_edgeort.starthint import FILE, KEEP, last_devices, remember


def test_a_command_gets_back_the_devices_it_ran_edge_tests_on(tmp_path):
    cache = tmp_path / ".edgeort-cache"
    assert last_devices(cache, "cmd") == []
    remember(cache, "cmd", ["local", "board1", "local"])
    assert last_devices(cache, "cmd") == ["board1", "local"] and last_devices(cache, "other") == []
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    remember(cache, "cmd", [])  # its tests no longer hold edge tests
    assert last_devices(cache, "cmd") == [] and json.loads((cache / FILE).read_text()) == {}


def test_the_file_is_written_only_when_a_command_changes(tmp_path):
    cache = tmp_path / ".edgeort-cache"
    remember(cache, "cmd", ["local"])
    os.utime(cache / FILE, (1, 1))
    remember(cache, "cmd", ["local"])
    remember(cache, "plain", [])  # a command without edge tests that the file does not name: nothing to write
    assert (cache / FILE).stat().st_mtime == 1


def test_only_the_latest_commands_are_kept(tmp_path):
    cache = tmp_path / ".edgeort-cache"
    for i in range(KEEP + 3):
        remember(cache, f"cmd{i}", ["local"])
    kept = json.loads((cache / FILE).read_text())
    assert len(kept) == KEEP and "cmd2" not in kept and f"cmd{KEEP + 2}" in kept


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"cmd": "local"}', '{"cmd": [1]}'])
def test_a_damaged_file_is_no_hint_and_is_rewritten(tmp_path, content):
    cache = tmp_path / ".edgeort-cache"
    cache.mkdir()
    (cache / FILE).write_text(content)
    assert last_devices(cache, "cmd") == []
    remember(cache, "cmd", ["local"])
    assert last_devices(cache, "cmd") == ["local"]


def test_a_cache_that_cannot_be_written_is_left_as_it_is(tmp_path):
    """The run goes on; its next run starts the worker at the first edge item, as without a hint."""
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    remember(blocked / ".edgeort-cache", "cmd", ["local"])  # its parent is a file: mkdir fails
    assert last_devices(blocked / ".edgeort-cache", "cmd") == []
