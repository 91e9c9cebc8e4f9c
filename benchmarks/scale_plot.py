"""The curves of benchmarks/scale.py, drawn from its JSON (its last line, or
benchmarks/results/scale.json).

    python benchmarks/scale_plot.py benchmarks/results/scale.json docs/scale.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    series = summary["series"]
    ax = axes[0][0]
    for store, result in series.items():
        rows = [r for r in result["queue"] if r["where"] == "other endpoint"]
        ax.plot(
            [max(r["queued"], 1) for r in rows],
            [r["run_p50_ms"] for r in rows],
            "o-",
            label=f"{store}: /run p50",
        )
        ax.plot(
            [max(r["queued"], 1) for r in rows],
            [r["run_p99_ms"] for r in rows],
            "x--",
            label=f"{store}: /run p99",
        )
        same = [r for r in result["queue"] if r["where"] == "same endpoint"]
        ax.plot(
            [r["queued"] for r in same],
            [r["run_p50_ms"] for r in same],
            "s",
            label=f"{store}: p50, queue on the same endpoint",
        )
    ax.set_xscale("log")
    ax.set_xlabel("jobs queued (1 = empty)")
    ax.set_ylabel("ms")
    ax.set_title("/run latency vs queue depth")
    ax.legend(fontsize=7)
    ax = axes[0][1]
    for store, result in series.items():
        rows = [r for r in result["queue"] if r["where"] == "other endpoint"]
        ax.plot(
            [max(r["queued"], 1) for r in rows], [r["jobs_per_s"] for r in rows], "o-", label=store
        )
        same = [r for r in result["queue"] if r["where"] == "same endpoint"]
        ax.plot(
            [r["queued"] for r in same],
            [r["jobs_per_s"] for r in same],
            "s",
            label=f"{store}, same endpoint",
        )
    ax.set_xscale("log")
    ax.set_xlabel("jobs queued (1 = empty)")
    ax.set_ylabel("completed jobs/s")
    ax.set_title("throughput vs queue depth")
    ax.legend(fontsize=7)
    ax = axes[1][0]
    for store, result in series.items():
        for endpoints in sorted({r["endpoints"] for r in result["fleet"]}):
            rows = [r for r in result["fleet"] if r["endpoints"] == endpoints]
            ax.plot(
                [r["workers"] for r in rows],
                [r["tick_p99_ms"] for r in rows],
                "o-",
                label=f"{store}: tick p99, {endpoints} endpoints",
            )
        rows = sorted(result["fleet"], key=lambda r: (r["workers"], r["endpoints"]))
        ax.plot(
            [r["workers"] for r in rows],
            [max(r["health_p99_ms"], r["metrics_p99_ms"], r["dashboard_p99_ms"]) for r in rows],
            "x:",
            label=f"{store}: slowest of /health, /metrics, dashboard (p99)",
        )
    ax.axhline(25, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("workers")
    ax.set_ylabel("ms")
    ax.set_title("scheduler tick and read paths vs fleet size")
    ax.legend(fontsize=6)
    ax = axes[1][1]
    for store, result in series.items():
        for kind in ("runsync", "stream"):
            rows = [r for r in result["waiters"] if r["kind"] == kind]
            ax.plot(
                [r["waiters"] for r in rows],
                [r["kib_per_waiter"] for r in rows],
                "o-",
                label=f"{store}: {kind} KiB/waiter",
            )
    ax.axhline(50, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("concurrent waiters")
    ax.set_ylabel("KiB per waiter (server RSS)")
    ax.set_title("memory per waiting client")
    ax.legend(fontsize=7)
    fig.suptitle("runq: one control plane's cost as the work grows (2 shared cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    plot(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
