"""Is this error a full disk? Each driver says so its own way."""

from __future__ import annotations

import errno
import sqlite3

_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"  # SQLSTATE disk_full


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's SQLITE_FULL, PostgreSQL's disk_full, and ENOSPC/EDQUOT from the OS."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(exc)
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(exc, "sqlstate", None) == _PG_DISK_FULL
