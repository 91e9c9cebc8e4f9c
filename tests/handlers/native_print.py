"""Prints input["mb"] megabytes to stdout (a log flood), then answers."""

import sys
from typing import Any

from runq import worker

LINE = "x" * 1023 + "\n"


def handler(job: dict[str, Any]) -> dict[str, Any]:
    for _ in range(int(job["input"].get("mb", 1) * 1024)):
        sys.stdout.write(LINE)
    sys.stdout.flush()
    return {"printed_mb": job["input"].get("mb", 1)}


if __name__ == "__main__":
    worker.start({"handler": handler})
