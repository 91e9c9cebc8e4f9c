"""Sync handler: sleeps input["seconds"], then returns {"slept": seconds}."""

import time
from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> dict[str, Any]:
    seconds = job["input"]["seconds"]
    time.sleep(seconds)
    return {"slept": seconds}


if __name__ == "__main__":
    worker.start({"handler": handler})
