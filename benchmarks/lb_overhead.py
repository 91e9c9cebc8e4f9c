"""What runq's load-balancing proxy adds to an HTTP call, against the same app called directly.

One FastAPI app (``examples/lb-fastapi/app.py``), one worker, all on loopback, three ways:

* direct: the app alone under uvicorn, called on its own port (the anchor);
* proxied: the same app as the one worker of a ``type = "load_balancer"`` endpoint of
  ``runq serve``, called through ``/lb/lb-fastapi/generate``;
* queue: a queue endpoint whose native runq worker does the same fake generation, called with
  ``POST /v2/NAME/runsync`` (the comparison: what the proxy saves over a queued job).

The request is ``POST /generate {"prompt": "hello world", "max_tokens": 1}``. For each of them:
p50/p99 of sequential calls from one keep-alive connection (``--samples``, 500), and for direct
and proxied also ``--requests`` (10,000) calls from ``--clients`` (64) concurrent connections:
requests/s and p50/p99, with the CPU milliseconds per request spent by the servers' process
trees and by this client.

The client is a few lines of asyncio (uvloop when installed) speaking HTTP/1.1 over keep-alive
connections with prepared request bytes: one process, one event loop, one connection per
concurrent client. It costs a fraction of what httpx costs per request, so on a small box it
takes as little CPU as possible from the servers it measures (the CPU column says how much).

How to run it (from the repository root)::

    python benchmarks/lb_overhead.py         # --quick for a smoke run, --skip queue, --help

It prints a table on stdout and, as the last line of stdout, one JSON object with the figures
(``direct_p50_ms``, ``proxied_p50_ms``, ``added_p50_ms``, ``queue_p50_ms``, the
``..._64_clients`` figures, ``targets``). Progress and errors go to stderr. If runq cannot be
measured (no ``/lb/`` route: 404; no worker ready in time), the direct anchor is still
measured and reported, the runq figures are null, the reason is under ``failed`` and the exit
status is 1.

Every process it starts runs in its own session and is stopped as soon as its system is
measured, and at the latest on the way out (also on errors, Ctrl-C or SIGTERM): the process
supervision of ``benchmarks/overhead.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import httpx

# Run as a script, benchmarks/ is on sys.path: share overhead.py's process supervision.
from overhead import (
    RUNQ_CLI_SHIM,
    CpuMeter,
    Managed,
    Skip,
    Supervisor,
    child_env,
    free_port,
    gc_paused,
    percentile,
    wait_until,
    with_pythonpath,
)
from rich.console import Console
from rich.markup import escape
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EXAMPLE = REPO / "examples" / "lb-fastapi"
APP = EXAMPLE / "app.py"
SYSTEMS = ("direct", "proxied", "queue")
LB_NAME = "lb-fastapi"
QUEUE_NAME = "generate-queue"

HOST = "127.0.0.1"
PROMPT = {"prompt": "hello world", "max_tokens": 1}
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
READY_TIMEOUT_S = 90.0
# A deployed load-balancing endpoint never answers 404 itself; this long a 404 means no proxy.
NO_PROXY_AFTER_S = 10.0

QUEUE_HANDLER = """\
import sys

sys.path.insert(0, {example!r})
from app import generate_text  # the fake generation the load-balanced app does

from runq import worker


def handler(job):
    prompt = job["input"]
    words = generate_text(prompt["prompt"], int(prompt.get("max_tokens", 16)))
    return {{"text": " ".join(words), "tokens": len(words)}}


