"""Raises ValueError("boom"): the job fails with runpod's JSON error report."""

from runq import worker


def handler(job):
    raise ValueError("boom")


if __name__ == "__main__":
    worker.start({"handler": handler})
