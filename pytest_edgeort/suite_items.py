"""pytest nodes for ``edge_suite.toml``: one item per check x device x provider."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional

import pytest

from .config.providers import resolve_provider
from .config.suite import CHECKS, MissingPackage, Suite, SuiteError, load_suite
from .errors import EdgeError
from .junit import record_latency, record_metrics, record_provenance
from .no_fallback_item import assert_no_fallback
from .outcomes import fail, open_session, unavailable
from .run import CACHE_DIR, EdgeRun, edge_run

if TYPE_CHECKING:
    import numpy as np

    from .compare.engine import Comparison
    from .devices.session import EdgeSession


@dataclass
class SuiteModels:
    """What a suite runs: the (prepared) model, its float baseline and the input feeds."""

    model: Path
    float_model: Optional[Path]
    feeds: List[Dict[str, np.ndarray]]
    ranges: Mapping[str, Any]


class SuiteFile(pytest.File):
    """An ``edge_suite.toml``; prepares its model once, lazily, for all its items."""

    def collect(self) -> Iterator[pytest.Item]:
        run = edge_run(self.config)
        try:
            self.suite = load_suite(self.path)
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
        for check in self.suite.checks():
            for device in devices:
                for provider in providers:
                    if check == "no_cpu_fallback" and not resolve_provider(provider).accelerator:
                        continue
                    item = SuiteItem.from_parent(
                        self, name=f"{check}[{device}-{provider}]", check=check, device=device, provider=provider
                    )
                    if check in self.suite.xfail:
                        item.add_marker(pytest.mark.xfail(reason=self.suite.xfail[check], strict=True))
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
        from .model.info import model_info
        from .model.inputs import generate_inputs, load_npz, split_examples

        suite = self.suite
        source = suite.resolve_model(suite.model, "model")
        float_source = suite.resolve_model(suite.float_model, "float_model") if suite.float_model else None
        model, float_model = source, float_source
        if suite.prepare is not None:
            from .model.prepare import prepare_model

            recipe = suite.prepare
            cache = run.rootdir / CACHE_DIR / "prepared"
            model = prepare_model(source, recipe, suite.folder, cache)
            float_recipe = recipe.float_baseline()
            if float_source is not None:
                float_model = (
                    float_source
                    if float_recipe.is_empty
                    else prepare_model(float_source, float_recipe, suite.folder, cache)
                )
            elif recipe.quantize:
                float_model = prepare_model(source, float_recipe, suite.folder, cache)
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
        return SuiteModels(model, float_model, feeds, ranges)


class SuiteNode(pytest.Item):
    """An item of an ``edge_suite.toml``, headed ``<suite folder>::<name>`` in reports."""

    def reportinfo(self):
        return self.path, 0, f"{self.path.parent.name}::{self.name}"  # line 0: -rs lines name the suite file


class MalformedSuite(SuiteNode):
    """An ``edge_suite.toml`` that does not validate: one item failing with its one-line error."""

    def __init__(self, *, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.extra_keyword_matches.update(CHECKS)  # ``-k conformance`` still reports the broken suite

    def runtest(self) -> None:
        fail(self.error)


class SuiteItem(SuiteNode):
    """One check of a suite on one device and provider."""

    def __init__(self, *, check: str, device: str, provider: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.device = device
        self.provider = provider

    @property
    def suite(self) -> Suite:
        return self.parent.suite  # type: ignore[attr-defined,no-any-return]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, EdgeError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    # -- shared steps
    def _models(self, run: EdgeRun) -> SuiteModels:
        try:
            return self.parent.models(run)  # type: ignore[attr-defined,no-any-return]
        except (EdgeError, ValueError) as exc:
            error = exc
        if isinstance(error, MissingPackage):  # outside the except block: no exception chain in the report
            unavailable(run, str(error))
        fail(str(error))

    def _options(self, provider: str) -> Mapping[str, Any]:
        return self.suite.provider_options.get(provider, {})

    def _session(self, run: EdgeRun, models: SuiteModels) -> EdgeSession:
        return open_session(run, self.device, models.model, self.provider, self._options(self.provider))

    def _reference(self, run: EdgeRun, models: SuiteModels) -> EdgeSession:
        from .checks.conformance import reference_target

        device, provider = reference_target(self.device, self.suite.reference)
        return open_session(run, device, models.model, provider, self._options(provider))

    def _float_session(self, run: EdgeRun, models: SuiteModels) -> Optional[EdgeSession]:
        from .checks.conformance import open_float_session
        from .model.yardstick import YARDSTICK_DIR

        cache = run.rootdir / CACHE_DIR / YARDSTICK_DIR
        opener = partial(open_session, run)
        return open_float_session(opener, self.device, models.float_model, self.suite.tolerance, models.model, cache)

    @property
    def _where(self) -> str:
        return f"{self.suite.path}: [tolerance]"

    def _compare_all(
        self,
        run: EdgeRun,
        session: EdgeSession,
        actual: List[Mapping[str, np.ndarray]],
        expected: Mapping[str, np.ndarray],
        models: SuiteModels,
    ) -> Comparison:
        from .checks.conformance import compare_examples

        float_session = self._float_session(run, models)
        try:
            return compare_examples(
                session, actual, expected, models.feeds, self.suite.tolerance, self._where, float_session
            )
        except ValueError as exc:
            error = str(exc)
        fail(error)

    def _conclude(
        self, run: EdgeRun, session: EdgeSession, result: Comparison, message: str, title: str, **fields: Any
    ) -> None:
        """Record the comparison, then fail with ``message`` and the full report if it did not pass."""
        from .compare.render import format_comparison

        self._record(run, session, passed=result.passed, comparison=result.to_dict(), **fields)
        record_metrics(self, result)
        if not result.passed:
            fail(f"{message}:\n" + format_comparison(result, title=title))

    def _conclude_examples(
        self, run: EdgeRun, session: EdgeSession, result: Comparison, title: str, examples: int, **fields: Any
    ) -> None:
        """:meth:`_conclude` for ``examples`` compared stacked on axis 0."""
        self._conclude(
            run,
            session,
            result,
            f"{title}, {examples} examples stacked on axis 0 (the first index of an element is its example)",
            title,
            examples=examples,
            **fields,
        )

    def _record(self, run: EdgeRun, session: EdgeSession, **fields: Any) -> None:
        run.record(
            {
                "nodeid": self.nodeid,
                "check": self.check,
                "suite": str(self.suite.path),
                **session.provenance(),
                "model": self.suite.folder.name,
                **fields,
            }
        )  # prepared models are named by hash: show the suite
        record_provenance(self, session.provenance())

    # -- the checks
    def runtest(self) -> None:
        run = edge_run(self.config)
        getattr(self, f"run_{self.check}")(run)

    def run_conformance(self, run: EdgeRun) -> None:
        from .checks.golden import stack_examples

        models = self._models(run)
        session = self._session(run, models)
        reference = self._reference(run, models)
        actual = [session.run(feed) for feed in models.feeds]
        expected = stack_examples([reference.run(feed) for feed in models.feeds])
        result = self._compare_all(run, session, actual, expected, models)
        title = f"{session.label} vs {reference.spec.alias} reference"
        self._conclude_examples(run, session, result, title, len(actual), reference_device=reference.device.name)

    def run_no_cpu_fallback(self, run: EdgeRun) -> None:
        models = self._models(run)
        assert_no_fallback(
            run,
            self,
            self.device,
            self.provider,
            models.model,
            self._options(self.provider),
            fields={"model": self.suite.folder.name, "suite": str(self.suite.path)},
        )

    def run_golden(self, run: EdgeRun) -> None:
        from .checks.golden import GoldenError, drift, load_golden, stack_examples, write_golden

        models = self._models(run)
        session = self._session(run, models)
        outputs = [session.run(feed) for feed in models.feeds]
        folder = self.suite.local_file(self.suite.golden_dir, "golden_dir")
        path = self.suite.path
        shown = path.relative_to(run.rootdir) if path.is_relative_to(run.rootdir) else path
        hint = f"pytest --edge-update-golden {shown}"
        if run.options.update_golden:
            try:
                old = load_golden(folder, self.provider, hint)
            except GoldenError:
                old = None
            stacked = stack_examples(outputs)
            write_golden(folder, self.provider, stacked, {**session.provenance(), "examples": len(outputs)})
            lines = drift(old, stacked, {o.name: session.model.scale(o.name) for o in session.model.outputs})
            self._record(run, session, passed=True, golden_update=lines, golden=str(folder / f"{self.provider}.npz"))
            return
        try:
            golden = load_golden(folder, self.provider, hint)
        except GoldenError as exc:
            golden, missing = None, str(exc)
        if golden is None:
            unavailable(run, missing)
        if golden.count != len(outputs):
            fail(
                f"golden {folder / self.provider}.npz holds {golden.count} examples, the suite has {len(outputs)}; "
                f"update it with: {hint}"
            )
        result = self._compare_all(run, session, outputs, golden.outputs, models)
        self._conclude_examples(
            run,
            session,
            result,
            f"{session.label} vs golden {self.provider}.npz (written {golden.provenance.get('written', '?')})",
            len(outputs),
            golden_provenance=golden.provenance,
        )

    def run_latency(self, run: EdgeRun) -> None:
        from .checks.latency import measure_latency

        models = self._models(run)
        session = self._session(run, models)
        cpu = None if self.provider == "cpu" else partial(open_session, run, self.device, models.model, "cpu")
        result = measure_latency(session, models.feeds[0], self.suite.latency_runs, self.suite.latency_p90_ms, cpu)
        stats = result.stats
        self._record(
            run,
            session,
            passed=result.passed,
            latency=stats.to_dict(),
            speedup_vs_cpu=result.speedup_vs_cpu,
            latency_gate_ms=result.gate_ms,
        )
        record_latency(self, stats.p50_ms, stats.p90_ms)
        if not result.passed:
            fail(result.failure(session.label))

    def run_fuzz(self, run: EdgeRun) -> None:
        from .checks.fuzz import fuzz

        models = self._models(run)
        session = self._session(run, models)
        reference = self._reference(run, models)
        float_session = self._float_session(run, models)
        try:
            result = fuzz(
                session,
                reference,
                float_session,
                self.suite.tolerance,
                self._where,
                self.suite.fuzz_examples,
                run.options.seed,
                models.ranges,
            )
        except ValueError as exc:
            result = exc
        if isinstance(result, ValueError):
            fail(str(result))
        if result.comparison is None:
            self._record(run, session, passed=True, fuzz_examples=result.examples)
            return
        path = self._save_failing(run, result.feed)
        self._conclude(
            run,
            session,
            result.comparison,
            f"{session.label}: a generated input is outside tolerance (shrunk); reproduce with "
            f"numpy.load({str(path)!r})",
            "fuzz",
            fuzz_examples=result.examples,
            fuzz_input=str(path),
        )

    def _save_failing(self, run: EdgeRun, feed: Mapping[str, np.ndarray]) -> Path:
        import numpy as np

        folder = run.rootdir / CACHE_DIR / "fuzz"
        folder.mkdir(parents=True, exist_ok=True)
        suite = (
            self.suite.folder.relative_to(run.rootdir)
            if self.suite.folder.is_relative_to(run.rootdir)
            else self.suite.folder
        )
        path = folder / f"{'_'.join(suite.parts).strip('_/')}-{self.device}-{self.provider}.npz"
        np.savez(path, **feed)
        return path
