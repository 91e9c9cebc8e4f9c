"""`progress_update`: a synchronous job-done POST with status IN_PROGRESS.

Synchronous, so it reaches the server before the final result (runpod sends it from a
new thread and the two can race). It uses the calling thread's own connection, so it works
from sync handlers (in worker threads) and async handlers (on the event loop thread) alike.
"""

from __future__ import annotations

from typing import Any

from runq.worker import results
from runq.worker.logs import log
from runq.worker.settings import Settings
from runq.worker.transport import NETWORK_ERRORS, thread_conn

_FAILURES: tuple[type[Exception], ...] = (TypeError, ValueError, *NETWORK_ERRORS)
_settings: Settings | None = None
_local_mode = False


def configure(settings: Settings | None) -> None:
    """Set by `start`: where to post, or None in local test mode (progress is only logged)."""
    global _settings, _local_mode
    _settings, _local_mode = settings, settings is None


def progress_update(job: dict[str, Any], progress: Any) -> None:
    """Reports progress for a running job; failures are logged, never raised.

    Args:
        job: the job dict the handler received.
        progress: any JSON value; it becomes the job's `output` while IN_PROGRESS.
    """
    global _settings
    job_id = str(job["id"])
    if _settings is None and not _local_mode:
        _settings = Settings.from_env()  # called before start(), e.g. from a test
    if _settings is None or not _settings.done_url:
        log.info(f"Progress: {progress}", job_id)
        return
    try:
        data = results.encode(results.progress_body(progress))
        url = _settings.done(job_id, is_stream=False)
        reply = thread_conn(_settings.api_key).request("POST", url, data)
    except _FAILURES as exc:
        log.warn(f"Progress update failed: {type(exc).__name__}: {exc}", job_id)
        return
    if not 200 <= reply.status < 300:
        log.warn(f"Progress update refused: HTTP {reply.status}", job_id)
    else:
        log.debug(f"Progress update sent: {progress}", job_id)
