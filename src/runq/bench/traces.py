"""Traffic traces: arrivals (seconds from the trace's start) and, where known, service times.

Formats read:
* a CSV with a timestamp column (`TIMESTAMP`, `timestamp`, `time` or `t`): ISO date-times or
  plain seconds; the Azure LLM inference traces (`TIMESTAMP,ContextTokens,GeneratedTokens`)
  also give a service time from their token counts;
* the Azure Functions 2019 invocation-count format: one row per function, columns `1`..`1440`
  holding invocations per minute; arrivals are spread evenly inside each minute;
* a plain CSV of timestamps (`load_timestamps`): first column, header optional.

And synthetic ones: evenly spaced at a constant rate; with a fixed seed, Poisson (constant
average rate), bursty (on/off with bursts), diurnal (a rate that follows a day's sine).
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from runq.errors import BadRequest

TIME_COLUMNS = ("TIMESTAMP", "timestamp", "time", "t")
# LLM service time from tokens: prefill per context token plus decode per generated token. The
# figures are a plausible mid-size model on one GPU; pass your own to `load_csv`.
PREFILL_S_PER_TOKEN = 0.00005
DECODE_S_PER_TOKEN = 0.02


@dataclass(frozen=True)
class Trace:
    name: str
    arrivals: tuple[float, ...]  # seconds from the first arrival, sorted
    service_s: tuple[float, ...] | None = None  # per arrival, when the trace tells

    @property
    def span_s(self) -> float:
        return self.arrivals[-1] - self.arrivals[0] if self.arrivals else 0.0

    @property
    def requests_per_minute(self) -> float:
        return 60 * len(self.arrivals) / self.span_s if self.span_s else 0.0


def _seconds(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return datetime.fromisoformat(raw.strip()).timestamp()


def load_csv(
    path: Path | str,
    prefill_s_per_token: float = PREFILL_S_PER_TOKEN,
    decode_s_per_token: float = DECODE_S_PER_TOKEN,
) -> Trace:
    """A trace from a CSV of timestamps (see the module doc). Errors name the file and row.

    Raises:
        BadRequest: no timestamp column, or a value that is not a time.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if "1" in fields and "1440" in fields:
            return _azure_functions(path.stem, reader)
        column = next((c for c in TIME_COLUMNS if c in fields), None)
        if column is None:
            raise BadRequest(f"{path}: no timestamp column (one of {', '.join(TIME_COLUMNS)})")
        tokens = "ContextTokens" in fields and "GeneratedTokens" in fields
        rows: list[tuple[float, float | None]] = []
        for line, row in enumerate(reader, start=2):
            try:
                at = _seconds(row[column])
                service = None
                if tokens:
                    service = (
                        int(row["ContextTokens"]) * prefill_s_per_token
                        + int(row["GeneratedTokens"]) * decode_s_per_token
                    )
            except (ValueError, TypeError) as exc:
                raise BadRequest(f"{path}: line {line}: {exc}") from None
            rows.append((at, service))
    if not rows:
        raise BadRequest(f"{path}: no rows")
    rows.sort(key=lambda r: r[0])
    start = rows[0][0]
    arrivals = tuple(at - start for at, _ in rows)
    services = tuple(s for _, s in rows) if tokens else None
    return Trace(path.stem, arrivals, services)  # type: ignore[arg-type]


def _azure_functions(name: str, reader: csv.DictReader[str]) -> Trace:
    per_minute = [0] * 1440
    for row in reader:
        for minute in range(1440):
            per_minute[minute] += int(row.get(str(minute + 1)) or 0)
    arrivals: list[float] = []
    for minute, count in enumerate(per_minute):
        arrivals += [60.0 * minute + 60.0 * (k + 0.5) / count for k in range(count)]
    start = arrivals[0] if arrivals else 0.0
    return Trace(name, tuple(at - start for at in arrivals))


TRACE_FORMATS = ("auto", "timestamps", "azure-functions", "azure-llm")


