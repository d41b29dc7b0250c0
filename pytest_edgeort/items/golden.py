"""The suite's golden check as pytest runs it: outputs against the recorded goldens (a missing golden skips
with the command that writes it), or, with ``--edge-update-golden[=new]``, (re)writing them from a run that
passes its conformance check; and the goldens no item of a run's suites reads."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping

from .._text import one_line
from ..config import suite_of
from ..config.suite import SuiteError, load_suite
from ..outcomes import fail, outcome_of
from .conformance import conclude_examples
from .context import SuiteCheck, SuiteContext, SuiteModels

if TYPE_CHECKING:
    import numpy as np

    from ..devices.session import EdgeSession
    from ..run import EdgeRun


def run_suite(item: SuiteContext) -> None:
    """Compare with ``golden/<provider>.npz``, or write it (``new``: only where it is missing)."""
    from ..checks.golden import GoldenError, golden_paths, load_golden

    run, suite, provider = item.run, item.suite, item.check_node.provider
    models = item.models()
    session = item.device_session(models)
    outputs = session.run_all(models.feeds)
    folder = suite.local_file(suite.golden_dir, "golden_dir")
    shown = suite.path.relative_to(run.rootdir) if suite.path.is_relative_to(run.rootdir) else suite.path
    hint = f"pytest --edge-update-golden {shlex.quote(str(shown))}"
    mode = run.options.update_golden
    if mode == "all" or (mode == "new" and not golden_paths(folder, provider)[0].exists()):
        update(item, session, models, outputs, folder, hint)
        return
    with outcome_of(GoldenError, run=run, skip=(GoldenError,)):
        golden = load_golden(folder, provider, hint)
    if golden.count != len(outputs):
        fail(
            f"golden {folder / provider}.npz holds {golden.count} examples, the suite has {len(outputs)}; "
            f"update it with: {hint}"
        )
    result = item.compare_all(session, outputs, golden.outputs, models)
    written = golden.provenance.get("written", "?")
    title = f"{session.label} vs golden {provider}.npz (written {written})"
    conclude_examples(item.check_node, session, result, title, len(outputs), golden_provenance=golden.provenance)


def update(
    item: SuiteContext,
    session: EdgeSession,
    models: SuiteModels,
    outputs: List[Mapping[str, np.ndarray]],
    folder: Path,
    hint: str,
) -> None:
    """Write the golden, unless the outputs fail the suite's conformance check (then fail saying so); the
    record names what changed in the provenance and how far each output moved."""
    from ..checks.golden import (
        GoldenError,
        drift,
        golden_paths,
        load_golden,
        provenance_changes,
        stack_examples,
        write_golden,
    )

    provider, npz = item.check_node.provider, golden_paths(folder, item.check_node.provider)[0]
    reference = item.reference_session(models)
    result = item.compare_all(session, outputs, stack_examples(reference.run_all(models.feeds)), models)
    if not result.passed:
        item.check_node.record(session, passed=False, comparison=result.to_dict())
        failed = [f"{o.name}: {'; '.join(o.failures)}" for o in result.outputs if not o.passed]
        failed += [f"{name}: missing" for name in result.missing]
        fail(
            f"golden {npz} not written: {session.label} fails its conformance check against the "
            f"{reference.spec.alias} reference ({one_line('; '.join(failed), 300)})"
        )
    try:
        old = load_golden(folder, provider, hint)
    except GoldenError:
        old = None
    provenance = golden_provenance(item, session, len(outputs))
    stacked = stack_examples(outputs)
    lines = provenance_changes(old.provenance if old else None, provenance)
    lines += drift(old, stacked, {o.name: session.model.scale(o.name) for o in session.model.outputs})
    write_golden(folder, provider, stacked, provenance)
    item.check_node.record(session, passed=True, golden_update=lines, golden=str(npz))


def golden_provenance(item: SuiteContext, session: EdgeSession, examples: int) -> Dict[str, Any]:
    """The session's facts, with the user's model as the suite names it (a path in the suite folder or its
    ``pkg:`` source, never the prepared model's cache file; ``model_path`` relative to the rootdir, or the ``pkg:``
    source, so a committed golden names no machine's paths) and the number of examples."""
    suite, rootdir = item.suite, item.run.rootdir
    source = suite.resolve_model(suite.model, "model")
    if source.is_relative_to(rootdir):
        shown = str(source.relative_to(rootdir))
    else:
        shown = suite.model if suite.model.startswith("pkg:") else str(source)
    return {**session.provenance(), "model": suite.model, "model_path": shown, "examples": examples}


def unused_golden_lines(run: EdgeRun, nodeids: Iterable[str]) -> List[str]:
    """One line per golden file of the run's suites (those of ``nodeids``) that no item reads."""
    from ..checks.golden import unused_goldens

    manifests = sorted({manifest for manifest in map(suite_of, nodeids) if manifest is not None})

    lines = []
    for manifest in manifests:
        try:
            suite = load_suite(run.rootdir / manifest)
            folder = suite.local_file(suite.golden_dir, "golden_dir")
        except SuiteError:
            continue  # its item already failed saying why
        providers = (suite.providers or run.options.default_providers) if suite.golden else ()
        runs = f"the suite runs {', '.join(providers)}" if providers else "the suite's golden check is off"
        for path in unused_goldens(folder, providers):
            lines.append(f"{path}: no golden item reads it ({runs})")
    return lines


CHECK = SuiteCheck("golden", run_suite, wanted=lambda suite: suite.golden)
