"""A fake Hugging Face hub on 127.0.0.1: the few routes `snapshot_download` calls (repo info,
file tree, resolve), for one repo at one commit. Counts requests so a test can see a pull that
did not go to the hub."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repo: str, files: dict[str, bytes]) -> None:
        self.repo = repo
        self.files = files
        self.requests: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self
        info = re.compile(rf"^/api/models/{re.escape(hub.repo)}/revision/[^/]+$")
        tree = re.compile(rf"^/api/models/{re.escape(hub.repo)}/tree/[^/]+")
        resolve = re.compile(rf"^/{re.escape(hub.repo)}/resolve/[^/]+/(.+)$")

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, body: bytes, headers: dict[str, str], send_body: bool) -> None:
                self.send_response(200)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def _route(self, send_body: bool) -> None:
                path = self.path.split("?")[0]
                hub.requests[f"{self.command} {path}"] += 1
                json_type = {"Content-Type": "application/json"}
                if info.match(path):
                    siblings = [{"rfilename": name} for name in hub.files]
                    body = {"id": hub.repo, "sha": COMMIT, "siblings": siblings}
                    self._reply(json.dumps(body).encode(), json_type, send_body)
                elif tree.match(path):
                    entries = [
                        {"type": "file", "path": name, "size": len(data), "oid": _oid(data)}
                        for name, data in hub.files.items()
                    ]
                    self._reply(json.dumps(entries).encode(), json_type, send_body)
                elif (match := resolve.match(path)) and match.group(1) in hub.files:
                    data = hub.files[match.group(1)]
                    headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{_oid(data)}"'}
                    self._reply(data, headers, send_body)
                else:
                    self.send_error(404)

            def do_GET(self) -> None:
                self._route(send_body=True)

            def do_HEAD(self) -> None:
                self._route(send_body=False)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    @contextmanager
    def running(self) -> Iterator[FakeHub]:
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


def _oid(data: bytes) -> str:
    """A git blob id, as the hub gives for files not in LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
