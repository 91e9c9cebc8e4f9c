"""Writes into its working directory and TMPDIR, and reports what it finds there.

input {"write": "NAME"} creates NAME in the cwd (and in TMPDIR); the output lists what the cwd
and TMPDIR hold, so a test sees whether one worker's files reach another."""

import os
import tempfile
from pathlib import Path
from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> dict[str, Any]:
    name = job["input"].get("write")
    if name:
        Path(name).write_text(os.environ["RUNQ_WORKER_ID"])
        (Path(tempfile.gettempdir()) / name).write_text("tmp")
    return {
        "worker": os.environ["RUNQ_WORKER_ID"],
        "cwd": os.getcwd(),
        "files": sorted(p.name for p in Path(".").iterdir()),
        "tmp": tempfile.gettempdir(),
        "tmp_files": sorted(p.name for p in Path(tempfile.gettempdir()).iterdir()),
        "handler_here": Path("native_files.py").is_file(),
    }


if __name__ == "__main__":
    worker.start({"handler": handler})
