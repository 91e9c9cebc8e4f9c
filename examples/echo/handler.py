"""A runq worker that echoes its input. The same file works with `runpod.serverless.start`."""

from runq import worker


def handler(job: dict) -> dict:
    return {"echo": job["input"]}


if __name__ == "__main__":
    worker.start({"handler": handler})
