"""A worker with a slow initialisation (INIT_SECONDS, as if loading a model), then echoes."""

import os
import time
from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> Any:
    return job["input"]


if __name__ == "__main__":
    time.sleep(float(os.environ.get("INIT_SECONDS", "1")))
    worker.start({"handler": handler})
