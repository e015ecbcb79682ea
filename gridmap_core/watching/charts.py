"""Line charts of a job's CPU and memory as SVG, drawn without matplotlib: a page
refreshes them every few seconds, and drawing one costs well under a millisecond."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from xml.sax.saxutils import escape

__all__ = ["axis_label", "frame", "grid_line", "line_chart", "nice_top"]

_QUOTE = {'"': "&quot;"}  # job names end up in an attribute too
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 32  # margins for the axis labels


def _nice_top(peak: float) -> float:
    """The smallest of 1, 2, 5 x 10^n at or above ``peak`` (an axis that reads well)."""
    if peak <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 <= peak:
        scale *= 10
    while scale > peak:
        scale /= 10
    for step in (1, 2, 5, 10):
        if step * scale >= peak:
            return step * scale
    return 10 * scale


def frame(title: str, left: float) -> list[str]:
    """The start of a chart's SVG: its element (labelled ``title``), a white ground, and
    ``title`` above the plot, whose left edge is ``left``."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title, _QUOTE)}">',
        '<rect width="100%" height="100%" fill="#fff"/>',
        f'<text x="{left}" y="18" font-family="sans-serif" font-size="14">'
        f'{escape(title)}</text>',
    ]


def grid_line(y: float, left: float, right: float) -> str:
    """A light horizontal line across the plot at ``y``, between its margins."""
    return (f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}" '
            'stroke="#ddd"/>')


def line_chart(values: Sequence[float], title: str, unit: str, *,
               seconds: float | None = None) -> str:
    """An SVG chart of ``values`` (evenly spaced over ``seconds``, when given), titled,
    with a labelled y axis."""
    top = _nice_top(max(values, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = frame(title, LEFT)
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(grid_line(y, LEFT, RIGHT))
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-family="sans-serif" font-size="11">'
                     f'{_label(top * fraction)} {escape(unit)}</text>')
    count = len(values)
    if seconds and count > 1:
        span = f"{seconds:.0f} s"
    else:
        span = f"{count} heartbeat{'s' if count != 1 else ''}"
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end" '
                 f'font-family="sans-serif" font-size="11">{span}</text>')
    if count == 1:
        # A line needs two points: one heartbeat is a dot, with its value beside it.
        x, y = LEFT + plot_w / 2, TOP + plot_h * (1 - values[0] / top)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#1f77b4"/>')
        parts.append(f'<text x="{x + 8:.1f}" y="{y - 6:.1f}" font-family="sans-serif" '
                     f'font-size="11" fill="#1f77b4">{_value(values[0])} {escape(unit)}</text>')
    elif count:
        step = plot_w / (count - 1)
        points = " ".join(f"{LEFT + i * step:.1f},{TOP + plot_h * (1 - v / top):.1f}"
                          for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" '
                     f'points="{points}"/>')
    else:
        parts.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}" '
                     'text-anchor="middle" font-family="sans-serif" font-size="12" '
                     'fill="#888">no heartbeat yet</text>')
    parts.append("</svg>")
    return "".join(parts)


def _label(value: float) -> str:
    """Every digit the value has, up to 6 significant ones and none trailing: an axis
    at 0.5 % is labelled 0.25 % halfway, not 0.2 %, and one at 25 MB 12.5 MB."""
    text = format(Decimal(f"{value:.6g}"), "f")  # decimal: no binary noise, no exponent
    return text.rstrip("0").rstrip(".") if "." in text else text


def _value(value: float) -> str:
    """A measured value as read: one decimal, or two significant digits below 1."""
    return _label(round(value, 1) if abs(value) >= 1 else float(f"{value:.2g}"))


# The axis helpers, for the other charts of the watching pages.
nice_top = _nice_top
axis_label = _label
