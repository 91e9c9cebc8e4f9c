"""The PostgreSQL store's connections: two pools, and the transaction helpers its parts share.

A client's change (enqueue, cancel, retry, purge) waits for the WAL flush; a worker's (take,
finish, progress, stream) need not: losing the last few tens of milliseconds of them in a
crash costs a re-run of a job, never an accepted job (the SQLite store's relaxed sync makes
the same trade). The relaxed pool's connections have `synchronous_commit = off` for the whole
session, so a worker's change that is one statement runs in autocommit, one round trip, with
no `BEGIN`, `SET LOCAL` and `COMMIT` around it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from runq.store import postgres_queries as q

Clock = Callable[[], float]
Conn = q.Conn


def _pool(dsn: str, size: int, options: str = "") -> AsyncConnectionPool[Conn]:
    kwargs: dict[str, Any] = {"row_factory": dict_row, "autocommit": True}
    if options:
        kwargs["options"] = options
    return AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=size,
        open=False,
        kwargs=kwargs,
        connection_class=AsyncConnection[DictRow],
    )


class PostgresPools:
    """Connections to one database: `dsn` is a libpq connection string or URL
    (postgresql://user@host:5432/db)."""

    def __init__(self, dsn: str, clock: Clock = time.time, pool_size: int = 8) -> None:
        self.dsn = dsn
        self._clock = clock
        self._pool = _pool(dsn, pool_size)
        self._relaxed = _pool(dsn, pool_size, "-c synchronous_commit=off")

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=15)
            await self._relaxed.open(wait=True, timeout=15)
        except psycopg.Error as exc:
            await self.close()
            raise ConnectionError(f"cannot connect to PostgreSQL at {self.dsn}: {exc}") from exc
        async with self._tx() as conn:
            await q.migrate(conn)

    async def close(self) -> None:
        await self._relaxed.close()
        await self._pool.close()

    @contextlib.asynccontextmanager
    async def _tx(self, durable: bool = True) -> AsyncIterator[Conn]:
        pool = self._pool if durable else self._relaxed
        async with pool.connection() as conn, conn.transaction():
            yield conn

    @contextlib.asynccontextmanager
    async def _autocommit(self, durable: bool = True) -> AsyncIterator[Conn]:
        """A connection for one statement, which is its own transaction."""
        async with (self._pool if durable else self._relaxed).connection() as conn:
            yield conn

    async def _one(self, sql: str, params: Any = None) -> DictRow | None:
        async with self._pool.connection() as conn:
            return await q.one(conn, sql, params)

    async def _all(self, sql: str, params: Any = None) -> list[DictRow]:
        async with self._pool.connection() as conn:
            return await q.all_rows(conn, sql, params)
