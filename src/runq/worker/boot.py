"""Cold-start marks this worker reports to the control plane: when the SDK was imported and
when the handler module's init was done (`worker.start()` called). Epoch seconds, so the control
plane can line them up with its own marks on the same host.

They ride on the job-take and ping URLs as `boot=IMPORTED,LOADED`; a RunPod server ignores the
unknown query parameter.
"""

from __future__ import annotations

import time

imported_at = time.time()  # this module is the first thing `runq.worker` imports
loaded_at: float | None = None


def loaded() -> None:
    """The handler module's init is done (called by `worker.start`)."""
    global loaded_at
    if loaded_at is None:
        loaded_at = time.time()


def forked(at: float) -> None:
    """A worker forked from a preloaded template imported and loaded nothing itself."""
    global imported_at, loaded_at
    imported_at = loaded_at = at


def query() -> str:
    """The `boot` query value, e.g. `1732406400.123,1732406402.456`."""
    return f"{imported_at:.4f},{loaded_at if loaded_at is not None else imported_at:.4f}"
