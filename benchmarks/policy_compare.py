"""Scaling policies compared in the simulator, and the simulator checked against a live run.

Part 1, the comparison (runq.bench.compare): for each trace, one table with cold-start ratio
(cold starts per job), p50/p95/p99 delay, busy and idle worker-seconds (idle includes cold
starts) and cost for RunPod's default (queue delay 4 s, idle 5 s, FlashBoot), the
request-count scaler, a fixed 10-minute keep-alive, Knative KPA, Ray Serve, the ATC'20 hybrid
histogram, and runq's "histogram" and "slo" scalers. runq slo is given RunPod's measured p95
on the same trace as its target, so its row answers "the same p95 or better, for how much".

Traces:
* Azure LLM inference 2023, code and conversation (../shared/traces). Execution time from the
  tokens: 0.05 ms per context token (prefill) + 20 ms per generated token (decode), a mid-size
  model on one GPU (runq.bench.traces.load_csv). --quick keeps the first 15 minutes.
* bursty: runq.bench.traces.bursty over 2 h, seed 7 (20 s bursts at 5 jobs/s about every
  5 minutes over a trickle of 0.05/s); diurnal: a day, 0.005 to 0.25 jobs/s, seed 3. Execution
  times lognormal (median e^0.5 = 1.65 s, sigma 0.6), seed 1.
Every trace: cold start 10 s, revival 2 ms, at most 50 workers, 24GB flex price ($0.00019/s).
Scheduler tick 0.25 s, 1 s on the day-long diurnal trace (to keep the run short).

Part 2, simulator fidelity: a short bursty trace replayed live against a real `runq serve`
(handlers that sleep; traffic compressed into about a minute) with runq.bench.load.run_load,
then simulated with the cold start measured live and each job's measured execution time;
reports the relative error of p95 delay and of billed worker-seconds.

    python benchmarks/policy_compare.py            # --quick: shorter traces and replay

Prints the tables, then as its last line one JSON object: `sim_p95_delay_error`,
`sim_worker_seconds_error`, `bursty_savings_at_equal_p95` and per-trace figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from runq.bench import compare, traces
from runq.bench.load import run_load
from runq.bench.sim import SimConfig, simulate
from runq.core.spec import ScalingSection

REPO = Path(__file__).resolve().parents[1]
TRACES = Path(os.environ.get("RUNQ_TRACES", REPO.parent / "shared" / "traces"))
COLD_START_S = 10.0
MAX_WORKERS = 50
console = Console(width=140)


# --- part 1: the comparison ----------------------------------------------------------------
def synthetic_execution(count: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(0.5, 0.6) for _ in range(count)]


def load_traces(quick: bool) -> list[tuple[str, list[float], list[float], float]]:
    """(name, arrivals, execution times, scheduler tick) per trace."""
    found: list[tuple[str, list[float], list[float], float]] = []
    window = 900.0 if quick else float("inf")
    for kind in ("code", "conv"):
        trace = traces.load_csv(TRACES / f"AzureLLMInferenceTrace_{kind}.csv")
        assert trace.service_s is not None
        kept = [(a, s) for a, s in zip(trace.arrivals, trace.service_s, strict=True) if a < window]
        found.append((f"azure-{kind}", [a for a, _ in kept], [s for _, s in kept], 0.25))
    bursty = traces.bursty(3600.0 if quick else 7200.0, seed=7)
    found.append(("bursty", list(bursty.arrivals), synthetic_execution(len(bursty.arrivals)), 0.25))
    diurnal = traces.diurnal(
        43200.0 if quick else 86400.0,
        peak_rate_per_s=0.25,
        trough_rate_per_s=0.005,
        seed=3,
    )
    found.append(
        ("diurnal", list(diurnal.arrivals), synthetic_execution(len(diurnal.arrivals)), 1.0)
    )
    return found


def table(name: str, rows: list[compare.Row], jobs: int, tick: float) -> Table:
    anchor = next(r for r in rows if r.policy == compare.RUNPOD)
    out = Table(title=f"{name}: {jobs} jobs, cold start {COLD_START_S:g}s, tick {tick:g}s")
    for column in (
        "policy",
        "cold/job",
        "p50 s",
        "p95 s",
        "p99 s",
        "busy w-s",
        "idle w-s",
        "cost $",
        "vs runpod",
    ):
        out.add_column(column, justify="left" if column == "policy" else "right")
    for row in rows:
        out.add_row(
            row.policy,
            f"{row.cold_start_ratio:.4f}",
            f"{row.p50_s:.2f}",
            f"{row.p95_s:.2f}",
            f"{row.p99_s:.2f}",
            f"{row.busy_s:,.0f}",
            f"{row.idle_s:,.0f}",
            f"{row.cost:.3f}",
            f"{row.cost / anchor.cost - 1:+.0%}",
        )
    return out


def comparison(quick: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, arrivals, execution, tick in load_traces(quick):
        started = time.monotonic()
        rows = compare.compare(
            arrivals, execution, cold_start_s=COLD_START_S, max_workers=MAX_WORKERS, tick_s=tick
        )
        console.print(table(name, rows, len(arrivals), tick))
        ours = next(r for r in rows if r.policy == compare.OURS)
        anchor = next(r for r in rows if r.policy == compare.RUNPOD)
        beaten_by = compare.dominated_by(rows)
        console.print(
            f"  {compare.OURS}: {compare.savings(rows):.1%} cheaper than RunPod's default, "
            f"p95 {ours.p95_s:.2f}s vs {anchor.p95_s:.2f}s; dominated by: "
            f"{', '.join(beaten_by) or 'none'} ({time.monotonic() - started:.0f}s)\n"
        )
        figures[name] = {
            "jobs": len(arrivals),
            "savings_vs_runpod": round(compare.savings(rows), 4),
            "ours_p95_s": round(ours.p95_s, 3),
            "runpod_p95_s": round(anchor.p95_s, 3),
            "dominated_by": beaten_by,
            "rows": {
                r.policy: {
                    "cold_start_ratio": round(r.cold_start_ratio, 5),
                    "p50_s": round(r.p50_s, 3),
                    "p95_s": round(r.p95_s, 3),
                    "p99_s": round(r.p99_s, 3),
                    "busy_s": round(r.busy_s, 1),
                    "idle_s": round(r.idle_s, 1),
                    "cost_usd": round(r.cost, 4),
                }
                for r in rows
            },
        }
    return figures


# --- part 2: simulator fidelity ------------------------------------------------------------
HANDLER = """
import os, random, time
from runq import worker

