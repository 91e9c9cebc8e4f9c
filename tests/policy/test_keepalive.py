"""runq.policy.keepalive: windows from the histogram of idle gaps, and what they keep."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from runq.policy import keepalive
from runq.policy.keepalive import KeepAlive, Windows, gap_windows

EVERY_30S = tuple(30.0 * n for n in range(12))  # 11 gaps of 30 s; last arrival at 330


@pytest.mark.parametrize(
    ("arrivals", "windows"),
    [
        pytest.param((), None, id="no arrivals: not representative"),
        pytest.param(tuple(float(n) for n in range(10)), None, id="9 gaps are too few"),
        # 11 gaps of 30 s: pre-warm 30 x 0.9 = 27, keep alive 30 x 1.1 = 33.
        pytest.param(EVERY_30S, Windows(27.0, 33.0, 11), id="regular gaps: both windows at 30 s"),
        # 19 gaps of 1 s and one of 100 s: 5th percentile 1 s, 99th 100 s.
        pytest.param(
            (*(float(n) for n in range(20)), 119.0),
            Windows(0.9, 110.0, 20),
            id="a burst and a pause: pre-warm 0.9 s, keep alive 110 s",
        ),
        # 6 of 11 gaps are past the 4 h range: more than half out of bounds.
        pytest.param(
            (*(float(n) for n in range(6)), *(6 + 5 * 3600.0 * k for k in range(1, 7))),
            None,
            id="mostly gaps past the 4 h range: fall back",
        ),
    ],
)
def test_gap_windows(arrivals: tuple[float, ...], windows: Windows | None) -> None:
    assert gap_windows(arrivals) == windows


def decide(**overrides: Any) -> KeepAlive:
    """Arrivals every 30 s up to 330 s, now 335, 10 s cold start, FlashBoot, nothing live."""
    fields: dict[str, Any] = {
        "now": 335.0,
        "arrivals": EVERY_30S,
        "cold_start_s": 10.0,
        "flashboot": True,
        "live": 0,
        "parked": 0,
        "idle_timeout_s": 60.0,
        "park_retention_s": 600.0,
    }
    return keepalive.keep_alive(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # FlashBoot: idle min(60, pre-warm 27) = 27 s; keep-alive 33 s < 600 s retention.
        pytest.param({}, (27.0, 600.0, 0), id="flashboot parks after the pre-warm window"),
        pytest.param(
            {"idle_timeout_s": 5.0}, (5.0, 600.0, 0), id="never idles longer than idle_timeout"
        ),
        # Gaps of 1000 s: keep alive 1100 s > 600 s: parked workers kept through it.
        pytest.param(
            {"arrivals": tuple(1000.0 * n for n in range(12)), "now": 11005.0},
            (60.0, 1100.0, 0),
            id="parked workers are kept through the keep-alive window",
        ),
        # now 350 = 20 s after the last arrival, inside 27 - 10 = 17 .. 33: nothing parked.
        pytest.param(
            {"now": 350.0}, (27.0, 600.0, 1), id="nothing to revive: pre-warm one (ATC'20)"
        ),
        pytest.param(
            {"now": 350.0, "parked": 1}, (27.0, 600.0, 0), id="a parked worker is warm enough"
        ),
        pytest.param(
            {"now": 370.0}, (27.0, 600.0, 0), id="past the keep-alive window: no pre-warm"
        ),
        # No FlashBoot: the endpoint's own idle timeout; a warm worker in 17 .. 33 s.
        pytest.param(
            {"flashboot": False, "now": 350.0}, (60.0, 600.0, 1), id="no flashboot: keep one warm"
        ),
        pytest.param(
            {"flashboot": False, "now": 340.0},
            (60.0, 600.0, 0),
            id="no flashboot: not before the pre-warm window opens",
        ),
        pytest.param(
            {"arrivals": (0.0, 5.0)}, (60.0, 600.0, 0), id="too few gaps: the endpoint's settings"
        ),
    ],
)
def test_keep_alive(overrides: dict[str, Any], expected: tuple[float, float, int]) -> None:
    decision = decide(**overrides)

    assert (decision.idle_s, decision.retention_s, decision.floor) == pytest.approx(expected)


def test_docstring_examples() -> None:
    assert doctest.testmod(keepalive).failed == 0
