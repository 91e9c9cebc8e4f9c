"""Idempotent submission: a client names a submission with an `Idempotency-Key` header, and a
retry under the same name gets the job that the first try made instead of a second job.

A key is scoped to (owner, endpoint): the owner is the id of the API key that submitted, so two
clients never see each other's jobs, and one key may name a submission on each endpoint. It is
kept `KEEP_S` (24 h) from the first submission, in the store, written in the same transaction
as the job (a crash after the commit and before the answer leaves both, or neither).
"""

from __future__ import annotations

from dataclasses import dataclass

from runq.core.job import Job, JobStatus

HEADER = "Idempotency-Key"
KEEP_S = 86400.0  # a key names its job this long after the first submission
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotencyKey:
    """A submission's name, and what was submitted under it.

    `fingerprint` digests the request (route, body, query), so that a key reused for another
    request is told apart from a retry of the same one.
    """

    owner: str  # the submitting API key's id
    endpoint: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Submission:
    """What an idempotent enqueue did: made a job (`replayed` False) or found the one its key
    names. A replay's job may be gone after its retention (`job` None, while its key is kept
    24 h): `ended_as` is then its final status, from the ended jobs' times the store keeps."""

    job_id: str
    job: Job | None
    replayed: bool
    ended_as: JobStatus | None = None

    @property
    def status(self) -> JobStatus | None:
        return self.job.status if self.job is not None else self.ended_as


def mismatch_message(key: IdempotencyKey) -> str:
    return (
        f"{HEADER} '{key.key}' was used on endpoint '{key.endpoint}' for a different request "
        "(another route, body or ttl) in the last 24 h: use a new key for a new request"
    )
