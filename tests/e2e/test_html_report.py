"""The HTML report a person reads: written by a real run (ini or command line, also when interrupted),
self-contained, and rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Dict, Tuple

import pytest

from tests.support.htmlpage import histogram_bars, parse, summary_rows
from tests.support.runs import require_qnn, run

require_qnn()

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WINDOW = (1280, 2000)

TESTS = """
import pytest

@pytest.mark.edge_model(r"{qdq}")
@pytest.mark.edge_providers("qnn-htp")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

@pytest.mark.edge_model(r"{wrong}", reference_model=r"{qdq}")
@pytest.mark.edge_providers("qnn-htp")
def test_changed_model_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
"""


@pytest.fixture(scope="module")
def html_run(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    """One real run (slow: the QNN HTP simulator), shared by this module's tests: the HTML path comes
    from the ini option ``edge_html``, the JSON report of the same run from the command line."""
    folder = tmp_path_factory.mktemp("html_run")
    (folder / "pytest.ini").write_text("[pytest]\nedge_html = out/report.html\n")
    (folder / "test_models.py").write_text(
        TESTS.format(qdq=model_dir / "conv_matmul_qdq.onnx", wrong=model_dir / "conv_matmul_qdq_wrong.onnx")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--edge-report=report.json"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one test failed
    return {"html": folder / "out" / "report.html", "report": json.loads((folder / "report.json").read_text())}


def test_html_report_from_the_ini_has_rows_links_and_a_plot_per_output(html_run):
    text = html_run["html"].read_text(encoding="utf-8")
    report = html_run["report"]
    assert text.startswith("<!DOCTYPE html>") and "http" not in text and "<script" not in text  # self-contained
    page = parse(text)
    rows = [[cell.all_text() for cell in row.children] for row in summary_rows(page)]
    assert [(row[0].rsplit("/", 1)[-1], row[3].split()[0]) for row in rows] == [
        ("conv_matmul_qdq_wrong.onnx", "FAIL"),
        ("conv_matmul_qdq.onnx", "PASS"),
    ]  # failures first
    links = [a.attrs.get("href", "") for a in page.iter("a")]
    assert {"#grp-0", "#grp-1", "#row-0", "#row-1"} <= set(links)  # summary -> details -> summary
    records = report["results"]
    assert {link for link in links if link.startswith("#rec-")} == {f"#rec-{n}" for n in range(len(records))}
    histograms = [len(out["histogram"]) for r in records for out in r["comparison"]["outputs"]]
    bars = [len(plot) for plot in histogram_bars(page)]
    assert sorted(bars) == sorted(histograms) and len(histograms) == 2 and min(histograms) >= 8
    failed = next(r for r in records if r["outcome"] == "failed")
    assert failed["comparison"]["outputs"][0]["worst"]  # shown below, with its error text
    assert "worst elements" in text and "1 of 1 outputs failed" in text
    assert "on CPU" in text  # QNN runs graph-input/output quantization on CPU when fallback is allowed
    assert not list(html_run["html"].parent.glob(".*.tmp"))  # atomic write


def _png_facts(path: Path) -> Tuple[int, int, int]:
    """(width, height, distinct byte values in the decompressed image data) of a PNG file."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, at = b"", 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IDAT":
            idat += data[at + 8 : at + 8 + length]
        at += 12 + length
    return width, height, len(set(zlib.decompress(idat)[::7]))


def _chromium(*args: str, timeout: float = 90) -> str:
    """Run headless Chromium once with a fresh profile; killed with all its processes on timeout."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise


@pytest.mark.skipif(
    not shutil.which(CHROMIUM),
    reason=f"headless Chromium ({CHROMIUM}) is not installed: "
    "install the distribution's chromium package to render the HTML report in a browser",
)
def test_html_report_renders_in_headless_chromium(html_run, tmp_path):
    url = html_run["html"].resolve().as_uri()
    screenshot = tmp_path / "report.png"
    _chromium(f"--screenshot={screenshot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", url)
    width, height, values = _png_facts(screenshot)
    assert (width, height) == WINDOW and values > 16, "the screenshot is blank or one colour"
    assert screenshot.stat().st_size > 20_000  # a one-colour page of this size compresses to a few kB
    dom = parse(_chromium("--dump-dom", url))  # the DOM the browser built from the file
    assert len(summary_rows(dom)) == 2 and [len(bars) >= 8 for bars in histogram_bars(dom)] == [True, True]


def test_an_unwritable_html_report_is_one_line_and_the_run_is_not_green(pytester, model_dir):
    target = pytester.path / "reports"
    target.mkdir()
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("cpu")
def test_quick(edge_session, edge_inputs):
    assert edge_session.run(edge_inputs)
''')
    result = run(pytester, f"--edge-html={target}", "--edge-report=r.json")
    assert result.ret == 1 and "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"edgeort: cannot write the --edge-html {target}: Is a directory", "*1 passed*"])
    assert (pytester.path / "r.json").exists()  # the JSON report is written all the same
    assert not [p for p in pytester.path.iterdir() if p.name.endswith(".tmp")]


def test_html_report_is_written_when_the_run_is_interrupted(pytester, model_dir):
    pytester.makepyfile(f'''
import os
import signal
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("cpu")
def test_a_runs(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

def test_b_ctrl_c():
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even where CI ignores SIGINT
    os.kill(os.getpid(), signal.SIGINT)
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--edge-html=report.html", timeout=120)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    text = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "<strong>INTERRUPTED</strong>" in text and "test_a_runs[local-cpu]" in text


def test_a_suite_that_does_not_validate_is_a_failed_row_in_every_report(pytester, model_dir):
    """``provider = [...]`` (a typo for ``providers``) next to a valid model: one failed item, the run's
    summary line, and both reports written, the HTML with the broken suite as a failing row."""
    folder = pytester.path / "broken"
    folder.mkdir()
    shutil.copyfile(model_dir / "conv_matmul_qdq.onnx", folder / "m.onnx")
    (folder / "edge_suite.toml").write_text('model = "m.onnx"\nprovider = ["qnn-htp"]\n')
    result = run(pytester, "--edge-html=r.html", "--edge-report=r.json")
    assert result.ret == 1 and "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*unknown key 'provider' (did you mean 'providers'?)*", "*= 1 failed in *"])
    (record,) = json.loads((pytester.path / "r.json").read_text())["results"]
    assert (record["check"], record["outcome"]) == ("suite", "failed")
    page = parse((pytester.path / "r.html").read_text(encoding="utf-8"))
    rows = [[cell.all_text() for cell in row.children] for row in summary_rows(page)]
    assert [row[:4] for row in rows] == [["broken", "-", "-", "FAIL 0/1"]]
    assert "unknown key 'provider' (did you mean 'providers'?)" in page.all_text()
