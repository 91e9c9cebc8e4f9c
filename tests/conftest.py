"""Shared fixtures: a real `runq serve` process on loopback with real worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from runq.fleet.local import kill_leftovers
from tests.postgres import PostgresServer

HANDLERS = Path(__file__).parent / "handlers"

# Fast timings so that failure paths resolve in seconds, not minutes.
FAST_SERVER: dict[str, float] = {
    "ping_interval": 1,
    "heartbeat_timeout": 4,
    "take_hold": 5,
    "stop_grace": 3,
    "shutdown_grace": 1,
    "tick": 0.1,
    "webhook_backoff": 0.3,
    "webhook_timeout": 2,
}


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def endpoint_toml(name: str, handler: str, workers: int = 1, extra: str = "") -> str:
    script = HANDLERS / handler
    return (
        f'name = "{name}"\n[worker]\ncommand = ["{sys.executable}", "{script}"]\n'
        f"[scaling]\nactive_workers = {workers}\nmax_workers = {max(workers, 1)}\n{extra}"
    )


@dataclass
class Server:
    """A `runq serve` subprocess. `kill9` and `start` model a crash and a restart."""

    root: Path
    port: int
    key: str = "test-key"
    endpoints: list[Path] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)  # [server] over FAST_SERVER
    config_extra: str = ""  # more of runq.toml after [server], e.g. [[hosts]] tables
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def add_endpoint(self, name: str, handler: str, workers: int = 1, extra: str = "") -> Path:
        path = self.root / f"{name}.toml"
        path.write_text(endpoint_toml(name, handler, workers, extra))
        self.endpoints.append(path)
        return path

    def add_endpoint_text(self, name: str, text: str) -> Path:
        """An endpoint file written out in full ({python} and {handlers} are filled in)."""
        path = self.root / f"{name}.toml"
        path.write_text(
            text.replace("{python}", sys.executable).replace("{handlers}", str(HANDLERS))
        )
        self.endpoints.append(path)
        return path

    def start(self, wait_workers: bool = True) -> Server:
        config = self.root / "runq.toml"
        lines = [f"{k} = {v}" for k, v in {**FAST_SERVER, **self.settings}.items()]
        config.write_text("[server]\n" + "\n".join(lines) + "\n" + self.config_extra)
        env = {**os.environ, "RUNQ_API_KEY": self.key}
        with open(self.root / "serve.log", "ab") as log:
            self.process = self._spawn(config, env, log)
        wait_until(self._healthy, timeout=30)
        if wait_workers:
            for path in self.endpoints:
                self.wait_workers(path.stem, 1)
        return self

    def _spawn(self, config: Path, env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runq.cli",
                "serve",
                *map(str, self.endpoints),
                "--config",
                str(config),
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"runq serve exited: {(self.root / 'serve.log').read_text()}")
        try:
            return (
                httpx.get(
                    f"{self.url}/admin/endpoints", headers=self.headers, timeout=1
                ).status_code
                == 200
            )
        except httpx.HTTPError:
            return False

    def health(self, endpoint: str) -> dict[str, Any]:
        response = self.get(f"/v2/{endpoint}/health")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait_workers(self, endpoint: str, count: int, timeout: float = 30) -> None:
        def ready() -> bool:
            workers = self.health(endpoint)["workers"]
            return int(workers["idle"]) + int(workers["running"]) >= count

        wait_until(ready, timeout=timeout)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(
            self.url + path, headers=self.headers, timeout=kwargs.pop("timeout", 30), **kwargs
        )

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", self.headers)
        return httpx.post(
            self.url + path, headers=headers, timeout=kwargs.pop("timeout", 30), **kwargs
        )

    def run(self, endpoint: str, body: Any) -> str:
        response = self.post(f"/v2/{endpoint}/run", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def status(self, endpoint: str, job_id: str) -> dict[str, Any]:
        response = self.get(f"/v2/{endpoint}/status/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait_status(
        self, endpoint: str, job_id: str, statuses: set[str], timeout: float = 30
    ) -> dict[str, Any]:
        return wait_until(  # type: ignore[no-any-return]
            lambda: (s := self.status(endpoint, job_id))["status"] in statuses and s,
            timeout=timeout,
        )

    def workers(self, endpoint: str) -> list[dict[str, Any]]:
        return self.get(f"/admin/workers?endpoint={endpoint}").json()  # type: ignore[no-any-return]

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        kill_leftovers(self.data_dir)


@contextlib.contextmanager
def servers_under(root: Path) -> Iterator[Callable[[], Server]]:
    """Makes servers in folders of `root` and stops every one of them at the end."""
    made: list[Server] = []

    def make() -> Server:
        server = Server(root=root / f"s{len(made)}", port=free_port())
        server.root.mkdir()
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[[], Server]]:
    with servers_under(tmp_path) as make:
        yield make


@pytest.fixture(scope="module")
def module_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], Server]]:
    """`server_factory` for a server that a test file's tests share: for tests that each use
    jobs of their own and leave no job queued (a test file runs in one process: --dist
    loadfile). Starting a server with workers costs seconds; most API tests need no more."""
    with servers_under(tmp_path_factory.mktemp("shared")) as make:
        yield make


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the session (tests/postgres.py); a test takes a
    fresh database of its own with `new_database()`."""
    server = PostgresServer()
    server.start()
    yield server
    server.stop()
