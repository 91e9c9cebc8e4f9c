"""Cold start to first job by where the model comes from, and model load speed against the raw
read bandwidth of the same file.

The script writes a synthetic safetensors model (``--size-mb``, default 1024; numpy, nothing is
downloaded), then in one run:

* raw read bandwidth of the file: sequential ``readinto`` of 16 MiB blocks, once with its pages
  dropped from the page cache (``posix_fadvise(POSIX_FADV_DONTNEED)`` after an fsync: this file
  only, the rest of the machine's cache is left alone; a VM's host may still cache it) and once
  from the page cache. That is the anchor: no loader can beat it.
* load throughput from the host model cache: ``runq.worker.load_safetensors`` on the copy runq's
  cache downloaded, touching every page of every tensor, in the same two cache states.
* cold start to first job, through one live ``runq serve``: an endpoint per source whose
  handler loads the model in its init (load_safetensors, every page touched). A /runsync on an
  endpoint with no worker; the figure is the job's ``delayTime`` (submit to taken), with the
  worker's cold-start breakdown (init = model fetch, import, load, ready). Sources: a download
  from a local HTTP server (empty host cache), a network volume path, the host cache (the same
  URL, already cached), baked into the worker folder, a preloaded fork (``[model] preload``: a
  worker forked from the template that holds the model) and a FlashBoot revival (a parked
  worker resumed). Before each cold start the model file's pages are dropped as above.

    python benchmarks/model_load.py            # --quick: 128 MB, one sample; --help

Prints a table, then as its last line one JSON object with ``raw_read_gbps``,
``cache_load_gbps``, ``cache_load_fraction``, ``preload_ready_ms``, ``cold_start_s`` (by source)
and more. Every process it starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from live_serve import LiveServe, wait_until
from rich.console import Console
from rich.table import Table

from runq.models import ModelCache
from runq.worker import load_safetensors

BLOCK = 16 * 1024 * 1024
PAGE = 4096
MB = 1024 * 1024

HANDLER = """
import os, time
START = time.time()
import numpy as np
from runq import worker

def load():
    tensors = worker.load_safetensors(worker.model_path())
    # Touch every page: a memory map that is never read has loaded nothing.
    touched = sum(int(t.reshape(-1).view(np.uint8)[::4096].sum()) for t in tensors.values())
    return tensors, touched

T0 = time.time()
MODEL, TOUCHED = load()
LOAD_S = time.time() - T0
SIZE = sum(t.nbytes for t in MODEL.values())

def handler(job):
    return {"load_s": LOAD_S, "bytes": SIZE, "pid": os.getpid()}

worker.start({"handler": handler})
"""

ENDPOINT = """
name = "{name}"
[worker]
command = ["python", "handler.py"]
[scaling]
active_workers = 0
max_workers = 1
idle_timeout = "{idle}"
flashboot = {flashboot}
init_timeout = "10m"
[jobs]
execution_timeout = "10m"
[model]
source = "{source}"
preload = {preload}
"""

SOURCES = ("http", "volume", "cache", "baked", "preload", "flashboot")
LABELS = {
    "http": "download (local HTTP server, empty cache)",
    "volume": "network volume path",
    "cache": "host cache (already downloaded)",
    "baked": "baked into the worker folder",
    "preload": "preloaded fork (template holds the model)",
    "flashboot": "FlashBoot revival (parked worker)",
}


# --- the model file ---------------------------------------------------------------------


def write_safetensors(path: Path, size_mb: int, tensors: int = 16) -> int:
    """A safetensors file of `tensors` F32 tensors, about `size_mb` MiB in all; its size."""
    per = size_mb * MB // tensors // 4 * 4
    header: dict[str, Any] = {"__metadata__": {"format": "np"}}
    for i in range(tensors):
        header[f"layer{i}.weight"] = {
            "dtype": "F32",
            "shape": [per // 4],
            "data_offsets": [i * per, (i + 1) * per],
        }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    block = np.random.default_rng(0).standard_normal(MB // 4, dtype=np.float32).tobytes()
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        for _ in range(tensors):
            left = per
            while left:
                chunk = block[: min(left, len(block))]
                out.write(chunk)
                left -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return path.stat().st_size


def drop_pages(*paths: Path) -> None:
    """Evicts these files' clean pages from the page cache (dirty ones are synced first)."""
    for path in paths:
        if not path.exists():
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def raw_read_gbps(path: Path) -> float:
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    total = 0
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(view):
            total += n
    return total / (time.perf_counter() - start) / 1e9


