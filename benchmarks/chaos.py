"""Chaos under steady load: kill -9 workers and the control plane, then count every job.

One `runq serve` (short timings: 1 s pings, 4 s heartbeat timeout) serves an endpoint of
``--workers`` always-on workers (``max_retries = 5``, a 60 s execution timeout). Its handler
sleeps 20-120 ms and returns ``{"n": n, "square": n * n, "pid": its pid}``; around the sleep it
appends ``start ID PID`` and ``end ID PID`` to a shared log opened with ``O_APPEND`` (one
``write`` per line), so executions are counted independently of runq. Three threads:

* load: ``POST /run`` at ``--rate`` jobs/s. A job counts as accepted only when ``/run`` answered
  200 with an id. A submit that cannot connect (the control plane is down) is tried again; one
  whose connection broke after it was sent is tried again too, under the same
  ``Idempotency-Key``, and counted under ``ambiguous_submits``: if its first try was committed,
  the retry gets that job back rather than a second one.
* watcher: polls ``/status`` of every accepted job until it is final and remembers that first
  final answer (status and output); it also re-reads a few final jobs each round.
* chaos: every ``--every`` seconds, either ``kill -9`` of a random worker (pid from
  ``/admin/workers``, checked to be one of this run's processes; one holding jobs if any) or
  ``kill -9`` of the control plane, restarted on the same data dir and port, then waited for
  until it answers again. The plan (which events are restarts) is drawn from ``--seed``.
  Two more kinds of event (issue 15): a *disk-full* episode (as root, the data dir is a tmpfs
  of ``--disk`` bytes: a filler file takes every free byte for a few seconds, then is
  deleted) and a *log flood* (the next jobs print ``--flood-mb`` MB each to stdout).

After ``--duration`` seconds (and the whole plan) the load stops, every accepted job is waited
for until final (``--settle`` deadline), then each is read once more. Definitions:

* lost: an accepted id that ``/status`` answers 404 for (nothing else can lose one).
* unfinished: an accepted job still not final at the deadline (a hang).
* completed_twice: a job whose final answer changed after the watcher first saw it final (status
  or output): runq promises one final status per job, so a second result must change nothing.
* bad_output: a COMPLETED output that is not ``f(input)`` or that names a pid with no ``end``
  line for that job in the log (a result from an execution that never happened).
* retried: the sum of the jobs' ``retries`` (requeues after a lost worker); ``retried_runq`` is
  the health counter; ``retried_log`` counts ``start`` lines beyond the first per job;
  ``executed_twice``: jobs whose handler ran to its end more than once (at-least-once allows it).
* unacknowledged: jobs that ran (in the log) but whose ``/run`` answer never arrived.
* disk_full_refused: ``/run`` answers 507 (disk full: the documented refusal, tried again).
* disk_full_5xx: any other 5xx, or a broken connection, while the disk was full or until
  service came back: must be 0.
* recovered_s: from the filler's deletion to the next accepted ``/run`` (worst episode).
* log_bytes_max: the largest a worker's log files ever grew to (their cap holds).

    python benchmarks/chaos.py              # --quick: 45 s of chaos; --duration, --seed, --help

Prints a table, then as its last line one JSON object (``accepted``, ``completed``, ``failed``,
``lost``, ``completed_twice``, ``restarts``, ...). Exit status 1 if a job was lost, unfinished,
completed twice or has a bad output. Every process it starts is killed on the way out (also on
SIGTERM): the control plane's process group, then whatever still carries this run's data dir.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
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
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from runq.fleet.local import kill_leftovers
from runq.fleet.worker_env import CONTROL_PLANE_MARKER

REPO = Path(__file__).resolve().parents[1]
ENDPOINT = "chaos"
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
SERVER: dict[str, object] = {
    "ping_interval": 1,
    "heartbeat_timeout": 4,
    "take_hold": 5,
    "stop_grace": 3,
    "tick": 0.1,
    "log_max": '"4MiB"',  # a flood prints 3 x 8 MB: the cap must hold each worker to 8 MiB
    "log_backups": 1,
}

HANDLER = """
import os, time
from runq import worker

