"""Streaming through the OpenAI-compatible route: how late each chunk reaches the client.

One `runq serve` with one warm worker per worker SDK, both running the same handler (RunPod's
OpenAI contract, like its vLLM worker): it waits ``--prefill-ms`` (its own time to first
token), then yields ``--chunks`` server-sent events ``--interval-ms`` apart, each stamped with
the wall-clock time it was yielded. Three ways to read them, in the same run:

* route, runq.worker: the official ``openai`` client, ``chat.completions.create(stream=True)``
  at ``/v2/NAME/openai/v1``; the worker on runq's SDK. runq writes each chunk the moment the
  worker posts it. The headline figures are these: the route's own cost.
* route, runpod SDK: the same through an unmodified ``runpod`` SDK worker (concurrency 4, as
  RunPod's vLLM worker sets it, so the SDK waits in a job-take when a request comes). Its TTFT
  carries the SDK's own wait between taking a job and starting it (it looks at its internal
  queue every 100 ms), which a worker on RunPod pays too.
* runpod /stream (the anchor): the official ``runpod`` client, ``Endpoint.run`` then
  ``job.stream()``, which reads runq's ``/stream/{id}`` (a draining cursor) once a second.

Each request comes after a random pause (up to ``--jitter-ms``), so that it meets each
worker's own polling loop at a random moment. Per chunk: lag = arrival at the client - its
yield stamp (same machine, same clock). Per request: time to first token (TTFT) = first chunk
at the client - the call's start; the overhead is TTFT less the handler's own time from its
start to its first yield.

    python benchmarks/openai_stream.py           # --quick for a smoke run, --help

Prints a table, then as its last line one JSON object with ``chunk_lag_p50_ms``,
``chunk_lag_p99_ms``, ``ttft_overhead_ms`` (p50), ``runpod_stream_chunk_lag_p50_ms``, the
``runpod_sdk_...`` figures and more. Targets: chunk lag p50 <= 20 ms, TTFT overhead p50 <= 30
ms. The server and its workers are stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import runpod
from live_serve import LiveServe, wait_until
from rich.console import Console
from rich.table import Table

NAMES = {"runq": "stamped", "runpod": "stamped-runpod"}  # worker SDK -> endpoint
HANDLER = """
import asyncio, json, time

PREFILL_S = {prefill_s}
CHUNKS = {chunks}
INTERVAL_S = {interval_s}


def event(index, started):
    body = {{"object": "chat.completion.chunk", "model": "stamp", "created": int(started),
            "id": "stamp", "choices": [{{"index": 0, "finish_reason": None,
            "delta": {{"content": json.dumps([index, time.time(), started])}}}}]}}
    return "data: " + json.dumps(body) + "\\n\\n"


async def handler(job):
    started = time.time()
    await asyncio.sleep(PREFILL_S)
    for index in range(CHUNKS):
        if index:
            await asyncio.sleep(INTERVAL_S)
        yield event(index, started)
    yield "data: [DONE]\\n\\n"

"""
START = {
    "runq": """
from runq import worker

worker.start({"handler": handler, "return_aggregate_stream": True})
""",
    # Like RunPod's vLLM worker (its engine's max concurrency): the SDK long-polls for the next
    # job while one runs. At concurrency 1 it checks only once a second while busy, and a
    # request sent just after the last one ended would wait for that, not for runq.
    "runpod": """
import runpod

runpod.serverless.start(
    {"handler": handler, "return_aggregate_stream": True, "concurrency_modifier": lambda _: 4}
)
""",
}
ENDPOINT = """
name = "{name}"
[worker]
command = [{python}, "handler.py"]
[scaling]
active_workers = 1
max_workers = 1
"""
TARGETS = {"chunk_lag_p50_ms": 20.0, "ttft_overhead_ms": 30.0}
BODY = {"model": "stamp", "messages": [{"role": "user", "content": "go"}], "stream": True}

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def pctl(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Sample:
    """One request's chunks: lags (ms), TTFT (ms) and the handler's own time to first yield."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.ttft_ms = 0.0
        self.handler_ttft_ms = 0.0

    def arrived(self, content: str, sent_at: float) -> None:
        now = time.time()
        index, yielded, started = json.loads(content)
        self.lags.append((now - yielded) * 1000)
        if index == 0:
            self.ttft_ms = (now - sent_at) * 1000
            self.handler_ttft_ms = (yielded - started) * 1000


