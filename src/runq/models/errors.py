"""What can go wrong with a model: one class per condition, under runq's root error."""

from __future__ import annotations

from runq.errors import RunqError


class ModelError(RunqError):
    """A model could not be made available; the message names the source."""


class FetchFailed(ModelError):
    """The download failed (unreachable, HTTP error, cut short) or the path does not exist."""


class ChecksumMismatch(ModelError):
    """The content's sha256 is not the expected one; nothing was cached."""

    def __init__(self, source: str, expected: str, got: str) -> None:
        super().__init__(f"{source}: sha256 mismatch: expected {expected}, got {got}")
        self.source = source
        self.expected = expected
        self.got = got


class ModelInUse(ModelError):
    """A worker is running from the model, so it cannot be removed now."""
