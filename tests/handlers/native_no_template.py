"""An echo worker whose init fails when run as a preload template (a crash before it could
listen), so the endpoint must fall back to plain starts."""

import os
import sys
from typing import Any

from runq import worker

if os.environ.get("RUNQ_TEMPLATE_SOCKET"):
    sys.exit(3)


def handler(job: dict[str, Any]) -> dict[str, Any]:
    return {"pid": os.getpid(), "echo": job["input"]}


worker.start({"handler": handler})
