"""The token bucket (`runq.policy.ratelimit.admit`): table-driven, time passed in."""

from __future__ import annotations

from typing import Any

import pytest

from runq.policy.ratelimit import Admission, Bucket, admit


def make_call(**overrides: Any) -> dict[str, Any]:
    """admit()'s arguments: a full bucket of 2 at t=100, 2 tokens a second, unless told."""
    call: dict[str, Any] = {"bucket": Bucket(2.0, 100.0), "rate": 2.0, "burst": 2.0, "now": 100.0}
    call.update(overrides)
    return call


CASES = [
    pytest.param(
        make_call(bucket=None),
        Admission(True, Bucket(1.0, 100.0), 0),
        id="a key's first request finds a full bucket and spends one token (2 - 1 = 1)",
    ),
    pytest.param(
        make_call(bucket=Bucket(1.0, 100.0)),
        Admission(True, Bucket(0.0, 100.0), 0),
        id="the last token of the burst is spent (1 - 1 = 0)",
    ),
    pytest.param(
        make_call(bucket=Bucket(0.0, 100.0)),
        Admission(False, Bucket(0.0, 100.0), 1),
        id="an empty bucket refuses; one token is 0.5 s away, rounded up to 1 s",
    ),
    pytest.param(
        make_call(bucket=Bucket(0.0, 100.0), now=100.25),
        Admission(False, Bucket(0.5, 100.25), 1),
        id="0.25 s refills half a token (0.25 * 2): still refused, nothing spent",
    ),
    pytest.param(
        make_call(bucket=Bucket(0.0, 100.0), now=100.5),
        Admission(True, Bucket(0.0, 100.5), 0),
        id="0.5 s refills one token (0.5 * 2), which the request spends",
    ),
    pytest.param(
        make_call(bucket=Bucket(0.0, 100.0), now=200.0),
        Admission(True, Bucket(1.0, 200.0), 0),
        id="a long pause refills to the burst, never past it (min(2, 200) - 1 = 1)",
    ),
    pytest.param(
        make_call(bucket=Bucket(0.0, 100.0), rate=0.25, burst=1.0),
        Admission(False, Bucket(0.0, 100.0), 4),
        id="at 0.25 a second the next token is 4 s away: Retry-After 4",
    ),
    pytest.param(
        make_call(bucket=Bucket(0.1, 100.0), rate=0.3, burst=1.0),
        Admission(False, Bucket(0.1, 100.0), 3),
        id="0.9 token missing at 0.3 a second is 3 s: Retry-After 3",
    ),
    pytest.param(
        make_call(bucket=Bucket(0.0, 100.0), now=99.0),
        Admission(False, Bucket(0.0, 99.0), 1),
        id="a clock that went back refills nothing",
    ),
]


@pytest.mark.parametrize(("call", "expected"), CASES)
def test_admit(call: dict[str, Any], expected: Admission) -> None:
    got = admit(**call)
    assert got.allowed == expected.allowed
    assert got.retry_after_s == expected.retry_after_s
    assert got.bucket.tokens == pytest.approx(expected.bucket.tokens)
    assert got.bucket.at == expected.bucket.at


def test_a_burst_of_n_passes_n_requests_at_once_then_refuses() -> None:
    bucket: Bucket | None = None
    allowed = []
    for _ in range(7):
        verdict = admit(bucket, rate=5.0, burst=5.0, now=10.0)
        bucket = verdict.bucket
        allowed.append(verdict.allowed)

    assert allowed == [True] * 5 + [False] * 2