worker.start({{"handler": handler}})
"""

err = Console(stderr=True, highlight=False)
T = TypeVar("T")


# --------------------------------------------------------------------------- a lean client


def http_request(method: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one HTTP/1.1 request, prepared once and sent many times."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: send prepared bytes, read status and body.

    It understands Content-Length and chunked bodies (a streaming proxy may send either), and
    reconnects when the server closed the connection.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        reader, writer = self.reader, self.writer
        assert reader is not None
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length: int | None = None
        chunked = close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            body = await self._chunked(reader)
        elif length is not None:
            body = await reader.readexactly(length)
        elif status in (204, 304) or status < 200:
            body = b""
        else:  # no length: the body ends with the connection
            body, close = await reader.read(), True
        if close:
            await self.close()
        return status, body

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append((await reader.readexactly(size + 2))[:-2])

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (uvicorn[standard] brings it): a cheaper client."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


@dataclass(frozen=True)
class Call:
    """One prepared request and how to judge its answer."""

    port: int
    request: bytes
    fast_ok: Callable[[int, bytes], bool]  # cheap check on every timed answer
    full_check: Callable[[int, bytes], None]  # raises on a wrong answer (warm-up only)

    def fail(self, status: int, body: bytes) -> RuntimeError:
        return RuntimeError(f"unexpected answer: HTTP {status} {body[:300]!r}")


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Settings:
    samples: int
    warmup: int
    requests: int
    clients: int
    loadavg_1m: float = 0.0


@dataclass(frozen=True)
class Load:
    per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms: dict[str, float]  # per request: "server" (its process trees), "client" (this one)


def latency_ms(samples: Sequence[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1e3, percentile(samples, 99) * 1e3


async def _sequential(call: Call, settings: Settings) -> list[float]:
    conn = HttpConnection(call.port)
    try:
        for _ in range(settings.warmup):
            call.full_check(*await conn.call(call.request))
        samples: list[float] = []
        with gc_paused():
            for _ in range(settings.samples):
                start = time.perf_counter()
                status, body = await conn.call(call.request)
                samples.append(time.perf_counter() - start)
                if not call.fast_ok(status, body):
                    raise call.fail(status, body)
        return samples
    finally:
        await conn.close()


def sequential(call: Call, settings: Settings) -> tuple[float, float]:
    """p50 and p99 (ms) of back-to-back calls from one connection, after a warm-up."""
    return latency_ms(run_async(_sequential(call, settings)))


async def _load(call: Call, n: int, clients: int, servers: Sequence[Managed]) -> Load:
    conns = [HttpConnection(call.port) for _ in range(clients)]
    latencies: list[float] = []
    left = n

    async def client(conn: HttpConnection) -> None:
        nonlocal left
        request, fast_ok, clock = call.request, call.fast_ok, time.perf_counter
        while left > 0:
            left -= 1
            start = clock()
            status, body = await conn.call(request)
            latencies.append(clock() - start)
            if not fast_ok(status, body):
                raise call.fail(status, body)

    try:
        # Open every connection (and check an answer on each) before the clock starts.
        for status, body in await asyncio.gather(*(c.call(call.request) for c in conns)):
            call.full_check(status, body)
        with gc_paused():
            meter = CpuMeter(servers)
            start = time.perf_counter()
            async with asyncio.timeout(max(120.0, n * 0.05)):
                await asyncio.gather(*(client(c) for c in conns))
            elapsed = time.perf_counter() - start
            cpu = meter.per_job_ms(n)
    finally:
        for conn in conns:
            await conn.close()
    p50, p99 = latency_ms(latencies)
    return Load(n / elapsed, p50, p99, cpu)


def load(call: Call, settings: Settings, servers: Sequence[Managed]) -> Load:
    """``settings.requests`` calls from ``settings.clients`` concurrent connections, after a
    shorter warm-up run (which also fills the proxy's own connection pool)."""
    warm = max(settings.clients, settings.requests // 10)
    run_async(_load(call, warm, settings.clients, servers))
    return run_async(_load(call, settings.requests, settings.clients, servers))


def generate_call(port: int, path: str, headers: dict[str, str]) -> Call:
    body = json.dumps(PROMPT).encode()

    def full_check(status: int, answer: bytes) -> None:
        if status != 200:
            raise RuntimeError(f"POST {path}: HTTP {status} {answer[:300]!r}")
        parsed = json.loads(answer)
        if parsed.get("tokens") != 1 or not isinstance(parsed.get("text"), str):
            raise RuntimeError(f"POST {path}: unexpected body {answer[:300]!r}")

    return Call(
        port,
        http_request("POST", port, path, body, {"Content-Type": "application/json", **headers}),
        lambda status, _: status == 200,
        full_check,
    )


def measure_direct(sup: Supervisor, settings: Settings) -> dict[str, Any]:
    port = free_port()
    env = child_env(PORT=str(port), PORT_HEALTH=str(port), INIT_SECONDS="0")
    managed = sup.start("direct", [sys.executable, str(APP)], env=env, cwd=EXAMPLE)
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False) as client:
            wait_until(
                "the example app (GET /ping -> 200)",
                managed,
                lambda: client.get(f"http://{HOST}:{port}/ping").status_code == 200,
                30.0,
                sup,
            )
        call = generate_call(port, "/generate", {})
        p50, p99 = sequential(call, settings)
        return {"p50_ms": p50, "p99_ms": p99, "load": load(call, settings, [managed])}
    finally:
        sup.stop(managed)


def start_runq(
    sup: Supervisor, name: str, toml: Path, tmp: Path
) -> tuple[Managed, int, dict[str, str]]:
    port = free_port()
    key = secrets.token_urlsafe(24)
    env = with_pythonpath(child_env(RUNQ_API_KEY=key), REPO / "src")
    argv = [sys.executable, "-c", RUNQ_CLI_SHIM, "serve", str(toml), "--port", str(port)]
    argv += ["--data-dir", str(tmp / f"{name}-data"), "--log-level", "warning"]
    managed = sup.start(name, argv, env=env, cwd=tmp)
    return managed, port, {"Authorization": f"Bearer {key}"}


def write_lb_endpoint(tmp: Path) -> Path:
    toml = tmp / "lb-endpoint.toml"
    # json.dumps gives a valid TOML basic string for any path.
    toml.write_text(
        f'name = "{LB_NAME}"\n'
        'type = "load_balancer"\n\n'
        "[worker]\n"
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(APP))}]\n"
        f"dir = {json.dumps(str(EXAMPLE))}\n"
        "port = 8080\n"
        "health_port = 8080\n\n"
        "[scaling]\n"
        "active_workers = 1\n"
        "max_workers = 1\n"
    )
    return toml


