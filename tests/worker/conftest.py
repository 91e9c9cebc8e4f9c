"""Fixtures: a fake control plane and a way to start handler files against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.worker.fakeplane import HANDLERS, FakePlane, WorkerProc


@pytest.fixture
def plane() -> Iterator[FakePlane]:
    fake = FakePlane()
    yield fake
    fake.close()


@pytest.fixture
def start_worker(plane: FakePlane) -> Iterator[Callable[..., WorkerProc]]:
    procs: list[WorkerProc] = []

    def start(script: str | Path, **extra_env: str) -> WorkerProc:
        path = script if isinstance(script, Path) else HANDLERS / script
        proc = WorkerProc(path, {**plane.env(), **extra_env})
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
