"""The throughput chart of ``gridmap watch``: the jobs that ended in each interval as
bars (left axis), and the jobs ended so far as a line (right axis, up to the map's
size), drawn as SVG like the status page's other charts."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

from gridmap_core.watching.charts import (
    HEIGHT,
    WIDTH,
    axis_label,
    frame,
    grid_line,
    nice_top,
)

__all__ = ["duration", "throughput_chart"]

LEFT, RIGHT, TOP, BOTTOM = 56, 64, 28, 32
BAR_COLOUR, LINE_COLOUR = "#9ecae1", "#2a8a2a"
_TEXT = 'font-family="sans-serif" font-size="11"'


def duration(seconds: float) -> str:
    """A span as read: ``0.3 s``, ``42 s``, ``3 min 05 s``, ``2 h 07 min``, ``3 d 04 h``;
    ``5 min``, ``1 h``: a whole unit has no zero part."""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.0f} s" if seconds >= 10 or seconds == whole else f"{seconds:.1f} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h" if hours else f"{days} d"


def throughput_chart(bars: Sequence[int], step: float, total: int) -> str:
    """An SVG chart of ``bars`` (jobs ended per ``step`` seconds, from the map's start)
    with their running sum against ``total``, the map's size."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_top(max(bars, default=0))
    whole = max(total, sum(bars), 1)
    title = f"Jobs ended per {duration(step)} (bars) and in all (line)"
    parts = frame(title, LEFT)
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(grid_line(y, LEFT, RIGHT))
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" {_TEXT} '
                     f'fill="#3182bd">{axis_label(top * fraction)}</text>')
        parts.append(f'<text x="{WIDTH - RIGHT + 6}" y="{y + 4:.1f}" {_TEXT} '
                     f'fill="{LINE_COLOUR}">{round(whole * fraction)}</text>')
    span = max(1, len(bars)) * step
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 8}" {_TEXT}>0</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end" {_TEXT}>'
                 f'{duration(span)}</text>')
    if not bars or not any(bars):
        parts.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}" '
                     f'text-anchor="middle" {_TEXT} fill="#888">no job has ended yet</text>')
        parts.append("</svg>")
        return "".join(parts)
    width = plot_w / len(bars)
    for index, count in enumerate(bars):
        if count:
            height = plot_h * count / top
            parts.append(f'<rect x="{LEFT + index * width:.1f}" y="{TOP + plot_h - height:.1f}" '
                         f'width="{max(width - 1, 0.5):.1f}" height="{height:.1f}" '
                         f'fill="{BAR_COLOUR}"/>')
    # The line passes through the end of each interval, from 0 at the start.
    points = [f"{LEFT:.1f},{TOP + plot_h:.1f}"]
    points += [f"{LEFT + (index + 1) * width:.1f},{TOP + plot_h * (1 - done / whole):.1f}"
               for index, done in enumerate(accumulate(bars))]
    parts.append(f'<polyline class="cumulative" fill="none" stroke="{LINE_COLOUR}" '
                 f'stroke-width="2" points="{" ".join(points)}"/>')
    parts.append("</svg>")
    return "".join(parts)
