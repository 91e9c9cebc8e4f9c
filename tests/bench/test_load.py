"""`runq bench` against a live `runq serve`: every job accounted for, the CSV and PNGs written,
cold starts counted from worker transitions; and the clear errors it gives before sending any."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runq.bench.load import LoadProgress, count_starts, run_load
from runq.errors import NotFound
from tests.conftest import Server

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GPU_24GB = '[compute]\ngpu = ["24GB"]\n'


def runq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runq.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def moves(*pairs: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"state": state, "at": at, "reason": ""} for state, at in pairs]


@pytest.mark.parametrize(
    ("baseline", "seen", "expected"),
    [
        pytest.param(
            {},
            {"w1": moves(("initializing", 1), ("idle", 2)), "w2": moves(("initializing", 3))},
            (2, 0),
            id="two workers started during the run are two cold starts",
        ),
        pytest.param(
            {"w1": moves(("initializing", 1), ("idle", 2))},
            {"w1": moves(("initializing", 1), ("idle", 2), ("running", 5), ("idle", 6))},
            (0, 0),
            id="a worker already warm before the run is no cold start",
        ),
        pytest.param(
            {"w1": moves(("initializing", 1), ("idle", 3))},
            {"w1": moves(("initializing", 1), ("idle", 3), ("parked", 9), ("idle", 12))},
            (0, 1),
            id="parked then idle during the run is a revival",
        ),
        pytest.param(
            {"w1": moves(("initializing", 1), ("idle", 3), ("parked", 9), ("idle", 12))},
            {"w1": moves(("initializing", 1), ("idle", 3), ("parked", 9), ("idle", 12))},
            (0, 0),
            id="a revival before the run does not count",
        ),
        pytest.param(
            {"w1": moves(("throttled", 1))},
            {"w1": moves(("throttled", 1), ("initializing", 4), ("idle", 5))},
            (1, 0),
            id="a throttled worker that gets a GPU during the run is a cold start",
        ),
    ],
)
def test_cold_starts_and_revivals_come_from_transitions_after_the_baseline(
    baseline: dict[str, list[dict[str, Any]]],
    seen: dict[str, list[dict[str, Any]]],
    expected: tuple[int, int],
) -> None:
    assert count_starts(baseline, seen) == expected


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["--rate", "0"], "--rate 0: must be above 0", id="a zero rate"),
        pytest.param(["--duration", "-1"], "--duration -1", id="a negative duration"),
        pytest.param(["--speed", "0"], "--speed 0: must be above 0", id="a zero speed"),
        pytest.param(["--arrivals", "trace"], "needs --trace FILE", id="trace without a file"),
        pytest.param(
            ["--arrivals", "trace", "--trace", "{tmp}/nope.csv"],
            "{tmp}/nope.csv: no such trace file",
            id="a missing trace file is named",
        ),
        pytest.param(
            ["--payload", "{tmp}/bad.json"],
            "payload file {tmp}/bad.json: not valid JSON",
            id="a payload that is not JSON names its file",
        ),
        pytest.param(
            ["--payload", "{tmp}/absent.json"],
            "payload file {tmp}/absent.json: cannot read",
            id="a missing payload file is named",
        ),
    ],
)
@pytest.mark.timeout(30)
def test_bench_refuses_bad_flags_with_a_message_naming_them(
    tmp_path: Path, args: list[str], says: str
) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    filled = [a.replace("{tmp}", str(tmp_path)) for a in args]
    # Nothing listens on this URL: the error must come before any request.
    result = runq(
        "bench", "echo", *filled, env={"RUNQ_URL": "http://127.0.0.1:9", "RUNQ_API_KEY": "k"}
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert squeeze(says.replace("{tmp}", str(tmp_path))) in squeeze(result.stderr)


def squeeze(text: str) -> str:
    """Text without whitespace: rich may wrap a long message anywhere."""
    return "".join(text.split())


def table_value(stdout: str, figure: str) -> str:
    """The value beside `figure` in the totals table."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.replace("│", "|").split("|") if c.strip()]
        if len(cells) == 2 and cells[0] == figure:
            return cells[1]
    raise AssertionError(f"no row '{figure}' in:\n{stdout}")