def load_gbps(path: Path) -> float:
    start = time.perf_counter()
    tensors = load_safetensors(path)
    total = sum(int(t.reshape(-1).view(np.uint8)[::PAGE].sum()) for t in tensors.values())
    seconds = time.perf_counter() - start
    assert total >= 0
    return sum(t.nbytes for t in tensors.values()) / seconds / 1e9


def best_of(times: int, measure: Callable[[], float], before: Callable[[], None]) -> float:
    results = []
    for _ in range(times):
        before()
        results.append(measure())
    return max(results)


# --- a local HTTP server for the download ---------------------------------------------


@contextmanager
def file_server(folder: Path) -> Iterator[int]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- runq -----------------------------------------------------------------------------


class Runq(LiveServe):
    """One `runq serve` with an endpoint per model source."""

    def __init__(self, tmp: Path, model: Path, url: str) -> None:
        volume = tmp / "volume"
        volume.mkdir()
        os.link(model, volume / model.name)
        self.url = url
        sources = {
            "http": (url, "1s", "false", "false"),
            "cache": (url, "1s", "false", "false"),
            "volume": (f"volume://models/{model.name}", "1s", "false", "false"),
            "baked": (f"weights/{model.name}", "1s", "false", "false"),
            "preload": (f"weights/{model.name}", "1s", "false", "true"),
            "flashboot": (f"weights/{model.name}", "0.5s", "true", "false"),
        }
        files = []
        for name, (source, idle, flashboot, preload) in sources.items():
            folder = tmp / "endpoints" / name
            (folder / "weights").mkdir(parents=True)
            os.link(model, folder / "weights" / model.name)  # no copy: the same inode
            (folder / "handler.py").write_text(HANDLER)
            text = ENDPOINT.format(
                name=name, source=source, idle=idle, flashboot=flashboot, preload=preload
            )
            (folder / "endpoint.toml").write_text(text)
            files.append(str(folder))
        config = (
            "[server]\ntick = 0.05\n"
            f'[[hosts]]\nname = "local"\nvolumes = {{ models = "{volume}" }}\n'
        )
        super().__init__(tmp, files, config, client_timeout=900, up_timeout=60)

    def job(self, endpoint: str) -> dict[str, Any]:
        """One /runsync: its delay, the handler's own load time, and its worker's cold start."""
        body = self.client.post(f"/v2/{endpoint}/runsync?wait=300000", json={"input": {}}).json()
        if body.get("status") != "COMPLETED":
            raise RuntimeError(f"{endpoint}: {body}")
        worker = next(w for w in self.workers(endpoint, True) if w["id"] == body["workerId"])
        return {
            "delay_s": body["delayTime"] / 1000,
            "load_s": body["output"]["load_s"],
            "bytes": body["output"]["bytes"],
            "cold_start": worker["cold_start"] or {},
            "cold_start_s": worker["cold_start_s"],
            "forked": worker["forked"],
        }

    def no_workers(self, endpoint: str) -> None:
        wait_until(f"{endpoint} to stop its worker", lambda: self.workers(endpoint) == [], 120)


def measure_cold(runq: Runq, model: Path, samples: int) -> dict[str, list[dict[str, Any]]]:
    cache = ModelCache(runq.data / "models", 10**12)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in SOURCES}

    def cold(name: str) -> dict[str, Any]:
        # A page still mapped by a live worker cannot be dropped: wait until every worker of
        # the cold sources is gone (the preload template holds its copy by design).
        for other in ("http", "cache", "volume", "baked", name):
            runq.no_workers(other)
        drop_pages(model, *(runq.data / "models").rglob("*.safetensors"))
        return runq.job(name)

    for _ in range(samples):
        cache.rm(runq.url)  # an empty host cache: the worker's start downloads the model
        results["http"].append(cold("http"))
        for name in ("cache", "volume", "baked"):
            results[name].append(cold(name))
    first = runq.job("preload")  # starts the template (it loads the model), forks worker 1
    if first["forked"] is not True:
        raise RuntimeError("preload: the worker was not forked; see serve.log")
    for _ in range(samples):
        results["preload"].append(cold("preload"))
    runq.job("flashboot")  # its one cold start
    for _ in range(samples):
        wait_until(
            "a parked worker",
            lambda: any(w["state"] == "parked" for w in runq.workers("flashboot")),
            120,
        )
        results["flashboot"].append(runq.job("flashboot"))
    return results


