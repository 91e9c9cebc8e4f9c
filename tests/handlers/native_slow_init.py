"""A worker whose initialisation never ends within a test (a model load that hangs)."""

import time

from runq import worker


def handler(job):
    return job["input"]


if __name__ == "__main__":
    time.sleep(120)
    worker.start({"handler": handler})
