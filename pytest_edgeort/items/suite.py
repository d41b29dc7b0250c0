"""pytest nodes for ``edge_suite.toml``: one item per check x device x provider, the checks from the
check table; a suite file that does not validate is one failing item."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional

import pytest

from ..config.providers import resolve_provider
from ..config.suite import MissingPackage, Suite, SuiteError, load_suite
from ..errors import EdgeError
from ..outcomes import fail, open_session, outcome_of, skip_on_hosted
from ..run import CACHE_DIR, EdgeRun, edge_run
from .base import FixturelessItem
from .context import SuiteModels
from .node import CheckNode
from .prepared import suite_model_files
from .table import SUITE_CHECKS
from .target import BROKEN_SUITE_KEY, TARGET_KEY, EdgeTarget

if TYPE_CHECKING:
    import numpy as np

    from ..compare.engine import Comparison
    from ..devices.session import EdgeSession


class SuiteFile(pytest.File):
    """An ``edge_suite.toml``; prepares its model once, lazily, for all its items."""

    def collect(self) -> Iterator[pytest.Item]:
        run = edge_run(self.config)
        try:
            self.suite = load_suite(self.path, tuple(SUITE_CHECKS))
        except SuiteError as exc:  # one failing item, not a collection error that stops the whole run
            yield MalformedSuite.from_parent(self, name="suite", error=str(exc))
            return
        try:
            providers = run.providers_for(self.suite.providers or None)
            devices = run.device_names()
        except ValueError as exc:
            raise self.CollectError(str(exc)) from None
        self._models: Optional[SuiteModels] = None
        self._error: Optional[Exception] = None
        for check in SUITE_CHECKS.values():
            if not check.wanted(self.suite):
                continue
            for device in devices:
                for provider in providers:
                    if check.accelerator_only and not resolve_provider(provider).accelerator:
                        continue
                    item = SuiteItem.from_parent(
                        self,
                        name=f"{check.name}[{device}-{provider}]",
                        check=check.name,
                        device=device,
                        provider=provider,
                    )
                    if check.name in self.suite.xfail:
                        item.add_marker(pytest.mark.xfail(reason=self.suite.xfail[check.name], strict=True))
                    yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, self.CollectError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def models(self, run: EdgeRun) -> SuiteModels:
        """Resolve, prepare (content-hash cached) and load inputs once; errors are remembered."""
        if self._error is not None:
            raise self._error
        if self._models is None:
            try:
                self._models = self._load_models(run)
            except (EdgeError, ValueError) as exc:
                self._error = exc
                raise
        return self._models

    def _load_models(self, run: EdgeRun) -> SuiteModels:
        from ..model.info import model_info
        from ..model.inputs import generate_inputs, load_npz, split_examples

        suite = self.suite
        files = suite_model_files(suite, run.rootdir / CACHE_DIR)
        model = files.model
        info = model_info(model)
        ranges: Dict[str, Any] = {}
        if suite.inputs:
            path = suite.local_file(suite.inputs, "inputs")
            feeds = split_examples(info, load_npz(path), str(path))
        else:
            spec = suite.generate
            count = spec.count if spec else 4
            seed = spec.seed if spec and spec.seed is not None else run.options.seed
            if spec:
                ranges = {t.name: spec.default_range for t in info.inputs if spec.default_range}
                ranges.update(spec.ranges)
            feeds = [generate_inputs(info, seed, i, ranges) for i in range(count)]
        return SuiteModels(model, files.float_model, feeds, ranges, files.name, files.float_name)


class SuiteNode(FixturelessItem):
    """An item of an ``edge_suite.toml``, headed ``<suite folder>::<name>`` in reports."""

    def reportinfo(self):
        return self.path, 0, f"{self.path.parent.name}::{self.name}"  # line 0: -rs lines name the suite file


class MalformedSuite(SuiteNode):
    """An ``edge_suite.toml`` that does not validate: one item failing with its one-line error."""

    def __init__(self, *, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.stash[BROKEN_SUITE_KEY] = self.path
        self.extra_keyword_matches.update(SUITE_CHECKS)  # ``-k conformance`` still reports the broken suite

    def runtest(self) -> None:
        fail(self.error)


class SuiteItem(SuiteNode):
    """One check of a suite on one device and provider (a :class:`~.context.SuiteContext` to its check)."""

    def __init__(self, *, check: str, device: str, provider: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.device = device
        self.provider = provider
        model = partial(self.suite.resolve_model, self.suite.model, "model")
        self.stash[TARGET_KEY] = EdgeTarget(device, provider, check, model, self.record_fields)

    @property
    def suite(self) -> Suite:
        return self.parent.suite  # type: ignore[attr-defined,no-any-return]

    @property
    def run(self) -> EdgeRun:
        return edge_run(self.config)

    @property
    def record_fields(self) -> Dict[str, Any]:
        """What every record of this item names: the suite file, and its folder as the model (prepared models
        are named by hash)."""
        return {"suite": str(self.suite.path), "model": self.suite.folder.name}

    @property
    def check_node(self) -> CheckNode:
        return CheckNode(self.run, self, self.check, self.device, self.provider, self.record_fields)

    @property
    def where(self) -> str:
        return f"{self.suite.path}: [tolerance]"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, EdgeError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def runtest(self) -> None:
        check = SUITE_CHECKS[self.check]
        if check.not_hosted is not None:
            skip_on_hosted(self.run, self.device, self.check, check.not_hosted)
        check.run(self)

    def submit_ahead(self) -> None:
        """On a device whose runs are hosted jobs (AI Hub): submit this item's examples on its provider, and on
        the reference and the float baseline where those run on the same device, now, before any item runs; the
        item collects them when it runs. Nothing for other kinds; a problem is left for the item to report."""
        from ..checks.conformance import open_float_session, reference_target
        from ..model.yardstick import YARDSTICK_DIR

        run, check = self.run, SUITE_CHECKS[self.check]
        try:
            if check.not_hosted is not None or not run.device(self.device).capabilities.jobs:
                return
            models = self.parent.models(run)  # type: ignore[attr-defined]
            targets = [(self.device, self.provider)]
            if check.runs_reference:
                targets.append(reference_target(self.device, self.suite.reference))
            sessions = [
                run.session(device, models.model, provider, self.options(provider), True, models.name)
                for device, provider in dict.fromkeys(targets)
                if device == self.device
            ]
            if check.runs_reference:
                cache = run.rootdir / CACHE_DIR / YARDSTICK_DIR
                opener = partial(run.session, name=models.float_name)
                tolerance = self.suite.tolerance
                baseline = open_float_session(opener, self.device, models.float_model, tolerance, models.model, cache)
                sessions += [baseline] if baseline is not None else []
            for session in sessions:
                session.submit(models.feeds)
        except (EdgeError, ValueError):
            return

    # -- the shared steps of the checks (SuiteContext)
    def models(self) -> SuiteModels:
        with outcome_of(EdgeError, ValueError, run=self.run, skip=(MissingPackage,)):
            return self.parent.models(self.run)  # type: ignore[attr-defined,no-any-return]

    def options(self, provider: str) -> Mapping[str, Any]:
        return self.suite.provider_options.get(provider, {})

    def device_session(self, models: SuiteModels) -> EdgeSession:
        options = self.options(self.provider)
        return open_session(self.run, self.device, models.model, self.provider, options, name=models.name)

    def reference_session(self, models: SuiteModels) -> EdgeSession:
        from ..checks.conformance import reference_target

        device, provider = reference_target(self.device, self.suite.reference)
        return open_session(self.run, device, models.model, provider, self.options(provider), name=models.name)

    def float_session(self, models: SuiteModels) -> Optional[EdgeSession]:
        from ..checks.conformance import open_float_session
        from ..model.yardstick import YARDSTICK_DIR

        cache = self.run.rootdir / CACHE_DIR / YARDSTICK_DIR
        opener = partial(open_session, self.run, name=models.float_name)
        return open_float_session(opener, self.device, models.float_model, self.suite.tolerance, models.model, cache)

    def compare_all(
        self,
        session: EdgeSession,
        actual: List[Mapping[str, np.ndarray]],
        expected: Mapping[str, np.ndarray],
        models: SuiteModels,
    ) -> Comparison:
        from ..checks.conformance import compare_examples

        float_session = self.float_session(models)
        with outcome_of(ValueError):
            return compare_examples(
                session, actual, expected, models.feeds, self.suite.tolerance, self.where, float_session
            )


def submit_ahead(run: EdgeRun, items: List[pytest.Item]) -> None:
    """Every suite item's hosted jobs, submitted before the first item runs (see :meth:`SuiteItem.submit_ahead`);
    one notice per hosted device says how many."""
    for item in items:
        if isinstance(item, SuiteItem):
            item.submit_ahead()
    for name, device in run.devices.items():
        jobs = (device.facts() or {}).get("jobs") if device.capabilities.jobs else None
        if jobs:
            run.registry.notify(
                f"edgeort device {name}: {jobs['submitted']} job(s) submitted ahead, {jobs['reattached']} re-attached "
                "(from an earlier run or worker); each item collects its own"
            )
