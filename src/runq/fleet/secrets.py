"""Secrets for workers' environments, kept in `data_dir/secrets.json` (0600, the owner's
only). Written whole and atomically; values are never returned by the admin API."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from runq.core.secret_refs import NAME
from runq.errors import BadRequest, NotFound

MAX_VALUE = 64 * 1024
SECRETS_FILE = "secrets.json"  # in the data dir


class Secrets:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, dict[str, object]]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self._path.with_name(f".{self._path.name}.new")
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        temporary.replace(self._path)

    def set(self, name: str, value: str) -> None:
        if not NAME.match(name):
            raise BadRequest(
                f"field 'name': a secret name is 1-64 letters, digits, '_', '.' or '-', "
                f"got {name[:80]!r}"
            )
        if len(value.encode()) > MAX_VALUE:
            raise BadRequest(f"field 'value': at most {MAX_VALUE} bytes")
        with self._lock:
            data = self._read()
            data[name] = {"value": value, "updated_at": time.time()}
            self._write(data)

    def get(self, name: str) -> str | None:
        entry = self._read().get(name)
        value = entry.get("value") if isinstance(entry, dict) else None
        return value if isinstance(value, str) else None

    def delete(self, name: str) -> None:
        with self._lock:
            data = self._read()
            if name not in data:
                raise NotFound(f"no secret '{name[:80]}'")
            del data[name]
            self._write(data)

    def listing(self) -> list[dict[str, object]]:
        """Names and when each was set: never a value."""
        return [
            {"name": name, "updated_at": entry.get("updated_at")}
            for name, entry in sorted(self._read().items())
            if isinstance(entry, dict)
        ]
