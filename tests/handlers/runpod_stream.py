"""An unmodified RunPod worker with a generator handler."""

from collections.abc import Iterator
from typing import Any

import runpod


def handler(job: dict[str, Any]) -> Iterator[dict[str, int]]:
    for i in range(job["input"]["n"]):
        yield {"i": i}


runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
