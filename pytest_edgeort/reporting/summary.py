"""End-of-run summary: one row per model x device x provider, failures first, plus skip reasons."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ..config.providers import ALIASES, available_aliases, unprobed_aliases, unusable_aliases
from .schema import PLACEMENT_VERDICTS, STRICT_VERDICT, CheckRecord, number

_BAD = ("failed", "error")
SIMULATED_MARK = "~"  # after a latency figure measured on a simulator


@dataclass
class SummaryRow:
    """Aggregated results of one model on one device and provider."""

    model: str  # the suite folder or the model path, relative to the rootdir where it is inside
    device: str
    provider: str
    outcomes: List[str] = field(default_factory=list)
    max_lsb: Optional[float] = None
    max_lsb_output: Optional[str] = None  # the output the max LSB is in
    max_lsb_unit: Optional[str] = None  # its precision: max_lsb counts steps of its quantization (u8, u16)
    snr_db: Optional[float] = None  # plain SNR
    snr_q_db: Optional[float] = None  # the SNR min_snr_db judges (errors within 1 LSB not counted)
    topk: Optional[float] = None
    coverage: Optional[float] = None  # with CPU fallback allowed
    strict_coverage: Optional[float] = None  # with CPU fallback disabled (a passed no_cpu_fallback check)
    p50_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    latency_simulated: bool = False
    speedup: Optional[float] = None

    @property
    def verdict(self) -> str:
        if any(o in _BAD for o in self.outcomes):
            return "FAIL"
        if self.outcomes and all(o == "skipped" for o in self.outcomes):
            return "SKIP"
        return "XFAIL" if "xfailed" in self.outcomes else "PASS"  # a known finding stays visible

    @property
    def checks(self) -> str:
        """'3/4': tests of this row that passed, of all that ran (skips aside)."""
        ran = [o for o in self.outcomes if o != "skipped"]
        return f"{sum(o in ('passed', 'xfailed') for o in ran)}/{len(ran)}" if ran else "-"


def _worst(current: Optional[float], value: Any, pick) -> Optional[float]:
    value = number(value)  # JSON's "inf"/"-inf" (identical outputs: SNR inf) as numbers
    if value is None or math.isnan(value):
        return current
    return value if current is None else pick(current, value)


def row_name(record: CheckRecord, rootdir: Optional[Path]) -> str:
    """What a row is keyed by: the suite folder, else the model path (relative to the rootdir where
    it is inside), else the model's file name."""
    where = record.suite or record.model_path
    if not where:
        return str(record.model)
    path = Path(where).parent if record.suite else Path(where)
    if rootdir is not None:
        try:
            return str(path.relative_to(rootdir))
        except ValueError:
            pass
    return str(path)


def row_key(record: CheckRecord, rootdir: Optional[Path]) -> Tuple[str, str, str]:
    """The summary row of a record: (:func:`row_name`, device, provider); "-" for what it does not name
    (a suite file that did not validate names no device)."""
    return row_name(record, rootdir), record.device or "-", record.provider or "-"


def build_rows(
    records: Iterable[CheckRecord], outcomes: Mapping[str, str], rootdir: Optional[Path] = None
) -> List[SummaryRow]:
    """Rows from the run's check records that name a model, failures first."""
    rows: Dict[Tuple[str, str, str], SummaryRow] = {}
    seen: Dict[Tuple[str, str, str], set] = {}
    for rec in records:
        if rec.model is None or rec.op_matrix is not None:  # op-matrix cases have a table of their own
            continue
        key = row_key(rec, rootdir)
        row = rows.setdefault(key, SummaryRow(*key))
        nodeid = rec.nodeid or ""
        if nodeid not in seen.setdefault(key, set()):
            seen[key].add(nodeid)
            row.outcomes.append(outcomes.get(nodeid, "passed" if rec.passed is not False else "failed"))
        for out in rec.outputs:
            worst = _worst(row.max_lsb, out.get("max_lsb"), max)
            if worst is not None and worst != row.max_lsb:
                row.max_lsb, row.max_lsb_output, row.max_lsb_unit = worst, out.get("name"), out.get("precision")
            row.snr_db = _worst(row.snr_db, out.get("snr_db"), min)
            judged = out.get("snr_q_db") if out.get("snr_q_db") is not None else out.get("snr_db")
            row.snr_q_db = _worst(row.snr_q_db, judged, min)
            row.topk = _worst(row.topk, out.get("topk_agreement"), min)
        if rec.ep != "CPUExecutionProvider":
            if rec.cpu_fallback is not False:
                row.coverage = _worst(row.coverage, rec.npu_coverage, min)
            else:
                row.strict_coverage = _worst(row.strict_coverage, rec.npu_coverage, min)
        if rec.latency:
            row.p50_ms, row.p90_ms = rec.latency.get("p50_ms"), rec.latency.get("p90_ms")
            row.latency_simulated = bool(rec.latency_simulated)
            row.speedup = rec.speedup_vs_cpu
    return sorted(rows.values(), key=lambda r: (r.verdict != "FAIL", r.model, r.device, r.provider))


