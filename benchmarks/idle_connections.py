"""What 2,000 idle and half-sent connections cost `/run`, and when runq closes them.

One `runq serve` with one native echo worker, on loopback. `/run` latency of sequential calls
from one keep-alive connection, in rounds (`--rounds`, 3) of two phases, so that a load that
drifts on a shared box weighs on both alike:

* idle0: no other connection (the anchor);
* idle2000: while 2,000 other connections are open, half of them sending nothing and half
  having sent part of a request head (a slow-loris client); this side closes them after.

Then it opens 2,000 more, measures once more while they are open, and waits for the server to
close them (the `[server] header_timeout`, 20 s unless `--header-timeout` says otherwise):
how long each stayed open. The issue's target: idle2000 p50 at most 1.2x idle0 p50 (medians of
all the rounds' samples), and every connection closed by the server.

How to run it (from the repository root)::

    python benchmarks/idle_connections.py        # --quick: fewer samples; --help

It prints a table on stdout and, as its last line, one JSON object: `run_p50_ms_idle0`,
`run_p50_ms_idle2000`, `run_p50_ms_after`, `ratio`, `closed_after_s` (the longest any
connection stayed open), `closed_after_s_p50`, `still_open`, `connections`,
`header_timeout_s`. Each connection holds a file descriptor here and one in the server: the
soft RLIMIT_NOFILE is raised (up to the hard limit) before the server starts, and inherited.
"""

from __future__ import annotations

import argparse
import json
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from live_serve import REPO, LiveServe, wait_until

HALF_HEAD = b"POST /v2/echo/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
ENDPOINT = """name = "echo"
[worker]
command = ["python", "{handler}"]
[scaling]
active_workers = 1
max_workers = 1
"""


def raise_fd_limit(needed: int) -> int:
    """Raise the soft fd limit towards `needed` (at most the hard limit); the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def run_ms(serve: LiveServe, samples: int) -> list[float]:
    """Ms of each of `samples` sequential POST /run from one keep-alive connection."""
    body = {"input": {"text": "hi"}}
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        reply = serve.client.post("/v2/echo/run", json=body)
        times.append((time.perf_counter() - started) * 1000)
        reply.raise_for_status()
    serve.client.post("/v2/echo/purge-queue").raise_for_status()  # the worker need not catch up
    return times


def open_connections(port: int, count: int) -> list[tuple[socket.socket, float]]:
    """`count` connections: even ones send nothing, odd ones part of a request head."""
    opened = []
    for index in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if index % 2:
            sock.sendall(HALF_HEAD)
        opened.append((sock, time.monotonic()))
    return opened


def wait_closed(opened: list[tuple[socket.socket, float]], deadline_s: float) -> list[float]:
    """How long each connection stayed open until the server closed it (seconds); those
    still open at the deadline are left out (and closed here)."""
    selector = selectors.DefaultSelector()
    for sock, opened_at in opened:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, opened_at)
    lifetimes = []
    deadline = time.monotonic() + deadline_s
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                data = ready.recv(4096)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data:  # closed by the server
                lifetimes.append(time.monotonic() - key.data)
                selector.unregister(ready)
                ready.close()
    for key in list(selector.get_map().values()):
        selector.unregister(key.fileobj)
        key.fileobj.close()  # type: ignore[union-attr]
    return lifetimes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=300, help="/run calls per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--header-timeout", type=float, default=None, help="s; default: runq's")
    parser.add_argument("--quick", action="store_true", help="100 samples")
    args = parser.parse_args()
    samples = 100 if args.quick else args.samples
    limit = raise_fd_limit(2 * args.connections + 1024)
    count = min(args.connections, (limit - 512) // 2)
    if count < args.connections:
        print(f"fd limit {limit}: {count} connections, not {args.connections}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="runq-idle-") as tmp:
        root = Path(tmp)
        handler = REPO / "tests" / "handlers" / "native_echo.py"
        (root / "echo.toml").write_text(ENDPOINT.format(handler=handler))
        config = "[server]\n"
        if args.header_timeout is not None:
            config += f"header_timeout = {args.header_timeout}\n"
        serve = LiveServe(root, [str(root / "echo.toml")], config=config)
        try:
            wait_until("the echo worker", lambda: _worker_ready(serve), 60)
            run_ms(serve, max(20, samples // 5))  # warm-up
            idle0_ms: list[float] = []
            idle_n_ms: list[float] = []
            for _ in range(args.rounds):
                idle0_ms += run_ms(serve, samples)
                opened = open_connections(serve.port, count)
                idle_n_ms += run_ms(serve, samples)
                for sock, _opened_at in opened:
                    sock.close()
            started = time.monotonic()
            opened = open_connections(serve.port, count)
            opening_s = time.monotonic() - started
            last_ms = run_ms(serve, samples)
            measured_within_s = time.monotonic() - started
            lifetimes = wait_closed(opened, deadline_s=120)
            after = statistics.median(run_ms(serve, samples))
        finally:
            serve.stop()

    from runq.core.config import ServerConfig  # the default the server used

    header_timeout = args.header_timeout or ServerConfig().header_timeout_s
    idle0, idle_n = statistics.median(idle0_ms), statistics.median(idle_n_ms)
    ratio = idle_n / idle0
    closed_max = max(lifetimes) if lifetimes else None
    closed_p50 = statistics.median(lifetimes) if lifetimes else None
    rows = [
        ("idle0 (anchor)", 0, idle0),
        (f"idle{count}", count, idle_n),
        (f"idle{count}, last open", count, statistics.median(last_ms)),
        ("after runq closed them", 0, after),
    ]
    print(f"{'phase':<26}{'other conns':>12}{'/run p50 ms':>14}{'vs idle0':>10}")
    for name, conns, p50 in rows:
        print(f"{name:<26}{conns:>12}{p50:>14.2f}{p50 / idle0:>9.2f}x")
    print(
        f"{count} connections opened in {opening_s:.1f} s; idle{count} measured within "
        f"{measured_within_s:.1f} s of the first; {len(lifetimes)} closed by the server after "
        f"{closed_p50 or 0:.1f} s (median), {closed_max or 0:.1f} s (longest); "
        f"header_timeout {header_timeout:g} s; target ratio <= 1.2"
    )
    figures = {
        "run_p50_ms_idle0": round(idle0, 3),
        f"run_p50_ms_idle{args.connections}": round(idle_n, 3),
        "run_p50_ms_after": round(after, 3),
        "ratio": round(ratio, 3),
        "closed_after_s": None if closed_max is None else round(closed_max, 2),
        "closed_after_s_p50": None if closed_p50 is None else round(closed_p50, 2),
        "still_open": count - len(lifetimes),
        "connections": count,
        "header_timeout_s": header_timeout,
        "samples": samples * args.rounds,
    }
    print(json.dumps(figures))


def _worker_ready(serve: LiveServe) -> bool:
    workers = serve.client.get("/v2/echo/health").json()["workers"]
    return bool(workers["idle"] + workers["running"] >= 1)


if __name__ == "__main__":
    main()
