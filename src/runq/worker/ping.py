"""The heartbeat: a daemon thread that GETs the ping URL every interval.

A thread (runpod uses a process) keeps pinging while a sync handler runs, because sync
handlers run in worker threads and the GIL is released on I/O and in native code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from runq.worker.logs import log
from runq.worker.settings import Settings
from runq.worker.transport import NETWORK_ERRORS, Conn


class Heartbeat:
    """Pings with the ids of the jobs in progress; the first ping goes out at once.

    Args:
        settings: where to ping and how often.
        job_ids: returns the ids in progress; called from the ping thread, so it must only
            read an immutable snapshot.
    """

    def __init__(self, settings: Settings, job_ids: Callable[[], tuple[str, ...]]) -> None:
        self.settings = settings
        self.job_ids = job_ids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="runq-ping", daemon=True)

    def start(self) -> None:
        """Starts pinging, if a ping URL was given."""
        if self.settings.ping_url:
            self._thread.start()

    def stop(self) -> None:
        """Stops after the ping in flight, if any."""
        self._stop.set()

    def _run(self) -> None:
        interval = self.settings.ping_interval
        conn = Conn(timeout=max(2 * interval, 2.0), api_key=self.settings.api_key)
        while not self._stop.is_set():
            url = self.settings.ping(self.job_ids())
            try:
                reply = conn.request("GET", url)
                log.debug(f"Heartbeat sent | {url} | {reply.status}")
            except NETWORK_ERRORS as exc:
                log.debug(f"Ping failed: {type(exc).__name__}: {exc}")
            self._stop.wait(interval)
        conn.close()