time.sleep(float(os.environ["INIT_SECONDS"]))  # a stand-in for loading a model

def handler(job):
    low, high = job["input"]["seconds"]
    seconds = random.Random(job["id"]).uniform(low, high)
    time.sleep(seconds)
    return {"slept": seconds}

if __name__ == "__main__":
    worker.start({"handler": handler})
"""

ENDPOINT = """
name = "replay"
[worker]
command = [{python}, "handler.py"]
env = {{ INIT_SECONDS = "{init}" }}
[scaling]
max_workers = {max_workers}
idle_timeout = "{idle}s"
scaler = "{scaler}"
{extra}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    """A `runq serve` subprocess with one endpoint; stopped (its whole group) in `stop`."""

    def __init__(self, tmp: Path, scaling: ScalingSection, init_s: float, tick_s: float) -> None:
        self.port, self.key = free_port(), secrets.token_urlsafe(16)
        (tmp / "handler.py").write_text(HANDLER)
        extra = (
            f'p95_delay_target = "{scaling.p95_delay_target_s}s"'
            if scaling.scaler == "slo"
            else f'queue_delay = "{scaling.queue_delay_s}s"'
        )
        (tmp / "replay.toml").write_text(
            ENDPOINT.format(
                python=json.dumps(sys.executable),
                init=init_s,
                max_workers=scaling.max_workers,
                idle=scaling.idle_timeout_s,
                scaler=scaling.scaler,
                extra=extra,
            )
        )
        (tmp / "runq.toml").write_text(f"[server]\ntick = {tick_s}\n")
        env = {**os.environ, "RUNQ_API_KEY": self.key, "PYTHONPATH": str(REPO / "src")}
        self.log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "runq.cli", "serve", str(tmp / "replay.toml")),
                *("--config", str(tmp / "runq.toml"), "--port", str(self.port)),
                *("--data-dir", str(tmp / "data")),
            ],
            env=env,
            cwd=tmp,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )
        self.wait("runq serve", lambda: self.client.get("/admin/endpoints").status_code == 200)

    def wait(self, what: str, check: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runq serve exited while waiting for {what}")
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{what}: not within {timeout:g}s")

    def workers(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.client.get(
            "/admin/workers", params={"endpoint": "replay", "all": "1"}
        ).json()
        return rows

    def settled(self) -> bool:
        """No worker billed any more: every one parked or stopped."""
        return all(w["state"] in ("parked", "terminated") for w in self.workers())

    def stop(self) -> None:
        self.client.close()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log.close()


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def cold_starts(workers: list[dict[str, Any]]) -> list[float]:
    """Seconds from each worker's first `initializing` to its first `idle` or `running`."""
    measured = []
    for worker in workers:
        moves = worker["transitions"]
        begun = next((m["at"] for m in moves if m["state"] == "initializing"), None)
        ready = next((m["at"] for m in moves if m["state"] in ("idle", "running")), None)
        if begun is not None and ready is not None:
            measured.append(float(ready) - float(begun))
    return measured


def fidelity(quick: bool) -> dict[str, Any]:
    # About a minute of bursts: 4 s bursts at 3 jobs/s every ~15 s over a trickle of 0.3/s,
    # jobs of 0.2 to 0.8 s, a 2 s model load, at most 4 workers (this box has 2 cores).
    duration = 40.0 if quick else 75.0
    trace = traces.bursty(
        duration, base_rate_per_s=0.3, burst_rate_per_s=3.0, burst_s=4.0, mean_gap_s=15.0, seed=5
    )
    tick_s = 0.25
    scaling = ScalingSection(
        max_workers=4, idle_timeout_s=2.0, scaler="slo", p95_delay_target_s=3.0
    )
    with tempfile.TemporaryDirectory(prefix="runq-policy-") as tmp:
        serve = Serve(Path(tmp), scaling, init_s=2.0, tick_s=tick_s)
        try:
            result = asyncio.run(
                run_load(serve.url, serve.key, "replay", trace.arrivals, {"seconds": [0.2, 0.8]})
            )
            serve.wait("workers to park", serve.settled, timeout=120)
            workers = serve.workers()
        finally:
            serve.stop()
    done = [j for j in result.jobs if j.status == "COMPLETED"]
    if len(done) != len(result.jobs):
        raise RuntimeError(f"{len(result.jobs) - len(done)} replayed jobs did not complete")
    live_delay = [(j.delay_ms or 0) / 1000 for j in done]
    live_worker_s = sum(float(w["billed_s"]) for w in workers)
    measured = cold_starts(workers)
    cold_start = statistics.median(measured) if measured else 2.0
    sim = simulate(
        [j.submitted_s for j in done],
        [(j.execution_ms or 0) / 1000 for j in done],
        SimConfig(scaling, cold_start_s=cold_start, tick_s=tick_s),
    )
    sim_worker_s = sim.busy_s + sim.idle_s
    live_p95, sim_p95 = nearest_rank(live_delay, 0.95), sim.delay_percentile(0.95)
    out = Table(title=f"fidelity: {len(done)} jobs replayed live in {result.wall_s:.0f}s")
    for column in ("", "p50 delay s", "p95 delay s", "worker-s", "cold starts"):
        out.add_column(column, justify="right")
    out.add_row(
        "live",
        f"{nearest_rank(live_delay, 0.5):.3f}",
        f"{live_p95:.3f}",
        f"{live_worker_s:.1f}",
        str(result.cold_starts),
    )
    out.add_row(
        "simulated",
        f"{sim.delay_percentile(0.5):.3f}",
        f"{sim_p95:.3f}",
        f"{sim_worker_s:.1f}",
        str(sim.cold_starts),
    )
    console.print(out)
    console.print(f"  cold start measured live: median {cold_start:.2f}s of {len(measured)}\n")
    return {
        "sim_p95_delay_error": round(abs(sim_p95 - live_p95) / live_p95, 4) if live_p95 else None,
        "sim_worker_seconds_error": round(abs(sim_worker_s - live_worker_s) / live_worker_s, 4),
        "live_p95_delay_s": round(live_p95, 3),
        "sim_p95_delay_s": round(sim_p95, 3),
        "live_worker_s": round(live_worker_s, 2),
        "sim_worker_s": round(sim_worker_s, 2),
        "live_cold_starts": result.cold_starts,
        "sim_cold_starts": sim.cold_starts,
        "replayed_jobs": len(done),
        "measured_cold_start_s": round(cold_start, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter traces and replay")
    parser.add_argument("--no-live", action="store_true", help="skip the live replay")
    args = parser.parse_args()
    figures = comparison(args.quick)
    live: dict[str, Any] = {} if args.no_live else fidelity(args.quick)
    summary = {
        "sim_p95_delay_error": live.get("sim_p95_delay_error"),
        "sim_worker_seconds_error": live.get("sim_worker_seconds_error"),
        "bursty_savings_at_equal_p95": figures["bursty"]["savings_vs_runpod"],
        "bursty_p95_ours_s": figures["bursty"]["ours_p95_s"],
        "bursty_p95_runpod_s": figures["bursty"]["runpod_p95_s"],
        "azure_ours_dominated_by": {
            name: figures[name]["dominated_by"] for name in ("azure-code", "azure-conv")
        },
        "fidelity": live,
        "traces": figures,
        "quick": args.quick,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
