"""How runq's cost grows: queued jobs, workers, endpoints and waiting clients (issue 20).

Each series runs against the real control plane (`scale_server.py`: `runq serve`'s app, store,
scheduler and uvicorn, its workers being protocol-exact loops in one worker-host process,
`scale_workers.py`), on SQLite and on PostgreSQL (a throwaway cluster, as the tests run one)
side by side. The anchor of each series is the same server at its smallest size, in the same
run: every target is a ratio to it, or an absolute bound.

- queue depth: /run p50/p99 and completed jobs/s with 0, 100k and 1M jobs queued on another
  endpoint (nobody takes them): three servers, one per depth, up at once, measured in turns
  (short bursts of 4 clients posting /run back to back, the order rotating each round), so a
  shared machine's changing load falls on every depth alike. Then the 1M queued on the
  measured endpoint itself (its workers take from the front while /run appends at the back).
  Queues are filled with SQL while no server runs (a million /run calls would take the whole
  budget): the deepest database is a copy of the next one, topped up.
- fleet size: the scheduler tick's p50/p99 (every tick is timed in the server; `decide` is
  its part after the store answered, on the loop, without the wait for the store; and the
  longest pause of Python's full garbage collections meanwhile), /health,
  /metrics and the dashboard's endpoint page with 1, 10 and 100 endpoints and 10, 100 and
  1,000 workers (spread over the endpoints), all workers long-polling and pinging.
- waiting clients: 10, 100 and 1,000 concurrent /runsync and /stream?wait= waiters on jobs
  nobody runs: the server's memory per waiter (RSS) and /run p50 on another endpoint, as a
  ratio to /run p50 without waiters (the mean of the batches just before and just after);
  then a purge wakes them all.
- memory: the server's RSS per queued job (SQLite's page cache is in the process;
  PostgreSQL's memory is its own processes') and per worker.

    python benchmarks/scale.py            # < 15 min
    python benchmarks/scale.py --quick    # < 5 min: 100k for 1M, fewer fleet sizes
    python benchmarks/scale.py --plot docs/scale.png

Prints a table per series, and as its last line one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))  # tests/postgres.py: the throwaway PostgreSQL cluster

LOAD_SUBMITTERS = 4
WAIT_MS = 120_000
WORKERS = 8  # on the measured endpoint of the queue series


@dataclass(frozen=True)
class Sizes:
    depths: tuple[int, ...]
    rounds: int  # queue series: turns per server
    burst_s: float  # ... each this long
    fleet: tuple[tuple[int, int], ...]  # (endpoints, workers)
    tick_s: float
    probes: int
    waiters: tuple[int, ...]
    runs: int  # sequential /run calls per waiter batch


FULL = Sizes(
    depths=(0, 100_000, 1_000_000),
    rounds=12,
    burst_s=0.75,
    fleet=tuple((e, w) for w in (10, 100, 1000) for e in (1, 10, 100)),
    tick_s=4.0,
    probes=30,
    waiters=(10, 100, 1000),
    runs=100,
)
QUICK = Sizes(
    depths=(0, 10_000, 100_000),
    rounds=8,
    burst_s=0.5,
    fleet=((1, 10), (10, 100), (100, 1000)),
    tick_s=3.0,
    probes=15,
    waiters=(10, 100, 1000),
    runs=60,
)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the server ---------------------------------------------------------------------------


@dataclass
class Plane:
    """One scale_server.py process on `tmp/data`, serving `endpoints`: name -> (active, max)."""

    tmp: Path
    store: str
    endpoints: dict[str, tuple[int, int]]
    idle: str = "backlog"  # endpoints with this prefix get no worker loops
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def launch(self) -> None:
        specs = self.tmp / "specs"
        shutil.rmtree(specs, ignore_errors=True)
        specs.mkdir(parents=True)
        for name, (active, maximum) in self.endpoints.items():
            (specs / f"{name}.toml").write_text(
                f'name = "{name}"\n\n[worker]\ncommand = ["true"]\n\n[scaling]\n'
                f'active_workers = {active}\nmax_workers = {maximum}\nidle_timeout = "1h"\n'
            )
        data = self.tmp / "data"
        data.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "RUNQ_API_KEY": self.key,
            "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "SCALE_IDLE_PREFIX": self.idle,
        }
        log = open(self.tmp / "server.log", "ab")  # noqa: SIM115 - the child holds it
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "scale_server.py"),
                str(data),
                str(self.port),
                self.store,
                str(specs),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self) -> None:
        assert self.process is not None
        first = next(iter(self.endpoints))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.tmp / 'server.log'}")
            with contextlib.suppress(httpx.HTTPError):
                reply = httpx.get(f"{self.url}/v2/{first}/health", headers=self.auth, timeout=5)
                if reply.status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("the server did not answer within 60 s")

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        """Killed, server and worker host: the benchmark is done with it, and a graceful stop
        (up to 5 s of held long-polls) would measure nothing. Both stores keep what they
        committed through a kill."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def client(self, connections: int = 100) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(base_url=self.url, headers=self.auth, limits=limits, timeout=300)


