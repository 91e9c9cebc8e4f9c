"""Worker log lines on stdout, in runpod's two formats.

With RUNPOD_ENDPOINT_ID set each line is JSON `{"requestId","message","level"}`, which the
control plane's log collector attaches to the job; otherwise `LEVEL  | job | message`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
from typing import TextIO

LEVELS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40}
MAX_MESSAGE = 4096


class Logger:
    """Prints leveled lines; safe to call from any thread."""

    def __init__(self, level: str = "INFO", json_lines: bool = False) -> None:
        self.threshold = LEVELS.get(level.upper(), LEVELS["INFO"])
        self.json_lines = json_lines
        self.stream: TextIO = sys.stdout
        self._lock = threading.Lock()  # one write per line, lines never interleave

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Logger:
        """Honours RUNPOD_LOG_LEVEL (alias RUNPOD_DEBUG_LEVEL, default INFO)."""
        env = os.environ if env is None else env
        level = env.get("RUNPOD_LOG_LEVEL") or env.get("RUNPOD_DEBUG_LEVEL") or "INFO"
        return cls(level, json_lines=bool(env.get("RUNPOD_ENDPOINT_ID")))

    def enabled(self, level: str) -> bool:
        """Whether a message at `level` would be printed."""
        return LEVELS[level] >= self.threshold

    def log(self, level: str, message: object, job_id: str | None = None) -> None:
        """Prints one line if `level` passes the threshold."""
        if not self.enabled(level):
            return
        text = _truncate(str(message))
        if self.json_lines:
            line = json.dumps({"requestId": job_id, "message": text, "level": level})
        elif job_id:
            line = f"{level.ljust(7)}| {job_id} | {text}"
        else:
            line = f"{level.ljust(7)}| {text}"
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def debug(self, message: object, job_id: str | None = None) -> None:
        """Logs at DEBUG."""
        self.log("DEBUG", message, job_id)

    def info(self, message: object, job_id: str | None = None) -> None:
        """Logs at INFO."""
        self.log("INFO", message, job_id)

    def warn(self, message: object, job_id: str | None = None) -> None:
        """Logs at WARN."""
        self.log("WARN", message, job_id)

    def error(self, message: object, job_id: str | None = None) -> None:
        """Logs at ERROR."""
        self.log("ERROR", message, job_id)


def _truncate(text: str) -> str:
    if len(text) <= MAX_MESSAGE:
        return text
    half = MAX_MESSAGE // 2
    return f"{text[:half]}\n...TRUNCATED {len(text) - MAX_MESSAGE} CHARACTERS...\n{text[-half:]}"


log = Logger.from_env()
