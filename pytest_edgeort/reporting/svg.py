"""Inline SVG plots for the HTML report: the error histogram in LSB as a labelled bar chart."""

from __future__ import annotations

import math
import re
from html import escape
from typing import Any, List, Optional, Sequence

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
