"""A fake control plane (stdlib HTTP server) and handler files run as worker processes."""

from __future__ import annotations

import json
import os
import queue
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"
HOLD_S = 0.3  # long-poll hold; short so tests and shutdowns stay quick
DEADLINE_S = 15.0
API_KEY = "secret-key"


@dataclass
class Call:
    """One request the fake plane received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)

    @property
    def kind(self) -> str:
        """job-take, job-take-batch, job-stop, job-done, job-done-batch, job-stream or ping."""
        return self.path.split("/")[3]

    @property
    def job_id(self) -> str:
        return self.path.split("/")[-1]


class FakePlane:
    """Serves the worker routes of one endpoint `ep` with long polls, and records calls."""

    def __init__(self, port: int = 0) -> None:
        self.jobs: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stops: queue.Queue[str] = queue.Queue()
        self.calls: list[Call] = []
        self.done_failures = 0  # answer this many job-done posts with 503 first
        self.runq = True  # answer job-done's `take` like runq; False: like RunPod (ignore it)
        self.hold = HOLD_S
        self._cond = threading.Condition()
        plane = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                plane._serve(self)

            def do_POST(self) -> None:
                plane._serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        """The variables the real control plane gives a worker."""
        return worker_env(self.port)

    def submit(self, job_id: str, payload: Any) -> None:
        self.jobs.put({"id": job_id, "input": payload})

    def wait_for(self, what: Callable[[list[Call]], Any], timeout: float = DEADLINE_S) -> Any:
        """Waits until `what(calls)` is truthy and returns it; fails the test at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (result := what(self.calls)):
                left = deadline - time.monotonic()
                if left <= 0:
                    kinds = [(c.kind, c.path) for c in self.calls[-20:]]
                    raise AssertionError(f"timed out; last calls: {kinds}")
                self._cond.wait(left)
            return result

    def done(self, job_id: str, timeout: float = DEADLINE_S) -> Call:
        """The final (non-progress) job-done call for a job."""
        return self.wait_for(lambda calls: _final_done(calls, job_id), timeout)  # type: ignore[no-any-return]

    def of_kind(self, kind: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.kind == kind]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        call = Call(
            req.command, parts.path, query, json.loads(raw) if raw else None, dict(req.headers)
        )
        with self._cond:
            self.calls.append(call)
            if call.kind == "job-done-batch" and isinstance(call.body, list):
                # runq's grouped results: recorded as the job-done posts they stand for
                worker = parts.path.split("/")[4]
                self.calls += [
                    Call(
                        "POST",
                        f"/v2/ep/job-done/{worker}/{item['id']}",
                        call.query,
                        item["result"],
                        call.headers,
                    )
                    for item in call.body
                ]
            self._cond.notify_all()
        status, reply = self._answer(call)
        if status == 200 and call.kind.startswith("job-take") and _client_gone(req):
            # A worker that abandoned its long poll (SIGTERM) must not swallow the job.
            for job in reply if isinstance(reply, list) else [reply]:
                self.jobs.put(job)
            req.close_connection = True
            return
        data = json.dumps(reply).encode() if reply is not None else b""
        try:
            req.send_response(status)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            req.wfile.write(data)
        except OSError:
            req.close_connection = True

    def _answer(self, call: Call) -> tuple[int, Any]:
        if call.kind in ("job-take", "job-take-batch"):
            want = int(call.query.get("batch_size", "1"))
            taken = _drain(self.jobs, want, self.hold)
            if not taken:
                return 204, None
            return 200, taken if call.kind == "job-take-batch" else taken[0]
        if call.kind == "job-stop":
            ids = _drain(self.stops, 100, self.hold)
            return (200, {"jobsToStop": ids}) if ids else (204, None)
        if call.kind == "job-done" and self.done_failures > 0:
            self.done_failures -= 1
            return 503, {"error": "restarting"}
        if call.kind == "job-done-batch" and not self.runq:
            return 404, {"error": "not found"}
        if self.runq and call.kind.startswith("job-done") and call.query.get("take", "0") != "0":
            # runq's extension: the next queued jobs ride on the answer, without holding.
            return 200, {"jobs": _drain(self.jobs, int(call.query["take"]), 0.0)}
        return 200, {}


def _client_gone(req: BaseHTTPRequestHandler) -> bool:
    """Whether the client closed its end (a readable socket with nothing to read)."""
    sock = req.connection
    readable, _, _ = select.select([sock], [], [], 0)
    try:
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _drain(source: queue.Queue[Any], most: int, hold: float) -> list[Any]:
    try:
        items = [source.get(timeout=hold)]
    except queue.Empty:
        return []
    while len(items) < most:
        try:
            items.append(source.get_nowait())
        except queue.Empty:
            break
    return items


def _final_done(calls: list[Call], job_id: str) -> Call | None:
    for call in calls:
        is_progress = isinstance(call.body, dict) and call.body.get("status") == "IN_PROGRESS"
        if call.kind == "job-done" and call.job_id == job_id and not is_progress:
            return call
    return None


def worker_env(port: int, worker_id: str = "w1") -> dict[str, str]:
    """A worker's RUNPOD_* variables for a control plane on 127.0.0.1:`port`."""
    base = f"http://127.0.0.1:{port}/v2/ep"
    return {
        "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/{worker_id}?gpu=cpu",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/{worker_id}/$ID?gpu=cpu",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/{worker_id}/$ID?gpu=cpu",
        "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID?gpu=cpu",
        "RUNPOD_POD_ID": worker_id,
        "RUNPOD_AI_API_KEY": API_KEY,
        "RUNPOD_PING_INTERVAL": "200",
    }


class WorkerProc:
    """A handler file running as a worker process."""

    def __init__(self, script: Path, env: dict[str, str]) -> None:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
        full_env = {**inherited, "RUNPOD_LOG_LEVEL": "DEBUG", **env}
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait(self, timeout: float = DEADLINE_S) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