def start_all(planes: list[Plane]) -> None:
    """Started side by side: a server's start is mostly imports, on the other core."""
    for plane in planes:
        plane.launch()
    for plane in planes:
        plane.wait_ready()


async def workers_ready(client: httpx.AsyncClient, want: int, timeout: float = 180) -> None:
    """Until `want` workers are idle or running over all endpoints."""
    deadline = time.monotonic() + timeout
    ready = 0
    while time.monotonic() < deadline:
        rows = (await client.get("/admin/endpoints")).json()
        ready = sum(row["workers"]["idle"] + row["workers"]["running"] for row in rows)
        if ready >= want:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"only {ready} of {want} workers became ready")


async def timed(call: Callable[[], Awaitable[httpx.Response]]) -> float:
    started = time.perf_counter()
    reply = await call()
    reply.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def probe(call: Callable[[], Awaitable[httpx.Response]], n: int) -> dict[str, float]:
    times = [await timed(call) for _ in range(n)]
    return {"p50_ms": round(pct(times, 50), 2), "p99_ms": round(pct(times, 99), 2)}


async def completed(client: httpx.AsyncClient, endpoint: str) -> int:
    body = (await client.get(f"/v2/{endpoint}/health")).json()
    return int(body["jobs"]["completed"])


@dataclass
class Load:
    """/run latencies and completed jobs, summed over bursts."""

    latencies: list[float] = field(default_factory=list)
    jobs: int = 0
    seconds: float = 0.0

    def row(self) -> dict[str, float]:
        return {
            "run_p50_ms": round(pct(self.latencies, 50), 2),
            "run_p99_ms": round(pct(self.latencies, 99), 2),
            "runs": len(self.latencies),
            "jobs_per_s": round(self.jobs / self.seconds, 1) if self.seconds else 0.0,
        }


async def burst(client: httpx.AsyncClient, endpoint: str, seconds: float, into: Load) -> None:
    """LOAD_SUBMITTERS clients post /run back to back for `seconds`; the jobs the endpoint's
    workers completed meanwhile."""

    async def submit(until: float) -> None:
        while time.monotonic() < until:
            ms = await timed(lambda: client.post(f"/v2/{endpoint}/run", json={"input": {"n": 1}}))
            into.latencies.append(ms)

    before, started = await completed(client, endpoint), time.monotonic()
    await asyncio.gather(*(submit(started + seconds) for _ in range(LOAD_SUBMITTERS)))
    after, ended = await completed(client, endpoint), time.monotonic()
    into.jobs += after - before
    into.seconds += ended - started


async def sequential_runs(client: httpx.AsyncClient, endpoint: str, n: int) -> float:
    times = [
        await timed(lambda: client.post(f"/v2/{endpoint}/run", json={"input": {"n": 1}}))
        for _ in range(n)
    ]
    return pct(times, 50)


# --- filling a queue with SQL, no server running ------------------------------------------


