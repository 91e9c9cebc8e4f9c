"""Which JobStore a server uses, from `[server] store` in runq.toml."""

from __future__ import annotations

from runq.core.config import ServerConfig
from runq.errors import SpecError
from runq.store.base import JobStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def make_store(config: ServerConfig) -> JobStore:
    """ "sqlite" (the default): one file in the data dir. A postgresql:// URL: PostgreSQL, which
    several `runq serve` replicas can share.

    Raises:
        SpecError: any other value, naming the field.
    """
    if config.store == "sqlite":
        from runq.store.sqlite import SqliteJobStore

        return SqliteJobStore(config.database_path)
    if config.store.startswith(POSTGRES_SCHEMES):
        try:
            from runq.store.postgres import PostgresJobStore
        except ImportError as exc:  # psycopg is the `postgres` extra
            raise SpecError(
                "server.store is a PostgreSQL URL but psycopg is not installed: "
                "pip install 'runq[postgres]'"
            ) from exc
        return PostgresJobStore(config.store)
    raise SpecError(f"server.store: expected 'sqlite' or a postgresql:// URL, got {config.store!r}")
