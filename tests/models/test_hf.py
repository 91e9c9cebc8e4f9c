"""hf:// sources against a fake hub on 127.0.0.1 (HF_ENDPOINT): the cache's hub/ folder is a
real HF hub cache, so a worker given the cache's HF variables loads from it offline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runq.models import FetchFailed, ModelCache
from runq.models.env import model_env
from tests.models.fakehub import COMMIT, FakeHub

pytestmark = pytest.mark.timeout(60)

FILES = {"config.json": b'{"hidden": 8}', "weights/w.bin": b"w" * 4096}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub("org/tiny", FILES).running() as running:
        monkeypatch.setenv("HF_ENDPOINT", running.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield running


def test_an_hf_repo_is_pulled_once_into_the_hub_layout(tmp_path: Path, hub: FakeHub) -> None:
    cache = ModelCache(tmp_path / "cache", 10**9)

    path = cache.pull("hf://org/tiny")
    asked = sum(hub.requests.values())
    again = cache.pull("hf://org/tiny")

    snapshot = tmp_path / "cache" / "hub" / "models--org--tiny" / "snapshots" / COMMIT
    assert path == again == snapshot
    assert (path / "config.json").read_bytes() == FILES["config.json"]
    assert (path / "weights" / "w.bin").read_bytes() == FILES["weights/w.bin"]
    assert sum(hub.requests.values()) == asked  # the second pull never asked the hub
    [model] = cache.ls()
    assert (model.kind, model.sha256, model.size) == ("hf", COMMIT, 13 + 4096)
    assert cache.rm("hf://org/tiny") == 1
    assert not (tmp_path / "cache" / "hub" / "models--org--tiny").exists()


LOAD = (
    "from huggingface_hub import hf_hub_download; print(hf_hub_download('org/tiny', 'config.json'))"
)


def test_a_worker_with_the_cache_env_loads_the_repo_offline(tmp_path: Path, hub: FakeHub) -> None:
    cache = ModelCache(tmp_path / "cache", 10**9)
    with cache.acquire("hf://org/tiny") as held:
        env = {**os.environ, **model_env(held), "HF_ENDPOINT": "http://127.0.0.1:9"}
        asked = sum(hub.requests.values())
        result = subprocess.run(
            [sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=30
        )

    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == held.path / "config.json"
    assert env["RUNQ_MODEL_PATH"] == str(held.path) and env["HF_HUB_OFFLINE"] == "1"
    assert sum(hub.requests.values()) == asked


def test_an_unknown_repo_is_a_fetch_failure_naming_it(tmp_path: Path, hub: FakeHub) -> None:
    with pytest.raises(FetchFailed, match="hf://org/missing"):
        ModelCache(tmp_path / "cache", 10**9).pull("hf://org/missing")
    assert ModelCache(tmp_path / "cache", 10**9).ls() == []
