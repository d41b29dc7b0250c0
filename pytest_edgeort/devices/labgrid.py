"""The ``labgrid`` device kind: a board from a labgrid lab, acquired for the run and then driven as an SSH board.

On first use the device connects to the coordinator, waits (up to ``lock_timeout``) for a free place
matching ``place``/``tags``, acquires it (:mod:`.labplace`), and points its SSH settings at the place's
NetworkService; from there it is an :class:`~.ssh.SSHDevice` (same worker, host-key checks, messages).
The lab's acquisition replaces the board lock. :meth:`LabgridDevice.close` releases the place (at the
end of the run, also after Ctrl-C/SIGTERM).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

from fabric import Connection

from ..config.inventory import DeviceConfig
from ..config.kinds import DeviceKind
from ..errors import DeviceUnavailable
from .labplace import LabSession, PlaceFinder, coordinator_address
from .ssh import SSHDevice


class LabgridDevice(SSHDevice):
    """An SSH board whose address comes from the labgrid place this run acquired."""

    def __init__(self, config: DeviceConfig, kind: Optional[DeviceKind] = None) -> None:
        super().__init__(config, kind)
        self.finder: Optional[PlaceFinder] = None

    @property
    def address(self) -> str:
        if self.config.host is None:
            return f"labgrid {self.config.settings.get('coordinator') or 'LG_COORDINATOR'}"
        return super().address

    def connection(self) -> Connection:
        """The SSH connection to the acquired place's NetworkService, acquiring the place first."""
        with self._lock:
            if self.finder is None or self.finder.held is None:
                self._acquire()
        return super().connection()

    def _acquire(self) -> None:
        settings = self.config.settings
        address = coordinator_address(settings.get("coordinator"))
        if address is None:
            raise DeviceUnavailable(
                f'device {self.name!r}: no labgrid coordinator: set coordinator = "host:port" under '
                f"[devices.{self.name}] in {self.config.source} or LG_COORDINATOR in the environment"
            )
        if self.finder is None:
            lab = LabSession(self.name, address, self.config.connect_timeout)
            self.finder = PlaceFinder(lab, settings.get("place"), settings.get("tags") or {}, self.notify)
        held = self.finder.acquire(self.config.lock_timeout)
        service = held.service
        self.config = dataclasses.replace(self.config, host=service.address, user=service.username, port=service.port)
        self.notify(
            f"edgeort: device {self.name!r}: acquired labgrid place {held.place} on {address} "
            f"(NetworkService {service.username}@{service.address}:{service.port})"
        )

    def facts(self) -> Optional[Dict[str, Any]]:
        """The SSH board's facts plus the labgrid place it ran on."""
        facts = super().facts()
        if facts is not None and self.finder is not None and self.finder.held is not None:
            facts["labgrid"] = self.finder.held.to_dict()
        return facts

    def close(self) -> None:
        """Stop the workers, then release the place and leave the coordinator."""
        super().close()
        finder, self.finder = self.finder, None
        if finder is None:
            return
        held = finder.held
        try:
            finder.release()
        except Exception as exc:  # the coordinator went away: say how to release the place by hand
            if held is not None:
                self.notify(
                    f"edgeort: device {self.name!r}: could not release labgrid place {held.place} "
                    f"({type(exc).__name__}); release it with "
                    f"`labgrid-client -x {held.coordinator} -p {held.place} release`"
                )
        finally:
            finder.lab.close()
