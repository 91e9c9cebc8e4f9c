"""An unmodified RunPod worker with a sync handler that sleeps input["seconds"]."""

import time
from typing import Any

import runpod


def handler(job: dict[str, Any]) -> dict[str, Any]:
    time.sleep(job["input"].get("seconds", 0))
    return {"slept": job["input"].get("seconds", 0)}


runpod.serverless.start({"handler": handler})
