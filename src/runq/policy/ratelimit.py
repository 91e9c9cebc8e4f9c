"""Token bucket: may one more request pass, and if not, how long until one may."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    """Tokens left at time `at` (seconds on the caller's clock)."""

    tokens: float
    at: float


@dataclass(frozen=True)
class Admission:
    allowed: bool
    bucket: Bucket  # the state to keep for the next request
    retry_after_s: int  # 0 when allowed; else whole seconds, at least 1 (for Retry-After)


def admit(bucket: Bucket | None, rate: float, burst: float, now: float) -> Admission:
    """Refill `bucket` at `rate` tokens per second up to `burst`, then spend one if it can.

    A new bucket (None) starts full. A refused request spends nothing.

    Example: rate 2/s, burst 2, an empty bucket 0.25 s old holds 0.5 tokens: refused, one
    token is 0.25 s away, so Retry-After is 1 (whole seconds, never 0).
    """
    if bucket is None:
        tokens = burst
    else:
        tokens = min(burst, bucket.tokens + max(0.0, now - bucket.at) * rate)
    if tokens >= 1.0:
        return Admission(True, Bucket(tokens - 1.0, now), 0)
    wait = (1.0 - tokens) / rate
    return Admission(False, Bucket(tokens, now), max(1, math.ceil(wait)))
