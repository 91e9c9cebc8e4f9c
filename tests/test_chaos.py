"""Chaos under load (issue 10): kill -9 of workers and of the control plane, over and over,
loses no accepted job and gives each one exactly one final status.

A short run of `benchmarks/chaos.py`, in-process: the same server, handler, load, watcher and
checks as the benchmark (its docstring defines lost, completed twice and bad output).
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.timeout(240)

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "chaos.py"


def _chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("runq_chaos_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_plan_has_the_restarts_asked_for_and_starts_with_a_worker_kill() -> None:
    chaos = _chaos()
    # 7 events, 2 restarts: 5 worker kills; event 0 is never a restart.
    plan = chaos.plan_chaos(7, 2, random.Random(7))
    assert (plan.count("restart"), plan.count("worker"), plan[0]) == (2, 5, "worker")
    # With a disk-full episode and a log flood: 8 events, 2 + 1 + 1 chosen, 4 worker kills.
    plan = chaos.plan_chaos(8, 2, random.Random(7), disk_fulls=1, floods=1)
    assert [plan.count(k) for k in ("restart", "disk_full", "flood", "worker")] == [2, 1, 1, 4]
    # More restarts than events allow: all but the first event.
    assert chaos.plan_chaos(3, 9, random.Random(1)) == ["worker", "restart", "restart"]


def test_kill9_of_workers_and_control_plane_under_load_loses_no_job(tmp_path: Path) -> None:
    chaos = _chaos()
    # 27 s of load at 15 jobs/s: about 400 jobs. One event every 3 s: 27 // 3 - 1 = 8 events,
    # 2 control-plane kill -9 + restarts, a disk-full episode (as root: CI), a log flood and
    # 4 worker kill -9.
    settings = chaos.Settings(
        duration=27,
        rate=15,
        workers=3,
        every=3,
        restarts=2,
        seed=7,
        settle=90,
        disk_fulls=1,
        floods=1,
        disk="192m",
    )
    report = chaos.run(tmp_path, settings)

    assert report.problems == []
    assert report.restarts == 2
    assert report.worker_kills >= 2  # a kill finds no pid only while every worker restarts
    assert report.log_floods == 1
    assert report.log_bytes_max <= 8 * 2**20 + 2**20  # 24 MB printed; 4 MiB x 2 files kept
    if os.geteuid() == 0 or os.environ.get("CI"):
        assert report.disk_full_episodes == 1
        assert report.disk_full_refused > 0  # the full disk was met, and refused with 507
        assert report.disk_full_5xx == 0
        assert report.recovered_s is not None and report.recovered_s <= 5
    assert report.accepted >= 200
    assert (report.lost, report.unfinished) == (0, 0)
    assert (report.completed_twice, report.bad_output) == (0, 0)
    ended = report.completed + report.failed + report.cancelled + report.timed_out
    assert ended == report.accepted