@pytest.mark.timeout(60)
def test_bench_runs_constant_arrivals_and_reports_every_job(
    server_factory: Callable[[], Server],
    tmp_path: Path,
) -> None:
    server: Server = server_factory()
    # One (declared) L4: a CPU worker costs nothing, a GPU one is billed per second.
    server.config_extra = '[[hosts]]\nname = "box"\ngpus = [{ type = "L4", count = 1 }]\n'
    # No always-on worker, at most one: the run's first job must cold-start exactly one.
    server.add_endpoint("sleepy", "native_sleep.py", workers=0, extra=GPU_24GB)
    server.start(wait_workers=False)
    payload = tmp_path / "payload.json"
    payload.write_text('{"seconds": 0.05}')
    out = tmp_path / "out"

    result = runq(
        "bench", "sleepy", "--arrivals", "constant", "--rate", "20", "--duration", "1",
        "--payload", str(payload), "--out", str(out),
        env={"RUNQ_URL": server.url, "RUNQ_API_KEY": server.key},
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    # 20 jobs/s for 1 s: 20 jobs, all completed, on the one worker started for them.
    assert table_value(result.stdout, "jobs") == "20"
    assert table_value(result.stdout, "completed") == "20"
    assert table_value(result.stdout, "failed") == "0"
    assert table_value(result.stdout, "cold starts") == "1"
    with (out / "jobs.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20 and len({r["id"] for r in rows}) == 20
    assert all(r["status"] == "COMPLETED" for r in rows)
    assert all(int(r["delay_ms"]) >= 0 and int(r["execution_ms"]) >= 50 for r in rows)
    # The first job waited in the queue while its worker cold-started.
    cold_start_s = server.workers("sleepy")[0]["cold_start_s"]
    assert int(rows[0]["delay_ms"]) >= cold_start_s * 1000 - 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["completed"] == 20 and summary["throughput_per_s"] > 0
    assert summary["cost_usd"] > 0
    for name in ("latency.png", "workers.png"):
        assert png_size(out / name) == (1000, 500)


@pytest.mark.timeout(60)
async def test_run_load_replays_a_trace_sped_up_and_works_with_an_invoke_only_key(
    server_factory: Callable[[], Server],
) -> None:
    server: Server = server_factory()
    server.add_endpoint("echo", "native_echo.py", workers=1)
    server.start()
    made = server.post("/admin/keys", json={"scopes": ["invoke:echo"]})
    assert made.status_code == 200, made.text
    invoke_only = made.json()["key"]
    seen: list[LoadProgress] = []

    # A 6 s trace at speed 6 takes about 1 s: sent at 0, 0.5 and 1 s.
    result = await run_load(
        server.url, invoke_only, "echo", (0.0, 3.0, 6.0), {"n": 1}, speed=6, on_progress=seen.append
    )

    assert [job.status for job in result.jobs] == ["COMPLETED"] * 3
    assert [job.scheduled_s for job in result.jobs] == pytest.approx([0.0, 0.5, 1.0])
    for job in result.jobs:
        assert job.scheduled_s <= job.submitted_s < job.scheduled_s + 0.3
        assert job.latency_s is not None and job.delay_ms is not None
    assert result.wall_s >= 1.0
    assert seen[-1] == LoadProgress(total=3, submitted=3, finished=3)
    # The admin API refuses this key: no worker or cost figures, rather than a failed run.
    assert (result.cold_starts, result.cost_usd, result.samples) == (None, None, ())

    with pytest.raises(NotFound, match="endpoint 'nosuch' is not deployed"):
        await run_load(server.url, server.key, "nosuch", (0.0,), {})
