"""The host model cache against a real HTTP server: one download however many pull at once,
nothing cached when the bytes are wrong or the puller dies, LRU eviction that spares models in
use, and file/volume sources used in place."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runq.models import ChecksumMismatch, FetchFailed, ModelCache, ModelError, ModelInUse
from tests.conftest import wait_until
from tests.models.fileserver import FileServer

pytestmark = pytest.mark.timeout(30)

MODEL = bytes(range(256)) * 64  # 16 KiB
OTHER = b"x" * 1000
DIGEST = hashlib.sha256(MODEL).hexdigest()


@pytest.fixture
def server() -> Iterator[FileServer]:
    files = {"/m.bin": MODEL, "/a": b"a" * 1000, "/b": b"b" * 1000, "/c": b"c" * 1000}
    with FileServer(files).running() as running:
        yield running


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_pull_returns_a_path_holding_the_bytes_and_a_second_pull_reuses_it(
    tmp_path: Path, server: FileServer
) -> None:
    cache = ModelCache(tmp_path / "cache", 10**9)

    first = cache.pull(f"{server.url}/m.bin", sha256=DIGEST)
    second = cache.pull(f"{server.url}/m.bin")

    assert first == second and first.name == "m.bin"
    assert first.read_bytes() == MODEL
    assert server.gets["/m.bin"] == 1
    [listed] = cache.ls()
    assert (listed.source, listed.sha256, listed.size) == (f"{server.url}/m.bin", DIGEST, 16384)
    assert cache.has(f"{server.url}/m.bin") and not cache.has(f"{server.url}/a")


def test_concurrent_pulls_from_threads_download_once(tmp_path: Path, server: FileServer) -> None:
    server.delay_s = 0.3  # every puller arrives while the first download is in flight
    cache = ModelCache(tmp_path / "cache", 10**9)
    paths: list[Path] = []
    threads = [
        threading.Thread(target=lambda: paths.append(cache.pull(f"{server.url}/m.bin")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert len(paths) == 8 and len(set(paths)) == 1
    assert paths[0].read_bytes() == MODEL
    assert server.gets["/m.bin"] == 1


PULL = (
    "import sys; from runq.models import ModelCache; "
    "print(ModelCache(sys.argv[1], 10**9).pull(sys.argv[2]))"
)


def test_concurrent_pulls_from_processes_download_once(tmp_path: Path, server: FileServer) -> None:
    server.delay_s = 0.3
    root = tmp_path / "cache"
    pullers = [
        subprocess.Popen(
            [sys.executable, "-c", PULL, str(root), f"{server.url}/m.bin"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [puller.communicate(timeout=20)[0].strip() for puller in pullers]

    assert [puller.returncode for puller in pullers] == [0, 0]
    assert outputs[0] == outputs[1] and Path(outputs[0]).read_bytes() == MODEL
    assert server.gets["/m.bin"] == 1


def test_a_corrupt_download_raises_naming_source_digests_and_caches_nothing(
    tmp_path: Path, server: FileServer
) -> None:
    cache = ModelCache(tmp_path / "cache", 10**9)
    wrong = hashlib.sha256(OTHER).hexdigest()
    source = f"{server.url}/m.bin"

    with pytest.raises(ChecksumMismatch) as caught:
        cache.pull(source, sha256=wrong)

    message = str(caught.value)
    assert source in message and f"expected {wrong}" in message and f"got {DIGEST}" in message
    assert files_in(tmp_path / "cache" / "blobs") == []
    assert files_in(tmp_path / "cache" / "refs") == []
    assert cache.ls() == []
    # The right digest then downloads again and is cached.
    assert cache.pull(source, sha256=DIGEST).read_bytes() == MODEL


def test_a_crash_mid_download_leaves_no_complete_looking_file_and_the_next_pull_works(
    tmp_path: Path, server: FileServer
) -> None:
    root = tmp_path / "cache"
    server.trickle_s = 0.02  # 16 chunks: about a third of a second per download
    puller = subprocess.Popen(
        [sys.executable, "-c", PULL, str(root), f"{server.url}/m.bin"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        partial = wait_until(
            lambda: next((p for p in (root / "blobs").glob("*.partial") if p.stat().st_size), None),
            timeout=15,
        )
        os.killpg(puller.pid, signal.SIGKILL)
    finally:
        puller.wait(10)

    assert 0 < partial.stat().st_size < len(MODEL)
    assert [name for name in files_in(root / "blobs") if not name.endswith(".partial")] == []
    assert files_in(root / "refs") == []
    cache = ModelCache(root, 10**9)
    assert cache.ls() == [] and not cache.has(f"{server.url}/m.bin")

    server.trickle_s = 0.0
    path = cache.pull(f"{server.url}/m.bin")

    assert path.read_bytes() == MODEL
    assert files_in(root / "blobs") == [DIGEST]  # the stale partial is gone


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def test_eviction_removes_the_least_recently_used_until_under_the_limit(
    tmp_path: Path, server: FileServer
) -> None:
    # Three 1000-byte models, limit 2500: pulling c (3000 bytes in all) evicts one. a was used
    # again after b, so b is the least recently used and goes.
    cache = ModelCache(tmp_path / "cache", 2500, clock=FakeClock())
    for name in ("a", "b", "a", "c"):
        cache.pull(f"{server.url}/{name}")

    assert {m.source for m in cache.ls()} == {f"{server.url}/a", f"{server.url}/c"}
    assert hashlib.sha256(b"b" * 1000).hexdigest() not in files_in(tmp_path / "cache" / "blobs")
    assert cache.ls()[0].source == f"{server.url}/c"  # most recent first


def test_a_model_in_use_is_neither_evicted_nor_removed(tmp_path: Path, server: FileServer) -> None:
    # Limit 1500: only one 1000-byte model fits. a is pinned (a worker runs from it), so
    # pulling b leaves the cache over its limit rather than take a's files away.
    cache = ModelCache(tmp_path / "cache", 1500, clock=FakeClock())
    with cache.acquire(f"{server.url}/a") as held:
        cache.pull(f"{server.url}/b")
        assert held.path.read_bytes() == b"a" * 1000
        assert f"{server.url}/a" in {m.source for m in cache.ls()}
        with pytest.raises(ModelInUse, match="in use"):
            cache.rm(f"{server.url}/a")
    # Released: the next eviction may take it (a is older than b).
    assert [m.source for m in cache.evict()] == [f"{server.url}/a"]
    assert cache.rm(f"{server.url}/b") == 1
    assert cache.ls() == [] and files_in(tmp_path / "cache" / "blobs") == []


def test_file_and_volume_sources_are_used_in_place_and_verified(tmp_path: Path) -> None:
    weights = tmp_path / "mnt" / "llama" / "w.bin"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(MODEL)
    cache = ModelCache(tmp_path / "cache", 10**9)

    assert cache.pull(f"file://{weights}", sha256=DIGEST) == weights
    assert cache.pull(str(weights)) == weights
    volumes = {"models": str(tmp_path / "mnt")}
    assert cache.pull("volume://models/llama/w.bin", volumes=volumes) == weights
    assert cache.pull("llama/w.bin", base_dir=tmp_path / "mnt") == weights  # baked
    assert cache.ls() == []  # nothing copied
    with pytest.raises(ChecksumMismatch, match="expected " + "0" * 64):
        cache.pull(f"file://{weights}", sha256="0" * 64)
    with pytest.raises(FetchFailed, match="no volume 'other'"):
        cache.pull("volume://other/w.bin", volumes=volumes)
    with pytest.raises(FetchFailed, match="no such file"):
        cache.pull(f"file://{tmp_path}/missing")


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("s3://bucket/m", "unknown scheme 's3'"),
        ("file://relative", "three slashes"),
        ("hf://a/b/c", "repo id"),
    ],
    ids=["unknown-scheme", "file-without-absolute-path", "bad-repo-id"],
)
def test_a_source_in_no_known_form_is_a_model_error(
    tmp_path: Path, source: str, needle: str
) -> None:
    with pytest.raises(ModelError, match=needle):
        ModelCache(tmp_path, 10**9).pull(source)


def test_an_unreachable_url_is_a_fetch_failure_naming_it(
    tmp_path: Path, server: FileServer
) -> None:
    with pytest.raises(FetchFailed, match="/nope: HTTP 404"):
        ModelCache(tmp_path / "cache", 10**9).pull(f"{server.url}/nope")
