"""runq's native worker SDK: speaks the RunPod worker protocol using only the stdlib.

A handler file::

    from runq import worker

    def handler(job):
        return {"echo": job["input"]}

    worker.start({"handler": handler})

Handlers may be sync, async, generators or async generators; `start` takes the same config
keys as `runpod.serverless.start`. Without RUNPOD_WEBHOOK_GET_JOB, or with
`--test_input '<json>'`, it runs one local job, prints the result and exits.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from runq.worker import boot as _boot  # first: its import time is the "imported" mark
from runq.worker import progress as _progress
from runq.worker.config import WorkerConfig
from runq.worker.local import run_local, test_input_arg
from runq.worker.logs import log
from runq.worker.loop import WorkerLoop
from runq.worker.model import Lazy, ModelNotConfigured, load_safetensors, model_path
from runq.worker.progress import progress_update
from runq.worker.results import ErrorMeta
from runq.worker.settings import VERSION, Settings, error_meta
from runq.worker.template import TEMPLATE_SOCKET_ENV, serve_forks

__all__ = [
    "Lazy",
    "ModelNotConfigured",
    "load_safetensors",
    "model_path",
    "progress_update",
    "start",
]


def start(config: Mapping[str, Any]) -> None:
    """Runs the worker until it is told to stop, then exits the process.

    Args:
        config: `handler` (required), `return_aggregate_stream`, `refresh_worker`,
            `concurrency_modifier`; runpod's other keys are accepted and ignored.

    Raises:
        ValueError: an unknown config key, or no callable handler.
    """
    _boot.loaded()
    worker_config = WorkerConfig.from_dict(config)
    if os.environ.get(TEMPLATE_SOCKET_ENV):
        # A preloaded template ([model] preload): everything above ran once, here; from now on
        # it forks workers on request, and only those children return, each with its own env.
        serve_forks(os.environ[TEMPLATE_SOCKET_ENV])
    hostname, worker_id = error_meta()
    meta = ErrorMeta(hostname=hostname, worker_id=worker_id, version=VERSION)
    test_input = test_input_arg(sys.argv[1:])
    if test_input is not None or not os.environ.get("RUNPOD_WEBHOOK_GET_JOB"):
        _progress.configure(None)
        sys.exit(run_local(worker_config, test_input, meta))

    settings = replace(Settings.from_env(), boot=_boot.query())
    _progress.configure(settings)
    log.info(f"--- Starting runq worker | {VERSION} | {worker_config.kind.value} handler ---")
    if not settings.done_url:
        log.error("RUNPOD_WEBHOOK_POST_OUTPUT is not set: results cannot be returned.")
    WorkerLoop(worker_config, settings, meta).run()
    log.info("Worker stopped.")
    sys.exit(0)
