"""Which `runq serve` replica runs the fleet: the one holding a PostgreSQL advisory lock.

Several replicas share one PostgreSQL store. Every replica answers the client API from the
store; exactly one, the leader, also runs the scheduler, the reaper, the webhook sender and
the workers. Leadership is a session-level advisory lock held on a connection of its own:
PostgreSQL releases it the moment that connection dies (the leader crashed, was killed, or
lost the network), and a standby polling with `pg_try_advisory_lock` takes over within one
poll. A leader that loses its lock connection cannot know whether another replica took over,
so it reports the loss and the server exits rather than run a second fleet.

The leader writes its URL in `runq_leader`, so that a standby can forward worker calls to it
(workers may reach the replicas through one load-balanced URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psycopg
from psycopg import AsyncConnection

log = logging.getLogger("runq.leader")

SCHEDULER_LOCK = 0x72756E7173636864  # "runqschd": the advisory lock key of the fleet's leader
POLL_S = 1.0  # a standby tries for the lock this often: the takeover time after a crash
CHECK_S = 2.0  # a leader checks its lock connection this often


class LeaderLock:
    def __init__(self, dsn: str, poll_s: float = POLL_S) -> None:
        self.dsn = dsn
        self.poll_s = poll_s
        self._conn: AsyncConnection[tuple[object, ...]] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.closed

    async def acquire(self, stop: asyncio.Event, url: str) -> bool:
        """Waits until this replica holds the lock (True; `url` is then announced as the
        leader's), or `stop` is set (False)."""
        waited = False
        while not stop.is_set():
            try:
                conn = await AsyncConnection.connect(self.dsn, autocommit=True)
            except psycopg.Error as exc:
                log.warning("leader lock: cannot connect (%s); retrying", exc)
            else:
                row = await (
                    await conn.execute("SELECT pg_try_advisory_lock(%s)", (SCHEDULER_LOCK,))
                ).fetchone()
                if row is not None and row[0]:
                    await conn.execute(
                        "INSERT INTO runq_leader (id, url, since) VALUES (1, %s, %s) "
                        "ON CONFLICT (id) DO UPDATE SET url = excluded.url, since = excluded.since",
                        (url, time.time()),
                    )
                    self._conn = conn
                    return True
                await conn.close()
                if not waited:
                    log.info("another replica runs the fleet: standing by")
                    waited = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)
        return False

    async def watch(self, stop: asyncio.Event) -> None:
        """Returns when the lock is lost (its connection broke) or `stop` is set."""
        while not stop.is_set() and self._conn is not None:
            try:
                await self._conn.execute("SELECT 1")
            except psycopg.Error as exc:
                log.error("leader lock lost with its connection: %s", exc)
                self._conn = None
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK_S)

    async def leader_url(self) -> str | None:
        """The URL the current leader announced (None before any replica led)."""
        try:
            async with await AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                row = await (await conn.execute("SELECT url FROM runq_leader")).fetchone()
        except psycopg.Error as exc:
            log.warning("cannot read the leader's URL: %s", exc)
            return None
        return str(row[0]) if row is not None else None

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()  # closing the session releases its advisory locks