def wait_lb_ready(
    sup: Supervisor, managed: Managed, client: httpx.Client, base: str, call_path: str
) -> None:
    """Until an idle worker is listed and a proxied call answers 200, with a deadline; a 404
    that lasts means this runq has no load-balancing proxy."""
    wait_until(
        "runq serve (GET /admin/workers)",
        managed,
        lambda: client.get(f"{base}/admin/workers").status_code == 200,
        60.0,
        sup,
    )
    body = json.dumps(PROMPT).encode()
    deadline = time.monotonic() + READY_TIMEOUT_S
    idle_seen = False
    states: list[str] = []
    first_404: float | None = None
    last = "no answer yet"
    while time.monotonic() < deadline:
        code = managed.proc.poll()
        if code is not None:
            raise Skip(f"runq serve exited with code {code}:\n{sup.tail(managed)}")
        try:
            rows = client.get(f"{base}/admin/workers", params={"endpoint": LB_NAME}).json()
            states = [str(row.get("state")) for row in rows if isinstance(row, dict)]
            idle_seen = idle_seen or "idle" in states
            resp = client.post(
                f"{base}{call_path}", content=body, headers={"content-type": "application/json"}
            )
        except (httpx.HTTPError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
            continue
        last = f"HTTP {resp.status_code} {resp.text[:200]!r}"
        if resp.status_code == 200 and idle_seen:
            return
        if resp.status_code == 404:
            first_404 = first_404 or time.monotonic()
            if time.monotonic() - first_404 >= NO_PROXY_AFTER_S:
                raise Skip(
                    f"no load-balancing proxy: POST {call_path} answered 404 for "
                    f"{NO_PROXY_AFTER_S:.0f}s ({last}); workers of {LB_NAME}: {states}"
                )
        else:
            first_404 = None
        time.sleep(0.1)
    raise Skip(
        f"no idle worker answering through the proxy after {READY_TIMEOUT_S:.0f}s "
        f"(last: {last}; workers of {LB_NAME}: {states}):\n{sup.tail(managed)}"
    )


def measure_proxied(sup: Supervisor, settings: Settings, tmp: Path) -> dict[str, Any]:
    toml = write_lb_endpoint(tmp)
    managed, port, auth = start_runq(sup, "runq-lb", toml, tmp)
    base = f"http://{HOST}:{port}"
    path = f"/lb/{LB_NAME}/generate"
    try:
        with httpx.Client(headers=auth, timeout=HTTP_TIMEOUT, trust_env=False) as client:
            wait_lb_ready(sup, managed, client, base, path)
        call = generate_call(port, path, auth)
        p50, p99 = sequential(call, settings)
        return {"p50_ms": p50, "p99_ms": p99, "load": load(call, settings, [managed])}
    finally:
        sup.stop(managed)


def write_queue_endpoint(tmp: Path) -> Path:
    handler = tmp / "generate_handler.py"
    handler.write_text(QUEUE_HANDLER.format(example=str(EXAMPLE)))
    toml = tmp / "queue-endpoint.toml"
    toml.write_text(
        f'name = "{QUEUE_NAME}"\n\n'
        "[worker]\n"
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(handler))}]\n\n"
        "[scaling]\n"
        "active_workers = 1\n"
        "max_workers = 1\n"
    )
    return toml


