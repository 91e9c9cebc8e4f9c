"""An unmodified RunPod worker: the official SDK, nothing runq-specific."""

from typing import Any

import runpod


def handler(job: dict[str, Any]) -> dict[str, Any]:
    return {"echo": job["input"]}


runpod.serverless.start({"handler": handler})
