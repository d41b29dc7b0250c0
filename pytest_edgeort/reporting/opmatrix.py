"""The op matrix's outputs from check records: the op type x class table (terminal and HTML), the time line,
and the CSV of one row per case x device x provider."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

from .._text import atomic_write
from ..errors import ReportError
from .html_blocks import e, html_table
from .schema import OP_MATRIX_CLASSES, CheckRecord

CSV_COLUMNS = (
    "case",
    "op_type",
    "device",
    "provider",
    "class",
    "detail",
    "error_class",
    "signal",
    "cpu_ops",
    "max_abs_error",
    "matches_expected",
    "expected_max_abs_error",
    "opset",
    "onnx",
    "onnxruntime",
    "qnn_sdk",
    "seconds",
)
Group = Tuple[str, str]  # (device, provider)


def matrix_records(records: Iterable[CheckRecord]) -> List[CheckRecord]:
    """The records of op-matrix cases, sorted by case, device and provider."""
    found = [r for r in records if r.op_matrix is not None]
    return sorted(found, key=lambda r: (r.op_matrix["case"], r.device or "", r.provider or ""))  # type: ignore[index]


def class_counts(records: Sequence[CheckRecord]) -> Dict[Group, Dict[str, Counter]]:
    """Per (device, provider): per op type, how many cases got each class."""
    table: Dict[Group, Dict[str, Counter]] = {}
    for record in records:
        matrix = record.op_matrix or {}
        ops = table.setdefault((record.device or "-", record.provider or "-"), {})
        ops.setdefault(str(matrix.get("op_type")), Counter())[str(matrix.get("class"))] += 1
    return table


def _columns(records: Sequence[CheckRecord]) -> List[str]:
    """The classes that occur, in table order (an unknown class of a newer writer last)."""
    seen = {str((r.op_matrix or {}).get("class")) for r in records}
    return [c for c in OP_MATRIX_CLASSES if c in seen] + sorted(seen - set(OP_MATRIX_CLASSES))


def format_matrix(records: Sequence[CheckRecord]) -> List[str]:
    """Terminal lines: per device and provider, one row per op type with its cases per class, then totals
    and the time the cases took."""
    columns = _columns(records)
    lines: List[str] = []
    for (device, provider), ops in sorted(class_counts(records).items()):
        header = f"{'op type':28s} " + " ".join(f"{c:>{max(len(c), 3)}s}" for c in columns) + f" {'cases':>6s}"
        lines += [f"op matrix on {device}/{provider}:", header, "-" * len(header)]
        totals: Counter = Counter()
        for op, counts in sorted(ops.items()):
            totals.update(counts)
            cells = " ".join(f"{counts.get(c, 0) or '.':>{max(len(c), 3)}}" for c in columns)
            lines.append(f"{op[:28]:28s} {cells} {sum(counts.values()):>6d}")
        cells = " ".join(f"{totals.get(c, 0):>{max(len(c), 3)}}" for c in columns)
        lines.append(f"{'total':28s} {cells} {sum(totals.values()):>6d}")
    seconds = sum(float((r.op_matrix or {}).get("seconds") or 0.0) for r in records)
    lines.append(f"op matrix: {len(records)} cases classified in {seconds:.1f} s of case time (sum over workers)")
    return lines


def csv_rows(records: Sequence[CheckRecord]) -> List[Dict[str, object]]:
    """One row per case x device x provider (:data:`CSV_COLUMNS`)."""
    rows = []
    for record in records:
        matrix = dict(record.op_matrix or {})
        cpu_ops = matrix.get("cpu_ops") or {}
        matrix["cpu_ops"] = " ".join(f"{op}x{count}" for op, count in sorted(cpu_ops.items()))
        facts = {"device": record.device, "provider": record.provider, "onnxruntime": record.onnxruntime}
        row = {**matrix, **facts, "qnn_sdk": record.qnn_sdk}
        rows.append({column: "" if row.get(column) is None else row[column] for column in CSV_COLUMNS})
    return rows


def write_csv(path: Path, records: Sequence[CheckRecord]) -> None:
    """Write the CSV atomically; ReportError (one line naming the path) when it cannot be written."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(records))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, buffer.getvalue())
    except OSError as exc:
        raise ReportError(f"edgeort: cannot write the --edge-op-matrix-csv {path}: {exc.strerror or exc}") from None


def matrix_html(records: Sequence[CheckRecord]) -> str:
    """The HTML report's op-matrix section: the op type x class table per device and provider, then every case."""
    if not records:
        return ""
    columns = _columns(records)
    parts = ['<section id="op-matrix"><h2>Op matrix</h2>']
    legend = "".join(f"<li><code>{e(c)}</code>: {e(OP_MATRIX_CLASSES.get(c, '?'))}</li>" for c in columns)
    parts.append(f'<ul class="muted">{legend}</ul>')
    for (device, provider), ops in sorted(class_counts(records).items()):
        rows = [[e(op)] + [e(counts.get(c, 0) or "") for c in columns] for op, counts in sorted(ops.items())]
        numeric = tuple(range(1, len(columns) + 1))
        parts.append(f"<h3>{e(device)} / {e(provider)}</h3>" + html_table(("op type", *columns), rows, numeric))
    cases = [
        [
            e((r.op_matrix or {}).get("case")),
            e((r.op_matrix or {}).get("op_type")),
            e(r.device),
            e(r.provider),
            f"<code>{e((r.op_matrix or {}).get('class'))}</code>",
            e((r.op_matrix or {}).get("detail")),
        ]
        for r in records
    ]
    parts.append("<h3>Cases</h3>" + html_table(("case", "op type", "device", "provider", "class", "detail"), cases))
    return "".join(parts) + "</section>"
