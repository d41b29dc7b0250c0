"""What a suite check gets from its item (:class:`SuiteContext`) and how the check table lists it
(:class:`SuiteCheck`): the interface between suite items and the checks they run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Protocol, Union

from ..config.suite import Suite
from ..run import EdgeRun
from .node import CheckNode

if TYPE_CHECKING:
    import numpy as np

    from ..compare.engine import Comparison
    from ..devices.session import EdgeSession


@dataclass
class SuiteModels:
    """What a suite runs: the (prepared) model, its float baseline and the input feeds; ``name`` and
    ``float_name`` are the user's models they came from (a path or a ``pkg:`` source), what records name."""

    model: Path
    float_model: Optional[Path]
    feeds: List[Dict[str, np.ndarray]]
    ranges: Mapping[str, Any]
    name: Union[Path, str, None] = None
    float_name: Union[Path, str, None] = None


class SuiteContext(Protocol):
    """A suite item as its check sees it: the suite, the run, the check's node, and the shared steps
    (each turns an expected problem into the item's one-line outcome)."""

    @property
    def suite(self) -> Suite: ...

    @property
    def run(self) -> EdgeRun: ...

    @property
    def check_node(self) -> CheckNode: ...

    @property
    def where(self) -> str:
        """The suite's ``[tolerance]``, for messages."""

    def models(self) -> SuiteModels:
        """The prepared model, its float baseline and the feeds (prepared once per suite)."""

    def options(self, provider: str) -> Mapping[str, Any]:
        """The suite's options for ``provider``."""

    def device_session(self, models: SuiteModels) -> EdgeSession:
        """The model on the item's device and provider."""

    def reference_session(self, models: SuiteModels) -> EdgeSession:
        """The model on the suite's reference."""

    def float_session(self, models: SuiteModels) -> Optional[EdgeSession]:
        """The float baseline on the device's CPU, where the tolerance needs one."""

    def compare_all(
        self,
        session: EdgeSession,
        actual: List[Mapping[str, np.ndarray]],
        expected: Mapping[str, np.ndarray],
        models: SuiteModels,
    ) -> Comparison:
        """Every example against ``expected`` (stacked on axis 0) under the suite's tolerance."""


@dataclass(frozen=True)
class SuiteCheck:
    """One entry of the check table: the check's name (its item is ``<name>[<device>-<provider>]``), how it
    runs, whether a suite wants it, and whether it only applies to accelerators (not to ``cpu``)."""

    name: str
    run: Callable[[SuiteContext], None]
    wanted: Callable[[Suite], bool] = lambda suite: True
    accelerator_only: bool = False
    not_hosted: Optional[str] = None  # why the check does not run on hosted devices (AI Hub); None: it does
    runs_reference: bool = True  # it runs the examples on the reference too (what a hosted device submits ahead)
