"""Inline SVG plots for the HTML report: the error histogram in LSB as a labelled bar chart, and a diagnosis's
bisection path as error vs depth."""

from __future__ import annotations

import math
import re
from html import escape
from typing import Any, List, Mapping, Optional, Sequence

WIDTH, HEIGHT = 460, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 18, 48  # plot margins: room for the axis labels


def _beyond(bins: Sequence[Sequence[Any]], limit: Optional[float]) -> List[bool]:
    """Per bin: every error it holds exceeds ``limit``. Bins are ``(lo, hi]`` with ``hi`` the last number
    of the label ('3-4', '(2,4]', '>32') and ``lo`` the previous bin's ``hi``; a bin without a number
    ('non-finite') is always beyond."""
    flags, low = [], -math.inf  # the first bin holds exact zeros
    for label, _ in bins:
        numbers = re.findall(r"\d+(?:\.\d+)?", str(label))
        flags.append(limit is not None and (not numbers or low >= limit))
        low = float(numbers[-1]) if numbers else low
    return flags


def histogram_svg(bins: Sequence[Sequence[Any]], unit: str = "LSB", limit: Optional[float] = None) -> str:
    """A bar chart of ``[[label, count], ...]`` with labelled axes; the bar heights are on a log scale
    (a few outliers next to 100 000 exact elements stay visible) and every bar shows its count.
    Bins that lie wholly above ``limit`` (the output's ``lsb`` tolerance) are drawn in the failure colour."""
    counts = [int(count) for _, count in bins]
    top = math.log10(1 + max(counts, default=0)) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(bins), 1)
    parts: List[str] = [
        (
            f'<svg class="hist" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="error histogram in {escape(unit)}">'
        ),
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
    ]
    for i, ((label, _), count, beyond) in enumerate(zip(bins, counts, _beyond(bins, limit))):
        height = plot_h * math.log10(1 + count) / top
        x, y = LEFT + i * step + step * 0.12, TOP + plot_h - height
        text = escape(str(label))
        parts.append(
            f'<rect class="bar{" beyond" if beyond else ""}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{step * 0.76:.1f}" height="{height:.1f}"><title>{text} {escape(unit)}: '
            f"{count} elements</title></rect>"
        )
        middle = LEFT + (i + 0.5) * step
        parts.append(f'<text class="count" x="{middle:.1f}" y="{y - 3:.1f}">{count}</text>')
        parts.append(f'<text class="tick" x="{middle:.1f}" y="{TOP + plot_h + 14}">{text}</text>')
    parts += [
        f'<text class="label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}">|error| in {escape(unit)}</text>',
        f'<text class="label" transform="translate(14 {TOP + plot_h / 2:.1f}) rotate(-90)">elements (log scale)</text>',
        "</svg>",
    ]
    return "".join(parts)


def path_svg(steps: Sequence[Mapping[str, Any]], candidates: int, unit: str = "LSB") -> str:
    """A diagnosis's probes as points of max error (log scale) over the candidate's position in topological
    order: agreeing tensors plain, diverged ones in the failure colour, refused prefixes as a cross on the axis;
    each point's title names the tensor, its node and its error."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    errors = [float(s["error"]) for s in steps if isinstance(s.get("error"), (int, float))]
    top = math.log10(1 + max(errors, default=0.0)) or 1.0
    parts: List[str] = [
        (
            f'<svg class="path" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            'aria-label="diagnosis: error vs depth">'
        ),
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
    ]
    for order, step in enumerate(steps, 1):
        x = LEFT + plot_w * (int(step.get("index", 0)) + 0.5) / max(candidates, 1)
        error = step.get("error")
        title = escape(f"probe {order}: {step.get('tensor')} ({step.get('node')}): {step.get('outcome')}")
        if isinstance(error, (int, float)):
            y = TOP + plot_h - plot_h * math.log10(1 + float(error)) / top
            css = "point beyond" if step.get("outcome") == "diverged" else "point"
            parts.append(
                f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="4"><title>{title}, '
                f"{float(error):g} {escape(unit)}</title></circle>"
            )
            parts.append(f'<text class="count" x="{x:.1f}" y="{y - 7:.1f}">{order}</text>')
        else:
            y = TOP + plot_h
            parts.append(f'<text class="count" x="{x:.1f}" y="{y - 3:.1f}"><title>{title}</title>x</text>')
    parts += [
        f'<text class="label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}">tensor, in topological order '
        f"(of {candidates})</text>",
        f'<text class="label" transform="translate(14 {TOP + plot_h / 2:.1f}) rotate(-90)">max |error| in '
        f"{escape(unit)} (log)</text>",
        "</svg>",
    ]
    return "".join(parts)
