"""Keep-alive and pre-warming from the histogram of idle gaps between arrivals.

The hybrid-histogram policy of Shahrad et al., "Serverless in the Wild" (USENIX ATC'20, sec. 4),
adapted to runq. ATC'20 keeps a histogram of an application's idle times over a 4 h range and
reads two windows from it: *pre-warm* at the 5th percentile (minus a 10 % margin) and
*keep-alive* to the 99th percentile (plus a 10 % margin). After an invocation the instance is
unloaded, loaded again when the pre-warm window opens, and kept until the keep-alive window
closes. When the histogram is not representative (too few idle times, or too many past its
range) it falls back to a fixed keep-alive.

runq's adaptation, for a fleet of workers with FlashBoot:

* With FlashBoot a parked worker costs nothing and revives in milliseconds, so "unloaded but
  ready" is PARKED. An idle worker is parked once it has been idle for the pre-warm window (the
  gaps shorter than that are the ones a revival would add delay to), at most the endpoint's
  `idle_timeout`; and a parked worker is kept at least through the keep-alive window, so that
  the next arrival after a usual gap still finds one.
* Without FlashBoot there is nothing cheap to park into: one worker (the endpoint's warm one)
  is kept from the pre-warm window until the keep-alive window closes, started ahead of the
  window by one cold start when none is left; other workers follow `idle_timeout`.
* Either way, with nothing parked and no worker live, one worker is started a cold start
  ahead of the pre-warm window (ATC'20's pre-warming), and stopped once the keep-alive
  window closes.

Pure: arrival times and `now` come in, windows go out.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from runq.core.stats import nearest_rank

MIN_GAPS = 10  # fewer idle gaps than this: the histogram says too little (fallback)
RANGE_S = 4 * 3600.0  # ATC'20's histogram range; a longer gap is out of bounds
OUT_OF_RANGE_LIMIT = 0.5  # ATC'20 falls back when too many gaps lie past the range
PREWARM_PERCENTILE = 5.0
KEEP_ALIVE_PERCENTILE = 99.0
MARGIN = 0.10  # ATC'20: pre-warm 10 % earlier, keep alive 10 % longer


@dataclass(frozen=True)
class Windows:
    """Pre-warm and keep-alive windows, seconds after the last arrival."""

    prewarm_s: float
    keep_alive_s: float
    gaps: int


@dataclass(frozen=True)
class KeepAlive:
    """What the scaler should do with idle and parked workers now."""

    idle_s: float  # an idle worker stays this long before it is parked or stopped
    retention_s: float  # a parked worker is stopped after this long
    floor: int  # workers to keep live now (0 or 1): the warm one, or a pre-warm
    reason: str  # "" when the histogram changed nothing worth saying


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 < q <= 100) of values sorted ascending: the one definition
    runq uses everywhere (core.stats.nearest_rank), for a non-empty list.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    """
    value = nearest_rank(sorted_values, q)
    assert value is not None, "a percentile of no values"
    return value


def gap_windows(arrivals: Sequence[float]) -> Windows | None:
    """The windows from the gaps between consecutive arrivals; None when not representative.

    Twenty arrivals 30 s apart and one gap of 300 s: 20 gaps, the 5th percentile is 30 s and
    the 99th 300 s, so pre-warm at 30 x 0.9 = 27 s and keep alive to 300 x 1.1 = 330 s.

    >>> times = [30.0 * n for n in range(20)] + [570.0 + 300.0]
    >>> gap_windows(times)
    Windows(prewarm_s=27.0, keep_alive_s=330.0, gaps=20)
    >>> gap_windows([0.0, 1.0, 2.0]) is None  # 2 gaps < 10
    True
    """
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    if len(gaps) < MIN_GAPS:
        return None
    outside = sum(1 for gap in gaps if gap > RANGE_S)
    if outside > OUT_OF_RANGE_LIMIT * len(gaps):
        return None
    inside = [gap for gap in gaps if gap <= RANGE_S]
    return Windows(
        prewarm_s=round(percentile(inside, PREWARM_PERCENTILE) * (1 - MARGIN), 9),
        keep_alive_s=round(percentile(inside, KEEP_ALIVE_PERCENTILE) * (1 + MARGIN), 9),
        gaps=len(gaps),
    )


def keep_alive(
    *,
    now: float,
    arrivals: Sequence[float],
    cold_start_s: float,
    flashboot: bool,
    live: int,
    parked: int,
    idle_timeout_s: float,
    park_retention_s: float,
) -> KeepAlive:
    """Idle time, parked retention and warm floor for an endpoint, from its recent arrivals.

    With FlashBoot: idle workers park after the pre-warm window (capped at `idle_timeout_s`),
    parked ones are kept at least through the keep-alive window. Arrivals every 30 s give a
    27 s pre-warm window, capped at a 5 s idle timeout; the keep-alive window is 33 s, shorter
    than the 600 s retention, which stays:

    >>> every_30s = [30.0 * n for n in range(12)]
    >>> keep_alive(now=335.0, arrivals=every_30s, cold_start_s=10, flashboot=True, live=1,
    ...            parked=0, idle_timeout_s=5.0, park_retention_s=600.0)
    KeepAlive(idle_s=5.0, retention_s=600.0, floor=0, reason='')

    Without FlashBoot one worker is live from a cold start (10 s) before the pre-warm window
    to the end of the keep-alive window, 27 - 10 = 17 s to 33 s after the last arrival (330):
    not at 5 s after it, but at 20 s:

    >>> [keep_alive(now=330.0 + after, arrivals=every_30s, cold_start_s=10, flashboot=False,
    ...             live=0, parked=0, idle_timeout_s=5, park_retention_s=600).floor
    ...  for after in (5.0, 20.0, 40.0)]
    [0, 1, 0]

    Too few arrivals fall back to the endpoint's own idle timeout and retention:

    >>> keep_alive(now=9.0, arrivals=[0.0, 4.0], cold_start_s=10, flashboot=True, live=0,
    ...            parked=0, idle_timeout_s=5.0, park_retention_s=600.0)
    KeepAlive(idle_s=5.0, retention_s=600.0, floor=0, reason='')
    """
    windows = gap_windows(arrivals)
    if windows is None or not arrivals:
        return KeepAlive(idle_timeout_s, park_retention_s, 0, "")
    since_last = now - arrivals[-1]
    # The pre-warmed worker must be ready when the window opens: start it a cold start early.
    opens = windows.prewarm_s - cold_start_s
    in_window = opens <= since_last < windows.keep_alive_s
    keep_text = f"keep-alive {windows.keep_alive_s:.3g}s"
    if flashboot:
        idle_s = min(idle_timeout_s, windows.prewarm_s)
        retention_s = max(park_retention_s, min(windows.keep_alive_s, RANGE_S))
        # Nothing to revive: pre-warm one worker the way ATC'20 loads the application.
        floor = 1 if in_window and live == 0 and parked == 0 else 0
        reason = f", pre-warm for the next arrival ({keep_text})" if floor else ""
        return KeepAlive(idle_s, retention_s, floor, reason)
    floor = 1 if in_window else 0
    reason = f", 1 kept warm ({since_last:.3g}s since last arrival, {keep_text})" if floor else ""
    return KeepAlive(idle_timeout_s, park_retention_s, floor, reason)
