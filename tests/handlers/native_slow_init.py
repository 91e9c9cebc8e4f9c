"""A worker whose initialisation never ends within a test (a model load that hangs)."""

import time
from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> Any:
    return job["input"]


if __name__ == "__main__":
    time.sleep(120)
    worker.start({"handler": handler})
