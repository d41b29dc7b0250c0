"""Where an edge item runs, carried in the item's stash (never found by the item's class): its device and
provider, the check it runs, and how to find its model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import pytest

from ..errors import EdgeError
from ..markers import model_marker

TARGET = "_edge_target"  # the (device, provider) parameter of marker tests


@dataclass(frozen=True)
class EdgeTarget:
    """An edge item's device and provider, what its failure record names as its check, and, where the item
    knows its model without an ``edge_model`` marker (a suite's), how to find it; ``fields``: what its records
    carry over the session's facts (a suite's file and folder name), its failure record too."""

    device: str
    provider: str
    check: str = "test"
    model: Optional[Callable[[], Path]] = None
    fields: Mapping[str, Any] = field(default_factory=dict)


#: Every edge item (marker test or suite item) carries its target here.
TARGET_KEY = pytest.StashKey[EdgeTarget]()
#: An item that stands for a suite file that does not validate carries the file's path here.
BROKEN_SUITE_KEY = pytest.StashKey[Path]()


def mark_marker_test(item: pytest.Item) -> None:
    """Give a marker test (parametrized over ``TARGET``) its target; other items (and the empty
    parametrization of a run with a usage error) are left alone."""
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(TARGET) if callspec is not None else None
    if isinstance(value, tuple):
        device, provider = value
        item.stash[TARGET_KEY] = EdgeTarget(device, provider)


def item_target(item: pytest.Item) -> Optional[EdgeTarget]:
    """The target of an edge item, None for any other item."""
    return item.stash.get(TARGET_KEY, None)


def item_model(item: pytest.Item) -> Optional[Path]:
    """The model file an edge item tests (its suite's model or its ``edge_model`` marker), or None when
    that is not known (a malformed marker, a model in a package that is not installed)."""
    target = item_target(item)
    try:
        if target is not None and target.model is not None:
            return target.model()
        marker = model_marker(item)
    except EdgeError:
        return None
    return marker.model if marker is not None else None
