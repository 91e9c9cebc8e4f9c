"""Starts a daemon by a double fork with setsid() (it leaves the worker's process group and
session) and returns its pid; the daemon sleeps for ever."""

import os
import time
from typing import Any

from runq import worker


def _daemonize() -> int:
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # first child
        os.setsid()
        if os.fork() == 0:  # the daemon: not a session leader, parent gone
            os.close(read_end)
            os.write(write_end, str(os.getpid()).encode())
            os.close(write_end)
            while True:
                time.sleep(60)
        os._exit(0)
    os.close(write_end)
    pid = int(os.read(read_end, 32))
    os.close(read_end)
    return pid


def handler(job: dict[str, Any]) -> dict[str, int]:
    return {"daemon": _daemonize(), "worker": os.getpid()}


if __name__ == "__main__":
    worker.start({"handler": handler})