def fill(store: str, data: Path, endpoint: str, start: int, count: int) -> float:
    """`count` queued jobs on `endpoint`, through the store's schema (its triggers count them),
    in a store made (migrated) first. Returns the seconds it took."""
    started = time.monotonic()
    now = time.time()
    if store == "sqlite":
        from runq.store.sqlite import SqliteJobStore

        path = data / "runq.db"
        asyncio.run(_open_close(SqliteJobStore(path)))
        if count <= 0:
            return 0.0
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(
            "WITH RECURSIVE g(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
            "INSERT INTO jobs (id, endpoint, status, input, ttl_s, created_at) "
            "SELECT 'bulk-' || i, ?, 'IN_QUEUE', '{\"n\": 1}', 86400, ? FROM g",
            (start, start + count - 1, endpoint, now),
        )
        conn.commit()
        conn.close()
    else:
        import psycopg

        from runq.store.postgres import PostgresJobStore

        asyncio.run(_open_close(PostgresJobStore(store)))
        if count <= 0:
            return 0.0
        with psycopg.connect(store, autocommit=True) as pg:
            pg.execute(
                "INSERT INTO jobs (id, endpoint, status, input, ttl_s, created_at) "
                "SELECT 'bulk-' || g, %s, 'IN_QUEUE', '{\"n\": 1}', 86400, %s "
                "FROM generate_series(%s::bigint, %s::bigint) AS g",
                (endpoint, now, start, start + count - 1),
            )
            pg.execute("VACUUM ANALYZE jobs")  # what autovacuum does after a bulk load
    return time.monotonic() - started


def copy_store(store: str, data: Path, new_store: Callable[[str | None], str], to: Path) -> str:
    """A copy of a filled store (its data dir, or its database as a template)."""
    to.mkdir(parents=True)
    if store == "sqlite":
        shutil.copy2(data / "runq.db", to / "runq.db")
        return store
    return new_store(store)


async def _open_close(store: Any) -> None:
    await store.open()
    await store.close()


# --- the series ---------------------------------------------------------------------------


def queue_series(
    new_store: Callable[[str | None], str], tmp: Path, sizes: Sizes
) -> list[dict[str, Any]]:
    endpoints = {"work": (WORKERS, WORKERS), "backlog": (0, 1)}
    planes: list[Plane] = []
    fills: list[float] = []
    below: tuple[str, Path, int] | None = None  # the last store filled, its data dir, depth
    for depth in sizes.depths:
        case = tmp / f"depth-{depth}"
        if below is None:
            store, filled = new_store(None), 0
            (case / "data").mkdir(parents=True)
        else:
            store = copy_store(below[0], below[1], new_store, case / "data")
            filled = below[2]
        fills.append(fill(store, case / "data", "backlog", filled, depth - filled))
        below = (store, case / "data", depth)
        planes.append(Plane(case, store, endpoints))
    start_all(planes)
    try:
        loads, extra = asyncio.run(_queue_turns(planes, sizes))
    finally:
        for plane in planes:
            plane.stop()
    rows = [
        {"queued": depth, "where": "other endpoint", "fill_s": round(fill_s, 1), **load, **more}
        for depth, fill_s, load, more in zip(sizes.depths, fills, loads, extra, strict=True)
    ]
    # The deepest queue, now on the measured endpoint: its workers take from the front.
    assert below is not None
    plane = Plane(tmp / f"depth-{sizes.depths[-1]}", below[0], {"backlog": (WORKERS, WORKERS)})
    plane.idle = "none"
    plane.start()
    try:
        loads, extra = asyncio.run(_queue_turns([plane], sizes, endpoint="backlog"))
    finally:
        plane.stop()
    rows.append(
        {
            "queued": sizes.depths[-1],
            "where": "same endpoint",
            "fill_s": 0.0,
            **loads[0],
            **extra[0],
        }
    )
    return rows


