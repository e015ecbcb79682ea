"""PNG plots of a job's CPU and memory over time, for error mails.

Drawn with matplotlib's Agg canvas on a Figure of its own: no display, no pyplot
state shared with the user's program, and safe in a background thread.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

__all__ = ["PLOT_SIZE", "PlotError", "usage_plots"]

PLOT_SIZE = (800, 400)  # pixels: width, height
_DPI = 100


class PlotError(RuntimeError):
    """The plots could not be drawn (matplotlib missing or failing)."""


def usage_plots(track_cpu: Sequence[float], track_mem: Sequence[float], interval: float,
                title: str) -> list[tuple[str, bytes]]:
    """``cpu.png`` and ``memory.png``: percent and MB per heartbeat, ``interval`` s apart.

    Empty when there is nothing to plot (a job that died before its first heartbeat).
    """
    if not track_cpu and not track_mem:
        return []
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("matplotlib is not installed: pip install 'gridmap[plots]', or set "
                        "CREATE_PLOTS=False") from None
    images = []
    for filename, values, label in (("cpu.png", track_cpu, "CPU (%)"),
                                    ("memory.png", track_mem, "memory (MB)")):
        figure = Figure(figsize=(PLOT_SIZE[0] / _DPI, PLOT_SIZE[1] / _DPI), dpi=_DPI)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.plot([i * interval for i in range(len(values))], list(values), marker=".")
        axes.set_xlabel("seconds since the first heartbeat")
        axes.set_ylabel(label)
        axes.set_title(f"{title}: {label}")
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        buffer = io.BytesIO()
        try:
            figure.savefig(buffer, format="png", dpi=_DPI)
        except Exception as error:  # a broken font cache, a full /tmp, …
            raise PlotError(f"could not draw {filename}: {error}") from error
        images.append((filename, buffer.getvalue()))
    return images
