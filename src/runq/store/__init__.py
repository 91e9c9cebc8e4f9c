"""Durable job state. `base.JobStore` is the contract; `sqlite.SqliteJobStore` the default."""

from runq.store.base import FinishOutcome, JobStore
from runq.store.sqlite import SqliteJobStore

__all__ = ["FinishOutcome", "JobStore", "SqliteJobStore"]
