"""Hints between `runq serve` replicas sharing one PostgreSQL store, by LISTEN/NOTIFY.

NOTIFY is only a hint: it takes a global lock at commit, and a listener misses what was sent
while it reconnected. So every receiver re-reads the store anyway (long-polls re-check the
queue, waited jobs are re-read every 0.2 s by runq.fleet.job_watch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from psycopg import AsyncConnection

log = logging.getLogger(__name__)

WORK_CHANNEL = "runq_work"
STOP_CHANNEL = "runq_stop"  # payload "WORKER_ID JOB_ID": a running job was cancelled
DEPLOY_CHANNEL = "runq_deploy"  # payload: the name of an endpoint (re)deployed or edited


async def listen(
    dsn: str,
    stop: asyncio.Event,
    on_work: Callable[[str], None],
    on_stop: Callable[[str, str], None] | None = None,
    on_deploy: Callable[[str], None] | None = None,
) -> None:
    """Until `stop`: `on_work(endpoint)` for every job queued through any replica,
    `on_stop(worker_id, job_id)` for every running job cancelled through any replica, and
    `on_deploy(endpoint)` for every endpoint file saved through any replica.

    Runs on its own connection (LISTEN holds it); reconnects after an error with a short pause.
    """
    while not stop.is_set():
        try:
            conn = await AsyncConnection.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            log.warning("LISTEN %s: cannot connect (%s); retrying", WORK_CHANNEL, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            continue
        try:
            await conn.execute(f"LISTEN {WORK_CHANNEL}")
            await conn.execute(f"LISTEN {STOP_CHANNEL}")
            await conn.execute(f"LISTEN {DEPLOY_CHANNEL}")
            while not stop.is_set():
                # notifies(timeout=...) returns to check `stop` now and then; no query is
                # run inside the loop (that hangs psycopg's notifies generator).
                async for notice in conn.notifies(timeout=0.5):
                    if notice.channel == WORK_CHANNEL:
                        on_work(notice.payload)
                    elif notice.channel == DEPLOY_CHANNEL:
                        if on_deploy is not None:
                            on_deploy(notice.payload)
                    elif on_stop is not None:
                        worker_id, _, job_id = notice.payload.partition(" ")
                        on_stop(worker_id, job_id)
        except psycopg.Error as exc:
            log.warning("LISTEN %s lost its connection (%s); reconnecting", WORK_CHANNEL, exc)
        finally:
            await conn.close()
