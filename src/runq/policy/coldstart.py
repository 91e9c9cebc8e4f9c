"""Why a worker took long to start, and why a job waited: splits of time over a worker's marks.

Pure functions over a `Worker`'s recorded marks and transitions; the caller passes `now` for a
job not yet started. The admin API, the CLI and the metrics all show these same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from runq.core.worker import Worker, WorkerState


@dataclass(frozen=True)
class ColdStart:
    """A worker's cold start by phase, in seconds; None: the worker did not report that mark.

    Attributes:
        init_s: registered -> process started (environment build, model fetch, placement).
        import_s: process started -> worker SDK imported (interpreter start, imports).
        load_s: SDK imported -> `worker.start()` called (the handler module's init: model load).
        ready_s: `worker.start()` -> first call to the control plane.
        total_s: registered -> first call (the cold start the ledger bills).
        image_pull_s: an image worker's pull, part of its init (0 when the host had it).
        container_start_s: an image worker's engine `run` -> its container running; the
            import phase starts there.
    """

    init_s: float | None
    import_s: float | None
    load_s: float | None
    ready_s: float
    total_s: float
    image_pull_s: float | None = None  # None: not an image worker
    container_start_s: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        found = {k: None if v is None else round(v, 4) for k, v in asdict(self).items()}
        return {k: v for k, v in found.items() if v is not None or k not in _IMAGE_PHASES}


@dataclass(frozen=True)
class DelayBreakdown:
    """A job's delay (created -> taken by a worker), split by what it waited for, in seconds.
    The parts add up to the whole delay."""

    waiting_s: float  # no worker was starting for it yet, or the worker was busy
    worker_start_s: float  # the worker's environment, process start and imports
    model_load_s: float  # the handler's init (model load)
    handler_init_s: float  # worker SDK start to its first call to the control plane
    revival_s: float  # a parked worker being resumed and taking the job
    image_pull_s: float | None = None  # image workers only: their image being pulled
    container_start_s: float | None = None  # and their container being started

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items() if v is not None}


_IMAGE_PHASES = ("image_pull_s", "container_start_s")


def init_at(worker: Worker) -> float:
    """When the worker's cold start began: it entered INITIALIZING (a THROTTLED worker waits
    for a GPU before that, which counts as waiting for capacity)."""
    return next(
        (t.at for t in worker.transitions if t.state == WorkerState.INITIALIZING),
        worker.started_at,
    )


def cold_start(worker: Worker) -> ColdStart | None:
    """The cold start by phase, once the worker is ready. A phase whose end mark is missing is
    None, and its time counts in the next reported phase.

    Example: INITIALIZING at 100.0, spawned 100.5, imported 100.7, loaded 102.7, ready 102.8
    gives init 0.5, import 0.2, load 2.0, ready 0.1, total 2.8. A forked worker's import and
    load marks equal its fork time, so they are 0.
    """
    if worker.ready_at is None:
        return None
    start = init_at(worker)
    last = start
    phases: list[float | None] = []
    marks = (
        worker.spawned_at,
        worker.container_started_at,
        worker.imported_at,
        worker.loaded_at,
        worker.ready_at,
    )
    for mark in marks:
        if mark is None:
            phases.append(None)
            continue
        phases.append(max(0.0, mark - last))
        last = max(last, mark)
    pull = _pull_s(worker)
    init_s = phases[0] if phases[0] is None or pull is None else max(0.0, phases[0] - pull)
    return ColdStart(
        init_s,
        phases[2],
        phases[3],
        phases[4] or 0.0,
        max(0.0, worker.ready_at - start),
        image_pull_s=pull,
        container_start_s=phases[1],
    )


def _pull_s(worker: Worker) -> float | None:
    if worker.image_pull_started_at is None or worker.image_pulled_at is None:
        return None
    return max(0.0, worker.image_pulled_at - worker.image_pull_started_at)


def _segments(worker: Worker, until: float) -> list[tuple[str, float, float]]:
    """(part, from, to) spans of the worker's life that a job waiting on it can overlap."""
    start = init_at(worker)
    ready = worker.ready_at if worker.ready_at is not None else until

    def clamp(mark: float | None, fallback: float) -> float:
        return fallback if mark is None else min(max(mark, start), ready)

    loaded = clamp(worker.loaded_at, ready)
    imported = clamp(worker.imported_at, loaded)
    spans = [
        ("worker_start_s", start, imported),
        ("model_load_s", imported, loaded),
        ("handler_init_s", loaded, ready),
    ]
    # An image worker's pull and container start are carved out of its worker start.
    carved = [
        ("image_pull_s", worker.image_pull_started_at, worker.image_pulled_at),
        ("container_start_s", worker.spawned_at, worker.container_started_at),
    ]
    for name, begin, finish in carved:
        if begin is not None and finish is not None:
            spans.append((name, clamp(begin, imported), clamp(finish, imported)))
            spans.append(("worker_start_s", clamp(finish, imported), clamp(begin, imported)))
    steps = worker.transitions
    for step, following in zip(steps, [*steps[1:], None], strict=True):
        revived = step.state == WorkerState.IDLE and step.reason.startswith("revived")
        if revived:
            spans.append(("revival_s", step.at, following.at if following else until))
    return spans


def delay_breakdown(
    created_at: float, started_at: float | None, worker: Worker | None, now: float
) -> DelayBreakdown:
    """Splits a job's delay over the spans of the worker that took it.

    Example: created at 10.0, taken at 14.0 by a worker that entered INITIALIZING at 9.0,
    imported at 11.0, loaded at 13.5 and was ready at 13.9: worker start 1.0 (10-11), model
    load 2.5 (11-13.5), handler init 0.4 (13.5-13.9), waiting 0.1 (the rest).
    A job not taken yet (started_at None) is split up to `now`; without a worker it all waits.
    """
    end = now if started_at is None else started_at
    total = max(0.0, end - created_at)
    parts = dict.fromkeys(("worker_start_s", "model_load_s", "handler_init_s", "revival_s"), 0.0)
    image = worker is not None and worker.image_pull_started_at is not None
    if image:
        parts.update(dict.fromkeys(_IMAGE_PHASES, 0.0))
    if worker is not None:
        for name, begin, finish in _segments(worker, end):
            parts[name] += _overlap(begin, finish, created_at, end)
    waiting = max(0.0, total - sum(parts.values()))
    return DelayBreakdown(waiting_s=waiting, **parts)


def _overlap(begin: float, finish: float, lo: float, hi: float) -> float:
    """The length of [begin, finish] within [lo, hi]; negative for a reversed span, which
    takes back what an enclosing span counted (a carved-out sub-phase)."""
    if finish >= begin:
        return max(0.0, min(finish, hi) - max(begin, lo))
    return -max(0.0, min(begin, hi) - max(finish, lo))
