"""One exception class per condition, under one root. `runq.server.app` maps them to HTTP."""


class RunqError(Exception):
    """Root of every error runq raises on purpose."""


class SpecError(RunqError):
    """An endpoint file or server config is invalid; the message names the file and field."""


class BadRequest(RunqError):
    """The client sent something we cannot accept (HTTP 400)."""


class Unauthorized(RunqError):
    """No valid key (HTTP 401)."""


class NotFound(RunqError):
    """Unknown endpoint, job or worker (HTTP 404)."""


class Gone(NotFound):
    """An endpoint that was undeployed, or is draining before it goes (HTTP 410)."""


class Conflict(RunqError):
    """The request is valid but not in the job's current state (HTTP 400, RunPod's shape)."""


class PayloadTooLarge(RunqError):
    """A body or result over its limit (HTTP 413 for clients, 400 for worker results)."""


class IllegalTransition(RunqError):
    """A state machine was asked to make a move it does not allow."""


class Forbidden(RunqError):
    """A valid key whose scopes do not cover the request (HTTP 403)."""


class RateLimited(RunqError):
    """A key over its request rate (HTTP 429 with a Retry-After header)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueFull(RunqError):
    """An endpoint's queue holds its `max_queue` jobs already (HTTP 429)."""


class DiskFull(RunqError):
    """The data dir's disk is full: no new job is accepted until space is freed (HTTP 507)."""


class IdempotencyMismatch(RunqError):
    """An Idempotency-Key reused for a different request than its first (HTTP 422)."""
