"""Echoes the job input back: {"echo": input}."""

from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> dict[str, Any]:
    return {"echo": job["input"]}


if __name__ == "__main__":
    worker.start({"handler": handler})
