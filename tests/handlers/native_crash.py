"""A handler that takes its worker down with it (SIGKILL), every time."""

import os
import signal
from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    worker.start({"handler": handler})
