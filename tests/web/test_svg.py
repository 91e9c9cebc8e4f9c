"""`runq.web.svg`: charts as SVG text, from numbers alone."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from runq.web.svg import HEIGHT, PAD, WIDTH, Bin, bins, histogram, line_chart, nice_max


@pytest.mark.parametrize(
    ("values", "count", "expected"),
    [
        pytest.param([], 4, [], id="no values: no bins"),
        # width 4 / 4 = 1: 0.5 -> bin 0, 1.5 and 1.9 -> bin 1, 4.0 (the top) -> the last bin
        pytest.param(
            [0.5, 1.5, 1.9, 4.0],
            4,
            [Bin(0, 1, 1), Bin(1, 2, 2), Bin(2, 3, 0), Bin(3, 4, 1)],
            id="the largest value falls in the last bin",
        ),
        # all zero: bins of width 1 from 0, everything in the first
        pytest.param([0.0, 0.0], 2, [Bin(0, 1, 2), Bin(1, 2, 0)], id="all zeros"),
        pytest.param([3.0], 0, [], id="zero bins asked"),
    ],
)
def test_bins(values: list[float], count: int, expected: list[Bin]) -> None:
    assert bins(values, count) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0.3, 1.0, id="below one rounds up to one"),
        pytest.param(7, 10.0, id="7 -> 10"),
        pytest.param(12, 20.0, id="12 -> 20"),
        pytest.param(20, 20.0, id="a step itself stays"),
        pytest.param(430, 500.0, id="430 -> 500"),
    ],
)
def test_nice_max(value: float, expected: float) -> None:
    assert nice_max(value) == expected


def _points(svg: str, index: int) -> list[float]:
    """The polyline's coordinates, flat: x0, y0, x1, y1 ..."""
    found = re.search(rf'<polyline class="s{index}" fill="none" points="([^"]*)"', svg)
    assert found is not None
    return [float(v) for p in found.group(1).split() for v in p.split(",")]


def _flat(points: list[tuple[float, float]]) -> object:
    return pytest.approx([v for p in points for v in p], abs=0.06)  # drawn to 0.1 px


def test_line_chart_steps_from_left_to_now_on_a_shared_axis() -> None:
    # t from 0 to now = 20; values up to 4 -> axis top 5
    svg = line_chart({"queued": [(0, 0), (10, 4)], "workers": [(0, 1), (10, 1)]}, "c", now=20)
    ET.fromstring(svg)  # well-formed
    left, right, bottom = PAD, WIDTH - PAD, HEIGHT - PAD
    plot_h = HEIGHT - 2 * PAD
    mid = left + (right - left) / 2
    four = bottom - 4 / 5 * plot_h
    assert _points(svg, 0) == _flat([(left, bottom), (mid, bottom), (mid, four), (right, four)])
    one = bottom - 1 / 5 * plot_h
    assert _points(svg, 1) == _flat([(left, one), (mid, one), (mid, one), (right, one)])
    assert ">5</text>" in svg  # the axis top
    assert "-20 s" in svg


def test_histogram_bars_scale_to_the_tallest() -> None:
    svg = histogram([0.5, 1.5, 1.9, 4.0], "h", count=4)
    root = ET.fromstring(svg)
    heights = [float(r.get("height", "")) for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    plot_h = HEIGHT - 2 * PAD
    assert heights == pytest.approx([plot_h / 2, plot_h, 0, plot_h / 2])  # counts 1, 2, 0, 1 of 2
    assert "1-2 s: 2" in svg


@pytest.mark.parametrize("chart", ["line", "histogram"])
def test_empty_charts_say_so(chart: str) -> None:
    svg = line_chart({"q": []}, "x") if chart == "line" else histogram([], "x")
    assert "no data yet" in svg
    ET.fromstring(svg)


def test_labels_are_escaped() -> None:
    svg = line_chart({"<b>q</b>": [(0, 1)]}, 'say "hi" <now>')
    assert "<b>" not in svg
    assert "&lt;b&gt;q&lt;/b&gt;" in svg
    assert 'aria-label="say &quot;hi&quot; &lt;now&gt;"' in svg
    assert "&lt;x&gt;" in histogram([1.0], "h", unit="<x>")
