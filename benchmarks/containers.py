"""The same handler as a process worker and as a container worker, in one run.

One `runq serve`, six endpoints: one echo handler on runq's worker SDK
(tests/handlers/native_echo.py, also in the test image as /native_handler.py) run as a host
process (`command = [python, handler]`) and as an image worker (`image = ...`, podman), each as

* cold: ``active_workers = 0``, FlashBoot off: each job waits for a worker's start (the image
  is already on the host);
* warm: ``active_workers = 1``: an idle worker is waiting; timed by the client's round trip;
* parked: FlashBoot on: each job arrives after the worker was parked, and revives it.

Then pulls: the image's layers pushed to a loopback registry (Debian's docker-registry), and a
cold pull of it by runq's image store beside `podman pull` of the same image alone, removing
it between samples. Times are medians.

    python benchmarks/containers.py            # --quick for a smoke run, --help

Prints a table, then as its last line one JSON object with ``process_cold_start_ms``,
``container_cold_start_ms``, ``process_revival_ms``, ``container_revival_ms``,
``process_runsync_ms``, ``container_runsync_ms``, ``image_pull_s``, ``engine_pull_s`` and
the issue's targets. Every process and container it starts is removed on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from live_serve import REPO, LiveServe, wait_until
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(REPO))  # tests.images builds the runpod image offline

from tests.images import (
    NATIVE_HANDLER,
    _rootfs_tar,
    ensure_runpod_image,
    find_engine,
    loopback_registry,
)

from runq.fleet.engine import Engine
from runq.fleet.images import ImageStore

ENDPOINT = """name = "{name}"
[worker]
{worker}
[scaling]
active_workers = {active}
max_workers = 1
idle_timeout = "0.3s"
flashboot = {flashboot}
"""
KINDS = {"cold": (0, "false"), "warm": (1, "false"), "parked": (0, "true")}


class Runq(LiveServe):
    def __init__(self, tmp: Path, image: str) -> None:
        workers = {
            "process": f"command = {json.dumps([sys.executable, str(NATIVE_HANDLER)])}",
            "container": f'image = "{image}"\ncommand = ["python3", "-u", "/native_handler.py"]',
        }
        files = []
        for how, worker in workers.items():
            for kind, (active, flashboot) in KINDS.items():
                path = tmp / f"{how}-{kind}.toml"
                name = f"{how}-{kind}"
                text = ENDPOINT.format(name=name, worker=worker, active=active, flashboot=flashboot)
                path.write_text(text)
                files.append(str(path))
        super().__init__(tmp, files, up_timeout=60)

    def job(self, endpoint: str) -> tuple[float, float]:
        """(delayTime ms, client round trip ms) of one /runsync."""
        start = time.perf_counter()
        body = self.client.post(f"/v2/{endpoint}/runsync", json={"input": {"echo": 1}}).json()
        elapsed = (time.perf_counter() - start) * 1000
        if body.get("status") != "COMPLETED":
            raise RuntimeError(f"{endpoint}: {body}")
        return float(body["delayTime"]), elapsed


HOWS = ("process", "container")


def measure(runq: Runq, samples: int, cold_samples: int) -> dict[str, dict[str, list[float]]]:
    """Samples of both kinds of worker taken in turns, so that the load of a shared machine
    drifts over both alike."""
    found: dict[str, dict[str, list[float]]] = {
        how: {"cold": [], "warm": [], "parked": []} for how in HOWS
    }

    def has(endpoint: str, state: str) -> bool:
        return any(w["state"] == state for w in runq.workers(endpoint))

    def empty(endpoint: str) -> bool:
        return runq.workers(endpoint) == []

    for _ in range(cold_samples):
        for how in HOWS:
            wait_until("no cold worker", partial(empty, f"{how}-cold"), 60)
            found[how]["cold"].append(runq.job(f"{how}-cold")[0])
    for how in HOWS:
        wait_until("a warm worker", partial(has, f"{how}-warm", "idle"), 90)
        runq.job(f"{how}-warm")
        runq.job(f"{how}-parked")  # its one cold start
    for _ in range(samples):
        for how in HOWS:
            found[how]["warm"].append(runq.job(f"{how}-warm")[1])
    for _ in range(samples):
        for how in HOWS:
            wait_until("a parked worker", partial(has, f"{how}-parked", "parked"), 60)
            found[how]["parked"].append(runq.job(f"{how}-parked")[0])
    return found


def engine_run(engine: Engine, *args: str) -> str:
    done = subprocess.run(
        engine.argv(*args), env=engine.environ(), capture_output=True, text=True, check=True
    )
    return done.stdout


def measure_pulls(engine: Engine, tmp: Path, samples: int) -> dict[str, list[float]]:
    """Cold pulls of one image from a loopback registry: runq's image store, then the engine's
    own `pull`, alternately, the image removed before each."""
    archive = tmp / "rootfs.tar"
    _rootfs_tar(archive)
    nonce = tmp / "nonce"
    nonce.write_text(secrets.token_hex(16))  # layers of their own: no sharing with the test image
    with tarfile.open(archive, "a") as tar:
        tar.add(str(nonce), arcname="bench-nonce")
    found: dict[str, list[float]] = {"runq": [], "engine": []}
    with loopback_registry(tmp) as registry:
        ref = f"{registry}/runq-bench/runpod:{secrets.token_hex(4)}"
        try:
            engine_run(engine, "import", str(archive), ref)
            engine_run(engine, "push", "--tls-verify=false", ref)
            store = ImageStore(engine, tmp / "state")
            for _ in range(samples):
                engine_run(engine, "rmi", "-f", ref)
                acquired = asyncio.run(store.acquire(ref, "always"))
                if not acquired.pulled:
                    raise RuntimeError("runq's image store did not pull")
                found["runq"].append(acquired.seconds)
                engine_run(engine, "rmi", "-f", ref)
                start = time.perf_counter()
                engine_run(engine, "pull", "--quiet", "--tls-verify=false", ref)
                found["engine"].append(time.perf_counter() - start)
        finally:
            subprocess.run(engine.argv("rmi", "-f", ref), env=engine.environ(), capture_output=True)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=20, help="warm and revival samples")
    parser.add_argument("--cold-samples", type=int, default=5)
    parser.add_argument("--pull-samples", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small run: few samples")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.cold_samples, args.pull_samples = 5, 2, 1
    with tempfile.TemporaryDirectory(prefix="runq-containers-") as tmp:
        engine = find_engine(Path(tmp) / "engine")
        image = ensure_runpod_image(engine)
        runq = Runq(Path(tmp), image)
        try:
            results = measure(runq, args.samples, args.cold_samples)
        finally:
            runq.stop()
        pulls = measure_pulls(engine, Path(tmp), args.pull_samples)
    table = Table(title=f"process vs container worker ({image}), {os.cpu_count()} CPUs")
    for column in ("what", "process p50", "container p50", "samples"):
        table.add_column(column)
    figures: dict[str, Any] = {}
    rows = (
        ("cold", "cold start to first job (delayTime ms)", "cold_start_ms"),
        ("parked", "FlashBoot revival (delayTime ms)", "revival_ms"),
        ("warm", "warm /runsync (round trip ms)", "runsync_ms"),
    )
    for kind, label, key in rows:
        p50 = {how: statistics.median(results[how][kind]) for how in results}
        figures[f"process_{key}"] = round(p50["process"], 1)
        figures[f"container_{key}"] = round(p50["container"], 1)
        table.add_row(
            label,
            f"{p50['process']:.1f}",
            f"{p50['container']:.1f}",
            str(len(results["process"][kind])),
        )
    figures["image_pull_s"] = round(statistics.median(pulls["runq"]), 2)
    figures["engine_pull_s"] = round(statistics.median(pulls["engine"]), 2)
    pull_table = Table(title="cold pull of the same image from a loopback registry")
    for column in ("runq's image store p50", "podman pull alone p50", "samples"):
        pull_table.add_column(column)
    pull_table.add_row(
        f"{figures['image_pull_s']:.2f} s",
        f"{figures['engine_pull_s']:.2f} s",
        str(len(pulls["runq"])),
    )
    console = Console()
    console.print(table)
    console.print(pull_table)
    figures["targets"] = {
        "container_cold_start_le_process_plus_300ms": figures["container_cold_start_ms"]
        <= figures["process_cold_start_ms"] + 300,
        "container_revival_le_50ms": figures["container_revival_ms"] <= 50,
        "container_runsync_le_1_1x_process": figures["container_runsync_ms"]
        <= 1.1 * figures["process_runsync_ms"],
        "image_pull_le_1_1x_engine": figures["image_pull_s"] <= 1.1 * figures["engine_pull_s"],
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