def measure_queue(sup: Supervisor, settings: Settings, tmp: Path) -> dict[str, Any]:
    toml = write_queue_endpoint(tmp)
    managed, port, auth = start_runq(sup, "runq-queue", toml, tmp)
    base = f"http://{HOST}:{port}/v2/{QUEUE_NAME}"
    body = json.dumps({"input": PROMPT}).encode()
    try:
        with httpx.Client(headers=auth, timeout=HTTP_TIMEOUT, trust_env=False) as client:

            def ready() -> bool:
                resp = client.post(
                    f"{base}/runsync", content=body, headers={"content-type": "application/json"}
                )
                return resp.status_code == 200 and resp.json().get("status") == "COMPLETED"

            wait_until("runq serve (a queue job COMPLETED)", managed, ready, READY_TIMEOUT_S, sup)

        def full_check(status: int, answer: bytes) -> None:
            parsed = json.loads(answer) if status == 200 else {}
            if (
                parsed.get("status") != "COMPLETED"
                or (parsed.get("output") or {}).get("tokens") != 1
            ):
                raise RuntimeError(f"POST runsync: HTTP {status} {answer[:300]!r}")

        path = f"/v2/{QUEUE_NAME}/runsync"
        headers = {"Content-Type": "application/json", **auth}
        call = Call(
            port,
            http_request("POST", port, path, body, headers),
            lambda status, answer: status == 200 and b'"COMPLETED"' in answer,
            full_check,
        )
        p50, p99 = sequential(call, settings)
        return {"p50_ms": p50, "p99_ms": p99}
    finally:
        sup.stop(managed)


# --------------------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _check(ok: bool | None) -> str:
    return "[dim]n/a[/]" if ok is None else ("[green]pass[/]" if ok else "[red]FAIL[/]")


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _load_fields(result: dict[str, Any]) -> dict[str, Any]:
    """The concurrent run's figures by name; empty when there was none."""
    found: Load | None = result.get("load")
    return {} if found is None else asdict(found)


def clients_key(n: int) -> str:
    """The suffix of the concurrent figures' keys: ``64_clients``, ``1_client``."""
    return f"{n}_client" if n == 1 else f"{n}_clients"


