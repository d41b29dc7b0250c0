"""Where an edge item runs, carried in the item's stash (never found by the item's class): its device and
provider, the check it runs, and how to find its model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, NamedTuple, Optional, Sequence

import pytest

from ..config.providers import resolve_provider
from ..errors import EdgeError, ProviderError
from ..markers import MarkerError, model_marker, providers_marker

if TYPE_CHECKING:
    from ..run import EdgeRun

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
    fields: Mapping[str, Any] = field(default_factory=dict)  # what every record of the item names (its suite)


class TargetParam(NamedTuple):
    """The ``_edge_target`` parameter of a marker test: its device and provider, or, for a provider its
    ``edge_providers`` marker names wrongly, the one-line error that fails that test instance only."""

    device: str
    provider: str
    error: Optional[str] = None


def marker_targets(run: EdgeRun, node: pytest.Item, devices: Sequence[str]) -> List[TargetParam]:
    """A marker test's parameters: every device x provider it asks for (the run's defaults when it names
    none), minus those ``--edge-provider`` drops; a provider that does not resolve (a typo) or a malformed
    ``edge_providers`` marker is a parameter that fails with its one line, never a usage error of the run."""
    try:
        requested = providers_marker(node).providers
    except MarkerError as exc:
        return [TargetParam(device, "providers", str(exc)) for device in devices]
    bad = {}
    for name in requested:
        try:
            resolve_provider(name)
        except ProviderError as exc:
            bad[name] = f"{node.nodeid}: edge_providers: {exc}"
    good = tuple(name for name in requested if name not in bad)
    providers = run.providers_for(good or None) if good or not requested else []
    return [TargetParam(d, p) for d in devices for p in providers] + [
        TargetParam(d, name, error) for d in devices for name, error in bad.items()
    ]


def filtered_out(run: EdgeRun, node: pytest.Item) -> str:
    """Why a marker test has no parameter on the selected devices: ``--edge-provider`` kept none of its providers."""
    asked = providers_marker(node).providers or run.options.default_providers
    kept = ", ".join(run.options.providers)
    return f"--edge-provider {kept} keeps none of the providers this test runs on ({', '.join(asked)})"


#: Every edge item (marker test or suite item) carries its target here.
TARGET_KEY = pytest.StashKey[EdgeTarget]()
#: An item that stands for a suite file that does not validate carries the file's path here.
BROKEN_SUITE_KEY = pytest.StashKey[Path]()


def mark_marker_test(item: pytest.Item) -> None:
    """Give a marker test (parametrized over ``TARGET``) its target; other items (and the empty
    parametrization of a run with a usage error) are left alone."""
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(TARGET) if callspec is not None else None
    if isinstance(value, TargetParam):
        item.stash[TARGET_KEY] = EdgeTarget(value.device, value.provider)


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
    except (EdgeError, MarkerError):  # the test itself fails with that line
        return None
    return marker.model if marker is not None else None
