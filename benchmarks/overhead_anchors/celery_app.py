"""Celery anchor: one no-op task on a Redis broker and result backend.

The broker URL comes from ``RUNQ_BENCH_REDIS_URL`` (``benchmarks/overhead.py`` starts its own
``redis-server`` on a free port and sets it). The worker it starts is::

    celery -A overhead_anchors.celery_app worker -P solo -c 1 \
        --without-gossip --without-mingle --without-heartbeat
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

REDIS_URL = os.environ.get("RUNQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("overhead_anchors", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
)


@app.task(name="noop")  # type: ignore[untyped-decorator]
def noop(job_input: dict[str, Any]) -> None:
    """The same no-op as tests/handlers/native_noop.py."""
    return None
