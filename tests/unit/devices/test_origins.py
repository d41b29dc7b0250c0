"""Origins: which feed produced the output arrays a session returned."""

from __future__ import annotations

import gc

import numpy as np

from pytest_edgeort.devices.origins import Origins


def _run(origins: Origins, value: float) -> tuple:
    feed = {"x": np.full(3, value, np.float32)}
    outputs = {"y": np.full(2, value * 2, np.float32), "z": np.full(1, value, np.float32)}
    origins.add(outputs, feed)
    return feed, outputs


def test_each_runs_outputs_lead_to_its_own_feed_while_they_are_held():
    origins = Origins()
    (feed_a, out_a), (feed_b, out_b) = _run(origins, 1.0), _run(origins, 2.0)
    assert origins.feed_of(out_a) is feed_a and origins.feed_of(out_b) is feed_b
    assert origins.feed_of({"y": out_a["y"]}) is feed_a  # a subset, in a dict of the test's own
    assert origins.feed_of({"y": out_a["y"], "z": out_b["z"]}) is None  # two runs' arrays
    assert origins.feed_of({"y": np.full(2, 9.0, np.float32)}) is None  # the test's own array
    assert origins.feed_of({"y": out_b["y"].copy()}) is feed_b  # a copy of the last run's, by value


def test_an_entry_goes_with_its_array():
    origins = Origins()
    _run(origins, 1.0)
    _run(origins, 2.0)  # the last run's outputs stay held (matched by value)
    gc.collect()
    assert len(origins._feeds) == 2