def fp16_notes(
    records: Iterable[CheckRecord], device_facts: Mapping[str, Mapping[str, Any]], rootdir: Optional[Path] = None
) -> List[str]:
    """One line per float model compared on ``qnn-htp`` of an x86-64 simulator: it computed in fp32
    there, where real HTP computes float in fp16, so a pass says little about a board."""
    notes: Dict[str, str] = {}
    for rec in records:
        outputs = rec.outputs
        machine = (device_facts.get(rec.device or "") or {}).get("machine")
        if (
            rec.provider != "qnn-htp"
            or rec.op_matrix is not None
            or machine not in ("x86_64", "AMD64")
            or not outputs
            or any(out.get("scale") is not None or "float" not in str(out.get("actual_dtype")) for out in outputs)
        ):
            continue
        name = row_name(rec, rootdir)
        snr = None
        for out in outputs:
            snr = _worst(snr, out.get("snr_db"), min)
        notes.setdefault(
            name,
            f"note: {name} is a float model: on qnn-htp the x86-64 simulator computes it in fp32 "
            f"(SNR {format_number(snr, '.1f')} dB here), real HTP in fp16; check it with qnn-htp-fp16 "
            "(on the simulator with soc_model set)",
        )
    return list(notes.values())


def u8_kernel_notes(records: Iterable[CheckRecord], device_facts: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """One line per device compared against a CPU reference on another machine whose u8 kernels differ
    (``u8_isa`` of the two): onnxruntime's u8 results depend on them (VNNI computes exactly, AVX2 alone
    saturates pairwise sums: an argmax can flip between hosts, onnxruntime#6004), so they are not the
    device's own CPU's."""
    notes: Dict[str, str] = {}
    for rec in records:
        device, host = rec.device, rec.reference_device
        if not device or not host or device == host or device in notes:
            continue
        ours, theirs = ((device_facts.get(name) or {}).get("u8_isa") for name in (host, device))
        if ours is None or theirs is None or set(ours) == set(theirs):
            continue
        notes[device] = (
            f"note: {device} is compared against a CPU reference on {host}, whose u8 kernels differ "
            f"({', '.join(ours) or 'none'} vs {', '.join(theirs) or 'none'} on {device}): u8 results differ "
            "between such kernels by rounding and saturation; reference='cpu' uses the device's own CPU"
        )
    return list(notes.values())


def placement_notes(records: Iterable[CheckRecord]) -> List[str]:
    """One line per device whose passed no_cpu_fallback check proved something weaker than "fallback disabled"
    (a hosted device's profile), so the table's verdict is not read as the strict one."""
    notes: Dict[str, str] = {}
    for rec in records:
        verdict = rec.placement_verdict
        if rec.device and verdict and verdict != STRICT_VERDICT and rec.device not in notes:
            notes[rec.device] = (
                f"note: no_cpu_fallback on {rec.device} means {verdict!r}: {PLACEMENT_VERDICTS.get(verdict, verdict)}"
            )
    return list(notes.values())


def format_number(value: Optional[float], fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return format(value, fmt)


def format_ms(value: Optional[float]) -> str:
    """Milliseconds in one readable format: 3160, 31.6, 0.508."""
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.3f}"


def _left_cut(text: str, width: int) -> str:
    """The end of a long name (where paths differ), marked with '...'."""
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def format_max_lsb(row: SummaryRow, width: int) -> str:
    """``3 u8 logits``: the largest error in steps of its output's quantization, the unit, and the output."""
    if row.max_lsb is None:
        return "-"
    text = " ".join(p for p in (format_number(row.max_lsb, ".0f"), row.max_lsb_unit, row.max_lsb_output) if p)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_rows(rows: List[SummaryRow], labels: Optional[List[str]] = None) -> List[str]:
    """The summary table; ``labels``: a first column naming each row's run (``diff``'s OLD/NEW)."""
    width = max(len(label) for label in ["run", *labels]) if labels else 0
    header = (f"{'run':{width}s} " if labels else "") + (
        f"{'model':32s} {'device':10s} {'provider':12s} {'verdict':12s} {'max LSB, output':18s} {'SNRq dB':>7s} "
        f"{'top-k %':>7s} {'NPU %':>6s} {'p50 ms':>8s} {'p90 ms':>8s} {'speedup':>8s}"
    )
    lines = [header, "-" * len(header)]
    for i, r in enumerate(rows):
        strict = r.strict_coverage is not None
        coverage = r.strict_coverage if strict else r.coverage
        coverage_text = "-" if coverage is None else f"{100 * coverage:.0f}" + ("" if strict else "*")
        topk = None if r.topk is None else 100 * r.topk
        sim = SIMULATED_MARK if r.latency_simulated else ""
        lead = f"{labels[i]:{width}s} " if labels else ""
        lines.append(
            f"{lead}{_left_cut(r.model, 32):32s} {r.device[:10]:10s} {r.provider[:12]:12s} "
            f"{r.verdict + ' ' + r.checks:12s} "
            f"{format_max_lsb(r, 18):18s} {format_number(r.snr_q_db, '.1f'):>7s} "
            f"{format_number(topk, '.0f'):>7s} {coverage_text:>6s} "
            f"{format_ms(r.p50_ms) + sim:>8s} {format_ms(r.p90_ms) + sim:>8s} "
            f"{format_number(r.speedup, '.2g') + sim:>8s}"
        )
    if any(r.max_lsb is not None or r.snr_q_db is not None for r in rows):
        lines.append(
            "max LSB: largest error in steps of the output's quantization (u8/u16 LSB), and that output; "
            "SNRq: the SNR min_snr_db judges (errors within 1 LSB not counted); top-k %: top-k classes agreeing"
        )
    if any(r.latency_simulated for r in rows):
        lines.append(
            f"ms {SIMULATED_MARK}: simulated latency (QNN's HTP simulator on x86-64): not a board's latency or speed-up"
        )
    if any(r.strict_coverage is None and r.coverage is not None for r in rows):
        lines.append(
            "NPU % *: with CPU fallback allowed (QNN then runs graph-input/output quantization on CPU); "
            "without *: with CPU fallback disabled"
        )
    return lines


def skip_counts(reasons: Iterable[str]) -> List[Tuple[str, int]]:
    """Skip reasons with their counts, most frequent first."""
    return Counter(reasons).most_common()


def device_line(name: str, caps: Mapping[str, Any]) -> str:
    """'edgeort device local: Linux-...-x86_64, python 3.11.7, onnxruntime 1.31.1, QNN SDK ... ; providers: ...'."""
    if caps.get("hosted"):
        return hosted_line(name, caps["hosted"], caps.get("aliases") or ())
    qnn = caps.get("qnn") or {}
    providers = available_aliases(tuple(caps.get("providers", ())), qnn)
    unusable = unusable_aliases(qnn)
    listed = f"; listed but unusable: {', '.join(unusable)} (no session on its backend)" if unusable else ""
    unprobed = unprobed_aliases(tuple(caps.get("providers", ())), qnn)
    listed += f"; not probed: {', '.join(unprobed)} (no selected test runs on it)" if unprobed else ""
    qnn_text = f", QNN SDK {qnn.get('sdk_version')} (EP {qnn.get('ep_package_version')})" if qnn else ""
    soc = f" [{caps['soc']}]" if caps.get("soc") else ""
    simulated = ALIASES["qnn-htp"].simulated(caps) and "htp" in qnn.get("backends", ())
    note = "; qnn-htp is QNN's HTP simulator on x86-64: its latency and speed-up are not a board's" if simulated else ""
    return (
        f"edgeort device {name}: {caps.get('platform')}{soc}, python {caps.get('python')}, "
        f"onnxruntime {caps.get('onnxruntime')}{qnn_text}; providers: {', '.join(providers)}{listed}{note}"
    )


def hosted_line(name: str, hosted: Mapping[str, Any], aliases: Iterable[str]) -> str:
    """'edgeort device s24: Qualcomm AI Hub (...): Samsung Galaxy S24 (Family), os 14 [chipset, hexagon v75] ...'."""
    chip = ", ".join(f"{key} {hosted[key]}" for key in ("chipset", "hexagon") if hosted.get(key))
    double = "; a TEST DOUBLE of AI Hub: nothing from it is evidence about a real device"
    double = double if hosted.get("test_double") else ""
    return (
        f"edgeort device {name}: {hosted.get('service')}: {hosted.get('device')}, os {hosted.get('os')} [{chip}], "
        f"{hosted.get('client')}; providers: {', '.join(aliases)}; CPU fallback cannot be disabled there{double}"
    )


def lock_lines(device_facts: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """One line per device whose board lock (or labgrid place) this run had to wait for."""
    lines = []
    for name, facts in sorted(device_facts.items()):
        lock = facts.get("board_lock") or {}
        place = facts.get("labgrid") or {}
        if lock.get("waited_for"):
            lines.append(
                f"edgeort device {name}: waited {lock['waited_s']:.1f} s for the board lock "
                f"{lock['path']} (held by {lock['waited_for']})"
            )
        if place.get("waited_for"):
            lines.append(
                f"edgeort device {name}: waited {place['waited_s']:.1f} s for labgrid place {place['place']} "
                f"({place['waited_for']})"
            )
    return lines
