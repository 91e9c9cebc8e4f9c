"""Ray Serve anchor: one no-op replica behind Ray Serve's HTTP proxy on 127.0.0.1.

Run by ``benchmarks/overhead.py`` as a subprocess in its own session::

    python benchmarks/overhead_anchors/ray_serve_app.py --port 8123 --temp-dir /tmp/x

It prints ``READY`` once the deployment answers, then serves until stdin closes or it gets
SIGTERM/SIGINT, and shuts Serve and Ray down on the way out.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import uuid
from types import FrameType
from typing import Any


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--temp-dir", default=None)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)

    import ray
    from ray import serve
    from starlette.requests import Request

    @serve.deployment(num_replicas=1)
    class Noop:
        async def __call__(self, request: Request) -> dict[str, Any]:
            await request.body()
            return {"id": uuid.uuid4().hex, "status": "COMPLETED", "output": None}

    init_kwargs: dict[str, Any] = {
        "num_cpus": args.num_cpus,
        "include_dashboard": False,
        "object_store_memory": 128 * 1024 * 1024,
        "logging_level": "warning",
        "log_to_driver": False,
    }
    if args.temp_dir:
        init_kwargs["_temp_dir"] = args.temp_dir
    try:
        ray.init(**init_kwargs)
        # Ray's core worker installs its own SIGTERM handler, which dies without cleaning up.
        signal.signal(signal.SIGTERM, _stop_on_signal)
        signal.signal(signal.SIGINT, _stop_on_signal)
        # Like uvicorn at log_level="warning" (the floor, runq): no per-request access log.
        quiet = {"log_level": "WARNING", "enable_access_log": False}
        serve.start(http_options={"host": "127.0.0.1", "port": args.port}, logging_config=quiet)
        app = Noop.bind()  # type: ignore[attr-defined]
        serve.run(app, name="noop", route_prefix="/", logging_config=quiet)
        print("READY", flush=True)
        stdin_closed = threading.Event()

        def _watch_stdin() -> None:
            sys.stdin.read()
            stdin_closed.set()

        threading.Thread(target=_watch_stdin, daemon=True).start()
        while not stdin_closed.wait(0.5):
            pass
    finally:
        if ray.is_initialized():
            try:
                serve.shutdown()  # type: ignore[no-untyped-call]
            finally:
                ray.shutdown()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray then takes 127.0.0.1 as the node address: all its traffic stays on loopback.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    sys.exit(main())
