"""A full data disk: new jobs get 507, nothing accepted is lost, timeouts are still enforced,
and service resumes once space is freed. The data dir is a small tmpfs (needs root)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"), reason="mounts a tmpfs: needs root"
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Writes until the disk says no more."""
    chunk = b"\0" * 2**20
    with contextlib.suppress(OSError), open(path, "wb") as handle:
        while True:
            handle.write(chunk)
            handle.flush()


@needs_root
def test_a_full_data_disk_refuses_new_jobs_and_loses_nothing(
    server_factory: Any, small_disk: Path
) -> None:
    server: Server = server_factory()
    server.data_dir.symlink_to(small_disk)  # the server's data dir lives on the small disk
    server.config_extra = 'min_free_disk = "8MiB"\n'
    server.add_endpoint("sleep", "native_sleep.py")
    server.start()
    # One job runs into its execution timeout; one waits in the queue behind it.
    stuck = server.run("sleep", {"input": {"seconds": 60}, "policy": {"executionTimeout": 5000}})
    server.wait_status("sleep", stuck, {"IN_PROGRESS"})
    queued = server.run("sleep", {"input": {"seconds": 0}})

    filler = small_disk / "filler"
    _fill(filler)

    def refused() -> httpx.Response | None:
        response = server.post("/v2/sleep/run", json={"input": {"seconds": 0}})
        return response if response.status_code == 507 else None

    response = wait_until(refused, timeout=5)
    assert "disk" in response.json()["error"] and "full" in response.json()["error"]
    sync = server.post("/v2/sleep/runsync", json={"input": {"seconds": 0}})
    assert sync.status_code == 507, sync.text
    # The reaper still commits: the stuck job times out on the full disk.
    assert server.wait_status("sleep", stuck, {"TIMED_OUT"}, timeout=30)["status"] == "TIMED_OUT"

    filler.unlink()
    wait_until(lambda: server.post("/v2/sleep/run", json={"input": 1}).status_code == 200, 5)
    # Nothing accepted was lost: the job queued before the disk filled completes.
    assert server.wait_status("sleep", queued, {"COMPLETED"}, timeout=30)["status"] == "COMPLETED"
    server.stop()