def through_route(client: openai.OpenAI, pause_s: float = 0.0) -> Sample:
    time.sleep(pause_s)
    sample = Sample()
    sent_at = time.time()
    stream = client.chat.completions.create(
        model="stamp", messages=[{"role": "user", "content": "go"}], stream=True
    )
    for chunk in stream:
        sample.arrived(chunk.choices[0].delta.content or "", sent_at)
    return sample


def through_runpod_stream(endpoint: runpod.Endpoint, pause_s: float = 0.0) -> Sample:
    time.sleep(pause_s)
    sample = Sample()
    sent_at = time.time()
    job = endpoint.run({"openai_route": "/v1/chat/completions", "openai_input": BODY})
    for text in job.stream():
        for line in str(text).split("\n"):
            if line.startswith("data: {"):
                event = json.loads(line[len("data: ") :])
                sample.arrived(event["choices"][0]["delta"]["content"], sent_at)
    return sample


def summary(samples: list[Sample]) -> dict[str, float]:
    lags = [lag for sample in samples for lag in sample.lags]
    overheads = [s.ttft_ms - s.handler_ttft_ms for s in samples]
    return {
        "chunk_lag_p50_ms": statistics.median(lags),
        "chunk_lag_p99_ms": pctl(lags, 0.99),
        "ttft_p50_ms": statistics.median(s.ttft_ms for s in samples),
        "handler_ttft_p50_ms": statistics.median(s.handler_ttft_ms for s in samples),
        "ttft_overhead_ms": statistics.median(overheads),
        "ttft_overhead_p99_ms": pctl(overheads, 0.99),
        "chunks": len(lags),
    }


