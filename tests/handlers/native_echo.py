"""Echoes the job input back: {"echo": input}."""

from runq import worker


def handler(job):
    return {"echo": job["input"]}


if __name__ == "__main__":
    worker.start({"handler": handler})
