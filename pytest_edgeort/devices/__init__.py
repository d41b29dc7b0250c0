"""Devices and the sessions on them; this module holds only the factory for inventory entries.

The factory goes through the device-kind table (:mod:`pytest_edgeort.config.kinds`): a row names its
device class (and its worker start, ``starts_ahead``) as ``"module:attribute"``, imported when first used, so
importing this package (the plugin does) loads neither numpy nor fabric.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ..config.kinds import BUILTIN_KINDS, DeviceKind

if TYPE_CHECKING:
    from ..config.inventory import DeviceConfig
    from .protocol import Device


def make_device(config: DeviceConfig, kind: Optional[DeviceKind] = None) -> Device:
    """The device object for an inventory entry, built by its kind's factory (``kind`` defaults to
    the built-in row of ``config.kind``)."""
    kind = kind or BUILTIN_KINDS[config.kind]
    return imported(kind.factory)(config, kind)


def imported(ref: Union[str, Callable[..., Any]]) -> Callable[..., Any]:
    """A callable of the device-kind table: itself, or ``"module:attribute"`` imported."""
    if isinstance(ref, str):
        module, _, attribute = ref.partition(":")
        return getattr(importlib.import_module(module), attribute)
    return ref
