"""Overhead of runq against a bare FastAPI floor, Celery and Ray Serve, all on loopback.

What it measures, with a no-op handler and one worker:

* ``/runsync`` round trip, sequential, one keep-alive client: p50/p99 (``--samples``, 300).
* ``/run`` -> COMPLETED throughput for ``--jobs`` (2,000) jobs from 1 and from 8 concurrent
  clients, from the first submit until the health counter says all of them completed.

and, in the same run, the anchors it is judged against:

* floor: a bare FastAPI ``POST /runsync`` calling the handler in-process (same uvicorn settings);
* Celery ``-P solo`` with a Redis broker and result backend (its own ``redis-server``):
  ``delay().get()`` round trip and ``delay()`` throughput from 1 and 8 threads;
* Ray Serve: one no-op replica behind Serve's HTTP proxy, sequential POSTs.

Every system runs alone (the previous one is stopped first), is warmed up, and is driven by the
same lean client: ``httpx.Client`` with keep-alive, one per thread (Celery: its own client,
``delay()``, one thread each). Times are medians. Next to each throughput figure it reports the
CPU milliseconds per job spent by the servers' process trees and by this client process: on a
2-core box the client competes with the server, and that column says by how much. Ray runs with
127.0.0.1 as its node address, so all traffic, its own included, stays on loopback.

How to run it (from the repository root)::

    pip install -e '.[bench]'            # celery, redis, ray[serve]
    apt-get install -y redis-server      # Debian's; the script starts and stops its own
    python benchmarks/overhead.py        # --quick for a smoke run, --skip celery,ray, --help

It prints a table on stdout and, as the last line of stdout, one JSON object with the figures
(``runsync_p50_ms``, ``baseline_p50_ms``, ``overhead_p50_ms``, ``jobs_per_s``,
``celery_jobs_per_s``, ``ray_serve_p50_ms``, ...). Progress and errors go to stderr. An anchor
whose packages are missing is recorded under ``skipped`` with the reason. If runq itself cannot
be measured the anchors are still reported, the runq figures are null and the exit status is 1.

``jobs_per_s`` and ``celery_jobs_per_s`` are the 8-client figures; both are also given per
client count.

Every process it starts runs in its own session and is stopped as soon as its system is
measured, and at the latest on the way out (also on Ctrl-C or SIGTERM): stdin closed (Ray),
SIGTERM to its process group, then SIGTERM and SIGKILL, by pid, to whatever is left of its
process tree and session.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ANCHORS = HERE / "overhead_anchors"
SYSTEMS = ("floor", "runq", "celery", "ray")

BODY = b'{"input": {}}'
JSON_HEADERS = {"content-type": "application/json"}
POLL_S = 0.02
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=5.0)

NATIVE_NOOP = """\
from runq import worker

