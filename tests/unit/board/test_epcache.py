"""The EP-context cache's files: entries name their context model by hash, so stores of one key never mix."""

from __future__ import annotations

import json
import os

import pytest

from pytest_edgeort.board.epcache import ContextCache, StaleEntry

FIELDS = {"model": "ab" * 32, "onnxruntime": "1.32.0", "ep": "QNNExecutionProvider", "options": {"a": "1"}}


def stored(cache: ContextCache, data: bytes) -> None:
    temp = cache.temp_path(cache.key(FIELDS))
    with open(temp, "wb") as f:
        f.write(data)
    assert cache.store(FIELDS, temp, [{"ep": "QNNExecutionProvider", "nodes": []}], {"x": "1"})
    assert not os.path.exists(temp)


def test_two_stores_of_one_key_leave_a_consistent_entry(tmp_path):
    """Compiling twice gives other bytes: a worker that read the first entry can still load its file."""
    cache = ContextCache(str(tmp_path))
    stored(cache, b"first compile")
    first = cache.lookup(FIELDS)
    stored(cache, b"second compile")
    second = ContextCache(str(tmp_path)).lookup(FIELDS)
    assert first.path != second.path and open(second.path, "rb").read() == b"second compile"
    assert open(first.path, "rb").read() == b"first compile"
    assert second.facts == {"x": "1"} and second.placement == [{"ep": "QNNExecutionProvider", "nodes": []}]
    cache.drop(FIELDS)
    assert cache.lookup(FIELDS) is None and os.listdir(cache.dir) == []


def test_an_entry_naming_a_file_outside_its_key_is_stale(tmp_path):
    cache = ContextCache(str(tmp_path))
    stored(cache, b"compiled")
    entry = os.path.join(cache.dir, cache.key(FIELDS) + ".json")
    with open(entry) as f:
        record = json.load(f)
    record["file"] = "../models/" + os.path.basename(record["file"])
    with open(entry, "w") as f:
        json.dump(record, f)
    with pytest.raises(StaleEntry, match="names no context model of this key"):
        cache.lookup(FIELDS)