def median(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], float | None]) -> float:
    values = [v for v in map(key, rows) if v is not None]
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="model size (default 1024)")
    parser.add_argument("--samples", type=int, default=3, help="cold starts per source")
    parser.add_argument("--quick", action="store_true", help="128 MB, one sample")
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.samples = 128, 1
    console = Console(width=150)
    with tempfile.TemporaryDirectory(prefix="runq-model-") as tmp_name:
        tmp = Path(tmp_name)
        served = tmp / "served"
        served.mkdir()
        model = served / "model.safetensors"
        size = write_safetensors(model, args.size_mb)
        with file_server(served) as http_port:
            url = f"http://127.0.0.1:{http_port}/{model.name}"
            runq = Runq(tmp, model, url)
            try:
                results = measure_cold(runq, model, args.samples)
            finally:
                runq.stop()
            cached = next((tmp / "data" / "models").rglob("*.safetensors"))
            raw_cold = best_of(3, lambda: raw_read_gbps(cached), lambda: drop_pages(cached))
            raw_warm = best_of(3, lambda: raw_read_gbps(cached), lambda: None)
            load_cold = best_of(3, lambda: load_gbps(cached), lambda: drop_pages(cached))
            load_warm = best_of(3, lambda: load_gbps(cached), lambda: None)

    table = Table(
        title=f"cold start to first job, {size / 1e9:.2f} GB safetensors model, "
        f"{os.cpu_count()} CPUs, median of {args.samples}"
    )
    for column in (
        "model source",
        "to first job s",
        "init s",
        "import s",
        "load s",
        "ready s",
        "in-worker load GB/s",
    ):
        table.add_column(column)
    cold_start: dict[str, float] = {}
    for name in SOURCES:
        rows = results[name]
        cold_start[name] = round(median(rows, lambda r: r["delay_s"]), 4)
        is_cold = name != "flashboot"
        phase = {
            k: median(rows, lambda r, k=k: r["cold_start"].get(k)) if is_cold else None  # type: ignore[misc]
            for k in ("init_s", "import_s", "load_s", "ready_s")
        }
        load_rate = median(rows, lambda r: r["bytes"] / r["load_s"] / 1e9 if r["load_s"] else None)
        table.add_row(
            LABELS[name],
            f"{cold_start[name]:.3f}",
            *("-" if v is None else f"{v:.3f}" for v in phase.values()),
            f"{load_rate:.2f}" if name in ("http", "volume", "cache", "baked") else "-",
        )
    preload_ready_ms = median(results["preload"], lambda r: r["cold_start_s"]) * 1000
    console.print(table)
    anchor = Table(title="read bandwidth of the cached model file (best of 3)")
    for column in ("what", "page cache dropped GB/s", "from page cache GB/s"):
        anchor.add_column(column)
    anchor.add_row(
        "anchor: raw sequential read (16 MiB readinto)", f"{raw_cold:.2f}", f"{raw_warm:.2f}"
    )
    anchor.add_row(
        "runq load_safetensors, every page touched",
        f"{load_cold:.2f} ({load_cold / raw_cold:.0%})",
        f"{load_warm:.2f} ({load_warm / raw_warm:.0%})",
    )
    console.print(anchor)
    figures = {
        "raw_read_gbps": round(raw_cold, 3),
        "cache_load_gbps": round(load_cold, 3),
        "cache_load_fraction": round(load_cold / raw_cold, 3),
        "raw_read_warm_gbps": round(raw_warm, 3),
        "cache_load_warm_gbps": round(load_warm, 3),
        "cache_load_warm_fraction": round(load_warm / raw_warm, 3),
        "preload_ready_ms": round(preload_ready_ms, 1),
        "cold_start_s": cold_start,
        "size_bytes": size,
        "samples": args.samples,
        "page_cache_drop": "posix_fadvise(POSIX_FADV_DONTNEED) on the model file after fsync",
        "targets": {
            "cache_load_ge_80pct_of_raw": load_cold / raw_cold >= 0.8,
            "preload_ready_le_100ms": preload_ready_ms <= 100,
        },
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
