"""Reports its worker id and the token runq gave it, so tests can play that worker."""

import os

from runq import worker


def handler(job):
    return {"worker": os.environ["RUNQ_WORKER_ID"], "token": os.environ["RUNPOD_AI_API_KEY"]}


if __name__ == "__main__":
    worker.start({"handler": handler})
