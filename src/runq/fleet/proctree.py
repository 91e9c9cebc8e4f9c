"""Every process of one worker, found by the variables it inherited.

A worker runs in its own process group, but a child that calls `setsid()` (a daemon's double
fork) leaves the group and would outlive a `killpg`. Each process runq starts carries
`RUNQ_CONTROL_PLANE=<data dir>` and `RUNQ_WORKER_ID=<id>` in its environment, and its
descendants inherit them whatever session or group they move to: a scan of /proc finds them
all. Only a process that deliberately replaces its whole environment escapes; a container
worker has a process tree of its own instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from runq.fleet.worker_env import CONTROL_PLANE_MARKER, WORKER_MARKER

_PROC = Path("/proc")


def _pids_with(markers: tuple[bytes, ...]) -> Iterator[int]:
    me = os.getpid()
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or a kernel thread
            continue
        variables = environ.split(b"\0")
        if all(marker in variables for marker in markers):  # whole variables, not prefixes
            yield int(entry.name)


def worker_pids(data_dir: Path, worker_id: str) -> list[int]:
    """The live processes of worker `worker_id` of the control plane on `data_dir`."""
    markers = (
        f"{CONTROL_PLANE_MARKER}={data_dir}".encode(),
        f"{WORKER_MARKER}={worker_id}".encode(),
    )
    return list(_pids_with(markers))


def control_plane_pids(data_dir: Path) -> list[int]:
    """Every live process started by a control plane on `data_dir`."""
    return list(_pids_with((f"{CONTROL_PLANE_MARKER}={data_dir}".encode(),)))


def signal_all(pids: list[int], sig: signal.Signals) -> int:
    """Sends `sig` to each pid; returns how many were still there."""
    sent = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            sent += 1
    return sent


def kill_worker_tree(data_dir: Path, worker_id: str) -> int:
    """SIGKILLs every process left of a worker (blocking: a scan of /proc, a few ms)."""
    return signal_all(worker_pids(data_dir, worker_id), signal.SIGKILL)
