"""The op-support matrix as pytest runs it (``--edge-op-matrix``): the ONNX node-test corpus collected as one
item per case x device x provider, each classified and recorded; a classified case passes."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Union

import pytest

from ..errors import EdgeError
from ..outcomes import outcome_of, require_provider, skip_on_hosted
from ..reporting.schema import CheckRecord
from ..run import CACHE_DIR, EdgeRun, edge_run
from .base import FixturelessItem
from .node import CheckNode
from .target import TARGET_KEY, EdgeTarget

if TYPE_CHECKING:
    from ..checks.opmatrix import MatrixResult
    from ..devices.protocol import Device
    from ..devices.session import EdgeSession
    from ..model.corpus import Case

CHECK = "op_matrix"
CORPUS = "onnx-node-tests"  # the collector's name: items are ``onnx-node-tests::test_relu[local-qnn-htp]``


def add_corpus(session: pytest.Session, report: pytest.CollectReport) -> None:
    """Put the corpus into the session's collection: next to the tests the command line names, or alone
    when it names none (``pytest --edge-op-matrix`` runs the matrix only)."""
    corpus = OpCorpus.from_parent(session, name=CORPUS, nodeid=CORPUS)
    if session.config.args_source != pytest.Config.ArgsSource.ARGS:
        report.result[:] = [corpus]
    else:
        report.result.append(corpus)


class OpCorpus(pytest.Collector):
    """The node tests of the installed onnx wheel whose name matches ``--edge-op-filter``, per selected device
    and provider (``--edge-provider``, else the default providers)."""

    def collect(self) -> Iterator[pytest.Item]:
        from ..model.corpus import load_corpus

        run = edge_run(self.config)
        options = run.options
        pattern = re.compile(options.op_filter)
        try:
            devices = run.device_names()
            providers = run.providers_for(options.providers or None)
        except ValueError as exc:
            raise self.CollectError(str(exc)) from None
        self.root, cases = load_corpus(run.rootdir / CACHE_DIR)
        for case in cases:
            if not pattern.search(case.name):
                continue
            for device in devices:
                for provider in providers:
                    yield OpMatrixItem.from_parent(
                        self, name=f"{case.name}[{device}-{provider}]", case=case, device=device, provider=provider
                    )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, self.CollectError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class CaseSessions:
    """The sessions of one case, opened for it alone and closed after it (not the run's cache: 1,900 models
    kept open would fill the EP's memory, and a case must not see another case's sessions)."""

    def __init__(self, run: EdgeRun) -> None:
        self.run = run
        self.opened: List[EdgeSession] = []

    def session(
        self,
        device_name: str,
        model_path: Path,
        provider: str,
        options: Any = None,
        cpu_fallback: bool = True,
        name: Optional[Union[Path, str]] = None,
    ) -> EdgeSession:
        session = self.run.session(device_name, model_path, provider, options, cpu_fallback, name, cached=False)
        self.opened.append(session)
        return session

    def device(self, name: str) -> Device:
        return self.run.device(name)

    def close(self) -> None:
        for session in self.opened:
            session.close()
        self.opened.clear()


class OpMatrixItem(FixturelessItem):
    """One node test on one device and provider: classified (``reporting.schema.OP_MATRIX_CLASSES``) and recorded.
    It passes once classified, whatever the class (the matrix is a report; ``diff`` gates); a missing device
    or provider skips (fails with ``--edge-strict``); an error of the plugin itself fails."""

    def __init__(self, *, case: Case, device: str, provider: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.device = device
        self.provider = provider
        self.stash[TARGET_KEY] = EdgeTarget(device, provider, CHECK, lambda: case.model(self.parent.root))
        self.extra_keyword_matches.update((case.op_type, CHECK))  # ``-k Conv`` selects by operator too

    def reportinfo(self) -> Any:
        return self.path, None, f"{CORPUS}::{self.name}"

    def runtest(self) -> None:
        import onnx

        from ..checks.opmatrix import classify

        run = edge_run(self.config)
        require_provider(run, self.device, self.provider)
        skip_on_hosted(run, self.device, "the op matrix", "it would be one job per node test and provider")
        sessions = CaseSessions(run)
        started = time.perf_counter()
        try:
            with outcome_of(EdgeError, run=run):
                result = classify(sessions, self.device, self.provider, self.case, self.parent.root)
            self._record(run, result, onnx.__version__, time.perf_counter() - started)
        finally:
            sessions.close()  # after the record: it reads the open session's placement

    def _record(self, run: EdgeRun, result: MatrixResult, onnx_version: str, seconds: float) -> None:
        fields = {
            "op_matrix": result.to_dict(self.case, onnx_version, seconds),
            "comparison": result.comparison.to_dict() if result.comparison is not None else None,
            "cpu_nodes": [{"op_type": op, "count": len(v), "nodes": v} for op, v in result.cpu_nodes.items()] or None,
            "error": None if result.klass == "ok" else result.detail,
        }
        if result.session is not None:
            CheckNode(run, self, CHECK, self.device, self.provider, {"model": self.case.name}).record(
                result.session, **fields
            )
            return
        model = str(self.case.model(self.parent.root))
        facts = {"device": self.device, "provider": self.provider, "model": self.case.name, "model_path": model}
        run.record(CheckRecord(nodeid=self.nodeid, check=CHECK, **facts, **fields))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Optional[Any] = None) -> Any:
        if isinstance(excinfo.value, EdgeError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)
