"""Keeps a full data disk from taking the service down.

Below `min_free` free bytes on the data dir's disk, runq refuses new jobs (507) so that what it
already accepted can still be recorded: results, timeouts, retries. To be sure those writes find
room even when something else filled the disk to the last byte, runq keeps a reserve file of
`min_free / 2` bytes in the data dir and deletes it the moment the disk is full; it is made
again, and new jobs accepted, once the disk has room for it and `min_free` beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("runq")

RESERVE_NAME = ".reserve"
FreeBytes = Callable[[Path], int]


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def disk_state(full: bool, free: int, min_free: int, reserve: int) -> bool:
    """Whether the disk counts as full now, with hysteresis (pure).

    >>> disk_state(False, free=10, min_free=64, reserve=32)  # below min_free: full
    True
    >>> disk_state(True, free=80, min_free=64, reserve=32)  # room for min_free, not the reserve
    True
    >>> disk_state(True, free=96, min_free=64, reserve=32)  # both fit again
    False
    """
    if full:
        return free < min_free + reserve
    return free < min_free


class DiskGuard:
    def __init__(self, data_dir: Path, min_free: int, free: FreeBytes = free_bytes) -> None:
        self._dir = data_dir
        self._min_free = min_free
        self._reserve = min_free // 2
        self._free = free
        self.full = False

    @property
    def message(self) -> str:
        return (
            f"the disk of runq's data dir ({self._dir}) is full: no new jobs are accepted until "
            f"space is freed (at least {self._min_free // 2**20} MiB free); accepted jobs still run"
        )

    def check(self) -> bool:
        """Re-reads the free space; returns whether the disk counts as full."""
        try:
            free = self._free(self._dir)
        except OSError:
            return self.full
        full = disk_state(self.full, free, self._min_free, self._reserve)
        if full and not self.full:
            self._enter_full(free)
        elif self.full and not full:
            self._leave_full()
        elif not full:
            self._keep_reserve()
        return self.full

    def note_error(self, exc: BaseException) -> None:
        """A write failed for want of space: the disk is full now, whatever statvfs said."""
        if not self.full:
            self._enter_full(-1)

    def _enter_full(self, free: int) -> None:
        self.full = True
        (self._dir / RESERVE_NAME).unlink(missing_ok=True)  # room for what was accepted
        log.error("%s (%s bytes free)", self.message, free if free >= 0 else "no")

    def _leave_full(self) -> None:
        self.full = False
        self._keep_reserve()
        log.warning("the data dir's disk has room again: new jobs are accepted")

    def _keep_reserve(self) -> None:
        path = self._dir / RESERVE_NAME
        with contextlib.suppress(OSError):
            if path.exists() and path.stat().st_size >= self._reserve:
                return
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self._reserve)  # real blocks, even on tmpfs
            except OSError:
                os.close(fd)
                path.unlink(missing_ok=True)
                return
            os.close(fd)

    async def run(self, period_s: float) -> None:
        while True:
            self.check()
            await asyncio.sleep(period_s)
