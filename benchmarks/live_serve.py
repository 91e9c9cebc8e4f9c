"""A `runq serve` subprocess for the benchmarks that measure through a live server
(cold_start.py, model_load.py): start it on a free port with its own key, wait until it
answers, stop it with its whole process group.

Imported by scripts run as `python benchmarks/NAME.py` (their folder is on sys.path).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


class LiveServe:
    """`runq serve FILES` in `tmp` (data in tmp/data, log in tmp/serve.log)."""

    def __init__(
        self,
        tmp: Path,
        files: Sequence[str],
        config: str | None = None,
        client_timeout: float = 120,
        up_timeout: float = 30,
    ) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.key = secrets.token_urlsafe(16)
        self.data = tmp / "data"
        args = [sys.executable, "-m", "runq.cli", "serve", *files]
        if config is not None:
            (tmp / "runq.toml").write_text(config)
            args += ["--config", str(tmp / "runq.toml")]
        args += ["--port", str(self.port), "--data-dir", str(self.data)]
        env = {**os.environ, "RUNQ_API_KEY": self.key, "PYTHONPATH": str(REPO / "src")}
        self.log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args,
            env=env,
            cwd=tmp,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=client_timeout,
        )
        wait_until("runq serve", self._up, up_timeout)

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"runq serve exited: {(self.tmp / 'serve.log').read_text()}")
        try:
            return self.client.get("/admin/endpoints").status_code == 200
        except httpx.HTTPError:
            return False

    def workers(self, endpoint: str, every: bool = False) -> list[dict[str, Any]]:
        query = f"?endpoint={endpoint}" + ("&all=1" if every else "")
        rows: list[dict[str, Any]] = self.client.get(f"/admin/workers{query}").json()
        return rows

    def stop(self, grace_s: float = 60) -> None:
        self.client.close()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()
