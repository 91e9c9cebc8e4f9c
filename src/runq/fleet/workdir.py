"""Each worker's own working directory: the endpoint's files as they are, and what the worker
writes seen by no other worker and gone when it stops (what a container's disk gives).

Two mechanisms, chosen per worker:
- `overlay` (runq runs as root): the worker gets a private mount namespace in which an
  overlayfs is mounted over the endpoint's folder, at the same path: it reads the folder's
  files and writes into an upper layer under `data_dir/workers/<id>/`. Nothing is mounted in
  runq's own namespace, so a crash leaves no mount behind.
- `links` (otherwise, and for workers forked by a preload template): the worker runs in
  `data_dir/workers/<id>/root`, which holds a symbolic link to each top-level entry of the
  endpoint's folder. A new file is private; a write through a link (into an existing file or
  a linked subfolder) reaches the shared folder.
Either way TMPDIR is private too. Files that hold one worker's state and would poison the next
(the runpod SDK's `.runpod_jobs.pkl`, kept in its working directory by runpod 1.7.12-1.10)
are hidden from every worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("runq.fleet")

# A worker's private state file in its folder, never shared with the next worker.
PRIVATE_STATE: tuple[str, ...] = (".runpod_jobs.pkl",)

_CLONE_NEWNS = 0x00020000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18


def workers_root(data_dir: Path) -> Path:
    return data_dir / "workers"


@dataclass
class WorkDir:
    """Where one worker runs. `cwd` is its working directory as it sees it; with `overlay`,
    `mount_in_child` must run in the worker's process between fork and exec."""

    scratch: Path  # data_dir/workers/<id>: everything of this worker, removed at its end
    cwd: Path
    overlay: bool

    @property
    def tmp(self) -> Path:
        return self.scratch / "tmp"

    def mount_in_child(self) -> None:  # pragma: no cover - runs between fork and exec
        """A private mount namespace with the overlay over the endpoint's folder."""
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
        lower = str(self.cwd)
        options = (
            f"lowerdir={lower},upperdir={self.scratch / 'upper'},workdir={self.scratch / 'work'}"
        )
        if libc.mount(b"overlay", lower.encode(), b"overlay", 0, options.encode()) != 0:
            raise OSError(ctypes.get_errno(), f"mount overlay on {lower}")
        os.chdir(lower)  # the cwd was the folder below the mount; now it is the overlay

    def remove(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def can_overlay(folder: Path) -> bool:
    """Whether an overlay can be tried: root, and a path overlayfs options can hold."""
    return os.geteuid() == 0 and not any(c in str(folder) for c in ",:\\")


def prepare(data_dir: Path, worker_id: str, folder: Path, overlay: bool) -> WorkDir:
    """Makes the worker's scratch folder (0700) for the chosen mechanism."""
    scratch = workers_root(data_dir) / worker_id
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True, mode=0o700)
    (scratch / "tmp").mkdir(mode=0o700)
    if overlay:
        upper = scratch / "upper"
        upper.mkdir(mode=0o755)
        (scratch / "work").mkdir(mode=0o700)
        for name in PRIVATE_STATE:  # an overlay whiteout: the name is absent above
            if (folder / name).exists():
                os.mknod(upper / name, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        return WorkDir(scratch, folder, overlay=True)
    root = scratch / "root"
    root.mkdir(mode=0o755)
    with contextlib.suppress(FileNotFoundError):
        for entry in folder.iterdir():
            if entry.name not in PRIVATE_STATE:
                (root / entry.name).symlink_to(entry)
    return WorkDir(scratch, root, overlay=False)


def clear_leftovers(data_dir: Path) -> None:
    """Removes the scratch folders of workers a crashed control plane left (after their
    processes were killed)."""
    root = workers_root(data_dir)
    if root.is_dir():
        for entry in root.iterdir():
            shutil.rmtree(entry, ignore_errors=True)
