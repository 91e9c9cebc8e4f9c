"""The handler of the runpod test image (tests/images.py): an unmodified runpod worker that
reports what it sees inside its container."""

import os
import time
from typing import Any

import runpod


def handler(job: dict[str, Any]) -> dict[str, Any]:
    given = job["input"]
    if "sleep" in given:
        time.sleep(given["sleep"])
    return {
        "echo": given.get("echo"),
        "env": {name: os.environ.get(name) for name in given.get("env", [])},
        "exists": {path: os.path.exists(path) for path in given.get("paths", [])},
        "read": {path: open(path).read() for path in given.get("read", [])},
        "pid": os.getpid(),
    }


runpod.serverless.start({"handler": handler})
