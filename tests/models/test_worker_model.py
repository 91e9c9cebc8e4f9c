"""runq.worker's loading helpers: model_path(), Lazy, and safetensors without copies."""

from __future__ import annotations

import json
import struct
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from runq import worker

pytestmark = pytest.mark.timeout(30)


def test_model_path_is_the_path_runq_gives_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNQ_MODEL_PATH", "/cache/files/k/model.safetensors")
    assert worker.model_path() == Path("/cache/files/k/model.safetensors")


def test_model_path_without_a_model_says_what_to_add(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNQ_MODEL_PATH", raising=False)
    with pytest.raises(worker.ModelNotConfigured, match=r"no \[model\] source"):
        worker.model_path()


def test_lazy_loads_once_on_first_get_even_from_many_threads() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def load() -> str:
        gate.wait(5)  # every thread is inside get() before the first load ends
        calls.append(1)
        return "weights"

    lazy = worker.Lazy(load)
    assert not lazy.loaded and calls == []
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(lazy.get())) for _ in range(6)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)

    assert results == ["weights"] * 6 and calls == [1] and lazy.loaded


def test_lazy_tries_again_after_a_failed_load() -> None:
    attempts: list[int] = []

    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk not ready")
        return 42

    lazy = worker.Lazy(flaky)
    with pytest.raises(OSError):
        lazy.get()
    assert lazy.get() == 42 and len(attempts) == 2


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(
        {
            "big": np.arange(4 * 1024 * 1024, dtype=np.float32),  # 16 MiB
            "small": np.array([[1, 2], [3, 4]], dtype=np.int64),
            "half": np.ones(3, dtype=np.float16),
        },
        str(path),
        metadata={"format": "np"},
    )
    return path


def test_load_safetensors_gives_the_same_tensors_as_the_safetensors_library(
    weights: Path,
) -> None:
    ours = worker.load_safetensors(weights)
    theirs = load_file(str(weights))

    assert ours.keys() == theirs.keys()
    for name, array in theirs.items():
        assert ours[name].dtype == array.dtype and ours[name].shape == array.shape
        assert np.array_equal(ours[name], array)
    assert worker.load_safetensors(weights.parent)["small"].tolist() == [[1, 2], [3, 4]]


def test_load_safetensors_maps_the_file_instead_of_copying_it(weights: Path) -> None:
    tracemalloc.start()  # numpy reports its data buffers to tracemalloc
    try:
        tensors = worker.load_safetensors(weights)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    big = tensors["big"]
    assert peak < 1024 * 1024  # far below the 16 MiB tensor: no copy was allocated
    assert not big.flags.writeable and not big.flags.owndata
    # The array is the file's pages: a write to the file shows through it.
    assert big[0] == 0.0
    with open(weights, "r+b") as handle:
        handle.seek(_file_offset(weights, "big"))
        handle.write(np.float32(7.5).tobytes())
    assert big[0] == 7.5


def _file_offset(path: Path, name: str) -> int:
    """Where a tensor's bytes start: after the 8-byte length and the JSON header."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return 8 + int(length) + int(json.loads(raw[8 : 8 + length])[name]["data_offsets"][0])


def test_load_safetensors_refuses_a_file_that_is_not_one(tmp_path: Path) -> None:
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="not a safetensors file"):
        worker.load_safetensors(bogus)
