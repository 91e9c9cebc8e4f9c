"""Fetching one file: streamed to a partial file, hashed on the way, fsynced; and hashing a
file already on disk. The cache decides the names and when to rename."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx

from runq.models.errors import FetchFailed

CHUNK = 1 << 20
CONNECT_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 300.0  # between two chunks, not for the whole file


def download(url: str, partial: Path) -> tuple[str, int]:
    """Streams `url` into `partial`; returns (sha256 hex, size). The bytes are on disk (fsync)
    when this returns, so a rename that follows cannot publish a file the kernel has not written.

    Raises:
        FetchFailed: unreachable, an HTTP status other than 200, or cut short.
    """
    digest = hashlib.sha256()
    size = 0
    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise FetchFailed(f"{url}: HTTP {response.status_code}")
            with open(partial, "wb") as out:
                for chunk in response.iter_bytes():  # as it arrives, not 1 MiB at once
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
    except httpx.HTTPError as exc:
        raise FetchFailed(f"{url}: download failed: {exc}") from None
    return digest.hexdigest(), size


def hash_file(path: Path) -> str:
    """The sha256 of a file, read in chunks (a model does not fit in memory twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Makes a rename in `path` durable: without it a power cut can undo the rename."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
