"""The one place that maps runq's errors to HTTP statuses (and the headers some need).

Starlette's exception handler (`runq.server.app`) and the raw-ASGI load balancer both read it.
"""

from __future__ import annotations

from runq.errors import (
    BadRequest,
    Conflict,
    DiskFull,
    Forbidden,
    Gone,
    IdempotencyMismatch,
    IllegalTransition,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    RateLimited,
    RunqError,
    SpecError,
    Unauthorized,
)

_STATUS: dict[type[RunqError], int] = {
    Gone: 410,  # before NotFound, of which it is a kind
    BadRequest: 400,
    Conflict: 400,
    SpecError: 400,
    IllegalTransition: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    PayloadTooLarge: 413,
    IdempotencyMismatch: 422,
    RateLimited: 429,
    QueueFull: 429,
    DiskFull: 507,
}


def status_of(exc: BaseException) -> int:
    return next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)


def headers_of(exc: BaseException) -> dict[str, str]:
    """Headers that go with the error's answer: Retry-After (whole seconds) on a rate limit."""
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after_s)}
    return {}
