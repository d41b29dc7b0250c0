"""The suite's golden check as pytest runs it: outputs against the recorded goldens (a missing golden skips
with the command that writes it), or, with ``--edge-update-golden``, (re)writing them."""

from __future__ import annotations

from ..outcomes import fail, outcome_of
from .conformance import conclude_examples
from .context import SuiteCheck, SuiteContext


def run_suite(item: SuiteContext) -> None:
    """Compare with ``golden/<provider>.npz``, or write it."""
    from ..checks.golden import GoldenError, drift, load_golden, stack_examples, write_golden

    run, suite, provider = item.run, item.suite, item.check_node.provider
    models = item.models()
    session = item.device_session(models)
    outputs = session.run_all(models.feeds)
    folder = suite.local_file(suite.golden_dir, "golden_dir")
    shown = suite.path.relative_to(run.rootdir) if suite.path.is_relative_to(run.rootdir) else suite.path
    hint = f"pytest --edge-update-golden {shown}"
    if run.options.update_golden:
        try:
            old = load_golden(folder, provider, hint)
        except GoldenError:
            old = None
        stacked = stack_examples(outputs)
        write_golden(folder, provider, stacked, {**session.provenance(), "examples": len(outputs)})
        lines = drift(old, stacked, {o.name: session.model.scale(o.name) for o in session.model.outputs})
        item.check_node.record(session, passed=True, golden_update=lines, golden=str(folder / f"{provider}.npz"))
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


CHECK = SuiteCheck("golden", run_suite, wanted=lambda suite: suite.golden)