def serve(tmp: Path, args: argparse.Namespace) -> LiveServe:
    """`runq serve` with the stamping handler on each worker SDK, once both workers are warm."""
    files = []
    for sdk, name in NAMES.items():
        folder = tmp / name
        folder.mkdir()
        handler = HANDLER.format(
            prefill_s=args.prefill_ms / 1000,
            chunks=args.chunks,
            interval_s=args.interval_ms / 1000,
        )
        (folder / "handler.py").write_text(handler + START[sdk])
        (folder / "endpoint.toml").write_text(
            ENDPOINT.format(name=name, python=json.dumps(sys.executable))
        )
        files.append(str(folder / "endpoint.toml"))
    live = LiveServe(tmp, files)

    def ready() -> bool:
        for name in NAMES.values():
            workers = live.client.get(f"/v2/{name}/health").json()["workers"]
            if not workers["idle"] + workers["running"]:
                return False
        return True

    wait_until("warm workers", ready, 60)
    return live


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20, help="streamed requests per path")
    parser.add_argument("--runpod-requests", type=int, default=6, help="through runpod /stream")
    parser.add_argument("--chunks", type=int, default=20, help="chunks per request")
    parser.add_argument("--interval-ms", type=float, default=50, help="between two chunks")
    parser.add_argument("--prefill-ms", type=float, default=50, help="handler's own TTFT")
    parser.add_argument("--warmup", type=int, default=3, help="requests not counted, per path")
    parser.add_argument(
        "--jitter-ms", type=float, default=250, help="a random pause before each request"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: few requests")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.runpod_requests, args.chunks, args.warmup = 4, 2, 5, 1

    rows: dict[str, dict[str, float]] = {}
    rng = random.Random(7)

    def pause() -> float:
        # Requests come at random moments, not in step with a worker's own polling loop.
        return rng.uniform(0, args.jitter_ms / 1000)

    with tempfile.TemporaryDirectory(prefix="runq-openai-stream-") as tmp:
        live = serve(Path(tmp), args)
        try:
            for sdk, name in NAMES.items():
                client = openai.OpenAI(
                    base_url=f"http://127.0.0.1:{live.port}/v2/{name}/openai/v1",
                    api_key=live.key,
                    max_retries=0,
                    # openai accepts an httpx.Client at run time; its newer stubs name httpx2's
                    http_client=httpx.Client(timeout=60),  # type: ignore[arg-type]
                )
                err.print(f"route, {sdk} worker: {args.warmup} warm-up + {args.requests} requests")
                for _ in range(args.warmup):
                    through_route(client)
                rows[f"route-{sdk}"] = summary(
                    [through_route(client) for _ in range(args.requests)]
                )
            runpod.api_key = live.key
            runpod.endpoint_url_base = f"http://127.0.0.1:{live.port}/v2"
            endpoint = runpod.Endpoint(NAMES["runpod"])
            err.print(f"runpod /stream, runpod worker: {args.runpod_requests} requests")
            through_runpod_stream(endpoint)
            rows["stream-runpod"] = summary(
                [through_runpod_stream(endpoint, pause()) for _ in range(args.runpod_requests)]
            )
        finally:
            live.stop()

    title = f"{args.chunks} chunks {args.interval_ms:g} ms apart, one warm worker per SDK"
    table = Table(title=title)
    for column in ("client → path", "worker SDK", "chunk lag p50", "p99", "TTFT p50"):
        table.add_column(column, justify="left" if "→" in column or "SDK" in column else "right")
    table.add_column("TTFT overhead p50", justify="right")
    table.add_column("p99", justify="right")
    labels = {
        "route-runq": ("openai → /openai/v1", "runq.worker"),
        "route-runpod": ("openai → /openai/v1", "runpod"),
        "stream-runpod": ("runpod → /stream (anchor)", "runpod"),
    }
    for key, (path, sdk) in labels.items():
        row = rows[key]
        table.add_row(
            path,
            sdk,
            f"{row['chunk_lag_p50_ms']:.1f} ms",
            f"{row['chunk_lag_p99_ms']:.1f} ms",
            f"{row['ttft_p50_ms']:.1f} ms",
            f"{row['ttft_overhead_ms']:.1f} ms",
            f"{row['ttft_overhead_p99_ms']:.1f} ms",
        )
    out.print(table)
    route, sdk_route, polled = rows["route-runq"], rows["route-runpod"], rows["stream-runpod"]
    out.print(f"handler's own time to first yield (p50): {route['handler_ttft_p50_ms']:.1f} ms")
    figures: dict[str, Any] = {
        "chunk_lag_p50_ms": round(route["chunk_lag_p50_ms"], 2),
        "chunk_lag_p99_ms": round(route["chunk_lag_p99_ms"], 2),
        "ttft_p50_ms": round(route["ttft_p50_ms"], 2),
        "handler_ttft_p50_ms": round(route["handler_ttft_p50_ms"], 2),
        "ttft_overhead_ms": round(route["ttft_overhead_ms"], 2),
        "ttft_overhead_p99_ms": round(route["ttft_overhead_p99_ms"], 2),
        "runpod_sdk_chunk_lag_p50_ms": round(sdk_route["chunk_lag_p50_ms"], 2),
        "runpod_sdk_chunk_lag_p99_ms": round(sdk_route["chunk_lag_p99_ms"], 2),
        "runpod_sdk_ttft_p50_ms": round(sdk_route["ttft_p50_ms"], 2),
        "runpod_sdk_ttft_overhead_ms": round(sdk_route["ttft_overhead_ms"], 2),
        "runpod_sdk_ttft_overhead_p99_ms": round(sdk_route["ttft_overhead_p99_ms"], 2),
        "runpod_stream_chunk_lag_p50_ms": round(polled["chunk_lag_p50_ms"], 2),
        "runpod_stream_chunk_lag_p99_ms": round(polled["chunk_lag_p99_ms"], 2),
        "runpod_stream_ttft_p50_ms": round(polled["ttft_p50_ms"], 2),
        "runpod_stream_ttft_overhead_ms": round(polled["ttft_overhead_ms"], 2),
        "chunks_measured": route["chunks"],
        "targets": TARGETS,
        "targets_met": all(route[name] <= limit for name, limit in TARGETS.items()),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
