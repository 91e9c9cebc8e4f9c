"""Models: the host model cache (fetch, verify, evict) and what a worker is told about it."""

from runq.models.cache import CachedModel, ModelCache, Pinned
from runq.models.errors import ChecksumMismatch, FetchFailed, ModelError, ModelInUse

__all__ = [
    "CachedModel",
    "ChecksumMismatch",
    "FetchFailed",
    "ModelCache",
    "ModelError",
    "ModelInUse",
    "Pinned",
]