async def _queue_turns(
    planes: list[Plane], sizes: Sizes, endpoint: str = "work"
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    clients = [plane.client() for plane in planes]
    try:
        for client in clients:
            await workers_ready(client, WORKERS)
        for client in clients:  # the first seconds of a new database are slower than any later
            await burst(client, endpoint, 1.0, Load())
        for client in clients:
            await client.get("/bench/ticks")
        loads = [Load() for _ in planes]
        for turn in range(sizes.rounds):
            for i in range(len(planes)):
                at = (i + turn) % len(planes)
                await burst(clients[at], endpoint, sizes.burst_s, loads[at])
        extra = []
        for plane, client in zip(planes, clients, strict=True):
            ticks = (await client.get("/bench/ticks")).json()["wall"]
            url = f"/v2/{endpoint}/health"
            health = await probe(functools.partial(client.get, url), sizes.probes)
            extra.append(
                {
                    "health_p50_ms": health["p50_ms"],
                    "tick_p99_ms": round(pct(ticks, 99), 2),
                    "rss_mib": round(plane.rss_kib() / 1024, 1),
                }
            )
        return [load.row() for load in loads], extra
    finally:
        for client in clients:
            await client.aclose()


def fleet_series(
    new_store: Callable[[str | None], str], tmp: Path, sizes: Sizes
) -> list[dict[str, Any]]:
    rows = []
    for n_endpoints, n_workers in sizes.fleet:
        names = [f"e{i:03d}" for i in range(n_endpoints)]
        share = [
            n_workers // n_endpoints + (1 if i < n_workers % n_endpoints else 0)
            for i in range(n_endpoints)
        ]
        endpoints = {name: (n, max(n, 1)) for name, n in zip(names, share, strict=True)}
        case_dir = tmp / f"fleet-{n_endpoints}-{n_workers}"
        case_dir.mkdir()
        plane = Plane(case_dir, new_store(None), endpoints)
        plane.start()
        try:
            row = asyncio.run(_fleet_case(plane, names[0], n_workers, sizes))
        finally:
            plane.stop()
            shutil.rmtree(case_dir, ignore_errors=True)
        rows.append({"endpoints": n_endpoints, "workers": n_workers, **row})
    return rows


async def _fleet_case(plane: Plane, first: str, n_workers: int, sizes: Sizes) -> dict[str, Any]:
    async with plane.client() as client, httpx.AsyncClient(base_url=plane.url) as browser:
        await workers_ready(client, n_workers)
        await client.get("/bench/ticks")  # ticks of the ramp-up are not the steady state
        await client.get("/bench/gc")
        until = time.monotonic() + sizes.tick_s
        while time.monotonic() < until:  # a light stream of jobs, so ticks see work
            await client.post(f"/v2/{first}/run", json={"input": {"n": 1}})
            await asyncio.sleep(0.02)
        ticks = (await client.get("/bench/ticks")).json()
        full_gcs = (await client.get("/bench/gc")).json()
        health = await probe(lambda: client.get(f"/v2/{first}/health"), sizes.probes)
        # The first scrape encodes every series (later ones reuse what did not move: runq.api.
        # family_text); reported apart, as the ramp-up's ticks are left out above.
        started = time.perf_counter()
        await client.get("/metrics")
        metrics_first_ms = (time.perf_counter() - started) * 1000
        metrics = await probe(lambda: client.get("/metrics"), max(5, sizes.probes // 3))
        await browser.get(f"/endpoints/{first}?token={plane.key}")  # a session cookie
        page = await probe(lambda: browser.get(f"/endpoints/{first}"), max(5, sizes.probes // 3))
    return {
        "tick_p50_ms": round(pct(ticks["wall"], 50), 2),
        "tick_p99_ms": round(pct(ticks["wall"], 99), 2),
        "decide_p99_ms": round(pct(ticks["decide"], 99), 2),
        "ticks": len(ticks["wall"]),
        "gc_max_ms": round(max(full_gcs, default=0.0), 1),
        "health_p99_ms": health["p99_ms"],
        "metrics_p99_ms": metrics["p99_ms"],
        "metrics_first_ms": round(metrics_first_ms, 1),
        "dashboard_p99_ms": page["p99_ms"],
        "rss_mib": round(plane.rss_kib() / 1024, 1),
    }


def waiter_series(store: str, tmp: Path, sizes: Sizes) -> list[dict[str, Any]]:
    plane = Plane(tmp, store, {"work": (4, 4), "backlog": (0, 1)})
    plane.start()
    try:
        return asyncio.run(_waiters(plane, sizes))
    finally:
        plane.stop()


async def submit_many(client: httpx.AsyncClient, endpoint: str, n: int) -> list[str]:
    """`n` jobs through /run, 50 at a time; their ids."""
    ids: list[str] = []
    for start in range(0, n, 50):
        replies = await asyncio.gather(
            *(
                client.post(f"/v2/{endpoint}/run", json={"input": {}})
                for _ in range(min(50, n - start))
            )
        )
        ids += [reply.json()["id"] for reply in replies]
    return ids


async def hold(session: aiohttp.ClientSession, url: str, kind: str, job_id: str) -> None:
    """One client waiting: /runsync (a new job) or /stream of `job_id`, until the job ends.
    aiohttp: httpx's pool costs grow with its connections, and 1,000 at once took it 30 s."""
    if kind == "runsync":
        call = session.post(f"{url}/v2/backlog/runsync?wait={WAIT_MS}", json={"input": {}})
    else:
        call = session.get(f"{url}/v2/backlog/stream/{job_id}?wait={WAIT_MS}")
    async with call as reply:
        await reply.read()


async def _waiters(plane: Plane, sizes: Sizes) -> list[dict[str, Any]]:
    rows = []
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        plane.client() as client,
        aiohttp.ClientSession(connector=connector, headers=plane.auth) as session,
    ):
        await workers_ready(client, 4)
        await sequential_runs(client, "work", sizes.runs // 2)  # warm-up
        # Without waiters before and after each case: its baseline is the mean of the two.
        baseline = await sequential_runs(client, "work", sizes.runs)
        for n in sizes.waiters:
            for kind in ("runsync", "stream"):
                ids = await submit_many(client, "backlog", n) if kind == "stream" else []
                before = plane.rss_kib()
                targets = ids or [""] * n
                tasks = [
                    asyncio.create_task(hold(session, plane.url, kind, job)) for job in targets
                ]
                deadline = time.monotonic() + 120
                while (await client.get("/bench/waiters")).json() < n:  # all held
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{n} {kind} waiters did not all arrive")
                    await asyncio.sleep(0.1)
                held = plane.rss_kib()
                loaded = await sequential_runs(client, "work", sizes.runs)
                woken = time.perf_counter()
                await client.post("/v2/backlog/purge-queue")
                await asyncio.gather(*tasks)
                wake_ms = (time.perf_counter() - woken) * 1000
                after = await sequential_runs(client, "work", sizes.runs)
                without = (baseline + after) / 2
                rows.append(
                    {
                        "waiters": n,
                        "kind": kind,
                        "kib_per_waiter": round((held - before) / n, 1),
                        "run_p50_ms": round(loaded, 2),
                        "run_p50_ms_no_waiters": round(without, 2),
                        "run_ratio": round(loaded / without, 2),
                        "wake_all_ms": round(wake_ms, 1),
                    }
                )
                baseline = after
    return rows


# --- report -------------------------------------------------------------------------------


def table(title: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    width = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    print(f"\n{title}")
    print("  ".join(k.rjust(width[k]) for k in keys))
    for row in rows:
        print("  ".join(str(row.get(k, "")).rjust(width[k]) for k in keys))


def summarise(results: dict[str, dict[str, Any]], sizes: Sizes, quick: bool) -> dict[str, Any]:
    by_store: dict[str, dict[str, Any]] = {}
    for name, result in results.items():
        queue = result["queue"]
        empty = next(r for r in queue if r["queued"] == 0)
        deep = next(
            r for r in queue if r["queued"] == max(sizes.depths) and r["where"] == "other endpoint"
        )
        fleet = result["fleet"]
        largest = max(fleet, key=lambda r: (r["workers"], r["endpoints"]))
        smallest = min(fleet, key=lambda r: (r["workers"], r["endpoints"]))
        big_waiters = [r for r in result["waiters"] if r["waiters"] == max(sizes.waiters)]
        by_store[name] = {
            "run_p50_ratio_1m_vs_empty": round(deep["run_p50_ms"] / empty["run_p50_ms"], 2),
            "jobs_per_s_ratio_1m_vs_empty": round(deep["jobs_per_s"] / empty["jobs_per_s"], 2),
            "tick_p99_ms_1000_workers": largest["tick_p99_ms"],
            "tick_decide_p99_ms_1000_workers": largest["decide_p99_ms"],
            "health_metrics_dashboard_p99_ms_max": max(
                largest["health_p99_ms"], largest["metrics_p99_ms"], largest["dashboard_p99_ms"]
            ),
            "waiter_kib": max(r["kib_per_waiter"] for r in big_waiters),
            "waiter_run_ratio": max(r["run_ratio"] for r in big_waiters),
            "kib_per_queued_job": round(
                (deep["rss_mib"] - empty["rss_mib"]) * 1024 / max(sizes.depths), 4
            ),
            "kib_per_worker": round(
                (largest["rss_mib"] - smallest["rss_mib"])
                * 1024
                / (largest["workers"] - smallest["workers"]),
                1,
            ),
        }
    worst = {
        "run_p50_ratio_1m_vs_empty": max(s["run_p50_ratio_1m_vs_empty"] for s in by_store.values()),
        "jobs_per_s_ratio_1m_vs_empty": min(
            s["jobs_per_s_ratio_1m_vs_empty"] for s in by_store.values()
        ),
        "tick_p99_ms_1000_workers": max(s["tick_p99_ms_1000_workers"] for s in by_store.values()),
        "waiter_kib": max(s["waiter_kib"] for s in by_store.values()),
    }
    return {
        "benchmark": "scale",
        "quick": quick,
        "deepest_queue": max(sizes.depths),
        **worst,
        "by_store": by_store,
        "series": results,
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: under 5 minutes")
    parser.add_argument("--plot", type=Path, help="write the curves to this PNG")
    parser.add_argument("--stores", default="sqlite,postgres", help="comma-separated")
    parser.add_argument("--series", default="queue,fleet,waiters", help="comma-separated")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    # Stopped early (SIGTERM): still stop the servers and PostgreSQL and remove the data.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, dict[str, Any]] = {}
    root = Path(tempfile.mkdtemp(prefix="runq-scale-"))
    pg = None
    began, load_before = time.monotonic(), load_average()
    try:
        for store_name in args.stores.split(","):
            new_store: Callable[[str | None], str] = _sqlite
            if store_name == "postgres":
                from tests.postgres import PostgresServer, _bindir

                if _bindir() is None:
                    print("PostgreSQL is not installed (apt-get install postgresql): skipped")
                    continue
                pg = PostgresServer()
                pg.start()
                new_store = _database_maker(pg)
            tmp = root / store_name
            tmp.mkdir()
            started = time.monotonic()
            result: dict[str, Any] = {"load_before": load_average()}
            series = args.series.split(",")
            if "queue" in series:
                (tmp / "queue").mkdir()
                result["queue"] = queue_series(new_store, tmp / "queue", sizes)
                table(f"{store_name}: queue depth", result["queue"])
                shutil.rmtree(tmp / "queue", ignore_errors=True)
            if "fleet" in series:
                result["fleet"] = fleet_series(new_store, tmp, sizes)
                table(f"{store_name}: fleet size", result["fleet"])
            if "waiters" in series:
                (tmp / "waiters").mkdir()
                result["waiters"] = waiter_series(new_store(None), tmp / "waiters", sizes)
                table(f"{store_name}: waiting clients", result["waiters"])
            result["seconds"] = round(time.monotonic() - started, 1)
            result["load_after"] = load_average()
            results[store_name] = result
            if pg is not None:
                pg.stop()
                pg = None
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    took = {
        "seconds": round(time.monotonic() - began, 1),
        "load_before": load_before,
        "load_after": load_average(),
    }
    print(f"\n{took['seconds']} s; load average {load_before} before, {took['load_after']} after")
    if args.series != "queue,fleet,waiters":
        print(json.dumps({"benchmark": "scale", "partial": args.series, "series": results}))
        return
    summary = {**summarise(results, sizes, args.quick), "run": took}
    if args.plot:
        from scale_plot import plot

        plot(summary, args.plot)
    print(json.dumps(summary))


def _sqlite(template: str | None = None) -> str:
    return "sqlite"  # a data dir of its own per server: the store is its runq.db


def _database_maker(pg: Any) -> Callable[[str | None], str]:
    """A fresh database, or (given a database's DSN) a copy of it."""

    def make(template: str | None = None) -> str:
        if template is None:
            dsn: str = pg.new_database()
            return dsn
        import psycopg

        dsn = pg.new_database()
        name, source = dsn.rsplit("/", 1)[1], template.rsplit("/", 1)[1]
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name}")
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {source}")
        return dsn

    return make


if __name__ == "__main__":
    main()
