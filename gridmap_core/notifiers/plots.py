"""PNG plots of a job's CPU and memory over time, for error mails.

Drawn in a child process (``python -m gridmap_core.notifiers.plots``), with
matplotlib's Agg canvas: no display needed, and nothing matplotlib or its numerical
libraries do at import or drawing time (a crash, an abort, a hang) can reach the
user's program, whose map must return whatever happens to a plot.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from gridmap_core.errors import GridMapError

__all__ = ["PLOT_SIZE", "PlotError", "usage_plots"]

PLOT_SIZE = (800, 400)  # pixels: width, height
_DPI = 100


class PlotError(GridMapError, RuntimeError):
    """The plots could not be drawn (matplotlib missing or failing)."""


PLOT_TIMEOUT = 60.0  # seconds the drawing process may take


def usage_plots(track_cpu: Sequence[float], track_mem: Sequence[float], interval: float,
                title: str) -> list[tuple[str, bytes]]:
    """``cpu.png`` and ``memory.png``: percent and MB per heartbeat, ``interval`` s apart.

    Empty when there is nothing to plot (a job that died before its first heartbeat).
    """
    if not track_cpu and not track_mem:
        return []
    request = json.dumps({"cpu": list(track_cpu), "mem": list(track_mem),
                          "interval": interval, "title": title})
    # One BLAS thread: the child draws two small figures and nothing more.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    try:
        done = subprocess.run([sys.executable, "-m", __name__], input=request,
                              capture_output=True, text=True, timeout=PLOT_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise PlotError(f"drawing took more than {PLOT_TIMEOUT:.0f} s") from None
    except OSError as error:
        raise PlotError(f"could not start the drawing process: {error}") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise PlotError(lines[-1])
    return [(name, base64.b64decode(data)) for name, data in json.loads(done.stdout)]


def _draw(track_cpu: Sequence[float], track_mem: Sequence[float], interval: float,
          title: str) -> list[tuple[str, bytes]]:
    """The drawing itself, in the child process."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("matplotlib is not installed: pip install 'gridmap[plots]', or set "
                        "CREATE_PLOTS=False") from None
    images = []
    for filename, values, label, unit in (("cpu.png", track_cpu, "CPU (%)", "%"),
                                          ("memory.png", track_mem, "memory (MB)", "MB")):
        figure = Figure(figsize=(PLOT_SIZE[0] / _DPI, PLOT_SIZE[1] / _DPI), dpi=_DPI)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        if len(values) == 1:
            _one_point(axes, float(values[0]), interval, unit)
        else:
            axes.plot([i * interval for i in range(len(values))], list(values), marker=".")
            axes.set_xlabel("seconds since the first heartbeat")
            axes.set_ylim(bottom=0)
        axes.set_ylabel(label)
        axes.set_title(f"{title}: {label}")
        axes.grid(True, alpha=0.3)
        buffer = io.BytesIO()
        try:
            figure.savefig(buffer, format="png", dpi=_DPI)
        except Exception as error:  # a broken font cache, a full /tmp, …
            raise PlotError(f"could not draw {filename}: {error}") from error
        images.append((filename, buffer.getvalue()))
    return images


def _one_point(axes: Any, value: float, interval: float, unit: str) -> None:
    """A job with one heartbeat: a dot, large enough to see, with its value beside it,
    in the middle of the plot rather than on its edge."""
    axes.plot([0.0], [value], marker="o", markersize=10, linestyle="none")
    shown = f"{value:.1f}" if abs(value) >= 1 else f"{value:.2g}"
    axes.annotate(f"{shown} {unit}", (0.0, value), xytext=(10, 8), textcoords="offset points",
                  fontsize=12)
    axes.set_xlim(-(interval or 1.0), interval or 1.0)
    axes.set_xticks([0.0])
    axes.set_xlabel("its only heartbeat")
    axes.set_ylim(0, value * 1.5 if value > 0 else 1.0)


def _main() -> None:
    request = json.load(sys.stdin)
    images = _draw(request["cpu"], request["mem"], float(request["interval"]),
                   str(request["title"]))
    json.dump([(name, base64.b64encode(data).decode()) for name, data in images],
              sys.stdout)


if __name__ == "__main__":
    _main()
