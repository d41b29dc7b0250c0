"""The shared text helpers: did-you-mean hints, one-line messages, atomic writes."""

from __future__ import annotations

import os

import pytest

from pytest_edgeort._text import atomic_write, closest, did_you_mean, one_line


def test_did_you_mean_names_the_closest_choice():
    hint = did_you_mean("comand_timeout", ["connect_timeout", "command_timeout"])
    assert hint == " (did you mean 'command_timeout'?)"


def test_did_you_mean_is_empty_without_a_close_choice():
    assert did_you_mean("zzz", ["connect_timeout", "host"]) == ""
    assert did_you_mean("host", []) == ""


def test_closest_for_hints_of_another_shape():
    assert closest("atol", ("rtol", "max_lsb")) == "rtol"
    assert closest("zzz", ("rtol", "max_lsb")) is None


def test_one_line_collapses_whitespace():
    assert one_line("  a\n  b\tc\n\n") == "a b c"
    assert one_line(ValueError("bad\nvalue")) == "bad value"


def test_one_line_keeps_head_and_tail_beyond_the_limit():
    text = "head " + "x" * 1000 + " the reason"
    line = one_line(text, limit=60)
    assert len(line) == 60
    assert line.startswith("head x") and line.endswith("the reason") and " ... " in line
    assert one_line("short", limit=60) == "short"


@pytest.mark.parametrize("data", ["text \u00e9\n", b"\x00\x01bytes"])
def test_atomic_write_writes_the_whole_file(tmp_path, data):
    target = tmp_path / "out.bin"
    target.write_text("old")
    atomic_write(target, data)
    assert (target.read_text(encoding="utf-8") if isinstance(data, str) else target.read_bytes()) == data
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]  # no temp file left


def test_atomic_write_leaves_no_temp_file_on_error(tmp_path):
    target = tmp_path / "a directory"
    target.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        atomic_write(target, "data")
    assert sorted(os.listdir(tmp_path)) == ["a directory"]
    assert not list(target.iterdir())