LOG = os.open(os.environ["CHAOS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
PID = os.getpid()

def handler(job):
    n = job["input"]["n"]
    os.write(LOG, f"start {job['id']} {PID}\\n".encode())
    for _ in range(job["input"].get("flood_mb", 0) * 1024):  # a log flood
        print("x" * 1023, flush=False)
    time.sleep(job["input"]["ms"] / 1000)
    os.write(LOG, f"end {job['id']} {PID}\\n".encode())
    return {"n": n, "square": n * n, "pid": PID}

if __name__ == "__main__":
    worker.start({"handler": handler})
"""

ENDPOINT_TOML = """
name = "{name}"
[worker]
command = [{python}, "handler.py"]
env = {{ CHAOS_LOG = {log} }}
[scaling]
active_workers = {workers}
max_workers = {workers}
[jobs]
execution_timeout = "60s"
max_retries = 5
"""


@dataclass(frozen=True)
class Settings:
    duration: float = 120.0  # seconds of load; the chaos plan is carried out in full
    rate: float = 20.0  # submits per second
    workers: int = 3
    every: float = 3.0  # seconds between chaos events
    restarts: int | None = None  # control-plane kills; None: a quarter of the events
    seed: int = 1
    settle: float = 120.0  # deadline for every accepted job to be final after the load
    disk_fulls: int = 1  # disk-full episodes (as root; none otherwise)
    floods: int = 1  # log floods
    disk: str = "256m"  # the data dir's tmpfs, for the disk-full episodes
    flood_mb: int = 8  # printed by each of the 3 jobs of a flood


@dataclass
class Report:
    accepted: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    timed_out: int = 0
    lost: int = 0
    unfinished: int = 0
    completed_twice: int = 0
    bad_output: int = 0
    retried: int = 0
    retried_runq: int = 0
    retried_log: int = 0
    executions: int = 0
    executed_twice: int = 0
    unacknowledged: int = 0
    ambiguous_submits: int = 0
    restarts: int = 0
    worker_kills: int = 0
    restart_downtime_p50_ms: float | None = None
    restart_downtime_max_ms: float | None = None
    settle_s: float = 0.0
    load_s: float = 0.0
    disk_full_episodes: int = 0
    disk_full_refused: int = 0
    disk_full_5xx: int | None = None  # None: no disk-full episode ran (not root)
    recovered_s: float | None = None
    log_floods: int = 0
    log_bytes_max: int = 0
    problems: list[str] = field(default_factory=list)  # one line per bad job

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.unfinished
            or self.completed_twice
            or self.bad_output
            or self.disk_full_5xx
        )


def plan_chaos(
    events: int, restarts: int, rng: random.Random, disk_fulls: int = 0, floods: int = 0
) -> list[str]:
    """Which of `events` chaos events kill the control plane ("restart"), fill the data disk
    ("disk_full"), flood the logs ("flood"); the rest kill a worker.

    Example: plan_chaos(6, 2, rng) -> e.g. ["worker", "restart", "worker", "worker",
    "restart", "worker"]; the first event is always a worker kill, so the load is flowing when
    the first restart comes. Restarts come first when there are not slots for every kind.
    """
    kinds = ["restart"] * restarts + ["disk_full"] * disk_fulls + ["flood"] * floods
    kinds = kinds[: max(0, events - 1)]
    slots = rng.sample(range(1, events), len(kinds)) if kinds else []
    chosen = dict(zip(slots, kinds, strict=True))
    return [chosen.get(i, "worker") for i in range(events)]


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
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


class Runq:
    """`runq serve` on a fixed port and data dir, killed with -9 and restarted at will."""

    def __init__(self, root: Path, workers: int, disk: str | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.key = secrets.token_urlsafe(16)
        self.data_dir = (root / "data").resolve()
        self.exec_log = root / "executions.log"
        self.exec_log.touch()
        # The worker's folder holds only its own files: what a worker writes inside its folder
        # stays private to it (an overlay), so the shared executions log lives beside it.
        app = root / "app"
        app.mkdir()
        (app / "handler.py").write_text(HANDLER)
        self.endpoint = app / f"{ENDPOINT}.toml"
        self.endpoint.write_text(
            ENDPOINT_TOML.format(
                name=ENDPOINT,
                python=json.dumps(sys.executable),
                log=json.dumps(str(self.exec_log)),
                workers=workers,
            )
        )
        self.config = root / "runq.toml"
        lines = "".join(f"{key} = {value}\n" for key, value in SERVER.items())
        self.config.write_text("[server]\n" + lines)
        self.url = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {self.key}"}
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # close() and a restart in the chaos thread may race
        self._closed = False
        self._marker = f"{CONTROL_PLANE_MARKER}={self.data_dir}".encode()
        self.small_disk = False
        if disk and os.geteuid() == 0:  # the data dir on a disk of its own, to fill
            self.data_dir.mkdir()
            mount = ["mount", "-t", "tmpfs", "-o", f"size={disk}", "tmpfs", str(self.data_dir)]
            self.small_disk = subprocess.run(mount, check=False).returncode == 0

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=10)

    def start(self, timeout: float = 60) -> None:
        env = {
            **os.environ,
            "RUNQ_API_KEY": self.key,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO / "src"), os.getenv("PYTHONPATH")])
            ),
        }
        with self._lock, open(self.root / "serve.log", "ab") as log:
            if self._closed:
                raise RuntimeError("runq serve was closed: no restart")
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "runq.cli",
                    "serve",
                    str(self.endpoint),
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with self.client() as client:
            wait_until("runq serve to answer", lambda: self._answers(client), timeout)

    def _answers(self, client: httpx.Client) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = (self.root / "serve.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"runq serve exited with {self.process.returncode}:\n{tail}")
        try:
            return client.get("/admin/endpoints").status_code == 200
        except httpx.TransportError:
            return False

    def kill9(self) -> None:
        """A crash of the control plane alone: its workers die through PDEATHSIG."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def owns(self, pid: int) -> bool:
        """Whether `pid` is a worker of this run (its environment names our data dir)."""
        try:
            return self._marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            process = self.process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
            except ProcessLookupError:
                pass
        kill_leftovers(self.data_dir)
        if self.small_disk:
            subprocess.run(["umount", "-l", str(self.data_dir)], check=False)
            self.small_disk = False

    def fill_disk(self) -> Path:
        """Takes every free byte of the data dir's disk; returns the file to delete."""
        filler = self.data_dir / "filler"
        chunk = b"\0" * 2**20
        with contextlib.suppress(OSError), open(filler, "wb") as handle:
            while True:
                handle.write(chunk)
                handle.flush()
        return filler

    def log_bytes(self) -> int:
        """The most any worker's log files (with their rotated copies) take on disk."""
        sizes: Counter[str] = Counter()
        for path in (self.data_dir / "logs" / ENDPOINT).glob("*.log*"):
            with contextlib.suppress(OSError):
                sizes[path.name.split(".log")[0]] += path.stat().st_size
        return max(sizes.values(), default=0)


class Ledger:
    """What the client saw, shared by the threads (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: dict[str, int] = {}  # job id -> its n
        self.first_final: dict[str, tuple[str, str]] = {}  # id -> (status, output as JSON)
        self.changed: dict[str, str] = {}  # id -> what changed after it was final
        self.ambiguous = 0
        self.flood_next = 0  # the next jobs to submit print a flood
        self.disk_episode = False  # a disk-full episode is on, or service not yet back
        self.refused_disk = 0
        self.errors_in_episode = 0
        self.last_accept = 0.0  # monotonic time of the latest accepted /run

    def pending(self) -> list[str]:
        with self.lock:
            return [job for job in self.accepted if job not in self.first_final]

    def finals(self) -> list[str]:
        with self.lock:
            return list(self.first_final)

    def observe(self, job_id: str, body: dict[str, Any]) -> None:
        """Remember a final answer the first time; note any later answer that differs."""
        if body.get("status") not in FINAL:
            return
        seen = (str(body["status"]), json.dumps(body.get("output"), sort_keys=True))
        with self.lock:
            first = self.first_final.setdefault(job_id, seen)
            if first != seen and job_id not in self.changed:
                self.changed[job_id] = f"first {first}, then {seen}"


def _get_status(
    client: httpx.Client, job_id: str, stop: threading.Event, timeout: float = 120
) -> httpx.Response | None:
    """GET /status, waiting out a control plane that is down; None once `stop` is set."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        try:
            return client.get(f"/v2/{ENDPOINT}/status/{job_id}")
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            stop.wait(0.1)
    return None


def load(
    runq: Runq,
    ledger: Ledger,
    rate: float,
    seed: int,
    stop: threading.Event,
    flood_mb: int = 8,
) -> None:
    """Submits at a steady `rate` until `stop`; no catching up after an outage."""
    rng = random.Random(seed)
    interval = 1 / rate
    next_at = time.monotonic()
    n = 0
    with runq.client() as client:
        while not stop.is_set():
            stop.wait(max(0.0, next_at - time.monotonic()))  # pacing, not synchronisation
            next_at = max(next_at + interval, time.monotonic() - interval)
            body: dict[str, Any] = {"input": {"n": n, "ms": rng.randint(20, 120)}}
            with ledger.lock:
                if ledger.flood_next > 0:
                    ledger.flood_next -= 1
                    body["input"]["flood_mb"] = flood_mb
            # One key per job: a submit retried after a lost answer gets the same job back.
            key = {"Idempotency-Key": str(uuid.uuid4())}
            while not stop.is_set():
                try:
                    response = client.post(f"/v2/{ENDPOINT}/run", json=body, headers=key)
                except httpx.ConnectError:  # nothing was sent: the control plane is down
                    stop.wait(0.05)
                    continue
                except httpx.TransportError:  # sent, answer lost: the retry's key finds it
                    with ledger.lock:
                        ledger.ambiguous += 1
                        ledger.errors_in_episode += ledger.disk_episode
                    continue
                if response.status_code == 200 and response.json().get("id"):
                    with ledger.lock:
                        ledger.accepted[str(response.json()["id"])] = n
                        ledger.last_accept = time.monotonic()
                    break
                with ledger.lock:
                    if response.status_code == 507:  # disk full: the documented refusal
                        ledger.refused_disk += 1
                    elif response.status_code >= 500 and ledger.disk_episode:
                        ledger.errors_in_episode += 1
                stop.wait(0.1)  # a refusal (e.g. while starting, or disk full): try again
            n += 1


def watch(runq: Runq, ledger: Ledger, seed: int, stop: threading.Event) -> None:
    """Polls pending jobs until final, and re-reads a few final ones each round."""
    rng = random.Random(seed)
    with runq.client() as client:
        while not stop.is_set():
            finals = ledger.finals()
            recheck = rng.sample(finals, min(10, len(finals)))
            for job_id in ledger.pending() + recheck:
                response = _get_status(client, job_id, stop)
                if response is None:
                    return
                if response.status_code == 200:
                    ledger.observe(job_id, response.json())
            stop.wait(0.2)  # pacing between rounds


@dataclass
class ChaosLog:
    restarts: int = 0
    worker_kills: int = 0
    downtime_ms: list[float] = field(default_factory=list)
    disk_fulls: int = 0
    recovered_s: list[float] = field(default_factory=list)
    floods: int = 0
    log_bytes_max: int = 0


def chaos(
    runq: Runq,
    plan: list[str],
    every: float,
    seed: int,
    stop: threading.Event,
    out: ChaosLog,
    ledger: Ledger | None = None,
) -> None:
    """Carries out `plan`, one event every `every` seconds after the previous one settled."""
    rng = random.Random(seed)
    with runq.client() as client:
        for event in plan:
            if stop.wait(every):  # pacing between events
                return
            if event == "restart":
                began = time.monotonic()
                runq.kill9()
                runq.start()
                out.downtime_ms.append((time.monotonic() - began) * 1000)
                out.restarts += 1
            elif event == "disk_full":
                if ledger is not None and runq.small_disk:
                    out.recovered_s.append(_disk_full_episode(runq, ledger, stop))
                    out.disk_fulls += 1
            elif event == "flood":
                if ledger is not None:
                    with ledger.lock:
                        ledger.flood_next += 3
                    out.floods += 1
            elif _kill_a_worker(runq, client, rng):
                out.worker_kills += 1
            out.log_bytes_max = max(out.log_bytes_max, runq.log_bytes())


def _disk_full_episode(runq: Runq, ledger: Ledger, stop: threading.Event) -> float:
    """Fills the data disk, keeps it full 3 s under load, frees it; returns the seconds from
    the freeing to the next accepted /run."""
    with ledger.lock:
        ledger.disk_episode = True
    filler = runq.fill_disk()
    stop.wait(3.0)  # pacing: the load meets the full disk meanwhile
    filler.unlink()
    freed = time.monotonic()
    deadline = freed + 60
    while time.monotonic() < deadline:
        with ledger.lock:
            if ledger.last_accept > freed:
                ledger.disk_episode = False
                return round(ledger.last_accept - freed, 2)
        time.sleep(0.02)  # polling the load thread's progress, not synchronising
    with ledger.lock:
        ledger.disk_episode = False
    return float("inf")


def _kill_a_worker(runq: Runq, client: httpx.Client, rng: random.Random) -> bool:
    """SIGKILL a random worker of this run, one that holds jobs when there is one."""
    rows = client.get(f"/admin/workers?endpoint={ENDPOINT}").json()
    rows = [row for row in rows if row.get("pid") and runq.owns(row["pid"])]
    busy = [row for row in rows if row["jobs"]]
    pids = [row["pid"] for row in busy or rows]
    if not pids:
        return False
    try:
        os.kill(rng.choice(pids), signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _guarded(target: Callable[..., None], errors: list[BaseException]) -> Callable[..., None]:
    def run(*args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # re-raised by the main thread
            errors.append(exc)

    return run


@dataclass
class Executions:
    """The shared log, per job id: handler starts, handler ends, and the pids that ended it."""

    starts: Counter[str] = field(default_factory=Counter)
    ends: Counter[str] = field(default_factory=Counter)
    end_pids: dict[str, set[int]] = field(default_factory=dict)


def read_log(path: Path) -> Executions:
    found = Executions()
    for line in path.read_text().splitlines():
        kind, job_id, pid = line.split()
        if kind == "start":
            found.starts[job_id] += 1
        else:
            found.ends[job_id] += 1
            found.end_pids.setdefault(job_id, set()).add(int(pid))
    return found


def verify(runq: Runq, ledger: Ledger, report: Report) -> None:
    """Reads every accepted job once more and fills in the counts of `report`."""
    log = read_log(runq.exec_log)
    never = threading.Event()
    with runq.client() as client:
        for job_id, n in ledger.accepted.items():
            response = _get_status(client, job_id, never)
            assert response is not None
            if response.status_code == 404:
                report.lost += 1
                report.problems.append(f"{job_id}: lost (404)")
                continue
            body = response.json()
            status = body.get("status")
            if status not in FINAL:
                report.unfinished += 1
                report.problems.append(f"{job_id}: still {status}: {body}")
                continue
            ledger.observe(job_id, body)
            report.retried += int(body.get("retries", 0))
            if status == "COMPLETED":
                report.completed += 1
                output = body.get("output") or {}
                pids = log.end_pids.get(job_id, set())
                if (
                    output.get("n") != n
                    or output.get("square") != n * n
                    or (output.get("pid") not in pids)
                ):
                    report.bad_output += 1
                    report.problems.append(f"{job_id}: output {output}, log pids {sorted(pids)}")
            elif status == "FAILED":
                report.failed += 1
            elif status == "CANCELLED":
                report.cancelled += 1
            else:
                report.timed_out += 1
        health = client.get(f"/v2/{ENDPOINT}/health").json()
    report.retried_runq = int(health["jobs"]["retried"])
    report.completed_twice = len(ledger.changed)
    report.problems.extend(
        f"{job}: final answer changed: {why}" for job, why in ledger.changed.items()
    )
    accepted = set(ledger.accepted)
    report.accepted = len(accepted)
    report.executions = sum(log.starts[job] for job in accepted)
    report.retried_log = sum(max(0, log.starts[job] - 1) for job in accepted)
    report.executed_twice = sum(1 for job in accepted if log.ends[job] > 1)
    report.unacknowledged = len(set(log.starts) - accepted)
    report.ambiguous_submits = ledger.ambiguous


def run(root: Path, settings: Settings, progress: Callable[[str], None] = lambda _: None) -> Report:
    """One chaos run in `root` (a fresh folder): load, chaos, settle, verify; always cleans up."""
    events = max(1, int(settings.duration // settings.every) - 1)
    restarts = settings.restarts if settings.restarts is not None else max(1, events // 4)
    plan = plan_chaos(
        events, restarts, random.Random(settings.seed), settings.disk_fulls, settings.floods
    )
    runq = Runq(root, settings.workers, settings.disk if settings.disk_fulls else None)
    ledger, record, report = Ledger(), ChaosLog(), Report()
    errors: list[BaseException] = []
    stop_load, stop_watch = threading.Event(), threading.Event()
    try:
        runq.start()
        with runq.client() as client:
            wait_until(
                f"{settings.workers} ready workers",
                lambda: _ready(client) >= settings.workers,
                60,
            )
        progress(
            f"runq up on {runq.url}; plan: {plan.count('restart')} restarts, "
            f"{plan.count('worker')} worker kills, every {settings.every:g} s"
        )
        threads = {
            "load": threading.Thread(
                daemon=True,
                target=_guarded(load, errors),
                args=(runq, ledger, settings.rate, settings.seed, stop_load, settings.flood_mb),
            ),
            "watch": threading.Thread(
                daemon=True,
                target=_guarded(watch, errors),
                args=(runq, ledger, settings.seed + 1, stop_watch),
            ),
            "chaos": threading.Thread(
                daemon=True,
                target=_guarded(chaos, errors),
                args=(runq, plan, settings.every, settings.seed + 2, stop_load, record, ledger),
            ),
        }
        began = time.monotonic()
        for thread in threads.values():
            thread.start()
        budget = settings.duration + len(plan) * (settings.every + 70)
        threads["chaos"].join(budget)
        _sleep_until(began + settings.duration, errors)
        stop_load.set()
        threads["chaos"].join(70)
        threads["load"].join(30)
        report.load_s = time.monotonic() - began
        progress(
            f"load stopped after {report.load_s:.0f} s: {len(ledger.accepted)} accepted; "
            "waiting for every job to end"
        )
        settle_began = time.monotonic()
        deadline = settle_began + settings.settle
        while ledger.pending() and time.monotonic() < deadline and not errors:
            time.sleep(0.2)  # the watcher does the work; this only checks its progress
        report.settle_s = time.monotonic() - settle_began
        stop_watch.set()
        threads["watch"].join(30)
        if errors:
            raise errors[0]
        verify(runq, ledger, report)
    finally:
        stop_load.set()
        stop_watch.set()
        runq.close()
    report.restarts, report.worker_kills = record.restarts, record.worker_kills
    report.disk_full_episodes, report.disk_full_refused = record.disk_fulls, ledger.refused_disk
    if record.disk_fulls:
        report.disk_full_5xx = ledger.errors_in_episode
        report.recovered_s = max(record.recovered_s)
    report.log_floods, report.log_bytes_max = record.floods, record.log_bytes_max
    if record.downtime_ms:
        report.restart_downtime_p50_ms = round(statistics.median(record.downtime_ms), 1)
        report.restart_downtime_max_ms = round(max(record.downtime_ms), 1)
    return report


def _ready(client: httpx.Client) -> int:
    workers = client.get(f"/v2/{ENDPOINT}/health").json()["workers"]
    return int(workers["idle"]) + int(workers["running"])


def _sleep_until(moment: float, errors: list[BaseException]) -> None:
    while time.monotonic() < moment and not errors:
        time.sleep(min(0.2, max(0.0, moment - time.monotonic())))


def table(report: Report, settings: Settings) -> Table:
    out = Table(
        title=f"chaos: {report.load_s:.0f} s at {settings.rate:g} jobs/s, {settings.workers} "
        f"workers, seed {settings.seed}, {os.cpu_count()} CPUs"
    )
    out.add_column("what")
    out.add_column("count", justify="right")
    rows = [
        ("jobs accepted (/run answered 200)", report.accepted),
        ("completed", report.completed),
        ("failed (gave up after max_retries)", report.failed),
        ("cancelled / timed out", f"{report.cancelled} / {report.timed_out}"),
        (
            "retried (sum of jobs' retries; runq health counter)",
            f"{report.retried}; {report.retried_runq}",
        ),
        (
            "executions started (log); retries seen in the log",
            f"{report.executions}; {report.retried_log}",
        ),
        ("jobs whose handler ran to its end twice or more", report.executed_twice),
        (
            "ran unacknowledged (/run answer lost; ambiguous submits)",
            f"{report.unacknowledged} ({report.ambiguous_submits})",
        ),
        ("control-plane kill -9 + restarts survived", report.restarts),
        (
            "restart until answering, p50 / max ms",
            f"{report.restart_downtime_p50_ms} / {report.restart_downtime_max_ms}",
        ),
        ("worker kill -9", report.worker_kills),
        (
            "disk-full episodes; /run refused with 507",
            f"{report.disk_full_episodes}; {report.disk_full_refused}",
        ),
        ("disk full: other 5xx or broken connections (must be 0)", report.disk_full_5xx),
        ("disk freed until the next accepted /run, s (worst)", report.recovered_s),
        (
            "log floods; largest worker log on disk, MB",
            f"{report.log_floods}; {report.log_bytes_max / 2**20:.1f}",
        ),
        ("time for the last jobs to end after the load, s", f"{report.settle_s:.1f}"),
        ("LOST", report.lost),
        ("unfinished at the deadline", report.unfinished),
        ("completed twice (final answer changed)", report.completed_twice),
        ("bad output", report.bad_output),
    ]
    for what, count in rows:
        out.add_row(what, str(count))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=20.0, help="jobs submitted per second")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between chaos events")
    parser.add_argument("--restarts", type=int, help="control-plane kills (default: 1 in 4 events)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle", type=float, default=120.0, help="deadline for the last jobs")
    parser.add_argument("--quick", action="store_true", help="45 s of chaos")
    parser.add_argument("--disk-fulls", type=int, default=1, help="disk-full episodes (root)")
    parser.add_argument("--floods", type=int, default=1, help="log floods")
    parser.add_argument("--disk", default="256m", help="size of the data dir's tmpfs")
    parser.add_argument("--flood-mb", type=int, default=8, help="MB each flooding job prints")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the run's folder (it is kept anyway when something went wrong)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration = 45.0
    settings = Settings(
        duration=args.duration,
        rate=args.rate,
        workers=args.workers,
        every=args.every,
        restarts=args.restarts,
        seed=args.seed,
        settle=args.settle,
        disk_fulls=args.disk_fulls,
        floods=args.floods,
        disk=args.disk,
        flood_mb=args.flood_mb,
    )
    err = Console(stderr=True)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="runq-chaos-"))
    try:
        report = run(root, settings, progress=lambda line: err.print(line))
    except BaseException:
        err.print(f"kept {root} (serve.log, executions.log, data/logs/) for a look")
        raise
    if report.ok and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        err.print(f"kept {root} (serve.log, executions.log, data/logs/)")
    Console().print(table(report, settings))
    for problem in report.problems[:20]:
        err.print(f"[red]{problem}[/red]")
    figures = {key: value for key, value in asdict(report).items() if key != "problems"}
    figures.update(
        ok=report.ok,
        duration_s=settings.duration,
        rate=settings.rate,
        workers=settings.workers,
        seed=settings.seed,
    )
    print(json.dumps(figures))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