def build_summary(
    results: dict[str, dict[str, Any]],
    failed: dict[str, str],
    skipped: dict[str, str],
    settings: Settings,
) -> dict[str, Any]:
    direct, proxied, queue = (results.get(name, {}) for name in SYSTEMS)
    d_load, p_load = _load_fields(direct), _load_fields(proxied)
    n = settings.clients
    c = clients_key(n)
    added = _sub(proxied.get("p50_ms"), direct.get("p50_ms"))
    rps_ratio = _div(p_load.get("per_s"), d_load.get("per_s"))
    queue_ratio = _div(queue.get("p50_ms"), proxied.get("p50_ms"))
    return {
        "direct_p50_ms": direct.get("p50_ms"),
        "direct_p99_ms": direct.get("p99_ms"),
        "proxied_p50_ms": proxied.get("p50_ms"),
        "proxied_p99_ms": proxied.get("p99_ms"),
        "added_p50_ms": added,
        "added_p99_ms": _sub(proxied.get("p99_ms"), direct.get("p99_ms")),
        "queue_p50_ms": queue.get("p50_ms"),
        "queue_p99_ms": queue.get("p99_ms"),
        "queue_over_proxied_p50": queue_ratio,
        f"direct_p50_ms_{c}": d_load.get("p50_ms"),
        f"direct_p99_ms_{c}": d_load.get("p99_ms"),
        f"direct_req_per_s_{c}": d_load.get("per_s"),
        f"direct_cpu_ms_per_req_{c}": d_load.get("cpu_ms"),
        f"proxied_p50_ms_{c}": p_load.get("p50_ms"),
        f"proxied_p99_ms_{c}": p_load.get("p99_ms"),
        f"proxied_req_per_s_{c}": p_load.get("per_s"),
        f"proxied_cpu_ms_per_req_{c}": p_load.get("cpu_ms"),
        f"added_p50_ms_{c}": _sub(p_load.get("p50_ms"), d_load.get("p50_ms")),
        f"proxied_over_direct_req_per_s_{c}": rps_ratio,
        "targets": {
            "added_p50_le_1ms": None if added is None else added <= 1.0,
            f"proxied_req_per_s_{c}_ge_half_direct": (
                None if rps_ratio is None else rps_ratio >= 0.5
            ),
            "queue_p50_ge_2x_proxied_p50": None if queue_ratio is None else queue_ratio >= 2.0,
        },
        "failed": failed,
        "skipped": skipped,
        "samples": settings.samples,
        "requests": settings.requests,
        "clients": n,
        "request": f"POST /generate {json.dumps(PROMPT)}",
        "client": "asyncio HTTP/1.1 keep-alive, one connection per client, prepared requests",
        "cpus": os.cpu_count(),
        "loadavg_1m_at_start": settings.loadavg_1m,
        "python": platform.python_version(),
    }


