"""An unmodified RunPod worker with a generator handler."""

import runpod


def handler(job):
    for i in range(job["input"]["n"]):
        yield {"i": i}


runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
