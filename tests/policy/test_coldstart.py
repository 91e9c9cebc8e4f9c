"""Cold-start phases of a worker and the split of a job's delay: table-driven, no clock."""

from __future__ import annotations

from typing import Any

import pytest

from runq.core.worker import Transition, Worker, WorkerState
from runq.policy.coldstart import cold_start, delay_breakdown

INIT, IDLE, RUN, PARK = (
    WorkerState.INITIALIZING,
    WorkerState.IDLE,
    WorkerState.RUNNING,
    WorkerState.PARKED,
)


def make_worker(
    steps: tuple[tuple[float, WorkerState, str], ...] = ((100.0, INIT, "started"),),
    /,
    **marks: Any,
) -> Worker:
    """A worker whose timeline is `steps`; `marks` sets spawned_at, imported_at, ..."""
    worker = Worker(id="w1", endpoint="e", token="t", started_at=steps[0][0])
    worker.transitions = [Transition(at, state, reason) for at, state, reason in steps]
    worker.state = steps[-1][1]
    worker.ready_at = next((at for at, state, _ in steps if state in (IDLE, RUN)), None)
    for name, value in marks.items():
        setattr(worker, name, value)
    return worker


NATIVE = {"spawned_at": 100.5, "imported_at": 100.7, "loaded_at": 102.7}
READY = ((100.0, INIT, "started"), (102.8, IDLE, "ready"))


@pytest.mark.parametrize(
    ("worker", "expected"),
    [
        pytest.param(
            make_worker(READY, **NATIVE),
            # 100.0 -> 100.5 -> 100.7 -> 102.7 -> 102.8
            {"init_s": 0.5, "import_s": 0.2, "load_s": 2.0, "ready_s": 0.1, "total_s": 2.8},
            id="a native worker reports every phase",
        ),
        pytest.param(
            make_worker(READY, spawned_at=100.5),
            # no SDK marks: spawn -> ready (2.3 s) is all "ready"
            {"init_s": 0.5, "import_s": None, "load_s": None, "ready_s": 2.3, "total_s": 2.8},
            id="a runpod worker reports no SDK marks and shows fewer phases",
        ),
        pytest.param(
            make_worker(
                ((100.0, INIT, "started"), (100.03, IDLE, "ready")),
                spawned_at=100.01,
                imported_at=100.01,
                loaded_at=100.01,
                forked=True,
            ),
            # forked: import and load were done in the template before 100.0
            {"init_s": 0.01, "import_s": 0.0, "load_s": 0.0, "ready_s": 0.02, "total_s": 0.03},
            id="a forked worker spends nothing on import and load",
        ),
        pytest.param(
            make_worker(
                (
                    (90.0, WorkerState.THROTTLED, "no GPU"),
                    (100.0, INIT, "GPU free"),
                    (102.8, IDLE, ""),
                ),
                **NATIVE,
            ),
            # the 10 s throttled wait is not part of the cold start
            {"init_s": 0.5, "import_s": 0.2, "load_s": 2.0, "ready_s": 0.1, "total_s": 2.8},
            id="a throttled wait for a GPU is not cold start",
        ),
    ],
)
def test_cold_start_phases(worker: Worker, expected: dict[str, float | None]) -> None:
    found = cold_start(worker)
    assert found is not None
    assert found.as_dict() == pytest.approx(expected)


def test_cold_start_is_none_before_the_worker_is_ready() -> None:
    assert cold_start(make_worker(**NATIVE)) is None


REVIVED = (
    (100.0, INIT, "started"),
    (102.8, IDLE, "ready"),
    (110.0, PARK, "idle timeout"),
    (120.2, IDLE, "revived (FlashBoot): queue"),
    (120.25, RUN, "took a job"),
)


