"""A histogram family by label values, encoded for Prometheus one series at a time and kept.

With a hundred endpoints the histograms are most of a scrape (twenty-odd lines per series,
each costing prometheus_client tens of microseconds to encode; the cold starts alone are
endpoints x phases series), yet between two scrapes most series did not move. Each series'
lines are encoded by the library as usual, then kept until its histogram changes (its
`version`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from runq.fleet.job_timing import Histogram

Encode = Callable[[CollectorRegistry], bytes]


class _One(Collector):
    def __init__(self, family: Metric) -> None:
        self._family = family

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield self._family


def _encoded(encode: Encode, family: Metric) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_One(family))
    return encode(registry)


class HistogramFamilyText:
    def __init__(
        self, name: str, documentation: str, labels: tuple[str, ...] = ("endpoint",)
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = list(labels)
        self._head: dict[str, bytes] = {}  # content type -> the HELP and TYPE lines
        # (content type, label values) -> (the histogram's version, its sample lines)
        self._lines: dict[tuple[str, tuple[str, ...]], tuple[int, bytes]] = {}

    def render(
        self, by: Mapping[tuple[str, ...], Histogram], encode: Encode, content_type: str
    ) -> bytes:
        """The family's exposition (no end marker): its header, then each series' lines, in
        the order of their label values."""
        head = self._head.get(content_type)
        if head is None:
            head = self._head[content_type] = _comments(_encoded(encode, self._family()))
        parts = [head]
        for values, histogram in sorted(by.items()):
            key = (content_type, values)
            kept = self._lines.get(key)
            if kept is None or kept[0] != histogram.version:
                family = self._family()
                buckets = [
                    ("+Inf" if le == float("inf") else repr(le), float(n))
                    for le, n in histogram.cumulative()
                ]
                family.add_metric(list(values), buckets, histogram.sum)
                kept = self._lines[key] = (histogram.version, _samples(_encoded(encode, family)))
            parts.append(kept[1])
        return b"".join(parts)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self._name, self._documentation, labels=self._labels)


def _comments(text: bytes) -> bytes:
    """The HELP and TYPE lines (OpenMetrics's end marker dropped: one goes at the very end)."""
    lines = text.splitlines(keepends=True)
    return b"".join(line for line in lines if line.startswith(b"# ") and line != b"# EOF\n")


def _samples(text: bytes) -> bytes:
    return b"".join(line for line in text.splitlines(keepends=True) if not line.startswith(b"#"))
