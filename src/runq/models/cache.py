"""The host model cache: content-addressed, verified, written atomically, evicted LRU.

One cache per host, shared by every worker on it and by `runq cache`. Layout under `root`::

    blobs/<sha256>          verified content of fetched files, named by their digest
    blobs/<key>.partial     a download in flight (only while the key's lock is held)
    files/<key>/<name>      -> ../../blobs/<sha256>: the path a worker loads an https model from
    hub/                    Hugging Face repos, in HF_HUB_CACHE's own layout
    refs/<key>.json         (source, revision) -> digest, size, last use
    locks/<key>.lock        held (flock, exclusive) while a model is fetched or removed
    locks/<key>.pin         held (flock, shared) while a worker runs from the model

A file is only ever published by renaming a complete, fsynced, verified partial file to its
digest, so a crash at any point leaves no file that looks complete: at worst a `.partial`,
removed by the next pull of that model. The per-model lock makes concurrent pulls, from threads
or processes, download once: the others wait, then find the ref and reuse it. Eviction skips
any model whose pin another holder keeps, so a starting or running worker keeps its files.

file://, plain paths, volume:// and baked sources are not copied: `pull` verifies them (when a
sha256 is given) and returns where they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from runq.core.model_source import BAKED, FILE, HF, HTTP, VOLUME, check_sha256, parse_model_source
from runq.models import fetch, hf
from runq.models.errors import ChecksumMismatch, FetchFailed, ModelError, ModelInUse

log = logging.getLogger("runq.models")

Clock = Callable[[], float]


@dataclass(frozen=True)
class CachedModel:
    """One cached (source, revision)."""

    source: str
    revision: str
    kind: str  # "hf" or "http"
    sha256: str  # the file's digest (http) or the snapshot's commit (hf)
    size: int  # bytes
    last_used: float  # epoch seconds
    path: str  # what model_path() gives a worker


class Pinned:
    """A model made available and held against eviction until `release()` (or `with`)."""

    def __init__(self, path: Path, source: str, hub_dir: Path | None, pin: IO[bytes] | None):
        self.path = path
        self.source = source
        self.hub_dir = hub_dir  # set for hf:// sources: the worker's HF_HUB_CACHE
        self._pin = pin

    def release(self) -> None:
        if self._pin is not None:
            self._pin.close()  # closing drops the shared flock
            self._pin = None

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class ModelCache:
    """A host's model cache under `root`, kept under `max_bytes` by LRU eviction."""

    def __init__(self, root: Path, max_bytes: int, clock: Clock = time.time) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._clock = clock

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    # --- the public operations ----------------------------------------------------------
    def pull(
        self,
        source: str,
        revision: str = "",
        sha256: str = "",
        *,
        volumes: Mapping[str, str] | None = None,
        base_dir: Path | None = None,
    ) -> Path:
        """Makes `source` available on this host; returns the local path a worker loads from.

        `volumes` (volume name -> mount path) resolves volume:// sources and `base_dir` (the
        worker dir) baked ones.

        Raises:
            ChecksumMismatch: the content is not `sha256`; nothing is cached.
            FetchFailed: the download failed or an in-place path does not exist.
            ModelError: the source is not one of the forms runq knows.
        """
        with self.acquire(source, revision, sha256, volumes=volumes, base_dir=base_dir) as held:
            return held.path

    def acquire(
        self,
        source: str,
        revision: str = "",
        sha256: str = "",
        *,
        volumes: Mapping[str, str] | None = None,
        base_dir: Path | None = None,
    ) -> Pinned:
        """Like `pull`, but the model stays pinned (never evicted) until the result is released:
        the provisioner holds it for as long as a worker runs from the model."""
        try:
            parsed = parse_model_source(source)
            expected = check_sha256(sha256)
        except ValueError as exc:
            raise ModelError(f"model source {source!r}: {exc}") from None
        if not parsed.fetched:
            path = self._in_place(parsed.kind, parsed.location, parsed.volume, volumes, base_dir)
            if expected:
                self._verify_in_place(source, path, expected)
            return Pinned(path, source, None, None)
        key = _key(source, revision)
        self._ensure_dirs()
        pin = self._pin(key)
        try:
            with self._locked(key):
                found = self._reuse(key, expected)
                if found is None:
                    if parsed.kind == HF:
                        found = self._fetch_hf(source, parsed.location, revision, key)
                    else:
                        found = self._fetch_http(source, revision, expected, key)
            self.evict()
        except BaseException:
            pin.close()
            raise
        return Pinned(Path(found.path), source, self.hub_dir if parsed.kind == HF else None, pin)

    def ls(self) -> list[CachedModel]:
        """The cached models, most recently used first."""
        models = [model for _, model in self._refs()]
        return sorted(models, key=lambda m: m.last_used, reverse=True)

    def has(self, source: str) -> bool:
        """Whether some revision of `source` is cached here (placement prefers such hosts)."""
        return any(model.source == source for model in self.ls())

    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({model.source for model in self.ls()}))

    def rm(self, source: str) -> int:
        """Removes every cached revision of `source`; returns how many.

        Raises:
            ModelInUse: a worker runs from it (nothing of that revision is removed).
        """
        removed = 0
        for key, model in self._refs():
            if model.source != source:
                continue
            if not self._remove(key, model):
                raise ModelInUse(f"{source}: in use by a running worker; stop it first")
            removed += 1
        return removed

    def evict(self) -> list[CachedModel]:
        """Removes least recently used models until the cache fits in `max_bytes`; returns them.

        Models in use (pinned) or being fetched are skipped, so the cache can stay over its
        limit while they run. Example: limit 250 bytes; A (100, used at t=1), B (100, t=2),
        C (100, t=3, pinned): 300 > 250, A goes first -> 200, done.
        """
        refs = sorted(self._refs(), key=lambda item: item[1].last_used)
        remaining = [model for _, model in refs]
        evicted: list[CachedModel] = []
        for key, model in refs:
            if _total(remaining) <= self.max_bytes:
                break
            if self._remove(key, model, wait=False):
                remaining.remove(model)
                evicted.append(model)
                log.info("evicted %s (%d bytes, LRU)", model.source, model.size)
        return evicted

    # --- fetching -----------------------------------------------------------------------
    def _reuse(self, key: str, expected: str) -> CachedModel | None:
        """The cached model of `key`, touched, when its files are whole and match `expected`."""
        model = self._read_ref(key)
        if model is None or not Path(model.path).exists():
            return None
        if model.kind == HTTP:
            blob = self.root / "blobs" / model.sha256
            if not blob.is_file() or blob.stat().st_size != model.size:
                return None
            if expected and model.sha256 != expected:
                return None  # the endpoint now wants other content under the same URL
        touched = CachedModel(**{**asdict(model), "last_used": self._clock()})
        self._write_ref(key, touched)
        return touched

    def _fetch_http(self, source: str, revision: str, expected: str, key: str) -> CachedModel:
        blobs = self.root / "blobs"
        partial = blobs / f"{key}.partial"  # stale when present: we hold the key's lock
        partial.unlink(missing_ok=True)
        try:
            digest, size = fetch.download(source, partial)
            if expected and digest != expected:
                raise ChecksumMismatch(source, expected, digest)
            blob = blobs / digest
            os.replace(partial, blob)  # atomic: the digest name appears whole or not at all
            fetch.fsync_dir(blobs)
        finally:
            partial.unlink(missing_ok=True)
        folder = self.root / "files" / key
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / _file_name(source)
        link.unlink(missing_ok=True)
        link.symlink_to(Path("..", "..", "blobs", digest))
        model = CachedModel(source, revision, HTTP, digest, size, self._clock(), str(link))
        self._write_ref(key, model)
        log.info("cached %s (%d bytes, sha256 %s)", source, size, digest)
        return model

    def _fetch_hf(self, source: str, repo_id: str, revision: str, key: str) -> CachedModel:
        folder = hf.snapshot(repo_id, revision, self.hub_dir)
        model = CachedModel(
            source, revision, HF, folder.name, hf.tree_size(folder), self._clock(), str(folder)
        )
        self._write_ref(key, model)
        log.info("cached %s at commit %s (%d bytes)", source, folder.name, model.size)
        return model

    def _in_place(
        self,
        kind: str,
        location: str,
        volume: str,
        volumes: Mapping[str, str] | None,
        base_dir: Path | None,
    ) -> Path:
        if kind == FILE:
            path = Path(location)
        elif kind == VOLUME:
            mount = (volumes or {}).get(volume)
            if mount is None:
                raise FetchFailed(
                    f"volume://{volume}/{location}: this host has no volume {volume!r}"
                )
            path = Path(mount) / location
        else:
            assert kind == BAKED
            if base_dir is None:
                raise ModelError(f"{location}: a baked model path needs the worker dir")
            path = base_dir / location
        if not path.exists():
            raise FetchFailed(f"{path}: no such file or directory (model source of kind {kind})")
        return path

    def _verify_in_place(self, source: str, path: Path, expected: str) -> None:
        if not path.is_file():
            raise ModelError(f"{source}: sha256 is given but {path} is not a single file")
        got = fetch.hash_file(path)
        if got != expected:
            raise ChecksumMismatch(source, expected, got)

    # --- removal ------------------------------------------------------------------------
    def _remove(self, key: str, model: CachedModel, wait: bool = True) -> bool:
        """Deletes one cached model unless it is pinned (False) or, with `wait` False, locked."""
        pin_path = self.root / "locks" / f"{key}.pin"
        with open(pin_path, "ab") as pin:
            try:
                fcntl.flock(pin, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            with self._locked(key, wait=wait) as got:
                if not got:
                    return False
                (self.root / "refs" / f"{key}.json").unlink(missing_ok=True)
                shutil.rmtree(self.root / "files" / key, ignore_errors=True)
                if model.kind == HF:
                    self._remove_hf(model)
                elif not any(m.sha256 == model.sha256 for _, m in self._refs()):
                    (self.root / "blobs" / model.sha256).unlink(missing_ok=True)
        return True

    def _remove_hf(self, model: CachedModel) -> None:
        snapshot = Path(model.path)
        repo_dir = snapshot.parent.parent  # hub/models--org--name
        if any(m.source == model.source for _, m in self._refs()):
            shutil.rmtree(snapshot, ignore_errors=True)  # other revisions stay
        else:
            shutil.rmtree(repo_dir, ignore_errors=True)

    # --- refs, locks --------------------------------------------------------------------
    def _ensure_dirs(self) -> None:
        for name in ("blobs", "files", "hub", "refs", "locks"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    def _refs(self) -> list[tuple[str, CachedModel]]:
        folder = self.root / "refs"
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob("*.json")):
            model = self._read_ref(path.stem)
            if model is not None:
                found.append((path.stem, model))
        return found

    def _read_ref(self, key: str) -> CachedModel | None:
        try:
            data: dict[str, Any] = json.loads((self.root / "refs" / f"{key}.json").read_text())
            return CachedModel(**data)
        except (OSError, ValueError, TypeError):
            return None  # absent, or removed while we listed

    def _write_ref(self, key: str, model: CachedModel) -> None:
        path = self.root / "refs" / f"{key}.json"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(asdict(model)))
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _locked(self, key: str, wait: bool = True) -> Iterator[bool]:
        """The key's exclusive lock; yields False when `wait` is off and another holds it.
        flock locks belong to the open file, so threads of one process exclude each other too."""
        with open(self.root / "locks" / f"{key}.lock", "ab") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True  # the lock goes with the file when the `with` closes it

    def _pin(self, key: str) -> IO[bytes]:
        pin = open(self.root / "locks" / f"{key}.pin", "ab")  # noqa: SIM115 - held by Pinned
        fcntl.flock(pin, fcntl.LOCK_SH)
        return pin


def _key(source: str, revision: str) -> str:
    return hashlib.sha256(f"{source}\0{revision}".encode()).hexdigest()[:32]


def _file_name(url: str) -> str:
    """The URL's last path segment, so that a loader that looks at extensions sees one."""
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    return name if name not in ("", ".", "..") and "\0" not in name else "model"


def _total(models: Iterable[CachedModel]) -> int:
    """Bytes on disk: one copy per distinct blob (two URLs of one content share it)."""
    return sum(
        {(m.kind, m.sha256, m.path if m.kind == HF else ""): m.size for m in models}.values()
    )
