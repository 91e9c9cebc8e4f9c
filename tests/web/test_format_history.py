"""The dashboard's number formats and its queue-length ring buffer."""

from __future__ import annotations

import pytest

from runq.web.format import DASH, seconds, usd
from runq.web.history import History, Sample


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, DASH, id="no figure"),
        pytest.param(0.0123, "12 ms", id="under a second in ms"),
        pytest.param(3.456, "3.46 s", id="seconds"),
        pytest.param(125, "2m 05s", id="minutes"),
        pytest.param(7300, "2h 01m", id="hours"),
    ],
)
def test_seconds(value: float | None, expected: str) -> None:
    assert seconds(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, DASH, id="no figure"),
        pytest.param(0.0, "$0.00", id="zero"),
        pytest.param(0.000412, "$0.00041", id="fractions of a cent keep their digits"),
        pytest.param(1.5, "$1.50", id="dollars"),
    ],
)
def test_usd(value: float | None, expected: str) -> None:
    assert usd(value) == expected


def test_history_keeps_the_latest_samples_of_deployed_endpoints() -> None:
    history = History(keep=3)
    for t in range(5):
        history.add("a", Sample(float(t), t, 0, 1))
    history.add("b", Sample(0.0, 9, 0, 0))
    assert [s.at for s in history.samples("a")] == [2.0, 3.0, 4.0]
    history.forget_missing({"a"})
    assert history.samples("b") == []
    assert history.samples("nobody") == []
