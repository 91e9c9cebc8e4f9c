"""The preloaded template process: forks workers that already hold the handler and its model.

With `[model] preload = true` the provisioner runs the worker command once per endpoint and host
with RUNQ_TEMPLATE_SOCKET set. The handler module imports and loads its model as usual, and
`worker.start()` then calls `serve_forks`, which listens on that unix socket. Each connection
asks for one worker with a JSON line `{"env": {...}, "cwd": "...", "log": "..."}`; the template
forks, answers `{"pid": N}`, and when that child exits answers `{"exit": CODE}` and closes the
connection. The child becomes an ordinary worker: its own session (process group), its own
environment (worker id, token, CUDA_VISIBLE_DEVICES, ports) and log, and `serve_forks` returns
in it so `worker.start()` goes on to the worker loop.

CUDA: the template runs with CUDA_VISIBLE_DEVICES empty, so its init must load weights to CPU
memory only; a CUDA context does not survive fork. Each child gets its own devices in its
environment before the handler first touches the GPU. Threads do not survive fork either: the
template must not start any before `worker.start()` (the SDK starts its own after the fork).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from typing import Any

from runq.worker import boot
from runq.worker.logs import Logger, log

TEMPLATE_SOCKET_ENV = "RUNQ_TEMPLATE_SOCKET"
_PR_SET_PDEATHSIG = 1
_REQUEST_LIMIT = 1024 * 1024


def serve_forks(path: str) -> None:
    """Serves fork requests on the unix socket `path` forever; returns only in a forked child."""
    libc = _libc()  # loaded once here, so a child spends nothing on it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if path.startswith("@"):  # Linux abstract namespace: no file, no 108-byte path limit
        path = "\0" + path[1:]
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    listener.bind(path)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    # SIGCHLD writes to the pipe, so the select below wakes to reap a child at once.
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    listener.listen(64)
    print(f"runq template {os.getpid()}: ready", flush=True)
    while True:
        for key, _ in selector.select():
            if key.fileobj is not listener:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                continue
            conn, _ = listener.accept()
            request = _read_request(conn)
            if request is None:
                conn.close()
                continue
            sys.stdout.flush()  # or the child prints the template's buffered output again
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                selector.close()
                for fd_owner in (listener, conn, *children.values()):
                    fd_owner.close()
                os.close(wake_r)
                os.close(wake_w)
                _become_worker(request, libc)
                return
            children[pid] = conn
            _send(conn, {"pid": pid})
        _reap(children)


def _read_request(conn: socket.socket) -> dict[str, Any] | None:
    conn.settimeout(5.0)
    try:
        line = conn.makefile("rb").readline(_REQUEST_LIMIT)
        if not line:
            return None  # the provisioner's readiness probe
        request = json.loads(line)
    except (OSError, ValueError) as exc:
        print(f"runq template: bad fork request: {exc!r}", flush=True)
        return None
    if not isinstance(request, dict) or not isinstance(request.get("env"), dict):
        print("runq template: fork request without an 'env' object", flush=True)
        return None
    return request


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    # The provisioner may have given up on this child: nothing to tell then.
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(message).encode() + b"\n")


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
            conn.close()


def _libc() -> Any:
    import ctypes  # here, not at the top: every worker imports this module

    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


def _become_worker(request: dict[str, Any], libc: Any) -> None:
    """In the child: a session, a log, an environment and a directory of its own."""
    os.setsid()  # its own process group: park, revive and stop signal the whole group
    if libc is not None:
        # Die with the template (which dies with the control plane): never an orphan.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    log_path = request.get("log")
    if isinstance(log_path, str):
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in request["env"].items()})
    cwd = request.get("cwd")
    if isinstance(cwd, str):
        os.chdir(cwd)
    fresh = Logger.from_env()  # the log format and level follow this worker's environment
    log.threshold, log.json_lines = fresh.threshold, fresh.json_lines
    boot.forked(time.time())
