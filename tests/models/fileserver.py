"""A tiny real HTTP server for model downloads: it counts GETs per path and can trickle bytes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (path -> bytes). `delay_s` holds each response before its first byte;
    `trickle_s` sleeps between 1 KiB chunks (a slow download that a test can kill midway)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.gets: Counter[str] = Counter()
        self.delay_s = 0.0
        self.trickle_s = 0.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.gets[self.path] += 1
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                time.sleep(owner.delay_s)  # the server being slow, not test synchronisation
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for start in range(0, len(body), 1024):
                        self.wfile.write(body[start : start + 1024])
                        if owner.trickle_s:
                            self.wfile.flush()
                            time.sleep(owner.trickle_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client died mid-download: what the crash test does

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    @contextmanager
    def running(self) -> Iterator[FileServer]:
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)