def print_report(
    results: dict[str, dict[str, Any]], summary: dict[str, Any], settings: Settings
) -> None:
    out = Console(highlight=False)
    if not out.is_terminal:
        out.width = max(out.width, 160)  # a log file, not a screen: don't squeeze the table
    n = settings.clients
    c = clients_key(n)
    table = Table(
        title=f"runq load-balancing proxy overhead: POST /generate (max_tokens 1), one worker, "
        f"loopback, {os.cpu_count()} CPUs, {settings.samples} sequential samples, "
        f"{settings.requests} requests from {n} clients"
    )
    table.add_column("path", no_wrap=True)
    table.add_column("p50 ms, 1 client", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column(f"p50 ms, {n} clients", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column(f"req/s, {n} clients", justify="right")
    table.add_column("CPU ms/req: server + client", justify="right")
    table.add_column("notes", no_wrap=True)
    rows = [
        ("direct", "direct: app.py alone"),
        ("proxied", "proxied: runq /lb/…"),
        ("queue", "queue: runq /runsync"),
    ]
    for key, label in rows:
        reason = summary["failed"].get(key) or summary["skipped"].get(key)
        if reason is not None:
            first = reason.splitlines()[0] if reason else ""
            if len(first) > 40:
                first = first[:37] + "..."
            word = "failed" if key in summary["failed"] else "skipped"
            colour = "red" if word == "failed" else "yellow"
            row = [label, "-", "-", "-", "-", "-", "-", f"[{colour}]{word}: {escape(first)}[/]"]
            table.add_row(*row)
            continue
        res = results.get(key, {})
        lo = _load_fields(res)
        cpu = lo.get("cpu_ms")
        table.add_row(
            label,
            _fmt(res.get("p50_ms")),
            _fmt(res.get("p99_ms")),
            _fmt(lo.get("p50_ms")),
            _fmt(lo.get("p99_ms")),
            _fmt(lo.get("per_s"), 0),
            "-" if cpu is None else f"{cpu['server']:.3f} + {cpu['client']:.3f}",
            "" if lo else "1 client only",
        )
    out.print(table)
    for key, reason in summary["failed"].items():
        out.print(f"[red]{key} failed:[/] {escape(reason)}")

    targets = Table(title="targets")
    targets.add_column("target")
    targets.add_column("measured", justify="right")
    targets.add_column("result")
    checks: dict[str, bool | None] = summary["targets"]
    ratio = summary[f"proxied_over_direct_req_per_s_{c}"]
    queue_ratio = summary["queue_over_proxied_p50"]
    targets.add_row(
        "added p50 (proxied - direct, 1 client) <= 1 ms",
        _fmt(summary["added_p50_ms"], 3) + " ms",
        _check(checks["added_p50_le_1ms"]),
    )
    targets.add_row(
        f"proxied req/s >= 50% of direct ({n} clients)",
        "-" if ratio is None else f"{ratio * 100:.0f}%",
        _check(checks[f"proxied_req_per_s_{c}_ge_half_direct"]),
    )
    targets.add_row(
        "queue p50 >= 2x proxied p50 (1 client)",
        "-" if queue_ratio is None else f"{queue_ratio:.2f}x",
        _check(checks["queue_p50_ge_2x_proxied_p50"]),
    )
    out.print(targets)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, set[str]]:
    parser = argparse.ArgumentParser(
        description="Overhead of runq's load-balancing proxy against the app called directly, "
        "and against a queue endpoint."
    )
    parser.add_argument("--samples", type=int, default=None, help="sequential samples (500)")
    parser.add_argument(
        "--requests", type=int, default=None, help="requests per concurrent run (10000)"
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent connections (64)")
    parser.add_argument(
        "--skip", default="", help=f"comma-separated systems to skip: {','.join(SYSTEMS)}"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 100 samples, 1000 requests"
    )
    args = parser.parse_args(argv)
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    unknown = skip - set(SYSTEMS)
    if unknown:
        parser.error(f"--skip: unknown system(s) {sorted(unknown)}; choose from {SYSTEMS}")
    samples = args.samples if args.samples is not None else (100 if args.quick else 500)
    requests = args.requests if args.requests is not None else (1000 if args.quick else 10000)
    if samples < 1 or args.clients < 1 or requests < args.clients:
        parser.error("--samples and --clients must be >= 1, --requests >= --clients")
    settings = Settings(
        samples=samples,
        warmup=20 if args.quick else 100,
        requests=requests,
        clients=args.clients,
        loadavg_1m=os.getloadavg()[0],
    )
    return settings, skip


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    settings, skip = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _raise_interrupt)

    results: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    skipped = {name: "--skip" for name in SYSTEMS if name in skip}
    tmp = Path(tempfile.mkdtemp(prefix="runq-lb-overhead-"))
    sup = Supervisor(log_dir=tmp)
    plan: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("direct", lambda: measure_direct(sup, settings)),
        ("proxied", lambda: measure_proxied(sup, settings, tmp)),
        ("queue", lambda: measure_queue(sup, settings, tmp)),
    ]
    try:
        for name, measure in plan:
            if name in skip:
                continue
            err.print(f"[bold]measuring {name}[/] ...")
            began = time.monotonic()
            try:
                results[name] = measure()
                err.print(f"  {name}: done in {time.monotonic() - began:.1f}s")
            except Exception as exc:
                reason = str(exc) if isinstance(exc, Skip) else f"{type(exc).__name__}: {exc}"
                failed[name] = reason
                err.print(f"[red]  {name} could not be measured:[/] {escape(reason)}")
    except KeyboardInterrupt:
        err.print("[red]interrupted: stopping everything[/]")
        return 130
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # don't cut the cleanup short
        try:
            sup.stop_all()
        finally:
            signal.signal(signal.SIGINT, previous)
            shutil.rmtree(tmp, ignore_errors=True)

    summary = build_summary(results, failed, skipped, settings)
    print_report(results, summary, settings)
    sys.stdout.flush()
    print(json.dumps(summary), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
