"""An unmodified RunPod worker: the official SDK, nothing runq-specific. Its image runs on
RunPod Serverless and on runq alike."""

import runpod


def handler(job):
    return {"echo": job["input"]}


runpod.serverless.start({"handler": handler})
