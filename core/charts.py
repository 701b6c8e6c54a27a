"""Small charts for markdown artifacts: an SVG bar chart, and a Unicode one for plain text.

Hand-written SVG rather than a plotting library: one bar chart is some forty lines, needs no dependency, and
renders the same everywhere.  The SVG goes into the artifact as a ``data:image/svg+xml;base64`` image, which
the Prefect UI shows (checked with Prefect 3.9.1's UI in headless Chromium: a markdown image renders, while raw
``<svg>`` markup in the markdown does not); ``unicode_bars`` is the same chart as text, for logs and for a
reader whose viewer shows no images.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

WIDTH = 720
HEIGHT = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 24, 36
_BAR = "#2563eb"
_AXIS = "#6b7280"
_BLOCKS = " ▁▂▃▄▅▆▇█"


def _nice_max(value: int) -> int:
    """The axis top: ``value`` rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    if value <= 1:
        return 1
    power = 1
    while True:
        for step in (1, 2, 5):
            if step * power >= value:
                return step * power
        power *= 10


def bar_chart_svg(values: Sequence[int], labels: Sequence[str], title: str) -> str:
    """An SVG bar chart of ``values`` (non-negative), one bar per label, with the axis top and a label every
    few bars; each bar has a ``<title>`` with its exact value, shown on hover."""
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} values for {len(labels)} labels")
    if any(v < 0 for v in values):
        raise ValueError("bar values must be non-negative")
    top = _nice_max(max(values, default=0))
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(len(values), 1)
    every = max(1, len(values) // 8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{_LEFT}" y="15" font-size="13" fill="#111827">{escape(title)}</text>',
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH - _RIGHT}" y2="{_TOP + plot_h}" stroke="{_AXIS}"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}" stroke="{_AXIS}"/>',
        f'<text x="{_LEFT - 4}" y="{_TOP + 4}" text-anchor="end" fill="{_AXIS}">{top}</text>',
        f'<text x="{_LEFT - 4}" y="{_TOP + plot_h}" text-anchor="end" fill="{_AXIS}">0</text>',
    ]
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        height = plot_h * value / top
        x = _LEFT + i * slot + slot * 0.1
        y = _TOP + plot_h - height
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{height:.1f}" '
            f'fill="{_BAR}"><title>{escape(label)}: {value}</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot * 0.4:.1f}" y="{_TOP + plot_h + 14}" text-anchor="middle" '
                f'fill="{_AXIS}">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def svg_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def markdown_image(svg: str, alt: str) -> str:
    """The chart as a markdown image (``alt`` is what a viewer without images shows)."""
    return f"![{alt.replace('[', '').replace(']', '')}]({svg_data_uri(svg)})"


def unicode_bars(values: Sequence[int]) -> str:
    """``values`` as one line of block characters (▁..█), scaled to the largest; a zero is a space."""
    top = max(values, default=0)
    if top <= 0:
        return " " * len(values)
    steps = len(_BLOCKS) - 1
    return "".join(_BLOCKS[0 if v <= 0 else max(1, round(v * steps / top))] for v in values)