@pytest.mark.parametrize(
    ("created", "started", "worker", "expected"),
    [
        pytest.param(
            101.0,
            103.0,
            make_worker(READY, **NATIVE),
            # arrived after the import (100.7): load 101-102.7 (1.7), handler init
            # 102.7-102.8 (0.1), waiting for the take 102.8-103 (0.2)
            {
                "waiting_s": 0.2,
                "worker_start_s": 0.0,
                "model_load_s": 1.7,
                "handler_init_s": 0.1,
                "revival_s": 0.0,
            },
            id="a job that arrived during the model load waits for the rest of it",
        ),
        pytest.param(
            99.0,
            103.0,
            make_worker(READY, **NATIVE),
            # waiting 99-100 (1) + 102.8-103 (0.2); start 100-100.7; load 2.0; init 0.1
            {
                "waiting_s": 1.2,
                "worker_start_s": 0.7,
                "model_load_s": 2.0,
                "handler_init_s": 0.1,
                "revival_s": 0.0,
            },
            id="a job that arrived before the worker started waits for the whole cold start",
        ),
        pytest.param(
            120.0,
            120.25,
            make_worker(REVIVED, **NATIVE),
            # waiting 120-120.2 for the scheduler's decision, revival 120.2-120.25
            {
                "waiting_s": 0.2,
                "worker_start_s": 0.0,
                "model_load_s": 0.0,
                "handler_init_s": 0.0,
                "revival_s": 0.05,
            },
            id="a job served by a revived worker shows the revival",
        ),
        pytest.param(
            200.0,
            200.004,
            make_worker(READY, **NATIVE),
            {
                "waiting_s": 0.004,
                "worker_start_s": 0.0,
                "model_load_s": 0.0,
                "handler_init_s": 0.0,
                "revival_s": 0.0,
            },
            id="a job taken by a warm worker only waited for the take",
        ),
        pytest.param(
            99.0,
            None,
            make_worker(((100.0, INIT, "started"),), spawned_at=100.5),
            # not taken; now = 101: waiting 99-100, worker start 100-101 (still starting)
            {
                "waiting_s": 1.0,
                "worker_start_s": 1.0,
                "model_load_s": 0.0,
                "handler_init_s": 0.0,
                "revival_s": 0.0,
            },
            id="a queued job's delay so far is split up to now",
        ),
        pytest.param(
            99.0,
            101.0,
            None,
            {
                "waiting_s": 2.0,
                "worker_start_s": 0.0,
                "model_load_s": 0.0,
                "handler_init_s": 0.0,
                "revival_s": 0.0,
            },
            id="without a known worker all of the delay is waiting",
        ),
    ],
)
def test_delay_breakdown(
    created: float, started: float | None, worker: Worker | None, expected: dict[str, float]
) -> None:
    split = delay_breakdown(created, started, worker, now=101.0)
    assert split.as_dict() == pytest.approx(expected, abs=1e-6)
    end = 101.0 if started is None else started
    assert sum(split.as_dict().values()) == pytest.approx(end - created, abs=1e-3)


# An image worker running the runpod SDK: registered 100.0, pull 100.1-101.1, engine `run`
# at 101.2, container running at 101.5, first call (ready) at 104.0.
IMAGE = {
    "image_pull_started_at": 100.1,
    "image_pulled_at": 101.1,
    "spawned_at": 101.2,
    "container_started_at": 101.5,
}
IMAGE_READY = ((100.0, INIT, "started"), (104.0, IDLE, "ready"))


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        pytest.param(
            IMAGE,
            # init 1.2 less the pull 1.0 = 0.2; container 101.2-101.5; ready 101.5-104
            {
                "init_s": 0.2,
                "image_pull_s": 1.0,
                "container_start_s": 0.3,
                "import_s": None,
                "load_s": None,
                "ready_s": 2.5,
                "total_s": 4.0,
            },
            id="a pulled image: pull and container start are phases of their own",
        ),
        pytest.param(
            {**IMAGE, "image_pull_started_at": 101.1},
            {
                "init_s": 1.2,
                "image_pull_s": 0.0,
                "container_start_s": 0.3,
                "import_s": None,
                "load_s": None,
                "ready_s": 2.5,
                "total_s": 4.0,
            },
            id="an image the host held: the pull is 0",
        ),
    ],
)
def test_image_worker_cold_start(marks: dict[str, float], expected: dict[str, Any]) -> None:
    found = cold_start(make_worker(IMAGE_READY, **marks))

    assert found is not None
    assert found.as_dict() == pytest.approx(expected)


def test_a_jobs_delay_on_an_image_worker_shows_the_pull_and_the_container_start() -> None:
    # Created at 100.0, taken at 104.2: worker start is what is left of 100-104 after the
    # pull (1.0) and the container start (0.3): 2.7; waiting for the take 0.2.
    split = delay_breakdown(100.0, 104.2, make_worker(IMAGE_READY, **IMAGE), now=105.0)

    assert split.as_dict() == pytest.approx(
        {
            "waiting_s": 0.2,
            "worker_start_s": 2.7,
            "model_load_s": 0.0,
            "handler_init_s": 0.0,
            "revival_s": 0.0,
            "image_pull_s": 1.0,
            "container_start_s": 0.3,
        }
    )