worker.start({"handler": lambda job: None})
"""

RUNQ_CLI_SHIM = "import sys; sys.argv[0] = 'runq'; from runq.cli import app; app()"

err = Console(stderr=True, highlight=False)


class Skip(Exception):
    """A system could not be measured; the message says why."""


# --------------------------------------------------------------------------- processes


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    ppid: int
    sid: int
    zombie: bool
    cpu_ticks: int  # utime + stime + reaped children's
    start: int  # start time, in clock ticks after boot


def proc_table() -> dict[int, ProcStat]:
    """Every process on the machine, from /proc."""
    table: dict[int, ProcStat] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) < 20:
            continue
        ticks = sum(int(value) for value in fields[11:15])
        table[int(entry.name)] = ProcStat(
            int(fields[1]), int(fields[3]), fields[0] == b"Z", ticks, int(fields[19])
        )
    return table


def tree_members(leaders: Sequence[int], table: dict[int, ProcStat] | None = None) -> set[int]:
    """The sessions of ``leaders`` plus all their descendants (also those that left with setsid,
    as runq's workers do)."""
    table = proc_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, st in table.items():
        children.setdefault(st.ppid, []).append(pid)
    chosen = {pid for pid, st in table.items() if st.sid in leaders}
    seen: set[int] = set()
    todo = [pid for pid in leaders if pid in table]
    while todo:  # descendants that left the session (setsid) still count
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            chosen.add(pid)
            todo.extend(children.get(pid, []))
    return chosen


def tree_cpu_s(leaders: Sequence[int]) -> float:
    """CPU seconds used so far by the process trees of ``leaders``."""
    table = proc_table()
    return sum(table[pid].cpu_ticks for pid in tree_members(leaders, table)) / CLOCK_TICKS


class CpuMeter:
    """CPU used per job by the servers (process trees) and by this client process."""

    def __init__(self, servers: Sequence[Managed]) -> None:
        self.leaders = [m.proc.pid for m in servers]
        self.server0 = tree_cpu_s(self.leaders)
        self.client0 = time.process_time()

    def per_job_ms(self, n_jobs: int) -> dict[str, float]:
        server = tree_cpu_s(self.leaders) - self.server0
        client = time.process_time() - self.client0
        return {"server": server / n_jobs * 1e3, "client": client / n_jobs * 1e3}


@dataclass
class Managed:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


@dataclass
class Supervisor:
    """Starts each process in a new session and stops the whole session again."""

    log_dir: Path
    running: list[Managed] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stdin_pipe: bool = False,
    ) -> Managed:
        log_path = self.log_dir / f"{name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        managed = Managed(name, proc, log_path, log_file)
        self.running.append(managed)
        return managed

    def stop(self, managed: Managed, grace_s: float = 10.0) -> None:
        """Ask nicely (stdin EOF, then SIGTERM to its group), then SIGKILL what is left of its
        process tree and session, by pid."""
        proc, sid = managed.proc, managed.proc.pid
        # (pid, start time) of everything it started: orphans lose their parent link once the
        # leader is gone, and the start time guards against a reused pid.
        known: set[tuple[int, int]] = set()

        def alive() -> list[int]:
            table = proc_table()
            known.update((pid, table[pid].start) for pid in tree_members([sid], table))
            return sorted(
                pid
                for pid, start in known
                if pid in table and table[pid].start == start and not table[pid].zombie
            )

        def wait_leader(timeout_s: float) -> None:
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None and time.monotonic() < deadline:
                alive()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.2)

        try:
            alive()
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
                wait_leader(grace_s)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(sid, signal.SIGTERM)
                wait_leader(grace_s)
            # Children may outlive the leader (Ray's agents do), sit in other groups of its
            # session (Ray's actors do) or in sessions of their own (runq's workers do).
            for sig, wait_s in (
                (signal.SIGTERM, 5.0),
                (signal.SIGKILL, 2.0),
                (signal.SIGKILL, 2.0),
            ):
                members = alive()
                if not members:
                    break
                for pid in members:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + wait_s
                while time.monotonic() < deadline and alive():
                    with contextlib.suppress(ChildProcessError):
                        proc.poll()
                    time.sleep(0.1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2.0)
            left = alive()
            if left:
                err.print(
                    f"[yellow]warning: {managed.name}: pids {escape(str(left))} did not stop[/]"
                )
        except BaseException:
            # Whatever went wrong above, nothing it started may outlive us.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(sid, signal.SIGKILL)
            for pid, _ in known:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            raise
        finally:
            managed.log_file.close()
            if managed in self.running:
                self.running.remove(managed)

    def stop_all(self) -> None:
        for managed in reversed(list(self.running)):
            try:
                self.stop(managed)
            except Exception as exc:  # keep stopping the others
                err.print(f"[red]error stopping {managed.name}: {escape(repr(exc))}[/]")

    @staticmethod
    def tail(managed: Managed, lines: int = 15) -> str:
        managed.log_file.flush()
        try:
            text = managed.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    what: str, managed: Managed, ready: Callable[[], bool], timeout_s: float, sup: Supervisor
) -> None:
    """Poll ``ready`` until it is true; raise Skip if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        code = managed.proc.poll()
        if code is not None:
            raise Skip(f"{what} exited with code {code} before it was ready:\n{sup.tail(managed)}")
        try:
            if ready():
                return
        except Exception as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise Skip(
        f"{what} not ready after {timeout_s:.0f}s"
        + (f" (last error: {last_error})" if last_error else "")
        + f":\n{sup.tail(managed)}"
    )


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def with_pythonpath(env: dict[str, str], *paths: Path) -> dict[str, str]:
    parts = [str(p) for p in paths]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Settings:
    samples: int
    warmup: int
    jobs: int
    clients: tuple[int, ...] = (1, 8)
    loadavg_1m: float = 0.0  # other work on the box skews every figure: recorded in the JSON


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def latency_ms(samples: Sequence[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1e3, percentile(samples, 99) * 1e3


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def sequential(call: Callable[[], None], settings: Settings) -> list[float]:
    """Warm up, then time ``settings.samples`` back-to-back calls (seconds each)."""
    for _ in range(settings.warmup):
        call()
    samples: list[float] = []
    with gc_paused():
        for _ in range(settings.samples):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
    return samples


@dataclass(frozen=True)
class Rate:
    per_s: float
    cpu_ms: dict[str, float]  # per job: "server" (its process trees), "client" (this process)


def concurrent(
    n_jobs: int,
    n_clients: int,
    make_client: Callable[[], tuple[Callable[[], str], Callable[[], None]]],
    servers: Sequence[Managed],
) -> tuple[float, CpuMeter, list[list[str]]]:
    """Submit ``n_jobs`` from ``n_clients`` threads; returns (start, CPU meter, ids per client).

    ``make_client`` returns ``(submit, close)`` for one thread; it is called (and may warm its
    connection) before the clock and the CPU meter start.
    """
    shares = [n_jobs // n_clients + (1 if i < n_jobs % n_clients else 0) for i in range(n_clients)]
    clients = [make_client() for _ in range(n_clients)]
    ids: list[list[str]] = [[] for _ in range(n_clients)]
    errors: list[BaseException] = []
    go = threading.Event()

    def work(index: int) -> None:
        submit = clients[index][0]
        if not go.wait(30.0):
            return
        try:
            out = ids[index]
            for _ in range(shares[index]):
                out.append(submit())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n_clients)]
    try:
        for thread in threads:
            thread.start()
        meter = CpuMeter(servers)
        start = time.perf_counter()
        go.set()
        deadline = time.monotonic() + max(60.0, n_jobs * 0.05)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in threads):
            raise RuntimeError("submitting clients did not finish in time")
        if errors:
            raise RuntimeError(f"a client failed: {errors[0]!r}") from errors[0]
    finally:
        for _, close in clients:
            close()
    return start, meter, ids


def completion_deadline(n_jobs: int) -> float:
    return time.monotonic() + max(60.0, n_jobs * 0.05)


def http_client(headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(headers=headers, timeout=HTTP_TIMEOUT, trust_env=False)


def post_completed(client: httpx.Client, url: str) -> None:
    resp = client.post(url, content=BODY, headers=JSON_HEADERS)
    resp.raise_for_status()
    status = resp.json().get("status")
    if status != "COMPLETED":
        raise RuntimeError(f"POST {url}: status {status!r}, expected 'COMPLETED'")


def http_rps(url: str, n: int, n_clients: int, servers: Sequence[Managed]) -> Rate:
    """Synchronous requests per second from ``n_clients`` threads (for context only)."""

    def make() -> tuple[Callable[[], str], Callable[[], None]]:
        client = http_client()
        post_completed(client, url)

        def submit() -> str:
            post_completed(client, url)
            return ""

        return submit, client.close

    start, meter, _ = concurrent(n, n_clients, make, servers)
    elapsed = time.perf_counter() - start
    return Rate(n / elapsed, meter.per_job_ms(n))


# --------------------------------------------------------------------------- systems


def measure_floor(sup: Supervisor, settings: Settings) -> dict[str, Any]:
    port = free_port()
    managed = sup.start(
        "floor", [sys.executable, str(ANCHORS / "floor_app.py"), "--port", str(port)]
    )
    url = f"http://127.0.0.1:{port}/runsync"
    try:
        with http_client() as client:

            def ready() -> bool:
                post_completed(client, url)
                return True

            wait_until("floor app", managed, ready, 30.0, sup)
            p50, p99 = latency_ms(sequential(lambda: post_completed(client, url), settings))
        rate = http_rps(url, settings.jobs, max(settings.clients), [managed])
        return {"p50_ms": p50, "p99_ms": p99, "req_per_s": rate}
    finally:
        sup.stop(managed)


def write_runq_endpoint(tmp: Path) -> Path:
    handler = tmp / "native_noop.py"
    handler.write_text(NATIVE_NOOP)
    toml = tmp / "endpoint.toml"
    # json.dumps gives a valid TOML basic string for any path.
    toml.write_text(
        'name = "noop"\n\n'
        "[worker]\n"
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(handler))}]\n\n"
        "[scaling]\n"
        "active_workers = 1\n"
        "max_workers = 1\n"
    )
    return toml


def measure_runq(sup: Supervisor, settings: Settings, tmp: Path) -> dict[str, Any]:
    toml = write_runq_endpoint(tmp)
    port = free_port()
    key = secrets.token_urlsafe(24)
    base = f"http://127.0.0.1:{port}/v2/noop"
    auth = {"Authorization": f"Bearer {key}"}
    env = with_pythonpath(child_env(RUNQ_API_KEY=key), REPO / "src")
    argv = [sys.executable, "-c", RUNQ_CLI_SHIM, "serve", str(toml), "--port", str(port)]
    argv += ["--data-dir", str(tmp / "runq-data")]
    managed = sup.start("runq", argv, env=env, cwd=tmp)
    try:
        with http_client(auth) as client:

            def health() -> dict[str, Any]:
                resp = client.get(f"{base}/health")
                resp.raise_for_status()
                body: dict[str, Any] = resp.json()
                return body

            def ready() -> bool:
                workers = health().get("workers", {})
                return int(workers.get("idle", 0)) + int(workers.get("running", 0)) >= 1

            wait_until("runq serve (GET /v2/noop/health, a worker up)", managed, ready, 60.0, sup)

            p50, p99 = latency_ms(
                sequential(lambda: post_completed(client, f"{base}/runsync"), settings)
            )

            def completed() -> int | None:
                value = health().get("jobs", {}).get("completed")
                return value if isinstance(value, int) and not isinstance(value, bool) else None

            def status_of(job_id: str) -> str:
                resp = client.get(f"{base}/status/{job_id}")
                resp.raise_for_status()
                return str(resp.json().get("status"))

            def run_batch(n: int, n_clients: int) -> Rate:
                before = completed()

                def make() -> tuple[Callable[[], str], Callable[[], None]]:
                    sub = http_client(auth)
                    sub.get(f"{base}/health").raise_for_status()

                    def submit() -> str:
                        resp = sub.post(f"{base}/run", content=BODY, headers=JSON_HEADERS)
                        resp.raise_for_status()
                        return str(resp.json()["id"])

                    return submit, sub.close

                start, meter, ids = concurrent(n, n_clients, make, [managed])
                deadline = completion_deadline(n)
                while time.monotonic() < deadline:
                    now = completed()
                    if before is not None and now is not None:
                        done = now - before >= n
                    else:  # no health counter: the last job of each client (one worker, FIFO)
                        done = all(status_of(part[-1]) == "COMPLETED" for part in ids if part)
                    if done:
                        elapsed = time.perf_counter() - start
                        return Rate(n / elapsed, meter.per_job_ms(n))
                    time.sleep(POLL_S)
                raise RuntimeError(
                    f"{n} jobs not COMPLETED in time (completed {before} -> {completed()})"
                )

            run_batch(max(settings.warmup, 10), 1)  # warm the /run path
            per_clients = {c: run_batch(settings.jobs, c) for c in settings.clients}
        return {"p50_ms": p50, "p99_ms": p99, "jobs_per_s": per_clients}
    finally:
        sup.stop(managed)


def measure_celery(sup: Supervisor, settings: Settings, tmp: Path) -> dict[str, Any]:
    try:
        importlib.import_module("celery")
        redis_mod = importlib.import_module("redis")
    except ImportError as exc:
        raise Skip(f"{exc.name} is not installed (pip install -e '.[bench]')") from None
    redis_bin = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if redis_bin is None:
        raise Skip("redis-server not found (apt-get install -y redis-server)")

    port = free_port()
    redis_dir = tmp / "redis"
    redis_dir.mkdir()
    redis_argv = [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    redis_argv += ["--appendonly", "no", "--daemonize", "no", "--dir", str(redis_dir)]
    redis_proc = sup.start("redis", redis_argv)
    worker: Managed | None = None
    try:
        rds = redis_mod.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        try:
            wait_until("redis-server", redis_proc, lambda: bool(rds.ping()), 15.0, sup)

            url = f"redis://127.0.0.1:{port}/0"
            os.environ["RUNQ_BENCH_REDIS_URL"] = url
            if str(HERE) not in sys.path:
                sys.path.insert(0, str(HERE))
            anchor = importlib.import_module("overhead_anchors.celery_app")
            anchor.app.conf.update(broker_url=url, result_backend=url)
            noop = anchor.noop

            worker_argv = [sys.executable, "-m", "celery", "-A", "overhead_anchors.celery_app"]
            worker_argv += ["worker", "-P", "solo", "-c", "1", "--loglevel", "WARNING"]
            worker_argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
            worker_argv += ["-n", f"overhead-{port}@%h"]
            worker = sup.start(
                "celery-worker",
                worker_argv,
                env=with_pythonpath(child_env(RUNQ_BENCH_REDIS_URL=url), HERE),
                cwd=HERE,
            )
            servers = [redis_proc, worker]
            probe = noop.delay({})

            def ready() -> bool:
                probe.get(timeout=1.0)
                return True

            wait_until("celery worker", worker, ready, 60.0, sup)

            def round_trip() -> None:
                noop.delay({}).get(timeout=30.0)

            p50, p99 = latency_ms(sequential(round_trip, settings))

            def run_batch(n: int, n_clients: int) -> Rate:
                def make() -> tuple[Callable[[], str], Callable[[], None]]:
                    def submit() -> str:
                        return str(noop.delay({}).id)

                    return submit, lambda: None

                start, meter, ids = concurrent(n, n_clients, make, servers)
                backend = anchor.app.backend
                keys = [backend.get_key_for_task(i) for part in ids for i in part]
                lasts = [backend.get_key_for_task(part[-1]) for part in ids if part]
                deadline = completion_deadline(n)
                while time.monotonic() < deadline:
                    # One worker runs its queue in order: wait for each client's last job,
                    # then confirm all results exist.
                    if rds.exists(*lasts) == len(lasts) and sum(
                        rds.exists(*keys[i : i + 1000]) for i in range(0, len(keys), 1000)
                    ) == len(keys):
                        elapsed = time.perf_counter() - start
                        return Rate(n / elapsed, meter.per_job_ms(n))
                    time.sleep(POLL_S)
                raise RuntimeError(f"{n} celery tasks not done in time")

            run_batch(max(settings.warmup, 10), 1)
            per_clients = {c: run_batch(settings.jobs, c) for c in settings.clients}
            return {"p50_ms": p50, "p99_ms": p99, "jobs_per_s": per_clients}
        finally:
            rds.close()
    finally:
        if worker is not None:
            sup.stop(worker)
        sup.stop(redis_proc)


def measure_ray(sup: Supervisor, settings: Settings) -> dict[str, Any]:
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.serve") is None:
        raise Skip("ray[serve] is not installed (pip install -e '.[bench]')")
    port = free_port()
    # Ray puts unix sockets under its temp dir: keep the path short.
    ray_tmp = Path(tempfile.mkdtemp(prefix="rqray-", dir="/tmp"))
    argv = [sys.executable, str(ANCHORS / "ray_serve_app.py"), "--port", str(port)]
    argv += ["--num-cpus", "2", "--temp-dir", str(ray_tmp)]
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray take 127.0.0.1 as its node address, so
    # its GCS, raylet and actors talk over loopback instead of the machine's own interface.
    env = child_env(RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    managed = sup.start("ray-serve", argv, env=env, stdin_pipe=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        with http_client() as client:

            def ready() -> bool:
                post_completed(client, url)
                return True

            wait_until("ray serve", managed, ready, 180.0, sup)
            p50, p99 = latency_ms(sequential(lambda: post_completed(client, url), settings))
        rate = http_rps(url, settings.jobs, max(settings.clients), [managed])
        return {"p50_ms": p50, "p99_ms": p99, "req_per_s": rate}
    finally:
        try:
            sup.stop(managed, grace_s=30.0)
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)


# --------------------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _check(ok: bool | None) -> str:
    return "[dim]n/a[/]" if ok is None else ("[green]pass[/]" if ok else "[red]FAIL[/]")


def _rate(result: dict[str, Any], clients: int) -> Rate | None:
    rates: dict[int, Rate] = result.get("jobs_per_s", {})
    return rates.get(clients)


def _per_s(rate: Rate | None) -> float | None:
    return None if rate is None else rate.per_s


def _cpu(rate: Rate | None) -> dict[str, float] | None:
    return None if rate is None else rate.cpu_ms


def build_summary(
    results: dict[str, dict[str, Any]], skipped: dict[str, str], settings: Settings
) -> dict[str, Any]:
    floor = results.get("floor", {})
    runq = results.get("runq", {})
    celery = results.get("celery", {})
    ray = results.get("ray", {})
    hi, lo = max(settings.clients), min(settings.clients)

    runsync_p50 = runq.get("p50_ms")
    baseline_p50 = floor.get("p50_ms")
    ray_p50 = ray.get("p50_ms")
    jobs_per_s = _per_s(_rate(runq, hi))
    celery_per_s = _per_s(_rate(celery, hi))
    overhead = (
        runsync_p50 - baseline_p50 if runsync_p50 is not None and baseline_p50 is not None else None
    )
    targets = {
        "overhead_p50_le_2ms": None if overhead is None else overhead <= 2.0,
        "runsync_p50_1_5x_below_ray_serve": (
            None if runsync_p50 is None or ray_p50 is None else runsync_p50 * 1.5 <= ray_p50
        ),
        "jobs_per_s_ge_1000": None if jobs_per_s is None else jobs_per_s >= 1000.0,
        "jobs_per_s_above_celery": (
            None if jobs_per_s is None or celery_per_s is None else jobs_per_s > celery_per_s
        ),
    }
    return {
        "runsync_p50_ms": runsync_p50,
        "runsync_p99_ms": runq.get("p99_ms"),
        "baseline_p50_ms": baseline_p50,
        "baseline_p99_ms": floor.get("p99_ms"),
        "overhead_p50_ms": overhead,
        "jobs_per_s": jobs_per_s,
        f"jobs_per_s_{lo}_client": _per_s(_rate(runq, lo)),
        f"jobs_per_s_{hi}_clients": jobs_per_s,
        f"runq_cpu_ms_per_job_{hi}_clients": _cpu(_rate(runq, hi)),
        "celery_p50_ms": celery.get("p50_ms"),
        "celery_p99_ms": celery.get("p99_ms"),
        "celery_jobs_per_s": celery_per_s,
        f"celery_jobs_per_s_{lo}_client": _per_s(_rate(celery, lo)),
        f"celery_jobs_per_s_{hi}_clients": celery_per_s,
        f"celery_cpu_ms_per_job_{hi}_clients": _cpu(_rate(celery, hi)),
        "ray_serve_p50_ms": ray_p50,
        "ray_serve_p99_ms": ray.get("p99_ms"),
        f"ray_serve_req_per_s_{hi}_clients": _per_s(ray.get("req_per_s")),
        f"ray_serve_cpu_ms_per_req_{hi}_clients": _cpu(ray.get("req_per_s")),
        f"baseline_req_per_s_{hi}_clients": _per_s(floor.get("req_per_s")),
        f"baseline_cpu_ms_per_req_{hi}_clients": _cpu(floor.get("req_per_s")),
        "targets": targets,
        "skipped": skipped,
        "samples": settings.samples,
        "jobs": settings.jobs,
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
    hi, lo = max(settings.clients), min(settings.clients)
    table = Table(
        title=f"runq overhead: no-op handler, one worker, loopback, {os.cpu_count()} CPUs, "
        f"{settings.samples} sequential samples, {settings.jobs} jobs"
    )
    table.add_column("system", no_wrap=True)
    table.add_column("round trip p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column(f"jobs/s, {lo} client", justify="right")
    table.add_column(f"jobs/s, {hi} clients", justify="right")
    table.add_column("CPU ms/job: server + client", justify="right")
    table.add_column("notes", no_wrap=True)
    rows = [
        ("floor", "floor (FastAPI in-process)"),
        ("runq", "runq (/runsync; /run)"),
        ("celery", "Celery (-P solo, Redis)"),
        ("ray", "Ray Serve (1 replica)"),
    ]
    skipped: dict[str, str] = summary["skipped"]
    for key, label in rows:
        if key in skipped:
            reason = skipped[key].splitlines()[0] if skipped[key] else ""
            if len(reason) > 70:
                reason = reason[:67] + "..."
            table.add_row(label, "-", "-", "-", "-", "-", f"[yellow]skipped: {escape(reason)}[/]")
            continue
        res = results.get(key, {})
        http: Rate | None = res.get("req_per_s")
        note = "" if http is None else f"{http.per_s:,.0f} req/s, sync HTTP, {hi} clients"
        cpu = _cpu(_rate(res, hi)) or _cpu(http)
        table.add_row(
            label,
            _fmt(res.get("p50_ms")),
            _fmt(res.get("p99_ms")),
            _fmt(_per_s(_rate(res, lo)), 0),
            _fmt(_per_s(_rate(res, hi)), 0),
            "-" if cpu is None else f"{cpu['server']:.2f} + {cpu['client']:.2f}",
            note,
        )
    out.print(table)

    targets = Table(title="targets")
    targets.add_column("target")
    targets.add_column("measured", justify="right")
    targets.add_column("result")
    checks: dict[str, bool | None] = summary["targets"]
    ray_p50 = summary["ray_serve_p50_ms"]
    runsync_p50 = summary["runsync_p50_ms"]
    targets.add_row(
        "runsync p50 overhead over the floor <= 2 ms",
        _fmt(summary["overhead_p50_ms"]) + " ms",
        _check(checks["overhead_p50_le_2ms"]),
    )
    targets.add_row(
        "runsync p50 at least 1.5x lower than Ray Serve's",
        "-" if runsync_p50 is None or ray_p50 is None else f"{ray_p50 / runsync_p50:.2f}x",
        _check(checks["runsync_p50_1_5x_below_ray_serve"]),
    )
    targets.add_row(
        f">= 1,000 completed jobs/s ({hi} clients, durable store)",
        _fmt(summary["jobs_per_s"], 0),
        _check(checks["jobs_per_s_ge_1000"]),
    )
    targets.add_row(
        f"more jobs/s than Celery ({_fmt(summary['celery_jobs_per_s'], 0)}, {hi} clients)",
        _fmt(summary["jobs_per_s"], 0),
        _check(checks["jobs_per_s_above_celery"]),
    )
    out.print(targets)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, set[str]]:
    parser = argparse.ArgumentParser(
        description="runq overhead benchmark against a FastAPI floor, Celery and Ray Serve.",
        epilog="Install: pip install -e '.[bench]' && apt-get install -y redis-server",
    )
    parser.add_argument("--samples", type=int, default=None, help="sequential samples (300)")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per throughput run (2000)")
    parser.add_argument(
        "--skip", default="", help=f"comma-separated systems to skip: {','.join(SYSTEMS)}"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 50 samples, 200 jobs, short warm-up"
    )
    args = parser.parse_args(argv)
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    unknown = skip - set(SYSTEMS)
    if unknown:
        parser.error(f"--skip: unknown system(s) {sorted(unknown)}; choose from {SYSTEMS}")
    samples = args.samples if args.samples is not None else (50 if args.quick else 300)
    jobs = args.jobs if args.jobs is not None else (200 if args.quick else 2000)
    if samples < 1 or jobs < 8:
        parser.error("--samples must be >= 1 and --jobs >= 8")
    warmup = 10 if args.quick else 50
    settings = Settings(samples=samples, warmup=warmup, jobs=jobs, loadavg_1m=os.getloadavg()[0])
    return settings, skip


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    settings, skip = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _raise_interrupt)

    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {name: "--skip" for name in SYSTEMS if name in skip}
    runq_failed = False
    tmp = Path(tempfile.mkdtemp(prefix="runq-overhead-"))
    sup = Supervisor(log_dir=tmp)
    plan: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("floor", lambda: measure_floor(sup, settings)),
        ("runq", lambda: measure_runq(sup, settings, tmp)),
        ("celery", lambda: measure_celery(sup, settings, tmp)),
        ("ray", lambda: measure_ray(sup, settings)),
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
            except (Skip, Exception) as exc:
                reason = str(exc) if isinstance(exc, Skip) else f"{type(exc).__name__}: {exc}"
                skipped[name] = reason
                runq_failed = runq_failed or name == "runq"
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

    summary = build_summary(results, skipped, settings)
    print_report(results, summary, settings)
    sys.stdout.flush()
    print(json.dumps(summary), flush=True)
    return 1 if runq_failed else 0


if __name__ == "__main__":
    sys.exit(main())
