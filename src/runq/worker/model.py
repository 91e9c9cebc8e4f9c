"""Loading helpers for handlers: where the endpoint's model is, load-once, and safetensors
without copies.

    from runq import worker

    weights = worker.Lazy(lambda: worker.load_safetensors(worker.model_path()))

    def handler(job):
        return {"sum": float(weights.get()["w"].sum())}

    if __name__ == "__main__":
        weights.get()  # eager: load during the cold start; leave it out to load on first job
        worker.start({"handler": handler})

Nothing heavy is imported here: numpy only when `load_safetensors` is called.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import numpy as np

MODEL_PATH_VAR = "RUNQ_MODEL_PATH"
T = TypeVar("T")

# safetensors dtype -> numpy dtype string (little-endian, as the format stores it).
_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit


class ModelNotConfigured(RuntimeError):
    """The worker's endpoint declares no [model], so there is no model path."""


def model_path() -> Path:
    """Where this worker's model is: the file or folder runq made available on this host
    (fetched into the host cache, or the file://, volume:// or baked path itself). An hf://
    model is its snapshot folder, and HF_HUB_CACHE points at the host cache as well.

    Raises:
        ModelNotConfigured: RUNQ_MODEL_PATH is not set (the endpoint has no [model] source).
    """
    value = os.environ.get(MODEL_PATH_VAR, "")
    if not value:
        raise ModelNotConfigured(
            f"{MODEL_PATH_VAR} is not set: the endpoint file has no [model] source "
            '(add e.g. [model] source = "hf://org/name"), or this process was not started by runq'
        )
    return Path(value)


class Lazy(Generic[T]):
    """A value made by `loader` on the first `get()`, once, even with concurrent handlers.

    Lazy (the default): the worker becomes ready at once and the first job pays the load.
    Eager: call `get()` before `worker.start`, so the load is part of the cold start and no
    job waits for it. If the loader raises, the next `get()` tries again.
    """

    def __init__(self, loader: Callable[[], T]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._value: T | None = None
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def get(self) -> T:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    self._value = self._loader()
                    self._loaded = True
        return self._value  # type: ignore[return-value]


def load_safetensors(path: Path | str) -> dict[str, np.ndarray[Any, Any]]:
    """The tensors of a .safetensors file (or of every one in a folder) as read-only numpy
    arrays over one memory map of each file: no tensor is copied, pages are read from the page
    cache when touched, and workers on one host share those pages.

    Why not `safetensors.safe_open(..., framework="np").get_tensor`: it returns each tensor
    in a freshly allocated buffer, a full second copy of the weights in this process. The
    format is simple (an 8-byte little-endian header length, a JSON header of dtype, shape and
    byte offsets, then the data), so the arrays are views made here with `np.frombuffer`.

    Raises:
        ValueError: not a safetensors file, or a dtype numpy has no type for (BF16, F8).
    """
    import numpy as np  # here: a worker that never loads weights never imports numpy

    root = Path(path)
    files = sorted(root.glob("*.safetensors")) if root.is_dir() else [root]
    tensors: dict[str, np.ndarray[Any, Any]] = {}
    for file in files:
        with open(file, "rb") as handle:
            # The map outlives the file object: each array keeps it alive through `.base`.
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        header, start = _header(mapped, file)
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            tensors[name] = _view(np, mapped, start, name, entry, file)
    return tensors


def _header(mapped: mmap.mmap, file: Path) -> tuple[dict[str, Any], int]:
    if len(mapped) < 8:
        raise ValueError(f"{file}: not a safetensors file (shorter than its header length)")
    (length,) = struct.unpack("<Q", mapped[:8])
    if length > min(_MAX_HEADER, len(mapped) - 8):
        raise ValueError(f"{file}: not a safetensors file (header length {length})")
    try:
        header = json.loads(mapped[8 : 8 + length])
    except ValueError:
        raise ValueError(f"{file}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{file}: not a safetensors file (header is not a table)")
    return header, 8 + length


def _view(
    np: Any, mapped: mmap.mmap, start: int, name: str, entry: Any, file: Path
) -> np.ndarray[Any, Any]:
    where = f"{file}: tensor {name!r}"
    dtype = _DTYPES.get(entry.get("dtype", "") if isinstance(entry, dict) else "")
    if dtype is None:
        raise ValueError(f"{where}: dtype {entry.get('dtype')!r} has no numpy type")
    try:
        begin, end = entry["data_offsets"]
        count = (end - begin) // np.dtype(dtype).itemsize
        array = np.frombuffer(mapped, dtype=dtype, count=count, offset=start + begin)
        return array.reshape(entry["shape"])  # type: ignore[no-any-return]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: bad header entry {entry!r}: {exc}") from None