def load(path: Path | str, trace_format: str = "timestamps") -> Trace:
    """A trace file read as `trace_format` (one of TRACE_FORMATS), checked to be that format.
    "auto" tells the format from the first row: the Azure formats by their columns, a CSV with
    a named timestamp column by it, anything else as timestamps in the first column (header
    optional), as `runq bench --arrivals trace` reads them.

    Raises:
        BadRequest: the file is missing or unreadable, or not in the format named.
    """
    path = Path(path)
    if trace_format not in TRACE_FORMATS:
        raise BadRequest(
            f"trace format '{trace_format}': expected one of {', '.join(TRACE_FORMATS)}"
        )
    if not path.is_file():
        raise BadRequest(f"{path}: no such trace file")
    with path.open(newline="", encoding="utf-8") as handle:
        fields = next(csv.reader(handle), [])
    if trace_format == "auto":
        named = any(c in fields for c in TIME_COLUMNS) and fields[0] not in TIME_COLUMNS
        azure = "1" in fields and "1440" in fields
        return load_csv(path) if named or azure else load_timestamps(path)
    if trace_format == "timestamps":
        return load_timestamps(path)
    if trace_format == "azure-functions" and not ("1" in fields and "1440" in fields):
        raise BadRequest(f"{path}: not the Azure Functions format (no columns 1..1440)")
    if trace_format == "azure-llm" and not {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} <= set(
        fields
    ):
        raise BadRequest(
            f"{path}: not the Azure LLM format (needs TIMESTAMP,ContextTokens,GeneratedTokens)"
        )
    return load_csv(path)


def load_timestamps(path: Path | str) -> Trace:
    """A trace from a CSV of timestamps: the first column of each row is a time (seconds, or an
    ISO date-time); a header row is allowed, and so are blank lines and further columns.

    Example: rows `t`, `100`, `101.5`, `100.25` give arrivals (0.0, 0.25, 1.5).

    Raises:
        BadRequest: a row whose first cell is not a time (the message names file and line).
    """
    path = Path(path)
    arrivals: list[float] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or not row[0].strip():
                continue
            try:
                arrivals.append(_seconds(row[0]))
            except ValueError:
                if line == 1:
                    continue  # a header
                raise BadRequest(f"{path}: line {line}: '{row[0]}' is not a time") from None
    if not arrivals:
        raise BadRequest(f"{path}: no rows")
    arrivals.sort()
    return Trace(path.stem, tuple(at - arrivals[0] for at in arrivals))


def constant(rate_per_s: float, duration_s: float) -> Trace:
    """Arrivals evenly spaced at `rate_per_s` from 0 until `duration_s` (exclusive).

    Example: rate 2/s for 2 s gives (0.0, 0.5, 1.0, 1.5).
    """
    if rate_per_s <= 0:
        raise BadRequest(f"rate {rate_per_s:g}/s: must be above 0")
    count = math.ceil(duration_s * rate_per_s - 1e-9)
    return Trace(f"constant-{rate_per_s:g}/s", tuple(k / rate_per_s for k in range(count)))


def poisson(rate_per_s: float, duration_s: float, seed: int = 1) -> Trace:
    """Arrivals at a constant average rate."""
    rng = random.Random(seed)
    at, arrivals = 0.0, list[float]()
    while True:
        at += rng.expovariate(rate_per_s)
        if at >= duration_s:
            return Trace(f"poisson-{rate_per_s:g}/s", tuple(arrivals))
        arrivals.append(at)


def bursty(
    duration_s: float,
    base_rate_per_s: float = 0.05,
    burst_rate_per_s: float = 5.0,
    burst_s: float = 20.0,
    mean_gap_s: float = 300.0,
    seed: int = 1,
) -> Trace:
    """Quiet traffic with bursts: bursts of `burst_s` at `burst_rate_per_s`, separated by
    exponential gaps averaging `mean_gap_s`, over a trickle of `base_rate_per_s`."""
    rng = random.Random(seed)
    arrivals = list(poisson(base_rate_per_s, duration_s, seed).arrivals)
    at = rng.expovariate(1 / mean_gap_s)
    while at < duration_s:
        end = min(at + burst_s, duration_s)
        t = at
        while True:
            t += rng.expovariate(burst_rate_per_s)
            if t >= end:
                break
            arrivals.append(t)
        at = end + rng.expovariate(1 / mean_gap_s)
    arrivals.sort()
    return Trace("bursty", tuple(arrivals))


def diurnal(
    duration_s: float = 86400.0,
    peak_rate_per_s: float = 1.0,
    trough_rate_per_s: float = 0.02,
    seed: int = 1,
) -> Trace:
    """A day's cycle: the rate follows a sine between trough (at 0 h) and peak (at 12 h), by
    thinning a Poisson process at the peak rate."""
    rng = random.Random(seed)
    at, arrivals = 0.0, list[float]()
    while True:
        at += rng.expovariate(peak_rate_per_s)
        if at >= duration_s:
            return Trace("diurnal", tuple(arrivals))
        phase = (1 - math.cos(2 * math.pi * at / 86400.0)) / 2
        rate = trough_rate_per_s + (peak_rate_per_s - trough_rate_per_s) * phase
        if rng.random() < rate / peak_rate_per_s:
            arrivals.append(at)
