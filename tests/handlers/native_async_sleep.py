"""Async handler: sleeps input["seconds"], then returns {"slept": seconds}.

Its concurrency is the NATIVE_CONCURRENCY env var (default 1), so one file serves both the
single-job and the concurrent end-to-end tests.
"""

import asyncio
import os
from typing import Any

from runq import worker


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    seconds = job["input"]["seconds"]
    await asyncio.sleep(seconds)
    return {"slept": seconds}


if __name__ == "__main__":
    concurrency = int(os.environ.get("NATIVE_CONCURRENCY", "1"))
    worker.start({"handler": handler, "concurrency_modifier": lambda _current: concurrency})
