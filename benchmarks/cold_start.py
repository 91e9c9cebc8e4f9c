"""Delay time of a job by how its worker was found: cold start, warm, or revived from parking.

One `runq serve` with three endpoints running the same handler, whose initialisation sleeps
``--init-seconds`` and reads a file of ``--load-mb`` MB into memory (a stand-in for a model
load):

* cold: ``active_workers = 0``, FlashBoot off: each job finds no worker and waits for a start;
* warm: ``active_workers = 1``: an idle worker is waiting;
* parked: FlashBoot on: each job arrives after the worker was parked (frozen) at its idle
  timeout, and revives it.

The anchor, in the same run: the time the kernel takes to resume a frozen process (SIGSTOP,
then SIGCONT and a byte through a pipe), which is the floor a revival could reach; the rest of a
revival is runq's own path. Delay time is runq's own `delayTime` (submit to start, in ms) and,
beside it, the client's round trip. Times are medians.

    python benchmarks/cold_start.py              # --quick for a smoke run, --help

Prints a table, then as its last line one JSON object with ``cold_p50_ms``, ``warm_p50_ms``,
``revival_p50_ms`` and more. Every process it starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from live_serve import LiveServe, wait_until
from rich.console import Console
from rich.table import Table

HANDLER = """
import os, time
from runq import worker

def load():
    time.sleep(float(os.environ["INIT_SECONDS"]))
    with open(os.environ["MODEL_FILE"], "rb") as f:
        return f.read()

MODEL = load()

def handler(job):
    return {"bytes": len(MODEL)}

if __name__ == "__main__":
    worker.start({"handler": handler})
"""

ENDPOINT = """
name = "{name}"
[worker]
command = [{python}, "handler.py"]
env = {{ INIT_SECONDS = "{init}", MODEL_FILE = {model} }}
[scaling]
active_workers = {active}
max_workers = 1
idle_timeout = "{idle}"
flashboot = {flashboot}
"""


def pctl(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def resume_floor_ms(samples: int) -> list[float]:
    """SIGCONT to a frozen child until it answers through a pipe, in ms."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfor line in sys.stdin: print(line, end='', flush=True)",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    times = []
    try:
        for _ in range(samples):
            os.kill(child.pid, signal.SIGSTOP)
            time.sleep(0.01)
            child.stdin.write("x\n")
            child.stdin.flush()
            start = time.perf_counter()
            os.kill(child.pid, signal.SIGCONT)
            child.stdout.readline()
            times.append((time.perf_counter() - start) * 1000)
    finally:
        child.kill()
        child.wait()
    return times


class Runq(LiveServe):
    def __init__(self, tmp: Path, init_s: float, load_mb: int) -> None:
        model = tmp / "model.bin"
        with open(model, "wb") as handle:
            handle.write(os.urandom(1024 * 1024) * load_mb)
        (tmp / "handler.py").write_text(HANDLER)
        files = []
        for name, active, flashboot in (
            ("cold", 0, "false"),
            ("warm", 1, "false"),
            ("parked", 0, "true"),
        ):
            path = tmp / f"{name}.toml"
            path.write_text(
                ENDPOINT.format(
                    name=name,
                    python=json.dumps(sys.executable),
                    init=init_s,
                    model=json.dumps(str(model)),
                    active=active,
                    idle="0.3s",
                    flashboot=flashboot,
                )
            )
            files.append(str(path))
        super().__init__(tmp, files)

    def job(self, endpoint: str) -> tuple[float, float]:
        """(delayTime ms, client round trip ms) of one /runsync."""
        start = time.perf_counter()
        body = self.client.post(f"/v2/{endpoint}/runsync", json={"input": {}}).json()
        elapsed = (time.perf_counter() - start) * 1000
        if body.get("status") != "COMPLETED":
            raise RuntimeError(f"{endpoint}: {body}")
        return float(body["delayTime"]), elapsed


def measure(runq: Runq, samples: int, cold_samples: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": [], "parked": []}
    for _ in range(cold_samples):
        wait_until("no cold worker", lambda: runq.workers("cold") == [], 60)
        results["cold"].append(runq.job("cold"))
    wait_until(
        "the warm worker", lambda: any(w["state"] == "idle" for w in runq.workers("warm")), 60
    )
    for _ in range(samples):
        results["warm"].append(runq.job("warm"))
    runq.job("parked")  # its one cold start
    for _ in range(samples):
        wait_until(
            "a parked worker",
            lambda: any(w["state"] == "parked" for w in runq.workers("parked")),
            60,
        )
        results["parked"].append(runq.job("parked"))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--init-seconds", type=float, default=2.0)
    parser.add_argument("--load-mb", type=int, default=256)
    parser.add_argument("--samples", type=int, default=30, help="warm and revival samples")
    parser.add_argument("--cold-samples", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small run: 1 s init, few samples")
    args = parser.parse_args()
    if args.quick:
        args.init_seconds, args.load_mb, args.samples, args.cold_samples = 1.0, 16, 8, 2
    floor = resume_floor_ms(200)
    with tempfile.TemporaryDirectory(prefix="runq-cold-") as tmp:
        runq = Runq(Path(tmp), args.init_seconds, args.load_mb)
        try:
            results = measure(runq, args.samples, args.cold_samples)
        finally:
            runq.stop()
    table = Table(
        title=f"delay time of a job: init {args.init_seconds:g} s + {args.load_mb} MB read, "
        f"{os.cpu_count()} CPUs"
    )
    for column in (
        "how the job found its worker",
        "delayTime p50 ms",
        "p90 ms",
        "client round trip p50 ms",
        "samples",
    ):
        table.add_column(column)
    figures: dict[str, Any] = {}
    for name, label in (
        ("cold", "cold start (no worker)"),
        ("warm", "warm (idle worker)"),
        ("parked", "parked (FlashBoot revival)"),
    ):
        delays = [d for d, _ in results[name]]
        trips = [t for _, t in results[name]]
        p50 = statistics.median(delays)
        figures[f"{'revival' if name == 'parked' else name}_p50_ms"] = p50
        figures[f"{'revival' if name == 'parked' else name}_p90_ms"] = pctl(delays, 0.9)
        figures[f"{'revival' if name == 'parked' else name}_round_trip_p50_ms"] = statistics.median(
            trips
        )
        table.add_row(
            label,
            f"{p50:.0f}",
            f"{pctl(delays, 0.9):.0f}",
            f"{statistics.median(trips):.1f}",
            str(len(delays)),
        )
    floor_p50 = statistics.median(floor)
    table.add_row(
        "anchor: SIGCONT of a frozen process",
        f"{floor_p50:.3f}",
        f"{pctl(floor, 0.9):.3f}",
        "-",
        str(len(floor)),
    )
    Console().print(table)
    figures.update(
        resume_floor_p50_ms=floor_p50,
        init_seconds=args.init_seconds,
        load_mb=args.load_mb,
        targets={
            "warm_p50_le_20ms": figures["warm_p50_ms"] <= 20,
            "revival_p50_le_50ms": figures["revival_p50_ms"] <= 50,
        },
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
