"""Reading workers' logs back: a worker's lines, an endpoint's, the lines of one job.

Each line on disk starts with the time runq read it (`runq.fleet.worker_logs.stamp`). A log is
the live file and its rotated copies (`W.log.2`, `W.log.1`, `W.log`, oldest first).
"""

from __future__ import annotations

import collections
import datetime
import heapq
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z (.*)$", re.DOTALL)
_HEAD = 64
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class LogLine:
    at: float | None  # None: a line written without a stamp
    worker: str
    line: str

    def as_json(self) -> dict[str, object]:
        return {"at": self.at, "worker": self.worker, "line": self.line}


def is_safe_id(name: str) -> bool:
    """A worker id or endpoint name that can be part of a path (no '/', no '..')."""
    return bool(_SAFE_ID.match(name)) and ".." not in name


def files_of(log_dir: Path, endpoint: str, worker: str) -> list[Path]:
    """The worker's log files, oldest first (rotated copies, then the live file)."""
    live = log_dir / endpoint / f"{worker}.log"
    rotated = sorted(
        (p for p in live.parent.glob(f"{worker}.log.*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [*rotated, *([live] if live.exists() else [])]


def workers_of(log_dir: Path, endpoint: str) -> list[str]:
    """Every worker of `endpoint` with a log on disk (ended ones too)."""
    folder = log_dir / endpoint
    if not folder.is_dir():
        return []
    return sorted(
        {p.name.split(".log")[0] for p in folder.glob("*.log*") if ".log" in p.name} - {"template"}
    )


def find_worker(log_dir: Path, worker: str) -> str | None:
    """The endpoint whose log folder holds `worker`'s log."""
    for path in log_dir.glob(f"*/{worker}.log*"):
        return path.parent.name
    return None


def parse(raw: bytes, worker: str) -> LogLine:
    match = _STAMP.match(raw)
    if match is None:
        return LogLine(None, worker, raw.decode(errors="replace"))
    moment = datetime.datetime.fromisoformat(match.group(1).decode() + "+00:00")
    return LogLine(moment.timestamp(), worker, match.group(2).decode(errors="replace"))


def read_worker(
    files: Iterable[Path],
    worker: str,
    since: float | None = None,
    until: float | None = None,
) -> Iterator[LogLine]:
    """The worker's lines in order, those stamped within [since, until] (bounds optional)."""
    for path in files:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below, also on a rotation race
        except OSError:
            continue
        with handle:
            for raw in handle:
                line = parse(raw.rstrip(b"\n"), worker)
                if line.at is not None:
                    if since is not None and line.at < since:
                        continue
                    if until is not None and line.at > until:
                        return
                yield line


def read_lines(
    log_dir: Path,
    endpoint: str,
    workers: Iterable[str],
    since: float | None = None,
    until: float | None = None,
    tail: int | None = None,
) -> list[LogLine]:
    """The lines of `workers` of `endpoint`, merged by time; the last `tail` of them."""
    streams = [read_worker(files_of(log_dir, endpoint, w), w, since, until) for w in workers]
    merged = heapq.merge(*streams, key=lambda line: line.at or 0.0)
    if tail is None:
        return list(merged)
    return list(collections.deque(merged, maxlen=max(0, tail)))


@dataclass
class Follower:
    """New lines of one worker's log as they are written, across rotations (polled)."""

    path: Path  # the live file
    worker: str
    _inode: int = -1
    _head: bytes = b""  # the file's first bytes: a new file may reuse the old one's inode
    _offset: int = 0
    _partial: bytes = b""

    def skip_to_end(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                self._inode, self._head = stat.st_ino, handle.read(_HEAD)
                self._offset = stat.st_size
        except OSError:
            return

    def poll(self) -> list[LogLine]:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed below
        except OSError:
            return []
        with handle:
            stat = os.fstat(handle.fileno())
            head = handle.read(_HEAD)
            if (stat.st_ino, head[: len(self._head)]) != (self._inode, self._head) or (
                stat.st_size < self._offset
            ):  # rotated: a new file
                self._inode, self._offset, self._partial = stat.st_ino, 0, b""
            self._head = head
            if stat.st_size <= self._offset:
                return []
            handle.seek(self._offset)
            data = self._partial + handle.read(stat.st_size - self._offset)
        self._offset = stat.st_size
        *lines, self._partial = data.split(b"\n")
        return [parse(raw, self.worker) for raw in lines]
