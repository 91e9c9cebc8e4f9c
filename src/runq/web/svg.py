"""Charts as inline SVG strings: pure functions of the numbers, no I/O, no clock.

Everything drawn comes from numbers, and every label goes through `html.escape`, so a chart is
safe to put into a page as it is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WIDTH = 560
HEIGHT = 150
PAD = 24  # room for the axis labels


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    count: int


def bins(values: Sequence[float], count: int = 12) -> list[Bin]:
    """`count` equal bins from 0 to the largest value; the largest value falls in the last.

    Example: [0.5, 1.5, 1.9, 4.0] in 4 bins of width 1 -> counts [1, 2, 0, 1].
    """
    if not values or count < 1:
        return []
    top = max(values)
    width = top / count if top > 0 else 1.0
    counts = [0] * count
    for value in values:
        counts[min(count - 1, max(0, int(value / width)))] += 1
    return [Bin(i * width, (i + 1) * width, n) for i, n in enumerate(counts)]


def nice_max(value: float) -> float:
    """The axis top: `value` rounded up to 1, 2 or 5 times a power of ten (at least 1).

    Example: 7 -> 10, 12 -> 20, 0.3 -> 1.
    """
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _frame(body: str, label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{html.escape(label)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _empty(label: str) -> str:
    return _frame(
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="none">no data yet'
        "</text>",
        label,
    )


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]], label: str, now: float | None = None
) -> str:
    """Step lines of (time, value) points sharing one time axis that ends at `now` (default:
    the last point) and a value axis from 0 to `nice_max` of the largest value.

    Example: {"queue": [(0, 0), (10, 4)]} -> x from 0 (left) to 10 (right), y axis top 5.
    """
    points = [p for line in series.values() for p in line]
    if not points:
        return _empty(label)
    start = min(t for t, _ in points)
    end = max(now if now is not None else start, max(t for t, _ in points))
    span = end - start or 1.0
    top = nice_max(max(v for _, v in points))
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def xy(t: float, v: float) -> str:
        return f"{PAD + (t - start) / span * plot_w:.1f},{HEIGHT - PAD - v / top * plot_h:.1f}"

    body = [
        f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" '
        f'y2="{HEIGHT - PAD}"/>',
        f'<text x="2" y="{PAD - 6}" class="tick">{_fmt(top)}</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" text-anchor="end" class="tick">now</text>',
        f'<text x="{PAD}" y="{HEIGHT - 6}" class="tick">-{_fmt(span)} s</text>',
    ]
    for index, (name, line) in enumerate(series.items()):
        steps: list[str] = []
        for i, (t, v) in enumerate(line):
            if i:
                steps.append(xy(t, line[i - 1][1]))  # hold the last value until this sample
            steps.append(xy(t, v))
        if line:
            steps.append(xy(end, line[-1][1]))
        body.append(
            f'<polyline class="s{index}" fill="none" points="{" ".join(steps)}">'
            f"<title>{html.escape(name)}</title></polyline>"
        )
        body.append(
            f'<text x="{PAD + 8 + 90 * index}" y="{PAD - 6}" class="key s{index}">'
            f"{html.escape(name)}</text>"
        )
    return _frame("".join(body), label)


def histogram(values: Sequence[float], label: str, unit: str = "s", count: int = 12) -> str:
    """Bars of `bins(values, count)`; each bar's tooltip gives its range and count."""
    found = bins(values, count)
    if not found:
        return _empty(label)
    top = nice_max(max(b.count for b in found))
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    bar_w = plot_w / len(found)
    unit_text = html.escape(unit)
    body = [
        f'<text x="2" y="{PAD - 6}" class="tick">{_fmt(top)} jobs</text>',
        f'<text x="{PAD}" y="{HEIGHT - 6}" class="tick">0</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" text-anchor="end" class="tick">'
        f"{_fmt(found[-1].high)} {unit_text}</text>",
    ]
    for i, b in enumerate(found):
        h = b.count / top * plot_h
        body.append(
            f'<rect class="bar" x="{PAD + i * bar_w + 1:.1f}" y="{HEIGHT - PAD - h:.1f}" '
            f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}"><title>{_fmt(b.low)}-'
            f"{_fmt(b.high)} {unit_text}: {b.count}</title></rect>"
        )
    return _frame("".join(body), label)
