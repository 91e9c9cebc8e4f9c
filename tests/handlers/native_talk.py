"""Prints "step i of N" input["steps"] times, input["seconds"] apart, then answers."""

import time
from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> dict[str, Any]:
    steps = job["input"].get("steps", 3)
    for step in range(1, steps + 1):
        print(f"step {step} of {steps}", flush=True)
        time.sleep(job["input"].get("seconds", 0))
    return {"steps": steps}


if __name__ == "__main__":
    worker.start({"handler": handler})
