"""An unmodified RunPod worker: the official SDK, nothing runq-specific."""

import runpod


def handler(job):
    return {"echo": job["input"]}


runpod.serverless.start({"handler": handler})
