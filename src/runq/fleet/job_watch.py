"""Waking clients that wait on a job changed through another replica (a store shared by
replicas).

A change this replica makes wakes its waiters at once (`Signals.job_changed`); one made
through another replica sets no event here. Rather than each waiting client re-reading its
job now and then (1,000 waiters re-reading every 2 s were 500 store reads a second, and slowed
every other request), one sweep reads a mark of every waited job in one query and wakes the
waiters of those whose mark moved. A job first seen by the sweep wakes its waiters once: its
change may have come between their read and the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from runq.fleet.signals import Signals
from runq.store.base import SharedStore

log = logging.getLogger("runq")

Mark = tuple[str, int, int]
GONE: Mark = ("", -1, -1)  # a job deleted (or never stored): waking its waiters ends their wait


async def sweep(store: SharedStore, signals: Signals, seen: dict[str, Mark]) -> None:
    """One pass: wakes the waiters of every waited job whose mark is not the one `seen` last,
    and keeps `seen` to the jobs waited on now."""
    waited = signals.waited_jobs()
    marks = await store.job_marks(waited) if waited else {}
    for job_id in waited:
        mark = marks.get(job_id, GONE)
        if seen.get(job_id) != mark:
            seen[job_id] = mark
            signals.job_changed(job_id)
    for job_id in set(seen) - set(waited):
        del seen[job_id]


async def watch(store: SharedStore, signals: Signals, every_s: float) -> None:
    """Sweeps every `every_s` seconds until `signals` close."""
    seen: dict[str, Mark] = {}
    while not signals.closed.is_set():
        try:
            await sweep(store, signals, seen)
        except Exception:  # the store briefly unreachable: the next sweep tries again
            log.exception("could not re-read the jobs that clients wait on")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signals.closed.wait(), every_s)
