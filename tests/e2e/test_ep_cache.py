"""The EP-context cache as a user's runs see it: stored by one run, a proven hit in the next (same verdict,
same placement in the report), and off with --edge-no-ep-cache."""

from __future__ import annotations

import json

from tests.support.runs import MATCH_TEST, require_qnn, run

require_qnn()


def test_a_second_run_loads_the_compiled_graph_and_no_ep_cache_turns_it_off(pytester, model_dir):
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    pytester.makefile(".toml", **{"edge-devices": f'[devices.local]\nworkdir = "{pytester.path}/w"\n'})
    records = []
    for n, flags in enumerate([(), (), ("--edge-no-ep-cache",)]):
        run(pytester, f"--edge-report=r{n}.json", *flags).assert_outcomes(passed=1)
        (record,) = json.loads((pytester.path / f"r{n}.json").read_text())["results"]
        records.append(record)
    assert [r["ep_context"] and r["ep_context"]["state"] for r in records] == ["stored", "hit", None]
    assert records[0]["ep_context"]["key"] == records[1]["ep_context"]["key"]
    assert records[0]["placement"] == records[1]["placement"] == records[2]["placement"]
    assert records[1]["placement"]["QNNExecutionProvider"]["Conv"] == 2  # from the entry, not one EPContext node
    assert records[0]["comparison"] == records[1]["comparison"] == records[2]["comparison"]
    contexts = sorted(p.name for p in (pytester.path / "w" / "epcontext").glob("*.onnx"))
    assert len(contexts) == 3  # the model's, and the worker's own graphs' (QNN HTP probe, memory scrub)
    assert sum(name.startswith(records[0]["ep_context"]["key"]) for name in contexts) == 1
