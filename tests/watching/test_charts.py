"""Charts of a job's CPU and memory: the status page's SVG and the error mail's PNG
show a job with a single heartbeat, and label their axes with every digit needed."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ElementTree

import pytest

from gridmap_core.watching.charts import line_chart

SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    return [text.text or "" for text in ElementTree.fromstring(svg).iter(f"{SVG}text")]


def test_one_heartbeat_is_a_dot_with_its_value() -> None:
    root = ElementTree.fromstring(line_chart([37.52], "CPU of one", "%"))
    dots = list(root.iter(f"{SVG}circle"))
    assert len(dots) == 1 and float(dots[0].get("r", "0")) >= 3
    assert root.find(f"{SVG}polyline") is None
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "37.5 %" in texts and "1 heartbeat" in texts
    # Drawn inside the plot: between the axis at 0 % and its top, 50 %.
    labels = {text.text: float(text.get("y", "0")) for text in root.iter(f"{SVG}text")}
    assert labels["50 %"] - 4 < float(dots[0].get("cy", "0")) < labels["0 %"] - 4


@pytest.mark.parametrize(("value", "label"), [
    (31.9, "31.9 MB"), (31.94, "31.9 MB"), (0.25, "0.25 MB"), (1234.56, "1234.6 MB"),
    (0.0, "0 MB"), (2.5e-5, "0.000025 MB"), (100.0, "100 MB"),
])
def test_the_value_of_one_heartbeat_reads_as_written(value: float, label: str) -> None:
    assert label in _texts(line_chart([value], "Memory", "MB"))


def test_two_heartbeats_are_a_line() -> None:
    root = ElementTree.fromstring(line_chart([1.0, 2.0], "Memory", "MB", seconds=10))
    polyline = root.find(f"{SVG}polyline")
    assert polyline is not None and len(polyline.get("points", "").split()) == 2
    assert root.find(f"{SVG}circle") is None


@pytest.mark.parametrize(("peak", "labels"), [
    (0.25, ["0 %", "0.25 %", "0.5 %"]),
    (0.04, ["0 %", "0.025 %", "0.05 %"]),
    (3.0, ["0 %", "2.5 %", "5 %"]),
    (130.0, ["0 %", "100 %", "200 %"]),
    (2e-5, ["0 %", "0.00001 %", "0.00002 %"]),
])
def test_axis_labels_keep_the_digits_they_need(peak: float, labels: list[str]) -> None:
    texts = _texts(line_chart([peak / 2, peak], "CPU", "%", seconds=1))
    assert [text for text in texts if text.endswith(" %")] == labels


def test_a_mail_plot_of_one_heartbeat_shows_it() -> None:
    # The PNG is read with Pillow, not matplotlib and numpy: their import in the test
    # process can abort it (an OpenBLAS that cannot start its threads), which is why
    # the plots themselves are drawn in a child process.
    from PIL import Image

    from gridmap_core.notifiers.plots import usage_plots

    images = dict(usage_plots([37.5], [0.25], 10.0, "job one"))
    line_colour = (0x1F, 0x77, 0xB4)  # matplotlib's first colour
    for name in ("cpu.png", "memory.png"):
        rgb = Image.open(io.BytesIO(images[name])).convert("RGB").tobytes()
        pixels = zip(rgb[0::3], rgb[1::3], rgb[2::3], strict=True)
        drawn = sum(1 for pixel in pixels
                    if all(abs(a - b) < 0.08 * 255 for a, b in zip(pixel, line_colour,
                                                                   strict=True)))
        assert drawn >= 80, (name, drawn)  # a dot that can be seen, not a speck
