"""Sync handler: sleeps input["seconds"], then returns {"slept": seconds}."""

import time

from runq import worker


def handler(job):
    seconds = job["input"]["seconds"]
    time.sleep(seconds)
    return {"slept": seconds}


if __name__ == "__main__":
    worker.start({"handler": handler})
