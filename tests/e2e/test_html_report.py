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
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from tests.support.runs import require_qnn, run

require_qnn()

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
WINDOW = (1280, 2000)

TESTS = '''
import pytest

@pytest.mark.edge_model(r"{qdq}")
@pytest.mark.edge_providers("qnn-htp")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

@pytest.mark.edge_model(r"{wrong}", reference_model=r"{qdq}")
@pytest.mark.edge_providers("qnn-htp")
def test_changed_model_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
'''


class _Page(HTMLParser):
    """Summary rows (their cells' text), ids, links, and per <svg> the number of histogram bars."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: List[str] = []
        self.links: List[str] = []
        self.rows: List[List[str]] = []
        self.bars: List[int] = []
        self._in_summary = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, str]]) -> None:
        attr = dict(attrs)
        if "id" in attr:
            self.ids.append(attr["id"])
            self._in_summary = attr["id"] == "summary" or (self._in_summary and attr["id"].startswith("row-"))
        if tag == "a" and "href" in attr:
            self.links.append(attr["href"])
        if tag == "h2" and attr.get("id") != "summary":
            self._in_summary = False
        if self._in_summary and tag == "tr":
            self.rows.append([])
        if self._in_summary and tag == "td":
            self.rows[-1].append("")
            self._in_cell = True
        if tag == "svg":
            self.bars.append(0)
        if tag == "rect" and "bar" in attr.get("class", "").split():
            self.bars[-1] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False
        if tag == "table":
            self._in_summary = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.rows[-1][-1] += data


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def html_run(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    """One real run (slow: the QNN HTP simulator), shared by this module's tests: the HTML path comes
    from the ini option ``edge_html``, the JSON report of the same run from the command line."""
    folder = tmp_path_factory.mktemp("html_run")
    (folder / "pytest.ini").write_text("[pytest]\nedge_html = out/report.html\n")
    (folder / "test_models.py").write_text(TESTS.format(qdq=model_dir / "conv_matmul_qdq.onnx",
                                                        wrong=model_dir / "conv_matmul_qdq_wrong.onnx"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--edge-report=report.json"],
                          cwd=folder, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one test failed
    return {"folder": folder, "html": folder / "out" / "report.html", "stdout": proc.stdout,
            "report": json.loads((folder / "report.json").read_text())}


def test_html_report_from_the_ini_has_rows_links_and_a_plot_per_output(html_run):
    text = html_run["html"].read_text(encoding="utf-8")
    report = html_run["report"]
    assert text.startswith("<!DOCTYPE html>") and "http" not in text and "<script" not in text  # self-contained
    page = _parse(text)
    assert [(row[0].rsplit("/", 1)[-1], row[3].split()[0]) for row in page.rows if row] == [
        ("conv_matmul_qdq_wrong.onnx", "FAIL"), ("conv_matmul_qdq.onnx", "PASS")]  # failures first
    assert {"#grp-0", "#grp-1", "#row-0", "#row-1"} <= set(page.links)  # summary -> details -> summary
    records = report["results"]
    assert [f"#rec-{n}" for n in range(len(records))] == sorted(link for link in page.links if link.startswith("#rec-"))
    histograms = [len(out["histogram"]) for r in records for out in r["comparison"]["outputs"]]
    assert sorted(page.bars) == sorted(histograms) and len(histograms) == 2 and min(histograms) >= 8
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
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"IDAT":
            idat += data[at + 8:at + 8 + length]
        at += 12 + length
    return width, height, len(set(zlib.decompress(idat)[::7]))


def _chromium(*args: str, timeout: float = 90) -> str:
    """Run headless Chromium once with a fresh profile; killed with all its processes on timeout."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            return proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"headless Chromium ({CHROMIUM}) is not installed: "
                    "install the distribution's chromium package to render the HTML report in a browser")
def test_html_report_renders_in_headless_chromium(html_run, tmp_path):
    url = html_run["html"].resolve().as_uri()
    screenshot = tmp_path / "report.png"
    _chromium(f"--screenshot={screenshot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", url)
    width, height, values = _png_facts(screenshot)
    assert (width, height) == WINDOW and values > 16, "the screenshot is blank or one colour"
    assert screenshot.stat().st_size > 20_000  # a one-colour page of this size compresses to a few kB
    dom = _parse(_chromium("--dump-dom", url))  # the DOM the browser built from the file
    assert len([row for row in dom.rows if row]) == 2 and len(dom.bars) == 2 and min(dom.bars) >= 8


def test_an_unwritable_html_report_is_one_line_and_the_run_is_not_green(pytester, model_dir):
    target = pytester.path / "reports"
    target.mkdir()
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / 'conv_matmul_qdq.onnx'}")
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

@pytest.mark.edge_model(r"{model_dir / 'conv_matmul_qdq.onnx'}")
@pytest.mark.edge_providers("cpu")
def test_a_runs(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

def test_b_ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--edge-html=report.html", timeout=120)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    text = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "<strong>INTERRUPTED</strong>" in text and "test_a_runs[local-cpu]" in text
