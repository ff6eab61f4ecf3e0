"""Latency charts as inline SVG: no scripts, no fonts or files fetched.

One chart per metric: for each role a BEFORE and an AFTER bar whose length is
the median, with a whisker out to the p95, and the role's verdict beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from pacs_tui.baseline.model import Samples

BEFORE_COLOUR = "#5b7fa6"
AFTER_COLOUR = "#e08a2c"
VERDICT_COLOURS = {
    "better": "#2e7d32",
    "same": "#555555",
    "worse": "#c62828",
    "missing": "#c62828",
    "changed": "#c62828",
    "new": "#1565c0",
    "replaced": "#1565c0",  # a planned replacement: informational, like new
    "planned": "#1565c0",  # firmware the runbook planned: informational
}
_LABEL_W = 150
_PLOT_W = 420
_VALUE_W = 170
_BAR_H = 11
_ROW_GAP = 10
_TOP = 34


@dataclass(frozen=True)
class ChartRow:
    """One role's bars."""

    label: str
    before: Samples | None
    after: Samples | None
    verdict: str | None


def latency_chart(title: str, rows: Sequence[ChartRow]) -> str:
    """An SVG element (a string) comparing median and p95 before/after per row."""
    peak = max((s.p95 for r in rows for s in (r.before, r.after) if s is not None), default=1.0)
    scale = _PLOT_W / (peak * 1.05 or 1.0)
    width = _LABEL_W + _PLOT_W + _VALUE_W
    height = _TOP + len(rows) * (2 * _BAR_H + _ROW_GAP) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="4" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{_LABEL_W}" y="20" width="10" height="8" fill="{BEFORE_COLOUR}"/>'
        f'<text x="{_LABEL_W + 14}" y="28">before</text>'
        f'<rect x="{_LABEL_W + 70}" y="20" width="10" height="8" fill="{AFTER_COLOUR}"/>'
        f'<text x="{_LABEL_W + 84}" y="28">after (bar: median, whisker: p95)</text>',
    ]
    y = _TOP
    for row in rows:
        colour = VERDICT_COLOURS.get(row.verdict or "", "#555555")
        parts.append(
            f'<text x="4" y="{y + _BAR_H + 3}">{escape(row.label)}</text>'
            f'<text x="{_LABEL_W - 6}" y="{y + _BAR_H + 3}" text-anchor="end" '
            f'fill="{colour}" font-weight="bold">{escape(row.verdict or "")}</text>'
        )
        for offset, samples, fill in ((0, row.before, BEFORE_COLOUR), (1, row.after, AFTER_COLOUR)):
            top = y + offset * _BAR_H
            if samples is None:
                parts.append(
                    f'<text x="{_LABEL_W + 2}" y="{top + _BAR_H - 2}" fill="#999">no data</text>'
                )
                continue
            bar = max(1.0, samples.median * scale)
            whisker = samples.p95 * scale
            mid = top + _BAR_H / 2
            parts.append(
                f'<rect x="{_LABEL_W}" y="{top + 1}" width="{bar:.1f}" height="{_BAR_H - 2}" '
                f'fill="{fill}"/>'
                f'<line x1="{_LABEL_W + bar:.1f}" y1="{mid:.1f}" x2="{_LABEL_W + whisker:.1f}" '
                f'y2="{mid:.1f}" stroke="{fill}" stroke-width="1.5"/>'
                f'<line x1="{_LABEL_W + whisker:.1f}" y1="{top + 2}" '
                f'x2="{_LABEL_W + whisker:.1f}" y2="{top + _BAR_H - 2}" stroke="{fill}"/>'
                f'<text x="{_LABEL_W + _PLOT_W + 6}" y="{top + _BAR_H - 2}">'
                f"{samples.median:.2f} / {samples.p95:.2f} ms</text>"
            )
        y += 2 * _BAR_H + _ROW_GAP
    axis_y = y + 4
    parts.append(
        f'<line x1="{_LABEL_W}" y1="{axis_y}" x2="{_LABEL_W + _PLOT_W}" y2="{axis_y}" '
        'stroke="#999"/>'
        f'<text x="{_LABEL_W}" y="{axis_y + 14}">0</text>'
        f'<text x="{_LABEL_W + _PLOT_W}" y="{axis_y + 14}" text-anchor="end">'
        f"{peak * 1.05:.2f} ms</text></svg>"
    )
    return "".join(parts)
